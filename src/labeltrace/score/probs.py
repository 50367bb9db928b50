"""Label-quality scores and label-issue filters from an ``(N, K)`` predicted-probability matrix.

Confident learning (Northcutt, Jiang & Chuang 2021, "Confident Learning: Estimating Uncertainty
in Dataset Labels", JAIR 70) re-implemented in plain numpy so that, for valid inputs, every
function named below returns **exactly** what cleanlab 2.9.0 returns with its default arguments:

=============================== ==========================================================
here                            cleanlab 2.9.0
=============================== ==========================================================
:func:`self_confidence`         ``rank.get_label_quality_scores(method="self_confidence")``
:func:`normalized_margin`       ``rank.get_label_quality_scores(method="normalized_margin")``
:func:`confident_thresholds`    ``count.get_confident_thresholds``
:func:`confident_joint`         ``count.compute_confident_joint`` (``calibrate=True``)
:func:`find_label_issues`       ``filter.find_label_issues(filter_by=...)`` (mask output)
:func:`num_label_issues`        ``count.num_label_issues`` (``estimation_method="off_diagonal"``)
=============================== ==========================================================

This module holds the scores (:func:`self_confidence`, :func:`normalized_margin`, confident
learning as a score :func:`confident_learning`) and their registry (:func:`from_probs`). The
counts and the filter (:func:`confident_thresholds`, :func:`confident_joint`,
:func:`num_label_issues`, :func:`estimate_noise_rate`, :func:`find_label_issues`) live in
:mod:`labeltrace.score.confident`, which also says what exactness means (same operations in the
same dtype and order, ties broken as cleanlab breaks them); :func:`validate_probs` lives in
:mod:`labeltrace.score.validate`. Both are re-exported here.

``normalized_margin`` follows cleanlab and is **rescaled to [0, 1]**:
``(p[i, y_i] - max_{k != y_i} p[i, k] + 1) / 2`` (0.5 = given label tied with the best other);
like cleanlab it is computed in the input's dtype (float32 or float64), then widened.

Scores have shape ``(N,)``, lower = more likely mislabeled.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from labeltrace.score.confident import (
    FILTER_BY,
    FilterBy,
    confident_joint,
    confident_thresholds,
    estimate_noise_rate,
    find_label_issues,
    num_label_issues,
)
from labeltrace.score.validate import validate_probs

__all__ = [
    "CL_CUTOFF",
    "FILTER_BY",
    "available_from_probs",
    "confident_joint",
    "confident_learning",
    "confident_learning_flags",
    "confident_thresholds",
    "estimate_noise_rate",
    "find_label_issues",
    "from_probs",
    "normalized_margin",
    "num_label_issues",
    "self_confidence",
    "validate_probs",
]

#: ``confident_learning(...) < CL_CUTOFF`` is exactly the flagged set (see
#: :func:`confident_learning`).
CL_CUTOFF: float = -1.0


# --------------------------------------------------------------------------- simple scores
def self_confidence(probs: Any, labels: Any) -> np.ndarray:
    """Self-confidence ``p[i, y_i]`` as float64, shape ``(N,)`` (lower = more suspect)."""
    p, y = validate_probs(probs, labels)
    return p[np.arange(y.size), y].astype(np.float64)


def _normalized_margin(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    rows = np.arange(y.size)
    given = p[rows, y]
    others = p.copy()
    others[rows, y] = -np.inf
    # Computed in the input dtype, like cleanlab, then widened.
    return ((given - others.max(axis=1) + 1) / 2).astype(np.float64)


def normalized_margin(probs: Any, labels: Any) -> np.ndarray:
    """Normalized margin ``(p[i, y_i] - max_{k != y_i} p[i, k] + 1) / 2`` in [0, 1], float64.

    The ``(+1) / 2`` rescaling is cleanlab's; it keeps the ranking of the raw margin.
    """
    p, y = validate_probs(probs, labels)
    return _normalized_margin(p, y)


# --------------------------------------------------------------------------- CL as a score
def confident_learning(
    probs: Any,
    labels: Any,
    *,
    filter_by: FilterBy = "prune_by_noise_rate",
    frac_noise: float = 1.0,
    min_examples_per_class: int = 1,
) -> np.ndarray:
    """Confident-learning label-quality score, float64 ``(N,)``, lower = more suspect.

    ``normalized_margin - 2 * flagged`` where ``flagged = find_label_issues(...)``. Unflagged
    samples score in [0, 1]; flagged ones in [-2, -1.5) (a flagged sample's given label is not
    its argmax, so its normalized margin is below 0.5). Hence ``score < CL_CUTOFF`` (= -1)
    reproduces the flagged set exactly (:func:`confident_learning_flags`), every flagged sample
    ranks below every unflagged one, and within each group the order is the normalized margin.

    Not monotone in a sample's own probability: lowering ``probs[i, labels[i]]`` also moves the
    per-class thresholds and counts confident learning derives from every sample, and can take
    ``i`` out of the flagged set (as with cleanlab's own ``find_label_issues``, which this equals).
    """
    p, y = validate_probs(probs, labels)
    flagged = find_label_issues(
        p,
        y,
        filter_by=filter_by,
        frac_noise=frac_noise,
        min_examples_per_class=min_examples_per_class,
    )
    return _normalized_margin(p, y) - 2.0 * flagged


def confident_learning_flags(scores: np.ndarray) -> np.ndarray:
    """The flagged set of a :func:`confident_learning` score: ``scores < CL_CUTOFF``."""
    return np.asarray(scores) < CL_CUTOFF


# --------------------------------------------------------------------------- registry
_FROM_PROBS: dict[str, Callable[..., np.ndarray]] = {
    "self_confidence": self_confidence,
    "normalized_margin": normalized_margin,
    "confident_learning": confident_learning,
}


def available_from_probs() -> list[str]:
    """Names accepted by :func:`from_probs`."""
    return sorted(_FROM_PROBS)


def from_probs(name: str, probs: Any, labels: Any, **kw: Any) -> np.ndarray:
    """Score ``name`` (see :func:`available_from_probs`): float64 ``(N,)``, lower = more suspect."""
    try:
        fn = _FROM_PROBS[name]
    except KeyError:
        raise ValueError(
            f"unknown probability score {name!r}; available: {', '.join(available_from_probs())}"
        ) from None
    takes = list(inspect.signature(fn).parameters)[2:]  # after probs and labels
    if extra := [k for k in kw if k not in takes]:
        raise ValueError(f"probability score {name!r} takes no {', '.join(repr(k) for k in extra)} "
                         f"(it takes: {', '.join(takes) or 'no options'})")
    return fn(probs, labels, **kw)
