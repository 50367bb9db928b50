"""Near-duplicate images: likely copies of one photo or scan — re-encoded, resized, shifted by a
pixel, brighter or darker — that :mod:`labeltrace.data.duplicates` (identical pixels) misses.

Signature: each image to grayscale (BT.601 luma), shrunk to ``SIZE`` x ``SIZE`` by exact area
averaging (two small matrix products per image, so a whole array shrinks in one vectorised step
at any size), then standardised to mean 0 and unit norm. Two images are near-copies when the
cosine of their signatures — the Pearson correlation of their thumbnails — is at least
``threshold``. Standardising makes the match blind to brightness and contrast; the area average
makes it blind to compression noise and to a shift of a fraction of a thumbnail cell.

A thumbnail whose pixel standard deviation (in [0, 1] units) is below ``MIN_STD`` is *low
information* — a blank, a flat grey, a nearly black frame: its standardised signature is mostly
noise and it is never matched (identical blanks are still exact copies).

Pairs are found by blocks of ``chunk`` rows against all later rows (one ``chunk x N`` product at a
time, never an ``N x N`` matrix; the time grows with ``N**2``: about 4 minutes for 100,000 images on
two cores); pairs become groups by connected components, with exact copies (when given) joined too. The threshold and floor were chosen by eye on dev data
(``benchmarks/results/dev-near-duplicates.md``): a near-copy is a likely copy, not a sure one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from labeltrace.data.copy_parts import (
    DIGEST,
    decoded_chunks,
    digest_image,
    duplicate_groups,
    linked_sets,
    row_digests,
)
from labeltrace.data.decode import batch_to_float

__all__ = ["MIN_STD", "SIZE", "THRESHOLD", "Copies", "closest_in_group", "dataset_copies", "dataset_near_duplicates",
           "dataset_signatures", "find_near_duplicates", "near_groups", "near_pairs", "search_settings", "signatures"]  # fmt: skip

SIZE = 16
"""Side of the grayscale thumbnail a signature is made of."""
THRESHOLD = 0.98
"""Correlation of two thumbnails from which they are near-copies (dev-near-duplicates.md)."""
MIN_STD = 0.03
"""Thumbnail standard deviation (pixel values in [0, 1]) under which an image is never matched."""
BLOCK = 1 << 23
"""Cosines one block of :func:`near_pairs` holds at most."""
FOLD_PAIRS = 1 << 22
"""Pairs the scan's search holds before it folds them into links of their groups (``_near_of``)."""
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def search_settings(threshold: float = THRESHOLD, size: int = SIZE, min_std: float = MIN_STD) -> dict[str, float]:
    """Every setting that decides the near-copy groups, as run.json's ``near_duplicates`` records them:
    the ``threshold``, the ``thumbnail`` side (:data:`SIZE`, also the smallest side ever matched) and
    the ``min_std`` floor (:data:`MIN_STD`). Groups found under other settings are other groups."""
    return {"threshold": float(threshold), "thumbnail": int(size), "min_std": float(min_std)}


@lru_cache(maxsize=64)
def _area(n: int, s: int) -> np.ndarray:
    """``(s, n)`` exact area-averaging weights from ``n`` pixels to ``s`` cells (rows sum to 1;
    read-only: one per size, shared by every image of that size)."""
    edges = np.arange(s + 1, dtype=np.float64) * (n / s)
    lo, hi = edges[:-1, None], edges[1:, None]
    px = np.arange(n, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0.0, None)
    w = overlap / overlap.sum(axis=1, keepdims=True)
    w.setflags(write=False)
    return w


def _gray(x: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` float64 gray of ``(N, H, W)`` or ``(N, H, W, C)``, ``C`` in {1, 3}."""
    if x.ndim == 3:
        return x.astype(np.float64)
    if x.shape[-1] == 1:
        return x[..., 0].astype(np.float64)
    if x.shape[-1] == 3:
        return x.astype(np.float64) @ _LUMA
    raise ValueError(f"images must have 1 or 3 channels; got shape {x.shape}")


def signatures(
    images: np.ndarray, size: int = SIZE, min_std: float = MIN_STD
) -> tuple[np.ndarray, np.ndarray]:
    """Signatures of a batch of same-sized images, ``(N, H, W)`` or ``(N, H, W, C)`` floats in
    [0, 1]: ``(N, size*size)`` float32 rows of unit norm (zero for a flat image) and ``(N,)`` bool,
    whether each may be matched — its thumbnail's standard deviation is at least ``min_std`` and
    the image is at least ``size`` pixels on each side (an image smaller than its thumbnail, such
    as an 8 x 8 digit, has too few pixels to tell a copy from a lookalike: dev-near-duplicates.md)."""
    g = _gray(np.asarray(images))
    small = _area(g.shape[1], size) @ g @ _area(g.shape[2], size).T  # (s, H) @ (N, H, W) @ (W, s): two BLAS products
    flat = small.reshape(len(small), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    std = np.sqrt((flat**2).mean(axis=1))
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    sig = np.divide(flat, norm, out=np.zeros_like(flat), where=norm > 0)
    return sig.astype(np.float32), (std >= min_std) & (min(g.shape[1:3]) >= size)


def _batch_signatures(images: np.ndarray, rows: np.ndarray | None, size: int, min_std: float,
                      chunk: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """:func:`signatures` of an in-memory array (uint8, uint16, bool or floats in [0, 1]) by chunks of
    rows, each scaled as the dataset loader scales it (:func:`labeltrace.data.decode.batch_to_float`)."""
    idx = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64)
    parts = [
        signatures(batch_to_float(images[idx[a : a + chunk]], a), size, min_std)
        for a in range(0, len(idx), chunk)
    ]
    if not parts:
        return np.zeros((0, size * size), np.float32), np.zeros(0, bool)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _pair_blocks(sig: np.ndarray, informative: np.ndarray, threshold: float, chunk: int
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:  # fmt: skip
    """The pairs of :func:`near_pairs` block by block: ``(i, j, cosine)`` of each block of rows."""
    keep = np.flatnonzero(np.asarray(informative, dtype=bool))
    s = np.ascontiguousarray(sig[keep], dtype=np.float32)
    chunk = max(1, min(int(chunk), BLOCK // max(len(s), 1)))
    for a in range(0, len(s), chunk):
        block = s[a : a + chunk] @ s[a:].T  # later rows only: each pair once
        r, c = np.nonzero(block >= threshold)
        up = c > r  # c indexes s[a:], r the block: j = a + c, i = a + r
        r, c = r[up], c[up]
        yield keep[a + r].astype(np.int64), keep[a + c].astype(np.int64), block[r, c].astype(np.float32)


def near_pairs(sig: np.ndarray, informative: np.ndarray, threshold: float = THRESHOLD, *,
               chunk: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Every pair ``i < j`` of informative rows whose signatures' cosine is at least ``threshold``:
    ``(i, j, cosine)`` arrays, sorted by ``i`` then ``j``. At most ``chunk`` rows are compared with
    all later rows at a time, fewer where ``N`` is large (a block holds at most ``BLOCK`` cosines:
    32 MB, whatever ``N``). Every pair is held: ``m`` look-alike images make ``m**2 / 2`` of them
    (the scan's search, :func:`dataset_copies`, folds them into groups as it goes)."""
    parts = list(_pair_blocks(sig, informative, threshold, chunk))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    i, j, cos = (np.concatenate([p[k] for p in parts]) for k in range(3))
    order = np.lexsort((j, i))
    return i[order], j[order], cos[order]


def near_groups(
    n: int, i: np.ndarray, j: np.ndarray, exact: np.ndarray | None = None
) -> np.ndarray:
    """``(n,)`` int64 group of each sample from near pairs ``(i, j)``: the connected components
    that hold at least one pair that is not an exact copy (``exact``: ``(n,)`` exact-copy group,
    ``-1`` alone — those copies join the component too), numbered ``0..G-1`` by first sample;
    ``-1`` for a sample in no such component."""
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    ex = _exact(n, exact)
    near = (ex[i] < 0) | (ex[i] != ex[j])  # a pair of exact copies is no near-copy
    touched = np.zeros(n, bool)
    touched[i[near]] = touched[j[near]] = True
    return _groups(n, i, j, ex, touched)


def _exact(n: int, exact: np.ndarray | None) -> np.ndarray:
    return np.full(n, -1, np.int64) if exact is None else np.asarray(exact, dtype=np.int64)


def _groups(n: int, i: np.ndarray, j: np.ndarray, ex: np.ndarray, touched: np.ndarray) -> np.ndarray:
    """:func:`near_groups` of links ``(i, j)`` whose components are those of the pairs, where
    ``touched`` marks the samples at an end of a pair that is not an exact copy."""
    in_ex = np.flatnonzero(ex >= 0)  # an exact copy joins its group's node (n + its group)
    n_ex = int(ex.max()) + 1 if in_ex.size else 0
    comp = linked_sets(n, np.concatenate([i, in_ex]), np.concatenate([j, n + ex[in_ex]]), n + n_ex)
    has_near = np.zeros(int(comp.max()) + 1 if n else 0, bool)
    has_near[comp[touched]] = True
    number = np.full(len(has_near), -1, np.int64)  # the sets with a near pair, in their order (by first sample)
    number[has_near] = np.arange(int(has_near.sum()))
    return number[comp]


def _forest(n: int, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Links with the components of the pairs ``(i, j)``: each sample of a component of two or more
    linked to the component's first sample (at most ``n`` links, however many pairs)."""
    comp = linked_sets(n, i, j)
    _, first, counts = np.unique(comp, return_index=True, return_counts=True)
    linked = (counts[comp] > 1) & (first[comp] != np.arange(n))
    return np.flatnonzero(linked).astype(np.int64), first[comp[linked]].astype(np.int64)


def find_near_duplicates(images: Any, *, threshold: float = THRESHOLD, min_std: float = MIN_STD,
                         size: int = SIZE, chunk: int = 1024) -> np.ndarray:  # fmt: skip
    """Groups of near-duplicates (and the exact copies among them) in an ``(N, H, W[, C])`` array of
    images (uint8, uint16 or floats in [0, 1]): ``(N,)`` int64, see :func:`near_groups` (the exact
    copies, :func:`labeltrace.data.duplicates.find_duplicates`, joined)."""
    a = np.asarray(images)
    sig, ok = _batch_signatures(a, None, size, min_std, chunk)
    return _near_of(sig, ok, duplicate_groups(row_digests(a)), threshold, chunk)[0]


def _decoded_pass(ds: Any, size: int, min_std: float, workers: int | None, chunk: int, digests: bool
                  ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:  # fmt: skip
    """Each sample of a dataset of files decoded once (:func:`~labeltrace.data.copy_parts.decoded_chunks`,
    ``chunk`` at a time on ``workers`` threads), and only its signature (:func:`signatures`) kept —
    with its exact-copy digest (:func:`~labeltrace.data.copy_parts.digest_image`, of the same decoded
    pixels) when ``digests``: ``(N, 16)`` uint8 digests or None, ``(N, size*size)`` signatures, ``(N,)``
    informative."""

    def one(img: np.ndarray) -> tuple[bytes, np.ndarray, np.ndarray]:
        return (digest_image(img) if digests else b""), *signatures(img[None], size, min_std)

    n = len(ds)
    dig, sig, ok = bytearray(), np.zeros((n, size * size), np.float32), np.zeros(n, bool)
    for a, got in decoded_chunks(ds, one, workers=workers, chunk=chunk):
        dig += b"".join(g[0] for g in got)
        sig[a : a + len(got)] = np.concatenate([g[1] for g in got])
        ok[a : a + len(got)] = np.concatenate([g[2] for g in got])
    return (np.frombuffer(bytes(dig), np.uint8).reshape(n, DIGEST) if digests else None), sig, ok


def dataset_signatures(ds: Any, *, size: int = SIZE, min_std: float = MIN_STD, workers: int | None = None,
                       chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """:func:`signatures` of every sample of an :class:`~labeltrace.data.ImageDataset` (source
    pixels as decoded, each at its own size): an in-memory array by chunks of rows, files
    ``chunk`` at a time on ``workers`` threads, only the signatures kept."""
    from labeltrace.data.sources import ArraySource

    src = ds.source
    if isinstance(src, ArraySource):
        return _batch_signatures(src.images, src.rows, size, min_std, chunk)
    return _decoded_pass(ds, size, min_std, workers, chunk, digests=False)[1:]


def closest_in_group(n: int, i: np.ndarray, j: np.ndarray, cos: np.ndarray, groups: np.ndarray,
                     exact: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """``(n,)`` float32: each grouped sample's highest cosine with another member of its group
    (1 for an exact copy), NaN outside the groups."""
    best = np.full(n, -np.inf, np.float64)
    np.maximum.at(best, i, cos)
    np.maximum.at(best, j, cos)
    return _closest(best, groups, exact)


def _closest(best: np.ndarray, groups: np.ndarray, exact: np.ndarray | None) -> np.ndarray:
    """:func:`closest_in_group` of each sample's ``best`` cosine in a pair (changed in place)."""
    if exact is not None:
        best[np.asarray(exact) >= 0] = 1.0  # an exact group has two members or more
    return np.where(np.asarray(groups) >= 0, np.minimum(best, 1.0), np.nan).astype(np.float32)


def _near_of(sig: np.ndarray, ok: np.ndarray, exact: np.ndarray | None, threshold: float, chunk: int
             ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Near-copy groups (:func:`near_groups`, ``exact`` joined) and closest cosines
    (:func:`closest_in_group`) of signatures, without holding every pair: each sample's best cosine
    and whether it ends a pair that is no exact copy are kept as the blocks come, and once more than
    :data:`FOLD_PAIRS` pairs are held they are folded into links of their components (8,000
    look-alike images held 32 M pairs, 2.2 GB)."""
    n = len(sig)
    ex = _exact(n, exact)
    best, touched = np.full(n, -np.inf, np.float64), np.zeros(n, bool)
    held_i: list[np.ndarray] = []
    held_j: list[np.ndarray] = []
    count, fold_at = 0, FOLD_PAIRS
    for i, j, cos in _pair_blocks(sig, ok, threshold, chunk):
        np.maximum.at(best, i, cos)
        np.maximum.at(best, j, cos)
        near = (ex[i] < 0) | (ex[i] != ex[j])  # a pair of exact copies is no near-copy
        touched[i[near]] = touched[j[near]] = True
        held_i.append(i)
        held_j.append(j)
        count += i.size
        if count > fold_at:
            a, b = _forest(n, np.concatenate(held_i), np.concatenate(held_j))
            held_i, held_j, count = [a], [b], a.size
            fold_at = max(FOLD_PAIRS, 2 * a.size)  # millions of grouped samples: not folded again every block
    i = np.concatenate(held_i) if held_i else np.zeros(0, np.int64)
    j = np.concatenate(held_j) if held_j else np.zeros(0, np.int64)
    groups = _groups(n, i, j, ex, touched)
    return groups, _closest(best, groups, ex)


def dataset_near_duplicates(ds: Any, exact: np.ndarray | None = None, *, threshold: float = THRESHOLD,
                            workers: int | None = None, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Near-copy groups of an :class:`~labeltrace.data.ImageDataset` (:func:`near_groups`, with
    ``exact``, its exact-copy groups, joined in) and each grouped sample's closest cosine
    (:func:`closest_in_group`). :func:`dataset_copies` finds the exact copies in the same pass."""
    sig, ok = dataset_signatures(ds, workers=workers, chunk=chunk)
    return _near_of(sig, ok, exact, threshold, chunk)


@dataclass(frozen=True, eq=False)
class Copies:
    """A dataset's copies: ``exact``, each sample's group of exact copies (``-1`` alone:
    :func:`labeltrace.data.copy_parts.duplicate_groups`), the folds and the kNN read them; ``near``,
    its group of likely copies (:func:`near_groups`, exact copies joined) and ``closest``, its
    highest cosine within that group (:func:`closest_in_group`), listed only; ``settings``, the
    near-copy search's (:func:`search_settings`) that found them."""

    exact: np.ndarray
    near: np.ndarray
    closest: np.ndarray
    settings: dict[str, float] = field(default_factory=search_settings)


def dataset_copies(ds: Any, *, threshold: float = THRESHOLD, size: int = SIZE, min_std: float = MIN_STD,
                   workers: int | None = None, chunk: int = 1024) -> Copies:  # fmt: skip
    """The exact copies and the near-copies of an :class:`~labeltrace.data.ImageDataset` in one
    pass over its pixels: each file is decoded once (``chunk`` at a time on ``workers`` threads)
    and gives both its digest and its signature — the groups of
    :func:`~labeltrace.data.duplicates.dataset_duplicates` and :func:`dataset_near_duplicates`
    (an in-memory array is hashed in place and signed by chunks of rows, as there), with the
    settings they were found with (:func:`search_settings`: the table and run.json record them)."""
    from labeltrace.data.sources import ArraySource

    src = ds.source
    if isinstance(src, ArraySource):  # nothing to decode: each search reads the array in place
        exact = duplicate_groups(row_digests(src.images, src.rows))  # dataset_duplicates' array branch
        sig, ok = dataset_signatures(ds, size=size, min_std=min_std, chunk=chunk)
    else:
        digests, sig, ok = _decoded_pass(ds, size, min_std, workers, chunk, digests=True)
        assert digests is not None
        exact = duplicate_groups(digests)
    return Copies(exact, *_near_of(sig, ok, exact, threshold, chunk), settings=search_settings(threshold, size, min_std))
