"""Detection metrics for mislabel detectors evaluated against known (injected) noise.

Score convention: lower score = more likely mislabeled. Ranking metrics (AUROC, average
precision) therefore use ``-scores`` as the score of the positive class "is noisy".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from labeltrace._checks import check_int, real_numbers, to_numpy
from labeltrace._checks import describe_ids as _describe_ids

__all__ = ["detection_report", "expected_hits", "flag_top_k", "interval_text", "report_at_true_rate", "t_interval"]

NanPolicy = Literal["raise", "omit"]


def _as_bool_mask(x: np.ndarray, name: str) -> np.ndarray:
    arr = to_numpy(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            raise ValueError(f"{name} must be boolean or 0/1; {_describe_ids(bad)} are not")
        return arr.astype(bool)
    raise ValueError(f"{name} must be a boolean (or 0/1 integer) array, got dtype {arr.dtype}")


def _as_scores(scores: np.ndarray, n: int, nan_policy: NanPolicy) -> tuple[np.ndarray, np.ndarray]:
    """Return (scores as float64, mask of scored samples); raise on NaN unless omitted."""
    if nan_policy not in ("raise", "omit"):
        raise ValueError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
    s = to_numpy(scores, "scores")
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    if s.shape[0] != n:
        raise ValueError(f"scores has {s.shape[0]} entries, expected {n}")
    if not real_numbers(s.dtype, booleans=False):
        raise ValueError(f"scores must be real numbers, got dtype {s.dtype}")
    s = s.astype(np.float64, copy=False)
    nan = np.isnan(s)
    if nan.any() and nan_policy == "raise":
        raise ValueError(
            f"scores contain {int(nan.sum())} NaN (unscored) values at {_describe_ids(nan)}; "
            "pass nan_policy='omit' to leave them out"
        )
    return s, ~nan


def _check_k(k: int, n_scored: int) -> int:
    """``k`` as an int in ``[0, n_scored]`` (how many of the scored samples to take)."""
    return check_int("k", k, 0, n_scored, hint=" (the number of scored samples)")


def flag_top_k(scores: np.ndarray, k: int, *, nan_policy: NanPolicy = "raise") -> np.ndarray:
    """Flag the ``k`` samples with the lowest scores.

    Ties are broken by sample id (lower id flagged first; stable sort), so exactly ``k``
    samples are flagged.

    Parameters
    ----------
    scores : np.ndarray
        (N,) scores, lower = more suspect.
    k : int
        Number of samples to flag, ``0 <= k <= number of scored samples``.
    nan_policy : {"raise", "omit"}, default "raise"
        NaN marks an unscored sample: "raise" rejects it, "omit" never flags it.

    Returns
    -------
    np.ndarray
        (N,) bool mask with exactly ``k`` True entries.
    """
    s = to_numpy(scores, "scores")
    n = s.shape[0] if s.ndim >= 1 else -1
    s, scored = _as_scores(s, n, nan_policy)
    k = _check_k(k, int(scored.sum()))
    ids = np.flatnonzero(scored)
    order = ids[np.argsort(s[ids], kind="stable")]
    mask = np.zeros(n, dtype=bool)
    mask[order[:k]] = True
    return mask


def detection_report(
    is_noisy_true: np.ndarray,
    flagged: np.ndarray,
    scores: np.ndarray | None = None,
    *,
    nan_policy: NanPolicy = "raise",
) -> dict[str, Any]:
    """Precision/recall of a set of flags and, given scores, ranking quality.

    Edge cases are defined, not warned about: with no flags ``precision = 0.0``; with no truly
    noisy samples ``recall = nan``; ``f1 = 0.0`` when precision + recall == 0 and ``nan``
    when recall is ``nan``; AUROC is ``nan`` when the (scored) truth holds only one class and
    average precision is ``nan`` when it holds no noisy sample. AUROC and average precision
    (``sklearn.metrics``) use ``-scores`` as the positive-class score because lower scores mean
    more suspect.

    Parameters
    ----------
    is_noisy_true : np.ndarray
        (N,) bool (or 0/1) ground truth, True = label is wrong.
    flagged : np.ndarray
        (N,) bool (or 0/1) detector output, True = flagged as mislabeled.
    scores : np.ndarray, optional
        (N,) scores, lower = more suspect. NaN = unscored.
    nan_policy : {"raise", "omit"}, default "raise"
        With "omit", unscored samples are left out of AUROC/AP only (flags still count).

    Returns
    -------
    dict
        precision, recall, f1, auroc, average_precision (floats, nan when undefined or no
        scores), n_flagged, n_noisy, n (ints), noise_rate (true rate, float), n_scored (int,
        number of samples entering AUROC/AP, 0 without scores).
    """
    truth = _as_bool_mask(is_noisy_true, "is_noisy_true")
    flags = _as_bool_mask(flagged, "flagged")
    if flags.shape != truth.shape:
        raise ValueError(
            f"flagged has shape {flags.shape} but is_noisy_true has shape {truth.shape}"
        )
    n = int(truth.size)
    n_noisy = int(truth.sum())
    n_flagged = int(flags.sum())
    tp = int((truth & flags).sum())

    precision = tp / n_flagged if n_flagged else 0.0
    recall = tp / n_noisy if n_noisy else float("nan")
    if np.isnan(recall):
        f1 = float("nan")
    elif precision + recall == 0:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall)

    auroc = float("nan")
    ap = float("nan")
    n_scored = 0
    if scores is not None:
        s, scored = _as_scores(scores, n, nan_policy)
        n_scored = int(scored.sum())
        # dense ranks, not the scores: AUROC and AP depend on the order (ties kept) only, and a score
        # of ±inf, which ranks first or last, is then no error for sklearn
        t, neg_s = truth[scored], np.unique(-s[scored], return_inverse=True)[1].astype(np.float64)
        n_pos = int(t.sum())
        # here, not at import: every export and report imports this module, scikit-learn takes seconds
        from sklearn.metrics import average_precision_score, roc_auc_score

        if 0 < n_pos < t.size:
            auroc = float(roc_auc_score(t, neg_s))
        if n_pos > 0:
            ap = float(average_precision_score(t, neg_s))

    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "auroc": auroc,
        "average_precision": ap,
        "n_flagged": n_flagged,
        "n_noisy": n_noisy,
        "noise_rate": n_noisy / n if n else float("nan"),
        "n": n,
        "n_scored": n_scored,
    }


def expected_hits(is_noisy_true: np.ndarray, scores: np.ndarray, k: int, *,
                  nan_policy: NanPolicy = "raise") -> float:  # fmt: skip
    """The number of truly noisy samples among the ``k`` lowest scores, on average over the ways of
    breaking a tie at the cut: the scores below the cut count whole, and of the group tied at the
    ``k``-th score each sample counts with the fraction of the group that fits. A score with many
    ties (a count of events, a vote of 10 neighbours) then gains nothing from the order of the
    samples, which :func:`flag_top_k` (ties by sample id) would hand it.
    """
    truth = _as_bool_mask(is_noisy_true, "is_noisy_true")
    s, scored = _as_scores(scores, truth.size, nan_policy)
    s, t = s[scored], truth[scored]
    k = _check_k(k, s.size)
    if k == 0:
        return 0.0
    kth = np.partition(s, k - 1)[k - 1]
    below, tied = s < kth, s == kth
    return float(t[below].sum() + (k - int(below.sum())) * t[tied].sum() / tied.sum())


def report_at_true_rate(
    is_noisy_true: np.ndarray, scores: np.ndarray, *, nan_policy: NanPolicy = "raise"
) -> dict[str, Any]:
    """:func:`detection_report` after flagging exactly as many samples as are truly noisy.

    The ``n_noisy`` lowest-scored samples are flagged, which makes precision == recall == f1 and
    compares detectors without choosing a threshold; a group of scores tied at the cut counts by
    :func:`expected_hits` (its average over the ways of breaking the tie), and ``n_flagged`` is
    that of :func:`flag_top_k`. With ``nan_policy="omit"`` the count is capped at the number of
    scored samples.

    Parameters
    ----------
    is_noisy_true : np.ndarray
        (N,) bool (or 0/1) ground truth.
    scores : np.ndarray
        (N,) scores, lower = more suspect.
    nan_policy : {"raise", "omit"}, default "raise"
        How NaN (unscored) scores are handled.

    Returns
    -------
    dict
        As :func:`detection_report`.
    """
    truth = _as_bool_mask(is_noisy_true, "is_noisy_true")
    s, scored = _as_scores(scores, truth.size, nan_policy)
    k = min(int(truth.sum()), int(scored.sum()))
    flags = flag_top_k(s, k, nan_policy=nan_policy)
    rep = detection_report(truth, flags, s, nan_policy=nan_policy)
    if k == 0:
        return rep
    hits = expected_hits(truth, s, k, nan_policy=nan_policy)
    precision, recall = hits / k, hits / int(truth.sum())
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return rep | {"precision": precision, "recall": recall, "f1": f1}


def t_interval(
    values: Sequence[float] | np.ndarray, *, confidence: float = 0.95
) -> tuple[Any, Any, Any]:
    """``(mean, low, high)``: mean and two-sided Student-t confidence interval over seeds.

    ``values`` is (S,) — one value per seed, giving floats — or (S, M), giving (M,) arrays (each
    column separately). One seed gives NaN bounds; a NaN value makes the result NaN (nothing is
    dropped).
    """
    from scipy import stats  # here, not at import: scipy.stats is slow to import and rarely needed

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence!r}")
    v = np.asarray(values, dtype=np.float64)
    if v.ndim not in (1, 2) or v.shape[0] == 0:
        raise ValueError(f"t_interval needs a non-empty (S,) or (S, M) array, got shape {v.shape}")
    n = v.shape[0]
    mean = v.mean(axis=0)
    if n == 1:
        lo = hi = np.full_like(mean, np.nan)
    else:
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * v.std(axis=0, ddof=1) / math.sqrt(n)
        lo, hi = mean - half, mean + half
    if v.ndim == 1:
        return float(mean), float(lo), float(hi)
    return mean, lo, hi


def interval_text(mean: float, lo: float, hi: float, fmt: str = ".3f") -> str:
    """``"mean [lo, hi]"`` with each number formatted by ``fmt`` (e.g. ``"+.3f"``); the mean alone
    when a bound is not finite (one seed), ``"n/a"`` when the mean is not."""
    if not math.isfinite(mean):
        return "n/a"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"
