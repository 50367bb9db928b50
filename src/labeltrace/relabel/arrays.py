"""The arrays the relabel modules pass around, checked once: (N, K) counts and probabilities,
(N,) scores and labels. Every check names the offending sample ids; entropies are normalised
by ``log K``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from labeltrace._checks import check_probability_rows, describe_ids, to_numpy

__all__ = [
    "EPS",
    "as_class",
    "as_matrix",
    "as_whole",
    "check_label_vector",
    "check_posterior",
    "check_vector",
    "decision_arrays",
    "vote_arrays",
    "normalize_counts",
    "normalized_entropy",
    "unpack_update",
]

EPS = 1e-12
"""Probabilities are clipped to ``[EPS, 1]`` inside logarithms."""


def as_matrix(x: Any, name: str, *, n: int | None = None, k: int | None = None) -> np.ndarray:
    """A finite, non-negative (N, K) float64 array with ``K >= 2`` (and the given N, K)."""
    arr = np.asarray(to_numpy(x, name), dtype=np.float64)  # a tensor: on any device, with a gradient
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, K) array, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} rows, expected {n} (one per sample)")
    if k is not None and arr.shape[1] != k:
        raise ValueError(f"{name} has {arr.shape[1]} columns, expected {k} (one per class)")
    if arr.shape[1] < 2:
        raise ValueError(f"{name} needs at least 2 classes, got {arr.shape[1]}")
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise ValueError(f"{name} has NaN or infinite values at {describe_ids(bad)}")
    bad = np.flatnonzero((arr < 0).any(axis=1))
    if bad.size:
        raise ValueError(f"{name} has negative values at {describe_ids(bad)}")
    return arr


def check_posterior(posterior: Any, *, n: int | None = None, k: int | None = None) -> np.ndarray:
    """An (N, K) probability matrix, no entry above 1 (+1e-6), rows summing to 1 (within 1e-3), as
    float64."""
    p = as_matrix(posterior, "posterior", n=n, k=k)
    check_probability_rows(p, "posterior", given=posterior)
    return p


def normalize_counts(
    counts: Any, name: str, *, n: int | None = None, k: int | None = None
) -> np.ndarray:
    """Non-negative (N, K) counts, each row divided by its (positive) sum."""
    c = as_matrix(counts, name, n=n, k=k)
    tot = c.sum(axis=1)
    bad = np.flatnonzero(tot <= 0)
    if bad.size:
        raise ValueError(
            f"{name} rows must have a positive total; all-zero rows at {describe_ids(bad)}"
        )
    return c / tot[:, None]


def check_vector(x: Any, name: str, n: int | None = None) -> np.ndarray:
    """A finite (N,) float64 vector (of length ``n`` when given)."""
    v = np.asarray(to_numpy(x, name), dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name} must be a 1-D (N,) array, got shape {v.shape}")
    if n is not None and v.shape[0] != n:
        raise ValueError(f"{name} has {v.shape[0]} entries, expected {n} (one per sample)")
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        raise ValueError(f"{name} has NaN or infinite values at {describe_ids(bad)}")
    return v


def check_label_vector(labels: Any, n: int, k: int, name: str) -> np.ndarray:
    """(n,) integer labels in ``0..k-1``, as a new int64 array."""
    lab = to_numpy(labels, name)
    if lab.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one per image), got {lab.shape}")
    if lab.size and not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {lab.dtype}")
    bad = np.flatnonzero((lab < 0) | (lab >= k))
    if bad.size:
        raise ValueError(f"{name} outside 0..{k - 1} at {describe_ids(bad)}")
    return lab.astype(np.int64)


def normalized_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy of each row of an (N, K) distribution divided by ``log K``: (N,) in ``[0, 1]``.

    Zero entries contribute nothing (``0 log 0 = 0``).
    """
    p = np.asarray(p, dtype=np.float64)
    k = p.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.clip(p, EPS, 1.0)), 0.0)
    return -terms.sum(axis=1) / np.log(k)


def unpack_update(out: Any, n: int, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """What an ``update_posterior`` callback returned: the checked (N, K) posterior, and its (N,)
    SEI when it returned ``(posterior, sei)``."""
    sei = None
    if isinstance(out, tuple):
        if len(out) != 2:
            raise ValueError("update_posterior must return posterior or (posterior, sei)")
        out, sei = out
        sei = check_vector(sei, "sei returned by update_posterior", n)
    return check_posterior(out, n=n, k=k), sei


def as_whole(x: Any) -> int | None:
    """``x`` as an int when it is a whole number (not a bool, not 2.7), else None."""
    if isinstance(x, bool | np.bool_) or not isinstance(x, int | float | np.number):
        return None
    if not np.isfinite(x) or int(x) != x:
        return None
    return int(x)


def as_class(label: Any, k: int) -> int | None:
    """``label`` as a class index in ``0..k-1`` (an integral number), else None."""
    v = as_whole(label)
    return v if v is not None and 0 <= v < k else None


def decision_arrays(rows: Sequence[tuple[int, str, str]], num_samples: int, classes: Sequence[str],
                    kinds: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``(kind_code, label_id)``, (N,) each, from ``(sample_id, kind, decision)`` rows, one per
    sample: ``kind_code`` the kind's position in ``kinds`` (-1 without a row), ``label_id`` the
    class id of a ``label`` row (else -1)."""
    code = np.full(num_samples, -1, dtype=np.int8)
    lab = np.full(num_samples, -1, dtype=np.int64)
    i, row_code, row_lab = _row_codes(rows, classes, kinds)
    code[i], lab[i] = row_code, row_lab
    return code, lab


def vote_arrays(rows: Sequence[tuple[int, str, str]], num_samples: int, classes: Sequence[str],
                kinds: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``(vote_ids, vote_labels, latest_kind)`` from ``(sample_id, kind, decision)`` rows, one per
    sample and reviewer (each reviewer's latest), oldest first: the samples and votes of the label
    rows (their class ids) and of the ``exclude`` rows (``len(classes)``: a vote for an extra
    column, "no class"), one vote each, and (N,) the kind code of each sample's latest row (-1
    without one)."""
    i, code, lab = _row_codes(rows, classes, kinds)
    latest = np.full(num_samples, -1, dtype=np.int8)
    if i.size:
        last = i.size - 1 - np.unique(i[::-1], return_index=True)[1]  # each sample's newest row
        latest[i[last]] = code[last]
    is_exclude = code == list(kinds).index("exclude")
    lab = np.where(is_exclude, len(classes), lab)
    is_vote = (code == list(kinds).index("label")) | is_exclude
    return i[is_vote], lab[is_vote], latest


def _row_codes(rows: Sequence[tuple[int, str, str]], classes: Sequence[str],
               kinds: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Per row: sample id, kind code (position in ``kinds``), class id (-1 unless a label row)."""
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0, np.int64)
    ids, kind, names = zip(*rows, strict=True)
    i = np.fromiter(ids, np.int64, len(rows))
    k_names, k_at = np.unique(np.asarray(kind, dtype=object).astype(str), return_inverse=True)
    code = np.array([list(kinds).index(str(x)) for x in k_names], dtype=np.int8)[k_at]
    is_label = code == list(kinds).index("label")
    d_names, d_at = np.unique(np.asarray(names, dtype=object)[is_label].astype(str), return_inverse=True)
    index = {c: j for j, c in enumerate(classes)}
    lab = np.full(i.size, -1, dtype=np.int64)
    lab[is_label] = np.array([index[str(x)] for x in d_names], dtype=np.int64)[d_at]
    return i, code, lab
