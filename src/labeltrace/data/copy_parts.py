"""What the exact-copy search (:mod:`labeltrace.data.duplicates`) and the near-copy search
(:mod:`labeltrace.data.near_duplicates`) are both built of: each image's 16-byte digest and the
groups of equal digests, the connected sets of linked samples, and the one chunked decoding pass
over a dataset's files that hands each decoded image to a per-image function. Both searches import
from here, and neither from the other's module but through :func:`~labeltrace.data.duplicates.find_duplicates`
(``near=True``), which imports the near-copy search: no import cycle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

from labeltrace.data.sources import parallel_map

__all__ = ["DIGEST", "decoded_chunks", "digest_image", "duplicate_groups", "linked_sets", "row_digests"]

DIGEST = 16
"""Bytes of each image's digest."""

T = TypeVar("T")


def digest_image(img: np.ndarray) -> bytes:
    """16 bytes of BLAKE2b over one image's shape, dtype and pixel bytes (C order)."""
    a = np.asarray(img)
    h = hashlib.blake2b(f"{a.shape}{a.dtype.str}".encode() + b"\0", digest_size=DIGEST)
    h.update(np.ascontiguousarray(a).reshape(-1).view(np.uint8).data)
    return h.digest()


def row_digests(images: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """(N, 16) uint8 digests of ``images[rows[i]]`` (each row a view: the array is not copied)."""
    idx = range(images.shape[0]) if rows is None else rows.tolist()
    return np.frombuffer(b"".join(digest_image(images[r]) for r in idx), dtype=np.uint8).reshape(-1, DIGEST)


def duplicate_groups(digests: np.ndarray) -> np.ndarray:
    """``(N,)`` int64 group of each sample from ``(N, 16)`` digests: samples with equal digests
    share a group ``0..G-1`` (numbered in the order of each group's first sample), a sample
    without a copy is ``-1``."""
    d = np.ascontiguousarray(digests, dtype=np.uint8)
    n = d.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    keys = d.view(f"V{d.shape[1]}").ravel()
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    shared = counts > 1
    # number the shared keys by their first sample: a dataset's order, not the digests', names the groups
    order = np.argsort(first[shared], kind="stable")
    number = np.full(len(counts), -1, dtype=np.int64)
    number[np.flatnonzero(shared)[order]] = np.arange(int(shared.sum()), dtype=np.int64)
    return number[inverse]


def decoded_chunks(ds: Any, per_image: Callable[[np.ndarray], T], *, workers: int | None, chunk: int
                   ) -> Iterator[tuple[int, list[T]]]:  # fmt: skip
    """``per_image`` of each sample of a dataset of files as decoded (``ds.load``, at its own size),
    ``chunk`` samples at a time on ``workers`` threads (:func:`~labeltrace.data.sources.parallel_map`):
    ``(first sample id, [per_image(image), ...])`` for each chunk in order — only what ``per_image``
    returns is kept, never a chunk's images. A file that cannot be decoded stops the pass with
    ``ds.load``'s error, which names it."""
    n = len(ds)
    for a in range(0, n, chunk):
        yield a, parallel_map(lambda i: per_image(ds.load(i)), range(a, min(a + chunk, n)), workers)


def linked_sets(n: int, a: np.ndarray, b: np.ndarray, nodes: int | None = None) -> np.ndarray:
    """``(n,)`` int64 set of each sample ``0..n-1``, ``0..S-1`` numbered by first sample: the connected
    components of the undirected graph of ``nodes`` nodes (``n`` unless more: the nodes from ``n`` up
    link samples, and are no samples) with an edge ``a[k] - b[k]`` each; a sample linked to none is a
    set of its own."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if n == 0:
        return np.zeros(0, dtype=np.int64)
    size = n if nodes is None else int(nodes)
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(size, size))
    comp = connected_components(graph, directed=False)[1][:n]
    _, first, rank = np.unique(comp, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first, kind="stable"), kind="stable")  # sets by their first sample
    return order[rank.reshape(-1)].astype(np.int64)
