"""The scan settings a model does not read.

``--resolution`` with the small CNN, ``--image-size`` with frozen features, ``--width`` with
EfficientNet: accepted, such a setting changed nothing but the run folder's fingerprint (and, for
``--hidden`` under a linear head or ``--augment`` on features, the recording's), so the same scan
without it was refused as "another configuration". :func:`unread_settings` names them: a scan that
names its model refuses them (:func:`labeltrace.scan_settings.check`); one under ``--model auto``
says the probe's pick leaves them unused and builds everything without them
(:func:`without_unread`). A run folder scanned with one before resumes without it: the scan takes
their values back from the folder's fingerprint (:func:`held_unread`), and so builds the very
network, training and fingerprint that folder's recording was filed under.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from labeltrace.evaluate import noise

if TYPE_CHECKING:
    from labeltrace.scan_settings import ScanConfig

__all__ = ["FEATURE_NOISE", "held_unread", "unread_message", "unread_settings", "without_unread"]

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
    "backbone_precision": "the precision of effnet-lite0's frozen-feature extraction",
    "cache_dir": "where effnet-lite0's frozen features are cached, and those --noise confusion/instance follow",
}  # fmt: skip


def _follows_features(spec: str | None) -> bool:
    return bool(spec) and noise.parse_spec(str(spec))[0] in FEATURE_NOISE


def unread_settings(config: ScanConfig, model: str) -> list[str]:
    """The settings of ``config`` given a value other than their default that ``model`` does not
    read, in field order: ``width`` but with small-cnn; ``image_size`` and ``augment`` with frozen
    features (effnet-lite0 without ``finetune``); ``resolution`` but with effnet-lite0 or noise that
    follows features; ``head`` but with effnet-lite0, ``hidden`` there only with an MLP head; the
    CLIP settings but with clip; ``backbone_precision`` but with frozen features; ``cache_dir`` but
    with frozen features or noise that follows them, where no probe chose the model (``--model auto``
    reads features in its probe)."""
    frozen = model == "effnet-lite0" and not config.finetune
    effnet, clip = model == "effnet-lite0", model == "clip"
    follows = _follows_features(config.noise)
    unread = {
        "width": model != "small-cnn", "image_size": frozen, "augment": frozen and bool(config.augment),
        "resolution": not effnet and not follows, "head": not effnet,
        "hidden": not effnet or config.head == "linear",
        "clip_model": not clip, "clip_template": not clip, "aux_prompt": not clip,
        "backbone_precision": not frozen, "cache_dir": not frozen and not follows and config.model != "auto",
    }  # fmt: skip
    return [f.name for f in fields(config) if unread.get(f.name) and getattr(config, f.name) != f.default]


def unread_message(config: ScanConfig, model: str, names: list[str]) -> str:
    """The unread settings ``names`` of ``config``, as flags with their values and what they set."""
    def flag(name: str) -> str:
        v = getattr(config, name)
        f = "--" + name.replace("_", "-")
        return (f if v else f"--no-{f[2:]}") if isinstance(v, bool) else f"{f} {v!r}" if isinstance(v, str) else f"{f} {v}"

    return "; ".join(f"{flag(n)} ({_WHAT[n]})" for n in names)


def without_unread(config: ScanConfig, names: list[str]) -> ScanConfig:
    """``config`` with the settings ``names`` (:func:`unread_settings`) at their defaults, the
    resolution at the 96 px a model that reads none resolves to: what the network, the training and
    the fingerprint are built from, so that such a setting binds nothing."""
    back: dict[str, Any] = {f.name: 96 if f.name == "resolution" else f.default
                            for f in fields(config) if f.name in names}  # fmt: skip
    return replace(config, **back)


def held_unread(held: dict[str, Any], config: ScanConfig, model: str) -> dict[str, Any]:
    """The settings ``model`` does not read as the scan whose fingerprint is ``held`` recorded them
    (a scan from before they were refused or left out: its network, training and recording were
    built with them), for the fields where they could differ: the resolution (but with effnet-lite0
    or noise that follows features), the image side and augmentation on frozen features, the MLP
    width of a linear head. Empty where ``held`` is of another model or of another form."""
    if held.get("model") != model:
        return {}
    inputs, network = held.get("inputs") or {}, held.get("network") or {}
    frozen = model == "effnet-lite0" and not config.finetune
    out: dict[str, Any] = {}
    try:
        follows = _follows_features(config.noise)
    except ValueError:
        return {}
    if model != "effnet-lite0" and not follows and isinstance(inputs.get("resolution"), int):
        out["resolution"] = inputs["resolution"]
    if frozen:
        if inputs.get("image_size") is None or isinstance(inputs.get("image_size"), int):
            out["image_size"] = inputs.get("image_size")
        try:
            augment = json.loads(held["train"])["train"]["augment"]
        except (KeyError, TypeError, ValueError):
            augment = None
        if isinstance(augment, bool):
            out["augment"] = augment
    if model == "effnet-lite0" and config.head == "linear" and isinstance(network.get("hidden"), int):
        out["hidden"] = network["hidden"]
    return out

