"""Cutoffs from auxiliary ("threshold") samples: the AUM paper's (Pleiss et al. 2020) and the SEI
paper's rule, with the two-run protocol that scores every sample.

A random ``1 / (K + 1)`` of the data is relabelled to a pseudo-class ``K`` that does not exist
(:func:`assign_auxiliary`, :func:`auxiliary_labels`), so these samples are mislabeled by
construction. After training on the modified labels, their scores show how a mislabeled sample
scores, which sets the cutoff (:func:`auxiliary_cutoff`). Auxiliary samples lost their own
label, so a second run with a disjoint auxiliary set (``exclude=``, :func:`assign_auxiliary_pair`)
scores them; :func:`combine_two_runs` merges the runs' scores and :func:`combine_cutoffs` or
:func:`pooled_auxiliary_cutoff` their cutoffs.

Scores follow the package convention (lower = more likely mislabeled); flag with
``scores < cutoff`` (:func:`labeltrace.decide.cutoffs.flag`), where the rules without auxiliary
samples also live. Everything here is re-exported by :mod:`labeltrace.decide.cutoffs`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from labeltrace._checks import check_finite_float as _check_finite_float
from labeltrace._checks import check_labels as _check_labels
from labeltrace._checks import check_mask as _check_mask
from labeltrace._checks import check_num_classes as _check_num_classes
from labeltrace._checks import check_scores as _check_scores
from labeltrace._checks import counted, round_half_up, seeded
from labeltrace._checks import describe_ids as _describe_ids
from labeltrace._checks import reject_nan as _reject_nan

__all__ = [
    "assign_auxiliary",
    "assign_auxiliary_pair",
    "auxiliary_cutoff",
    "auxiliary_labels",
    "combine_cutoffs",
    "combine_two_runs",
    "pooled_auxiliary_cutoff",
]

Seed = int | np.random.Generator


def _allocate(ideal: np.ndarray, cap: np.ndarray, total: int) -> np.ndarray:
    """Integer quotas summing to ``total``, close to ``ideal`` and never above ``cap``.

    Floors first, then hands out the remainder one unit per class in order of the largest
    shortfall ``ideal - quota`` (ties: lower class id), skipping classes at their cap.
    """
    quota = np.minimum(np.floor(ideal).astype(np.int64), cap)
    while (remaining := total - int(quota.sum())) > 0:
        cand = np.flatnonzero(quota < cap)
        order = np.lexsort((cand, -(ideal[cand] - quota[cand])))
        quota[cand[order[:remaining]]] += 1
    return quota


def assign_auxiliary(
    labels: np.ndarray,
    num_classes: int,
    *,
    fraction: float | None = None,
    seed: Seed,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Choose the samples to relabel to the auxiliary pseudo-class ``K``.

    ``M = N // (K + 1)`` samples by default (the AUM paper's ``N / (c + 1)``), or
    ``round(fraction * N)``. The choice is stratified by given label: class ``c`` contributes
    about ``M * n_c / N`` samples (largest-remainder rounding), chosen uniformly within the
    class, but never more than ``n_c - 1`` (every class keeps at least one sample with its own
    label) nor more than its samples not in ``exclude``; a shortfall is moved to the classes
    with the largest remaining shortfall.

    Parameters
    ----------
    labels : np.ndarray
        (N,) integer labels in ``[0, num_classes)``.
    num_classes : int
        Number of real classes K >= 2 (the pseudo-class is K).
    fraction : float, optional
        Fraction of samples in ``(0, 1)``; default ``1 / (K + 1)`` via ``N // (K + 1)``.
    seed : int or np.random.Generator
        Seed for ``np.random.default_rng``.
    exclude : np.ndarray, optional
        (N,) bool, samples that may not be picked (e.g. the first run's auxiliary set, so a
        second run gets a disjoint one).

    Returns
    -------
    np.ndarray
        (N,) bool mask of auxiliary samples.

    Raises
    ------
    ValueError
        On invalid input, or when fewer than ``M`` samples can be picked.
    """
    k = _check_num_classes(num_classes)
    y = _check_labels(labels, k)
    n = y.size
    excl = np.zeros(n, dtype=bool) if exclude is None else _check_mask(exclude, n, "exclude")
    if fraction is None:
        m = n // (k + 1)
    else:
        f = _check_finite_float(fraction, "fraction")
        if not 0.0 < f < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
        m = round_half_up(f * n)

    counts = np.bincount(y, minlength=k)
    available = np.bincount(y[~excl], minlength=k)
    cap = np.minimum(available, np.maximum(counts - 1, 0))
    if int(cap.sum()) < m:
        raise ValueError(
            f"not enough samples remain to pick {m} auxiliary samples: only {int(cap.sum())} can "
            f"be picked ({int(excl.sum())} excluded, and each class keeps at least one sample; "
            f"class sizes {counts.tolist()}, not excluded {available.tolist()})"
        )
    ideal = m * counts / n if n else np.zeros(k)
    quota = _allocate(ideal, cap, m)

    rng = seeded(seed)
    key = rng.random(n)
    key[excl] = 2.0  # sorts after every eligible sample of its class
    order = np.lexsort((key, y))
    y_sorted = y[order]
    class_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(n) - class_start[y_sorted]
    is_aux = np.zeros(n, dtype=bool)
    is_aux[order[rank < quota[y_sorted]]] = True
    return is_aux


def assign_auxiliary_pair(
    labels: np.ndarray, num_classes: int, *, fraction: float | None = None, seed: int
) -> list[np.ndarray]:
    """The two disjoint auxiliary sets of the two-run protocol: :func:`assign_auxiliary` with
    ``2 * seed``, then with ``2 * seed + 1`` excluding the first set (the draw ``labeltrace scan``
    and ``labeltrace bench`` share). No two seeds share a draw: with ``seed`` and ``seed + 1``, as
    before, seed ``s``'s second set and seed ``s + 1``'s first were drawn alike (three quarters of
    them the same samples)."""
    a = assign_auxiliary(labels, num_classes, fraction=fraction, seed=2 * seed)
    b = assign_auxiliary(labels, num_classes, fraction=fraction, seed=2 * seed + 1, exclude=a)
    return [a, b]


def auxiliary_labels(labels: np.ndarray, is_aux: np.ndarray, num_classes: int) -> np.ndarray:
    """Copy of ``labels`` (int64) with the auxiliary samples set to the pseudo-class ``K``.

    Parameters
    ----------
    labels : np.ndarray
        (N,) integer labels in ``[0, num_classes)``.
    is_aux : np.ndarray
        (N,) bool mask from :func:`assign_auxiliary`.
    num_classes : int
        Number of real classes K; train with ``K + 1`` outputs.

    Returns
    -------
    np.ndarray
        (N,) int64 labels in ``[0, K]``.
    """
    k = _check_num_classes(num_classes)
    y = _check_labels(labels, k)
    aux = _check_mask(is_aux, y.size, "is_aux")
    out = y.astype(np.int64, copy=True)
    out[aux] = k
    return out


def auxiliary_cutoff(
    scores: np.ndarray,
    is_auxiliary: np.ndarray,
    *,
    rule: Literal["mean", "percentile"] = "mean",
    q: float = 99.0,
    method: str = "inverted_cdf",
) -> float:
    """Cutoff from the scores of the auxiliary (known-mislabeled) samples.

    ``rule="mean"`` (SEI paper): the mean auxiliary score. ``rule="percentile"`` (AUM, Pleiss
    et al. 2020): the ``q``-th percentile (default 99th) of the auxiliary scores — almost all
    deliberately mislabeled samples score below it, so a real sample scoring below it looks
    like them and is flagged. With the default ``method`` the percentile is an order statistic,
    the ``ceil(q/100 · M)``-th smallest of the ``M`` auxiliary scores, and ``scores < cutoff`` is
    exactly the AUM reference code's rule: flagged when more than ``(100 − q)`` % of the
    threshold samples score strictly higher (``"linear"`` interpolates below that statistic, by up
    to one rank: it flagged up to 30 % fewer where a few threshold samples are memorised, M = 90).
    In both cases flag with ``scores < cutoff`` (:func:`flag`). The percentile rule is a far
    more inclusive cutoff than the mean.

    Parameters
    ----------
    scores : np.ndarray
        (N,) scores from the run trained with auxiliary labels, lower = more suspect.
    is_auxiliary : np.ndarray
        (N,) bool mask of that run's auxiliary samples (at least one).
    rule : {"mean", "percentile"}, default "mean"
    q : float, default 99.0
        Percentile in ``[0, 100]`` for ``rule="percentile"``.
    method : str, default "inverted_cdf"
        ``np.percentile`` method for ``rule="percentile"`` (the default: the AUM reference's rule).

    Returns
    -------
    float
    """
    s = _check_scores(scores)
    aux = _check_mask(is_auxiliary, s.size, "is_auxiliary")
    vals = s[aux]
    if vals.size == 0:
        raise ValueError("is_auxiliary selects no samples; the cutoff needs auxiliary scores")
    _reject_nan(np.where(aux, s, 0.0), "auxiliary scores")  # ids in the whole set
    inf = aux & np.isinf(s)
    if inf.any():  # +inf made the cutoff inf, which flagged every finite sample
        raise ValueError(f"auxiliary scores must be finite; {int(inf.sum())} are infinite at {_describe_ids(inf)}")
    if rule == "mean":
        return float(vals.mean())
    if rule == "percentile":
        qq = _check_finite_float(q, "q")
        if not 0.0 <= qq <= 100.0:
            raise ValueError(f"q must be in [0, 100], got {q!r}")
        return float(np.percentile(vals, qq, method=method))  # type: ignore[call-overload]
    raise ValueError(f"rule must be 'mean' or 'percentile', got {rule!r}")


def combine_two_runs(
    score_a: np.ndarray, score_b: np.ndarray, is_aux_a: np.ndarray, is_aux_b: np.ndarray
) -> np.ndarray:
    """Merge two auxiliary runs into one score per sample, using only runs where it kept its label.

    Auxiliary in run a -> ``score_b``; auxiliary in run b -> ``score_a``; in neither -> the
    mean of both. NaN (unscored) propagates: a needed score that is NaN gives NaN, and the
    mean is NaN if either score is.

    Parameters
    ----------
    score_a, score_b : np.ndarray
        (N,) scores of the two runs.
    is_aux_a, is_aux_b : np.ndarray
        (N,) bool auxiliary masks of the two runs; they must be disjoint.

    Returns
    -------
    np.ndarray
        (N,) float64 combined scores.
    """
    a = _check_scores(score_a, "score_a")
    b = _check_scores(score_b, "score_b", n=a.size)
    aux_a = _check_mask(is_aux_a, a.size, "is_aux_a")
    aux_b = _check_mask(is_aux_b, a.size, "is_aux_b")
    both = aux_a & aux_b
    if both.any():
        raise ValueError(
            f"{counted(int(both.sum()), 'sample')} {'is' if both.sum() == 1 else 'are'} auxiliary in both runs (no "
            f"score with the given label): {_describe_ids(both)}"
        )
    out = 0.5 * (a + b)
    out[aux_a] = b[aux_a]
    out[aux_b] = a[aux_b]
    return out


def combine_cutoffs(cutoff_a: float, cutoff_b: float) -> float:
    """Mean of the two runs' cutoffs, matching the averaged scores of :func:`combine_two_runs`.

    For ``rule="percentile"`` prefer :func:`pooled_auxiliary_cutoff`, which takes the
    percentile of both runs' auxiliary scores together instead of averaging two percentiles.
    """
    a = _check_finite_float(cutoff_a, "cutoff_a")
    b = _check_finite_float(cutoff_b, "cutoff_b")
    return 0.5 * (a + b)


def pooled_auxiliary_cutoff(
    score_a: np.ndarray,
    score_b: np.ndarray,
    is_aux_a: np.ndarray,
    is_aux_b: np.ndarray,
    *,
    rule: Literal["mean", "percentile"] = "mean",
    q: float = 99.0,
    method: str = "inverted_cdf",
) -> float:
    """:func:`auxiliary_cutoff` over both runs' auxiliary scores pooled together.

    Uses ``score_a[is_aux_a]`` and ``score_b[is_aux_b]`` as one sample. With the mean rule and
    equal-sized auxiliary sets this equals :func:`combine_cutoffs` of the per-run cutoffs.
    """
    a = _check_scores(score_a, "score_a")
    b = _check_scores(score_b, "score_b", n=a.size)
    aux_a = _check_mask(is_aux_a, a.size, "is_aux_a")
    aux_b = _check_mask(is_aux_b, a.size, "is_aux_b")
    _reject_nan(np.where(aux_a, a, 0.0), "score_a's auxiliary scores")  # ids in the whole set, per run
    _reject_nan(np.where(aux_b, b, 0.0), "score_b's auxiliary scores")
    pooled = np.concatenate([a[aux_a], b[aux_b]])
    return auxiliary_cutoff(pooled, np.ones(pooled.size, dtype=bool), rule=rule, q=q, method=method)
