"""Deciding which samples to flag without any clean data.

(One module over ~400 lines on purpose: every cutoff rule, with their shared validation; most of
its length is the rules' documentation.)

Scores follow the package convention (lower = more likely mislabeled) and every rule here
produces a cutoff ``c`` used as ``flag = scores < c`` (strict, see :func:`flag`).

Auxiliary ("threshold") samples — AUM, Pleiss et al. 2020; SEI paper
    A random ``1 / (K + 1)`` of the data is relabelled to a pseudo-class ``K`` that does not
    exist, so these samples are mislabeled by construction. After training on the modified
    labels, their scores show how a mislabeled sample scores, which sets the cutoff
    (:func:`auxiliary_cutoff`). Auxiliary samples lost their own label, so a second run with a
    disjoint auxiliary set (``exclude=``) scores them; :func:`combine_two_runs` merges the runs.

Unsupervised alternatives: :func:`gmm_cutoff` (two-component 1-D Gaussian mixture) and
:func:`top_fraction` (flag an assumed/estimated noise rate, e.g. from
:func:`estimate_noise_rate`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.optimize import brentq
from sklearn.mixture import GaussianMixture

from labeltrace._checks import check_labels as _check_labels
from labeltrace._checks import check_num_classes as _check_num_classes
from labeltrace._checks import describe_ids as _describe_ids

__all__ = [
    "assign_auxiliary",
    "assign_auxiliary_pair",
    "auxiliary_cutoff",
    "auxiliary_labels",
    "combine_cutoffs",
    "combine_two_runs",
    "estimate_noise_rate",
    "flag",
    "gmm_cutoff",
    "pooled_auxiliary_cutoff",
    "top_fraction",
    "unsupervised_cutoff",
]

Seed = int | np.random.Generator


# --------------------------------------------------------------------------- validation


def _check_mask(mask: np.ndarray, n: int, name: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.dtype != bool:
        raise ValueError(f"{name} must be a boolean array, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    return arr


def _check_scores(scores: np.ndarray, name: str = "scores", *, n: int | None = None) -> np.ndarray:
    s = np.asarray(scores)
    if s.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {s.shape}")
    if n is not None and s.shape[0] != n:
        raise ValueError(f"{name} has {s.shape[0]} entries, expected {n}")
    if s.dtype == bool or not np.issubdtype(s.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {s.dtype}")
    return s.astype(np.float64, copy=False)


def _reject_nan(s: np.ndarray, name: str) -> None:
    nan = np.isnan(s)
    if nan.any():
        raise ValueError(f"{name} contain {int(nan.sum())} NaN values at {_describe_ids(nan)}")


def _check_finite_float(x: float, name: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a float, got {x!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return v


# --------------------------------------------------------------------------- auxiliary samples


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
        m = int(np.floor(f * n + 0.5))

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

    rng = np.random.default_rng(seed)
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
    ``seed``, then with ``seed + 1`` excluding the first set (the draw ``labeltrace scan`` and
    ``labeltrace bench`` share)."""
    a = assign_auxiliary(labels, num_classes, fraction=fraction, seed=seed)
    b = assign_auxiliary(labels, num_classes, fraction=fraction, seed=seed + 1, exclude=a)
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
    method: str = "linear",
) -> float:
    """Cutoff from the scores of the auxiliary (known-mislabeled) samples.

    ``rule="mean"`` (SEI paper): the mean auxiliary score. ``rule="percentile"`` (AUM, Pleiss
    et al. 2020): the ``q``-th percentile (default 99th) of the auxiliary scores — almost all
    deliberately mislabeled samples score below it, so a real sample scoring below it looks
    like them and is flagged (the AUM reference code flags a sample when more than 1% of
    threshold samples score strictly higher, the same rule up to interpolation).
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
    method : str, default "linear"
        ``np.percentile`` interpolation method for ``rule="percentile"``.

    Returns
    -------
    float
    """
    s = _check_scores(scores)
    aux = _check_mask(is_auxiliary, s.size, "is_auxiliary")
    vals = s[aux]
    if vals.size == 0:
        raise ValueError("is_auxiliary selects no samples; the cutoff needs auxiliary scores")
    nan = np.zeros(s.size, dtype=bool)
    nan[aux] = np.isnan(vals)
    if nan.any():
        raise ValueError(
            f"auxiliary scores contain {int(nan.sum())} NaN values at {_describe_ids(nan)}"
        )
    if rule == "mean":
        return float(vals.mean())
    if rule == "percentile":
        qq = _check_finite_float(q, "q")
        if not 0.0 <= qq <= 100.0:
            raise ValueError(f"q must be in [0, 100], got {q!r}")
        return float(np.percentile(vals, qq, method=method))
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
            f"{int(both.sum())} samples are auxiliary in both runs and have no score with their "
            f"own label: {_describe_ids(both)}"
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
    method: str = "linear",
) -> float:
    """:func:`auxiliary_cutoff` over both runs' auxiliary scores pooled together.

    Uses ``score_a[is_aux_a]`` and ``score_b[is_aux_b]`` as one sample. With the mean rule and
    equal-sized auxiliary sets this equals :func:`combine_cutoffs` of the per-run cutoffs.
    """
    a = _check_scores(score_a, "score_a")
    b = _check_scores(score_b, "score_b", n=a.size)
    aux_a = _check_mask(is_aux_a, a.size, "is_aux_a")
    aux_b = _check_mask(is_aux_b, a.size, "is_aux_b")
    pooled = np.concatenate([a[aux_a], b[aux_b]])
    return auxiliary_cutoff(pooled, np.ones(pooled.size, dtype=bool), rule=rule, q=q, method=method)


# --------------------------------------------------------------------------- unsupervised cutoffs


def gmm_cutoff(scores: np.ndarray, *, seed: int = 0) -> float:
    """Cutoff where a two-component Gaussian mixture's low component has posterior 0.5.

    The scores are standardised (``z = (s - mean) / std``), a 1-D ``GaussianMixture(
    n_components=2, random_state=seed)`` is fitted to ``z``, and the equation
    ``w_lo N(z; m_lo, v_lo) = w_hi N(z; m_hi, v_hi)`` is solved on ``[m_lo, m_hi]`` with
    Brent's method: the log of the ratio is a quadratic in z, positive at ``m_lo`` and
    negative at ``m_hi``, so it has exactly one root there. The root is mapped back to the
    score scale.

    Parameters
    ----------
    scores : np.ndarray
        (N,) finite scores (N >= 2, not all equal), lower = more suspect.
    seed : int, default 0
        ``random_state`` of the mixture fit.

    Returns
    -------
    float
        Cutoff between the two component means.

    Raises
    ------
    ValueError
        On NaN/inf or degenerate input, or when the low component's posterior does not cross
        0.5 between the means (no two-cluster structure to split).
    """
    s = _check_scores(scores)
    _reject_nan(s, "scores")
    if not np.isfinite(s).all():
        raise ValueError(f"scores must be finite; {_describe_ids(~np.isfinite(s))} are not")
    if s.size < 2 or np.ptp(s) == 0:
        raise ValueError("gmm_cutoff needs at least 2 distinct score values")
    mu, sd = s.mean(), s.std()
    z = ((s - mu) / sd).reshape(-1, 1)
    gmm = GaussianMixture(n_components=2, random_state=seed).fit(z)
    means = gmm.means_.ravel()
    var = gmm.covariances_.reshape(-1)
    w = gmm.weights_
    lo, hi = np.argsort(means)
    if means[lo] == means[hi]:
        raise ValueError("the two mixture components have equal means; no cutoff between them")

    def log_ratio(x: float) -> float:
        a = np.log(w[lo]) - 0.5 * np.log(var[lo]) - (x - means[lo]) ** 2 / (2 * var[lo])
        b = np.log(w[hi]) - 0.5 * np.log(var[hi]) - (x - means[hi]) ** 2 / (2 * var[hi])
        return float(a - b)

    f_lo, f_hi = log_ratio(means[lo]), log_ratio(means[hi])
    if not (f_lo > 0 > f_hi):
        raise ValueError(
            "the low component's posterior does not cross 0.5 between the component means "
            f"(fitted means {means[lo]:.4g}, {means[hi]:.4g} on standardised scores, weights "
            f"{w[lo]:.3g}, {w[hi]:.3g}); the scores are not clearly bimodal"
        )
    root = brentq(log_ratio, means[lo], means[hi], xtol=1e-14, rtol=4 * np.finfo(float).eps)
    return float(mu + sd * root)


def top_fraction(scores: np.ndarray, rate: float) -> float:
    """Cutoff that flags the ``round(rate * N)`` lowest-scored samples with ``scores < cutoff``.

    With ``k = floor(rate * N + 0.5)`` and ``s_(k)`` the k-th smallest score, returns the next
    float above ``s_(k)``, so every sample with score ``<= s_(k)`` is flagged: exactly k without
    ties at ``s_(k)``, all of the tied ones otherwise. ``k = 0`` returns the minimum score
    (flags nothing).

    Parameters
    ----------
    scores : np.ndarray
        (N,) scores without NaN, N >= 1.
    rate : float
        Fraction to flag, in ``[0, 1]``.

    Returns
    -------
    float
    """
    s = _check_scores(scores)
    _reject_nan(s, "scores")
    if s.size == 0:
        raise ValueError("scores is empty")
    r = _check_finite_float(rate, "rate")
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate!r}")
    k = int(np.floor(r * s.size + 0.5))
    if k == 0:
        return float(s.min())
    kth = np.partition(s, k - 1)[k - 1]
    return float(np.nextafter(kth, np.inf))


def unsupervised_cutoff(scores: np.ndarray) -> tuple[float, str]:
    """A cutoff without auxiliary samples: the two-component GMM split (:func:`gmm_cutoff`) when
    the finite scores are bimodal, else a robust outlier rule (median − 3 × 1.4826 × MAD).
    Returns ``(cutoff, rule)`` with rule ``"gmm"`` or ``"robust-z3"``."""
    s = _check_scores(scores)
    s = s[np.isfinite(s)]
    try:
        return gmm_cutoff(s), "gmm"
    except ValueError:
        med = float(np.median(s))
        mad = float(np.median(np.abs(s - med)))
        return med - 3.0 * 1.4826 * mad, "robust-z3"


def flag(scores: np.ndarray, cutoff: float) -> np.ndarray:
    """Flag samples scoring strictly below ``cutoff``: ``scores < cutoff``.

    Strict, so a sample exactly at the cutoff is kept. NaN scores raise (an unscored sample
    cannot be decided); drop or fill them explicitly first.

    Parameters
    ----------
    scores : np.ndarray
        (N,) scores, lower = more suspect.
    cutoff : float
        Threshold (not NaN).

    Returns
    -------
    np.ndarray
        (N,) bool mask.
    """
    s = _check_scores(scores)
    _reject_nan(s, "scores")
    try:
        c = float(cutoff)
    except (TypeError, ValueError):
        raise ValueError(f"cutoff must be a float, got {cutoff!r}") from None
    if np.isnan(c):
        raise ValueError("cutoff is NaN")
    return s < c


def estimate_noise_rate(probs: np.ndarray, labels: np.ndarray) -> float:
    """Noise rate from the confident joint; delegates to ``labeltrace.probs.estimate_noise_rate``.

    Imported lazily so this module does not depend on :mod:`labeltrace.probs` at import time.
    Feed the result to :func:`top_fraction`.
    """
    from labeltrace.score.probs import estimate_noise_rate as _estimate

    return float(_estimate(probs, labels))
