"""The scan settings a model does not read.

``--resolution`` with the small CNN, ``--image-size`` with frozen features, ``--width`` with
EfficientNet: accepted, such a setting changed nothing but the run folder's fingerprint, so the
same scan without it was refused as "another configuration". :func:`unread_settings` names them:
a scan that names its model refuses them (:func:`labeltrace.scan_settings.check`), one under
``--model auto`` says the probe's pick leaves them unused. :func:`same_result` compares two
fingerprints without them, so a run folder scanned with one resumes without it (and the other
way round) — keeping its own fingerprint, which its recording is filed under.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from labeltrace.evaluate import noise

if TYPE_CHECKING:
    from labeltrace.scan_settings import ScanConfig

__all__ = ["FEATURE_NOISE", "same_result", "unread_message", "unread_settings"]

#: the ``--noise`` kinds drawn along frozen EfficientNet features at ``--resolution``
#: (:func:`labeltrace.scan_settings.noise_resolution`): with them every model reads the resolution
FEATURE_NOISE: tuple[str, ...] = ("confusion", "instance")

#: what each setting is, said beside the refusal
_WHAT = {
    "width": "the small CNN's base width",
    "image_size": "the side images are trained at; frozen features are taken at --resolution",
    "resolution": "effnet-lite0's input resolution, and that of the features --noise confusion/instance follow",
    "head": "effnet-lite0's head",
    "hidden": "the width of effnet-lite0's MLP head; --head linear has none",
    "augment": "random crops and flips of images; frozen features are no images",
    "clip_model": "read by --model clip alone", "clip_template": "read by --model clip alone", "aux_prompt": "read by --model clip alone",
}  # fmt: skip


def _follows_features(spec: str | None) -> bool:
    return bool(spec) and noise.parse_spec(str(spec))[0] in FEATURE_NOISE


def unread_settings(config: ScanConfig, model: str) -> list[str]:
    """The settings of ``config`` given a value other than their default that ``model`` does not
    read, in field order: ``width`` but with small-cnn; ``image_size`` and ``augment`` with frozen
    features (effnet-lite0 without ``finetune``); ``resolution`` but with effnet-lite0 or noise that
    follows features; ``head`` but with effnet-lite0, ``hidden`` there only with an MLP head; the
    CLIP settings but with clip."""
    frozen = model == "effnet-lite0" and not config.finetune
    effnet, clip = model == "effnet-lite0", model == "clip"
    unread = {
        "width": model != "small-cnn", "image_size": frozen, "augment": frozen and bool(config.augment),
        "resolution": not effnet and not _follows_features(config.noise), "head": not effnet,
        "hidden": not effnet or config.head == "linear",
        "clip_model": not clip, "clip_template": not clip, "aux_prompt": not clip,
    }  # fmt: skip
    return [f.name for f in fields(config) if unread.get(f.name) and getattr(config, f.name) != f.default]


def unread_message(config: ScanConfig, model: str, names: list[str]) -> str:
    """The unread settings ``names`` of ``config``, as flags with their values and what they set."""
    def flag(name: str) -> str:
        v = getattr(config, name)
        f = "--" + name.replace("_", "-")
        return (f if v else f"--no-{f[2:]}") if isinstance(v, bool) else f"{f} {v!r}" if isinstance(v, str) else f"{f} {v}"

    return "; ".join(f"{flag(n)} ({_WHAT[n]})" for n in names)


def _read_part(fp: dict[str, Any]) -> dict[str, Any]:
    """``fp`` (a scan's fingerprint, as JSON) without the settings its model did not read."""
    out = dict(fp)
    model, inputs, network = fp.get("model"), dict(fp.get("inputs") or {}), dict(fp.get("network") or {})
    frozen = model == "effnet-lite0" and not inputs.get("finetune")
    try:
        follows = _follows_features(fp.get("noise"))
    except ValueError:  # a noise spec no longer understood: compared whole
        follows = True
    if model != "effnet-lite0" and not follows:
        inputs.pop("resolution", None)
    if frozen:
        inputs.pop("image_size", None)
        try:
            train = json.loads(fp["train"])
            train.get("train", {}).pop("augment", None)
            out["train"] = json.dumps(train, sort_keys=True)
        except (KeyError, TypeError, ValueError, AttributeError):  # compared as it is
            pass
    if network.get("kind") == "linear" or network.get("head") == "linear" or network.get("kind") in ("small-cnn", "clip"):
        network.pop("hidden", None)
    out["inputs"], out["network"] = inputs, network
    return out


def same_result(held: dict[str, Any], fingerprint: dict[str, Any]) -> bool:
    """Whether two scan fingerprints differ at most in settings their model did not read (and so
    describe the same result): the same model, the rest equal."""
    a, b = (json.loads(json.dumps(fp, sort_keys=True, default=str)) for fp in (held, fingerprint))
    return bool(a.get("model") == b.get("model") and _read_part(a) == _read_part(b))
