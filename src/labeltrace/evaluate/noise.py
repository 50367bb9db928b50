"""Seeded synthetic label-noise injection for benchmarking mislabel detectors: the ``--noise``
spec ``KIND:RATE`` (``labeltrace scan --noise``, bench label sets) and the noise it draws.

:func:`parse_spec` reads the spec, :func:`flat_features` makes the features the
feature-following kinds read, and :func:`inject` draws the noise. The noise models themselves
(:func:`symmetric`, :func:`pair`, :func:`from_transition`, :func:`confusion_calibrated`,
:func:`instance_dependent`, returning a :class:`NoisyLabels`) live in
:mod:`labeltrace.evaluate.noise_models`, which states their shared conventions (seeds, rounding
of counts), and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labeltrace._checks import check_int, check_labels, check_num_classes
from labeltrace.evaluate.noise_models import (
    NoisyLabels,
    confusion_calibrated,
    from_transition,
    instance_dependent,
    pair,
    symmetric,
)

__all__ = [
    "KINDS",
    "NoisyLabels",
    "confusion_calibrated",
    "flat_features",
    "from_transition",
    "inject",
    "instance_dependent",
    "pair",
    "parse_spec",
    "symmetric",
]

#: the kinds of ``inject``'s spec ``KIND:RATE`` (``labeltrace scan --noise``, bench label sets)
KINDS: tuple[str, ...] = ("symmetric", "pair", "confusion", "instance")


def parse_spec(spec: str) -> tuple[str, float]:
    """``"symmetric:0.2"`` → ``("symmetric", 0.2)``; kinds: symmetric, pair, confusion, instance."""
    kind, sep, rate = spec.partition(":")
    if not sep or kind not in KINDS:
        raise ValueError(f"--noise must look like symmetric:0.2, pair:0.2, confusion:0.3 or instance:0.2; got {spec!r}")
    try:
        r = float(rate)
    except ValueError:
        raise ValueError(f"--noise rate must be a number, got {rate!r}") from None
    if not 0.0 < r < 1.0:
        raise ValueError(f"--noise rate must be in (0, 1), got {r}")
    return kind, r


def flat_features(x: np.ndarray, size: int = 16) -> np.ndarray:
    """(N, D) features of float images ``(N, C, H, W)`` for the noise models, flattened: images
    wider than ``size`` px are first average-pooled to ``size`` × ``size`` (whatever their
    height); narrower ones, and features, pass through as they are."""
    import torch

    t = torch.as_tensor(x)
    if t.ndim == 4 and t.shape[-1] > size:
        t = torch.nn.functional.adaptive_avg_pool2d(t, size)
    return t.reshape(len(t), -1).numpy()


def inject(spec: str, labels: np.ndarray, num_classes: int, features: np.ndarray, *, seed: int,
           classes: Sequence[str] | None = None) -> NoisyLabels:  # fmt: skip
    """Noise of ``spec`` (:func:`parse_spec`) on ``labels``. ``instance`` noise follows the
    ``features``; ``confusion`` noise follows the confusion matrix of 3-fold logistic regression
    on them (trained on the clean labels), so flips go where a model confuses classes. The labels,
    the classes and the seed are checked before that regression trains. ``classes``: the class
    names, for the warning of classes whose labels the noise swaps (their ids otherwise)."""
    kind, rate = parse_spec(spec)
    labels = check_labels(labels, check_num_classes(num_classes))  # names the samples outside [0, K)
    check_int("seed", seed, 0)
    if kind == "symmetric":
        noisy = symmetric(labels, rate, num_classes, seed=seed)
    elif kind == "pair":
        noisy = pair(labels, rate, num_classes, seed=seed)
    elif kind == "instance":
        noisy = instance_dependent(features, labels, rate, num_classes, seed=seed)
    else:
        from labeltrace.train.crossval import crossval_probs

        p = crossval_probs(features, labels, n_folds=3, C=1.0, seed=seed)
        cm = np.zeros((num_classes, num_classes))
        np.add.at(cm, (labels, p.argmax(1)), 1.0)
        noisy = confusion_calibrated(labels, rate, cm, seed=seed)
    if kind in ("confusion", "instance") or rate >= (0.5 if kind == "pair" else (num_classes - 1) / num_classes):
        _warn_if_swapped(spec, labels, noisy.labels, num_classes, classes)  # symmetric and pair: past their bound only
    return noisy


def _warn_if_swapped(spec: str, clean: np.ndarray, given: np.ndarray, num_classes: int,
                     classes: Sequence[str] | None = None) -> None:  # fmt: skip
    """Warn where a class's images carry another label at least as often as their own (the noise is
    not diagonally dominant there): such a class's labels are swapped rather than noisy, and no
    detector can tell them from the right ones (symmetric:0.95 of 10 classes, pair:0.6 were accepted
    unsaid, and a benchmark then read F1 0.92 beside AUROC 0.48)."""
    from labeltrace._checks import listing
    from labeltrace.data.errors import DataWarning

    c = np.asarray(clean, dtype=np.int64)
    m = np.bincount(c * num_classes + np.asarray(given, dtype=np.int64), minlength=num_classes**2)
    m = m.reshape(num_classes, num_classes)
    other = m.copy()
    np.fill_diagonal(other, -1)
    rival = other.argmax(axis=1)
    bad = np.flatnonzero((m.sum(axis=1) > 0) & (other.max(axis=1) > np.diag(m)))
    if bad.size:
        from labeltrace._warn import warn_caller

        name = (lambda k: repr(str(classes[k]))) if classes is not None else str  # noqa: E731
        shown = [f"class {name(k)}: {m[k, rival[k]]} labelled {name(rival[k])}, {m[k, k]} kept" for k in bad]
        warn_caller(f"--noise {spec}: in {len(bad)} of {num_classes} classes more images carry one wrong label "
                    f"than their own ({listing(shown, 5)}): there the given labels are swapped rather than "
                    "noisy, and no detector can tell the wrong ones apart (a lower rate keeps each class's own "
                    "label the most common)", DataWarning)  # fmt: skip
