"""Confident learning's counts and label-issue filter on an ``(N, K)`` predicted-probability
matrix (Northcutt, Jiang & Chuang 2021, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 70), re-implemented in plain numpy so that, for valid inputs, every function here
returns **exactly** what cleanlab 2.9.0 returns with its default arguments:

=============================== ==========================================================
here                            cleanlab 2.9.0
=============================== ==========================================================
:func:`confident_thresholds`    ``count.get_confident_thresholds``
:func:`confident_joint`         ``count.compute_confident_joint`` (``calibrate=True``)
:func:`find_label_issues`       ``filter.find_label_issues(filter_by=...)`` (mask output)
:func:`num_label_issues`        ``count.num_label_issues`` (``estimation_method="off_diagonal"``)
=============================== ==========================================================

Exactness means the same floating-point operations in the same dtype and order: float32 and
float64 inputs are computed in their own dtype (other dtypes are cast to float64), and where
cleanlab ranks with ``np.argsort`` (default kind) we call ``np.argsort`` on an array holding the
same values in the same order, so **ties are broken exactly as cleanlab breaks them** (numpy's
default sort; not documented as stable).

Inputs are checked by :func:`labeltrace.score.validate.validate_probs`. The scores built on
these (self-confidence, normalized margin, confident learning as a score) are in
:mod:`labeltrace.score.probs`, which re-exports everything here.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from labeltrace._checks import check_finite_float
from labeltrace.score.validate import validate_probs

__all__ = [
    "FILTER_BY",
    "confident_joint",
    "confident_thresholds",
    "estimate_noise_rate",
    "find_label_issues",
    "num_label_issues",
]

FilterBy = Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_learning"]
FILTER_BY: tuple[str, ...] = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning")

# cleanlab's constants (cleanlab.internal.constants), reproduced for exact agreement.
_FUZZ = 1e-6  # FLOATING_POINT_COMPARISON: threshold slack and given-label bump
_THRESHOLD_FLOOR = 2e-6  # CONFIDENT_THRESHOLDS_LOWER_BOUND
_TINY = 1e-100  # TINY_VALUE


# --------------------------------------------------------------------------- confident joint
def _class_groups(y: np.ndarray, k: int) -> list[np.ndarray]:
    """Indices of each class's samples, ascending (the order ``labels == c`` selects them in)."""
    order = np.argsort(y, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(y, minlength=k))))
    return [order[bounds[c] : bounds[c + 1]] for c in range(k)]


def _thresholds(p: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    # np.mean over the same contiguous values in the same order as cleanlab -> identical floats.
    t = np.array([np.mean(p[g, c]) for c, g in enumerate(groups)])
    return np.clip(t, _THRESHOLD_FLOOR, None)


def confident_thresholds(probs: Any, labels: Any) -> np.ndarray:
    """Per-class thresholds ``t_c = mean(p[i, c] for i with y_i == c)``, shape ``(K,)``.

    Floored at 2e-6 and returned in the dtype of ``probs`` (float32 or float64).
    """
    p, y = validate_probs(probs, labels)
    return _thresholds(p, _class_groups(y, p.shape[1]))


def _confident_guess(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confident mask, guessed true class) for every sample.

    A sample is confident for class c when ``p[i, c] >= t_c - 1e-6``. With one confident class
    that class is the guess; with several, the overall argmax of ``p[i]`` (as in cleanlab, even
    if that argmax is not itself above its threshold). Samples confident for no class are not
    counted (mask False).
    """
    above = p >= t - _FUZZ
    n_above = above.sum(axis=1)
    guess = np.where(n_above > 1, p.argmax(axis=1), above.argmax(axis=1))
    return n_above > 0, guess


def _round_preserving_sum(x: np.ndarray) -> np.ndarray:
    """Round to integers keeping ``round(sum(x))``: adjust the entries with the largest rounding
    loss (cleanlab's ``round_preserving_sum``, same tie order via default ``np.argsort``)."""
    ints = np.round(x)
    target = np.round(np.sum(x))
    total = np.round(np.sum(ints))
    while abs(total - target) > _FUZZ:
        diff = np.round(target - total)
        step = -1 if diff < 0 else 1
        n_change = min(int(abs(diff)), x.size)
        order = np.argsort(x - ints)
        pick = order[::-1][:n_change] if step == 1 else order[:n_change]
        ints[pick] += step
        total = np.round(np.sum(ints))
    return ints.astype(np.int64)


def _calibrate(cj: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Rescale rows to the given-label counts, the total to N, and round keeping row totals.

    The expression (including the transposes) mirrors cleanlab's ``calibrate_confident_joint``:
    the memory layout decides the summation order of the grand total, hence the last float bit.
    """
    row_sums = np.clip(cj.sum(axis=1), _TINY, None)
    cal = (cj.T / row_sums * counts).T
    cal = cal / np.clip(np.sum(cal), _TINY, None) * counts.sum()
    out = np.empty(cal.shape, dtype=np.int64)
    for r in range(cal.shape[0]):
        out[r] = _round_preserving_sum(cal[r])
    return out


def _confident_joint(
    p: np.ndarray, y: np.ndarray, groups: list[np.ndarray], *, calibrate: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(confident joint (K, K) int64, bool mask of confidently off-diagonal samples)."""
    k = p.shape[1]
    confident, guess = _confident_guess(p, _thresholds(p, groups))
    # Counts as a (true, given) matrix, transposed: the resulting Fortran layout is the one
    # cleanlab's ``confusion_matrix(...).T`` has, which fixes the calibration's float sums.
    cj = np.bincount(guess[confident] * k + y[confident], minlength=k * k).reshape(k, k).T
    np.fill_diagonal(cj, np.maximum(cj.diagonal(), 1))
    if calibrate:
        cj = _calibrate(cj, np.bincount(y, minlength=k))
    return cj.astype(np.int64), confident & (guess != y)


def confident_joint(probs: Any, labels: Any, *, calibrate: bool = True) -> np.ndarray:
    """Confident joint ``C[given, true]``: ``(K, K)`` int64 counts.

    Sample i is counted in ``C[y_i, c]`` where c is its confident guess (see thresholds:
    ``p[i, c] >= t_c - 1e-6``; several confident classes -> argmax of ``p[i]``; none -> not
    counted). Each diagonal entry is then raised to at least 1. With ``calibrate=True`` rows are
    rescaled to the given-label counts, the total to N, and rounded preserving row totals.
    """
    p, y = validate_probs(probs, labels)
    return _confident_joint(p, y, _class_groups(y, p.shape[1]), calibrate=calibrate)[0]


def num_label_issues(probs: Any, labels: Any) -> int:
    """Estimated number of label issues: cleanlab's ``count.num_label_issues`` (its default
    ``estimation_method="off_diagonal"``).

    The samples counted off the diagonal of the *uncalibrated* confident joint (confidently
    another class), less those whose given label is still the argmax (within 1e-6).
    """
    p, y = validate_probs(probs, labels)
    _, off = _confident_joint(p, y, _class_groups(y, p.shape[1]), calibrate=False)
    q = p.copy()
    q[np.arange(len(y)), y] += _FUZZ
    return int((off & (q.argmax(axis=1) != y)).sum())


def estimate_noise_rate(probs: Any, labels: Any) -> float:
    """Estimated fraction of mislabeled samples: off-diagonal mass of the calibrated joint."""
    cj = confident_joint(probs, labels, calibrate=True)
    return float((cj.sum() - np.trace(cj)) / cj.sum())


# --------------------------------------------------------------------------- find_label_issues
def _prune_counts(cj: np.ndarray, min_per_class: int, frac_noise: float) -> np.ndarray:
    """Number to prune per (true, given) cell; ``(K, K)`` int, transposed w.r.t. ``cj``.

    Raise each diagonal to ``min_per_class``, taking the increase evenly from that column's
    non-zero off-diagonal cells (floored at 0); scale off-diagonals by ``frac_noise`` (the
    removed mass goes to the diagonal); truncate to int (cleanlab's ``astype(int)``).
    """
    m = cj.T
    diag = m.diagonal()
    new_diag = np.maximum(diag, min_per_class)
    n_nonzero = np.maximum(np.count_nonzero(m, axis=0) - 1.0, 1.0)
    out = m - (new_diag - diag) / n_nonzero
    out[out < 0] = 0
    np.fill_diagonal(out, new_diag)
    scaled = out * frac_noise
    np.fill_diagonal(scaled, out.diagonal())
    np.fill_diagonal(scaled, out.diagonal() + np.sum(out - scaled, axis=0))
    return scaled.astype(np.int64)


def _prune_by_class(
    p: np.ndarray, groups: list[np.ndarray], prune: np.ndarray, min_per_class: int
) -> np.ndarray:
    mask = np.zeros(p.shape[0], dtype=bool)
    for c, g in enumerate(groups):
        # cleanlab never writes back the mask of a class with a single sample (len(mask) > 1).
        if g.size <= max(min_per_class, 1):
            continue
        n_issues = g.size - prune[c, c]
        if n_issues >= 1:
            mask[g[np.argsort(p[g, c])[:n_issues]]] = True
    return mask


def _prune_by_noise_rate(
    p: np.ndarray, groups: list[np.ndarray], prune: np.ndarray, min_per_class: int
) -> np.ndarray:
    mask = np.zeros(p.shape[0], dtype=bool)
    for c, g in enumerate(groups):
        if g.size <= max(min_per_class, 1):
            continue
        pg = p[g]
        for j in range(p.shape[1]):
            n_prune = prune[j, c]
            if j != c and n_prune > 0:
                # the n_prune given-c samples with the largest p_j - p_c
                margin = pg[:, j] - pg[:, c]
                mask[g[np.argsort(-margin)[:n_prune]]] = True
    return mask


def _find_label_issues(
    p: np.ndarray,
    y: np.ndarray,
    *,
    filter_by: str,
    frac_noise: float,
    min_examples_per_class: int,
) -> np.ndarray:
    groups = _class_groups(y, p.shape[1])
    cj, off_diagonal = _confident_joint(p, y, groups, calibrate=True)
    if filter_by == "confident_learning":
        mask = off_diagonal
    else:
        prune = _prune_counts(cj, min_examples_per_class, frac_noise)
        if filter_by == "prune_by_class":
            mask = _prune_by_class(p, groups, prune, min_examples_per_class)
        elif filter_by == "prune_by_noise_rate":
            mask = _prune_by_noise_rate(p, groups, prune, min_examples_per_class)
        else:  # both
            mask = _prune_by_class(p, groups, prune, min_examples_per_class) & _prune_by_noise_rate(
                p, groups, prune, min_examples_per_class
            )
    # Never flag a sample whose given label (bumped by 1e-6) is the argmax.
    bumped = p.copy()
    rows = np.arange(y.size)
    bumped[rows, y] += _FUZZ
    return mask & (bumped.argmax(axis=1) != y)


def find_label_issues(
    probs: Any,
    labels: Any,
    *,
    filter_by: FilterBy = "prune_by_noise_rate",
    frac_noise: float = 1.0,
    min_examples_per_class: int = 1,
) -> np.ndarray:
    """Boolean ``(N,)`` mask of likely label issues, identical to cleanlab's ``find_label_issues``.

    Parameters
    ----------
    probs, labels
        See :func:`validate_probs` (ideally out-of-sample probabilities).
    filter_by : {"prune_by_noise_rate", "prune_by_class", "both", "confident_learning"}
        - ``prune_by_noise_rate``: for each off-diagonal cell (given c, true j) of the calibrated
          confident joint, flag that many given-c samples with the largest ``p_j - p_c``.
        - ``prune_by_class``: in each class c flag the ``n_c - C[c, c]`` samples with the
          smallest ``p_c``.
        - ``both``: flagged by both of the above.
        - ``confident_learning``: the samples counted off-diagonal in the confident joint.
    frac_noise : float
        In (0, 1]; keep only about this fraction of the off-diagonal counts (prune_* and both).
    min_examples_per_class : int
        Classes with at most this many samples (and every single-sample class) are never
        flagged by the prune_* methods; pruning never leaves fewer than this many samples
        counted on a class's diagonal. Unused by ``confident_learning``.

    Returns
    -------
    np.ndarray
        bool ``(N,)``. Whatever the method, a sample is never flagged when its given label,
        bumped by 1e-6, is the argmax of its row.

    Notes
    -----
    Rankings use numpy's default ``argsort`` on per-class arrays, exactly as cleanlab does, so
    ties resolve identically.
    """
    p, y = validate_probs(probs, labels)
    if filter_by not in FILTER_BY:
        raise ValueError(f"filter_by must be one of {FILTER_BY}, got {filter_by!r}")
    frac_noise = check_finite_float(frac_noise, "frac_noise")
    if not 0.0 < frac_noise <= 1.0:
        raise ValueError(f"frac_noise must be in (0, 1], got {frac_noise}")
    if filter_by == "confident_learning" and frac_noise != 1.0:
        raise ValueError("frac_noise applies to the prune_* and 'both' methods only")
    if isinstance(min_examples_per_class, bool) or not isinstance(
        min_examples_per_class, (int, np.integer)
    ):
        raise ValueError(f"min_examples_per_class must be an int, got {min_examples_per_class!r}")
    if min_examples_per_class < 0:
        raise ValueError(f"min_examples_per_class must be >= 0, got {min_examples_per_class}")
    return _find_label_issues(
        p,
        y,
        filter_by=filter_by,
        frac_noise=float(frac_noise),
        min_examples_per_class=int(min_examples_per_class),
    )
