"""k-nearest-neighbour label agreement in feature space.

:func:`knn_vote` scores each sample by the fraction of its k nearest neighbours (itself
excluded) that carry the same given label: a sample labeled ``cat`` deep inside a cluster of
``dog`` images gets a vote near 0 (lower = more suspect).

Neighbours are exact (brute force), found without ever holding an ``N x N`` matrix:

1. **Candidates.** Similarities are computed in float32 tile by tile (``batch_size`` x
   ``batch_size`` matrix products) and the ``min(N - 1, k + 16)`` best per sample are kept
   (with ``groups``: ``min(N - largest group, k + 16)``, the sample's whole group left out).
2. **Exact ranking.** Those candidates are re-scored in float64, pair by pair (the same
   arithmetic for a pair whatever the batch), and the k best kept. Cosine similarities are
   rounded to 12 decimals here, so that mathematically equal similarities computed from
   different vectors (e.g. ``(1, 0)`` and ``(0, 1)`` seen from ``(1, 1)``) tie.

Ordering is by decreasing similarity; **ties are broken by the lower sample index**, in both
stages. Only index ``i`` itself is excluded from sample ``i``'s neighbours: an exact duplicate
of ``i`` is a neighbour (at similarity 1 for cosine) — unless ``groups`` are given (a patient's
images): then every sample of ``i``'s group is excluded. The result can differ from a
pure-float64 search only if more than 16 extra samples fall within float32 rounding (~1e-6)
of the k-th neighbour's similarity; ``batch_size`` only moves float32 rounding in stage 1, so
it can change the result in that case only.

Metrics: ``"cosine"`` (rows scaled to unit norm; all-zero rows are refused) and
``"euclidean"`` (similarity = minus the squared distance; features are centred first for
float32 accuracy, which leaves distances unchanged).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from labeltrace._checks import check_int, group_codes, id_list, real_numbers
from labeltrace.record.batch import to_numpy

__all__ = ["knn_indices", "knn_probs", "knn_vote", "label_shares"]

Metric = Literal["cosine", "euclidean"]
_METRICS = ("cosine", "euclidean")
_EXTRA_CANDIDATES = 16
_RERANK_BUDGET = 8_000_000  # float64 elements per re-ranking chunk (~64 MB)
_LOW32 = np.int64(0xFFFFFFFF)
_SENTINEL = np.iinfo(np.int64).min
_COSINE_DECIMALS = 12  # exact-stage cosine similarities equal to 12 decimals are ties
_COSINE_SAFE = 2.0**500  # a row whose largest |x| lies outside [2**-500, 2**500] is rescaled for cosine
_EUCLID_SAFE = (2.0**-40, 2.0**40)  # euclidean: features whose largest |x - mean| lies outside are rescaled


def _prepare(features: Any, metric: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Validate features; return (values, float64 row norms for cosine, float32 search matrix).

    ``values`` are the input as float32/float64 (other dtypes cast to float64), not copied —
    except for cosine when a row's largest value lies outside ``[2**-500, 2**500]`` (only float64
    can): then a float64 copy with such rows scaled by a power of two; and for euclidean when the
    largest ``|x - mean|`` lies outside ``[2**-40, 2**40]`` (squared distances would underflow or
    overflow float32): a float64 copy of all of it scaled by one power of two. The float32 search matrix
    holds unit rows (cosine) or centred rows (euclidean, for float32 accuracy; distances are
    unchanged). It is built in chunks, never as a float64 copy.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    x = to_numpy(features, "features")  # a torch tensor too (bfloat16, one that requires grad)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        if not real_numbers(x.dtype):
            raise ValueError(f"features must be real numbers, got dtype {x.dtype}")
        x = x.astype(np.float64)
    n, d = x.shape
    if d == 0:
        raise ValueError("features have no columns (D = 0)")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(
            f"features contain NaN/inf in sample ids {id_list(np.flatnonzero(bad))}"
        )
    step = max(1, _RERANK_BUDGET // d)
    x32 = np.empty((n, d), dtype=np.float32)
    if metric == "cosine":
        amax = np.empty(n, dtype=np.float64)
        for a in range(0, n, step):
            amax[a : a + step] = np.abs(x[a : a + step]).max(axis=1)
        extreme = (amax > _COSINE_SAFE) | ((amax > 0) & (amax < 1.0 / _COSINE_SAFE))
        if extreme.any():  # squares and products would overflow or underflow in float64: such a row is
            # scaled by a power of two (exact; its cosines are unchanged), every other row kept bit for bit
            x = x.astype(np.float64)  # a copy: the caller's array is never changed
            x[extreme] = np.ldexp(x[extreme], -np.frexp(amax[extreme])[1][:, None])
        norm = np.empty(n, dtype=np.float64)
        for a in range(0, n, step):
            chunk = x[a : a + step].astype(np.float64)
            norm[a : a + step] = np.sqrt((chunk * chunk).sum(axis=1))
        zero = np.flatnonzero(norm == 0)
        if zero.size:
            raise ValueError(
                "cosine similarity is undefined for all-zero feature rows: sample ids "
                f"{id_list(zero)} (use metric='euclidean' or fix them)"
            )
        for a in range(0, n, step):
            x32[a : a + step] = x[a : a + step].astype(np.float64) / norm[a : a + step, None]
        return x, norm, x32
    big = 0.0
    for a in range(0, n, step):
        big = max(big, float(np.abs(x[a : a + step]).max()))
    if big > _EUCLID_SAFE[1] ** 8:  # the mean's sum could overflow float64 itself: scaled before it
        x = np.ldexp(x.astype(np.float64), -int(np.frexp(big)[1]))
    mean = x.mean(axis=0, dtype=np.float64)
    spread = 0.0
    for a in range(0, n, step):
        spread = max(spread, float(np.abs(x[a : a + step] - mean).max()))
    if spread > 0 and not _EUCLID_SAFE[0] <= spread <= _EUCLID_SAFE[1]:  # squared distances would underflow
        # (every neighbour chosen by index) or overflow float32: all of x scaled by one power of two
        # (exact, so the order of distances is unchanged), a float64 copy: the caller's array is kept
        e = -int(np.frexp(spread)[1])
        x, mean = np.ldexp(x.astype(np.float64), e), np.ldexp(mean, e)
    for a in range(0, n, step):
        x32[a : a + step] = x[a : a + step] - mean
    sq = np.einsum("nd,nd->n", x32, x32)
    # the candidate search forms 2 q.r - |r|^2 in float32, the exact rerank |q - r|^2 in float64
    with np.errstate(over="ignore"):
        fits = bool(np.isfinite(sq).all() and np.isfinite(np.float32(4.0) * sq.max()))
    if not fits:
        raise ValueError("features are too large for float32 distances (4 x the largest squared distance from "
                         "their mean exceeds float32's range): rescale them")
    return x, None, x32


def _exact_similarity(
    x: np.ndarray, norm: np.ndarray | None, rows: slice, cand: np.ndarray
) -> np.ndarray:
    """float64 similarity of samples ``rows`` to their candidates ``cand`` (``(r, c)``).

    Elementwise products summed along D per pair (``add.reduce``), so a pair's value does not
    depend on the batch, and exact duplicates get identical values.
    """
    q = x[rows].astype(np.float64)[:, None, :]
    r = x[cand]
    if norm is None:
        diff = np.subtract(q, r, dtype=np.float64)
        diff *= diff
        return -diff.sum(axis=-1)
    prod = np.multiply(q, r, dtype=np.float64)
    dot = prod.sum(axis=-1)
    return np.round(dot / norm[rows, None] / norm[cand], _COSINE_DECIMALS)


def _candidates(x32: np.ndarray, euclidean: bool, c: int, batch_size: int,
                codes: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """``(N, c)`` candidate neighbour ids from float32 tiles (self excluded, and with group
    ``codes`` every sample of the row's group).

    Each tile's similarities become int64 keys ``(monotone int32 image of the float) << 32 |
    (2**32 - 1 - j)``: unique, ordered by (similarity desc, index asc), and carrying the index,
    so the best ``c`` per row are found with in-place ``np.partition``. Tile buffers are
    allocated once.
    """
    n = x32.shape[0]
    sq = np.einsum("nd,nd->n", x32, x32) if euclidean else None
    low = _LOW32 - np.arange(n, dtype=np.int64)  # larger for lower index
    b = min(batch_size, n)
    s_buf = np.empty(b * b, dtype=np.float32)
    flip_buf = np.empty(b * b, dtype=np.int32)
    key_buf = np.empty(b * b, dtype=np.int64)
    out = np.empty((n, c), dtype=np.int64)
    for a in range(0, n, b):
        rows = slice(a, min(a + b, n))
        r = rows.stop - a
        best = np.full((r, c), _SENTINEL, dtype=np.int64)
        for u in range(0, n, b):
            cols = slice(u, min(u + b, n))
            w = cols.stop - u
            s = s_buf[: r * w].reshape(r, w)
            np.matmul(x32[rows], x32[cols].T, out=s)
            if sq is not None:  # -|q - r|^2 + |q|^2 (|q|^2 is constant per row)
                s *= np.float32(2.0)
                s -= sq[None, cols]
            s += np.float32(0.0)  # -0.0 -> +0.0: equal similarities get equal bits
            bits = s.view(np.int32)
            flip = flip_buf[: r * w].reshape(r, w)
            np.right_shift(bits, 31, out=flip)  # -1 for negative floats, else 0
            flip &= 0x7FFFFFFF
            bits ^= flip  # now monotone in the float value, as a signed int32
            key = key_buf[: r * w].reshape(r, w)
            np.copyto(key, bits)
            key <<= 32
            key |= low[None, cols]
            lo, hi = max(a, u), min(rows.stop, cols.stop)
            if codes is not None:  # exclude the row's group (self included)
                key[codes[rows][:, None] == codes[None, cols]] = _SENTINEL
            elif lo < hi:  # exclude self
                ids = np.arange(lo, hi)
                key[ids - a, ids - u] = _SENTINEL
            if w > c:
                key.partition(w - c, axis=1)
                key = key[:, w - c :]
            merged = np.concatenate([best, key], axis=1)
            merged.partition(merged.shape[1] - c, axis=1)
            best = merged[:, merged.shape[1] - c :]
        # -1 where a row had fewer eligible samples than c (a large group's rows, with groups)
        out[rows] = np.where(best == _SENTINEL, -1, _LOW32 - (best & _LOW32))
    return out


def knn_indices(
    features: Any,
    *,
    k: int = 10,
    metric: Metric = "cosine",
    batch_size: int = 4096,
    groups: Any = None,
) -> np.ndarray:
    """Ids of each sample's k nearest neighbours, ``(N, k)`` int64, nearest first.

    Parameters
    ----------
    features : array_like
        ``(N, D)`` finite features.
    k : int
        Neighbours per sample, ``1 <= k < N``.
    metric : {"cosine", "euclidean"}
        Similarity (see the module docstring).
    batch_size : int
        Tile side of the float32 similarity products. Memory: about ``16 * batch_size**2``
        bytes of tile buffers plus a float32 copy of the features. Does not change the
        result (barring the near-tie case of the module docstring).
    groups : array_like, optional
        ``(N,)`` group keys (a patient, a study): a sample's neighbours are found outside its
        group, so that another image of the same patient never counts as one. ``k`` must then
        be at most ``N`` minus the largest group.

    Returns
    -------
    np.ndarray
        Row i lists neighbours by decreasing similarity, ties by lower id; never contains i
        (nor, with ``groups``, any sample of i's group).
    """
    x, norm, x32 = _prepare(features, metric)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 samples for neighbours, got {n}")
    codes = None
    outside = most = n - 1  # the fewest and the most samples a row may take as neighbours
    if groups is not None:
        g, codes = group_codes(groups)
        if g.shape != (n,):
            raise ValueError(f"groups must have shape ({n},), got {g.shape}")
        sizes = np.bincount(codes)
        outside, most = n - int(sizes.max()), n - int(sizes.min())
        if outside < 1:
            raise ValueError("every sample is in one group: no neighbour outside it")
    k = check_int("k", k, 1, outside, hint="" if groups is None else " (N minus the largest group)")
    batch_size = check_int("batch_size", batch_size, 1)
    # every row's k + 16 best candidates, as far as it has them: a cap at the largest group's
    # count left a smaller group's rows without the spare candidates the exact re-rank reads, so
    # float32 rounding chose among equally near samples (an audit's finding)
    c = min(most, k + _EXTRA_CANDIDATES)
    cand = _candidates(x32, norm is None, c, batch_size, codes)
    del x32

    out = np.empty((n, k), dtype=np.int64)
    step = max(1, _RERANK_BUDGET // (c * x.shape[1]))
    for a in range(0, n, step):
        rows = slice(a, min(a + step, n))
        got = cand[rows]
        none = got < 0  # no candidate there: last in the order (each row has k real ones, k <= outside)
        sim = _exact_similarity(x, norm, rows, np.where(none, 0, got))
        sim[none] = -np.inf
        order = np.lexsort((np.where(none, n, got), -sim), axis=-1)[:, :k]
        out[rows] = np.take_along_axis(got, order, axis=1)
    return out


def _check_labels(labels: Any, features: np.ndarray) -> np.ndarray:
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {features.shape}")
    n = features.shape[0]
    y = to_numpy(labels, "labels")
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64, copy=False)


def knn_vote(
    features: Any,
    labels: Any,
    *,
    k: int = 10,
    metric: Metric = "cosine",
    batch_size: int = 4096,
    groups: Any = None,
) -> np.ndarray:
    """Fraction of the k nearest neighbours sharing the sample's given label; float64 ``(N,)``.

    Values are multiples of ``1 / k`` in [0, 1]; lower = more suspect. Labels may be any
    integers (they are only compared for equality). See :func:`knn_indices` for the
    neighbour definition, tie-breaking and parameters (``groups`` included).
    """
    x = to_numpy(features, "features")
    y = _check_labels(labels, x)
    nbrs = knn_indices(x, k=k, metric=metric, batch_size=batch_size, groups=groups)
    return (y[nbrs] == y[:, None]).mean(axis=1)


def knn_probs(
    features: Any,
    labels: Any,
    *,
    num_classes: int | None = None,
    k: int = 10,
    metric: Metric = "cosine",
    batch_size: int = 4096,
    groups: Any = None,
) -> np.ndarray:
    """Label distribution of each sample's k nearest neighbours, float64 ``(N, K)``.

    Rows sum to 1; ``probs[i, labels[i]]`` equals :func:`knn_vote`. Labels must lie in
    ``[0, K)`` with ``K = num_classes`` (default ``max(labels) + 1``). Usable as a
    ``probs`` matrix for :mod:`labeltrace.score.probs`. ``groups``: neighbours outside each
    sample's group (:func:`knn_indices`).
    """
    x = to_numpy(features, "features")
    y = _check_labels(labels, x)
    if y.size < 2:
        raise ValueError(f"knn_probs needs at least 2 samples (each one's neighbours are the others), got {y.size}")
    kk = int(y.max()) + 1 if num_classes is None else check_int("num_classes", num_classes, 1)
    _check_range(y, kk)  # before the search, not after it (label_shares checks them too)
    return label_shares(knn_indices(x, k=k, metric=metric, batch_size=batch_size, groups=groups), y, kk)


def label_shares(neighbours: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(N, K)`` share of each class among each sample's neighbours' labels, from an ``(N, m)``
    index array (e.g. :func:`knn_indices`) and integer labels in ``[0, K)``; all zeros when
    ``m = 0``. The neighbours depend only on the features, so one search serves any labels."""
    k = check_int("num_classes", num_classes, 1)
    y = to_numpy(labels, "labels")
    if y.ndim != 1 or y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be 1-D integers, got shape {y.shape} and dtype {y.dtype}")
    _check_range(y, k)
    nb = np.asarray(neighbours)
    if nb.ndim != 2 or nb.dtype == bool or not np.issubdtype(nb.dtype, np.integer):
        raise ValueError(f"neighbours must be a 2-D integer (N, m) array, got shape {nb.shape} and dtype {nb.dtype}")
    bad = ((nb < 0) | (nb >= y.size)).any(axis=1)  # -1 ("no neighbour") would read the last label
    if bad.any():
        raise ValueError(f"neighbours must be sample ids in [0, {y.size}); the rows of sample ids "
                         f"{id_list(np.flatnonzero(bad))} hold others")  # fmt: skip
    n, m = nb.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), m)
    counts = np.bincount(rows * k + y.astype(np.int64)[nb].ravel(), minlength=n * k)
    return counts.reshape(n, k) / max(m, 1)


def _check_range(y: np.ndarray, k: int) -> None:
    """Refuse integer labels outside ``[0, k)``, naming the samples."""
    bad = (y < 0) | (y >= k)
    if bad.any():
        raise ValueError(f"labels must lie in [0, {k}); sample ids {id_list(np.flatnonzero(bad))} do not")
