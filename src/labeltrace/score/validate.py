"""The input contract of every function that reads an ``(N, K)`` predicted-probability matrix:
:func:`validate_probs` (re-exported by :mod:`labeltrace.score.probs`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from labeltrace._checks import check_probability_rows, id_list, real_numbers
from labeltrace.record.batch import to_numpy

__all__ = ["validate_probs"]



def validate_probs(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check a probability matrix and its labels; return them as arrays.

    Parameters
    ----------
    probs : array_like
        ``(N, K)`` predicted probabilities, ``K >= 2``: finite, non-negative, each row summing
        to 1 within 1e-3.
    labels : array_like
        ``(N,)`` integer labels in ``[0, K)``; every class must occur at least once.

    Returns
    -------
    probs : np.ndarray
        float32 or float64 input kept as is (no copy); any other dtype cast to float64.
    labels : np.ndarray
        int64 labels.

    Raises
    ------
    ValueError
        Naming the offending sample ids (first 10) or the missing classes.
    """
    p = to_numpy(probs, "probs")  # a torch tensor too (bfloat16, one that requires grad)
    if p.dtype not in (np.float32, np.float64):
        if not real_numbers(p.dtype):
            raise ValueError(f"probs must be real numbers, got dtype {p.dtype}")
        p = p.astype(np.float64)
    if p.ndim != 2:
        swapped = " (the order is probs, labels: the reverse of cleanlab's)" if p.ndim == 1 else ""
        raise ValueError(f"probs must be 2-D (N, K), got shape {p.shape}{swapped}")
    n, k = p.shape
    if n == 0:
        raise ValueError("probs has no rows (N = 0)")
    if k < 2:
        raise ValueError(f"probs must have at least 2 columns (classes), got {k}")
    bad = ~np.isfinite(p).all(axis=1)
    if bad.any():
        raise ValueError(f"probs has NaN/inf in sample ids {id_list(np.flatnonzero(bad))}")
    bad = (p < 0).any(axis=1)
    if bad.any():
        raise ValueError(
            f"probs has negative entries in sample ids {id_list(np.flatnonzero(bad))}"
        )
    check_probability_rows(p, "probs", given=probs)

    y = to_numpy(labels, "labels")
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"labels has {y.shape[0]} entries but probs has {n} rows")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    bad = (y < 0) | (y >= k)  # in the labels' own dtype: a uint64 past 2**63 is not read as negative
    if bad.any():
        ids = np.flatnonzero(bad)
        raise ValueError(
            f"labels must lie in [0, {k}); sample ids {id_list(ids)} have "
            f"labels {id_list(y[ids])}"
        )
    y = y.astype(np.int64, copy=False)
    missing = np.flatnonzero(np.bincount(y, minlength=k) == 0)
    if missing.size:
        raise ValueError(
            f"every class must occur in labels; class(es) {id_list(missing)} of {k} never do"
        )
    return p, y
