"""Exact duplicate images: samples whose decoded pixels are identical.

A copy of an image under another label is a sure label error (at least one of the two labels is
wrong, whatever a model says); a copy under the same label backs its twin's label in a
cross-fitted protocol unless both sit in one fold (:func:`labeltrace.train.folds.keep_together`).

"Exact" means the same source pixels, decoded, at the image's own size — not the pixels the
network sees at its working resolution: a duplicate is then a property of the data, the same
whichever model or resolution scans it, and two different images that only coincide once shrunk
(two blank frames, two 512 px X-rays at 28 px) are never called copies of each other. Two files
with the same pixels in other encodings (a PNG saved again, a DICOM under another header) are
copies; a lossy re-encoding or a resized copy is not (:mod:`labeltrace.data.near_duplicates`
lists those as likely copies).

Each image is reduced to a 16-byte BLAKE2b digest of its shape, dtype and bytes, and the digests are
grouped with :func:`numpy.unique` on a void view: O(N) digests, one sort, no pairwise loop, and
no image kept once hashed — an in-memory array is hashed row by row in place (never copied), files
are decoded in chunks on the loader's threads.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from labeltrace._checks import describe_ids, group_codes
from labeltrace.data.copy_parts import (
    DIGEST,
    decoded_chunks,
    digest_image,
    duplicate_groups,
    linked_sets,
    row_digests,
)
from labeltrace.data.near_duplicates import find_near_duplicates

__all__ = ["DIGEST", "conflicting_groups", "connected_sets", "dataset_duplicates", "digest_image", "duplicate_groups",
           "find_duplicates", "group_members", "linked_sets", "neighbour_groups"]  # fmt: skip
# DIGEST, digest_image, duplicate_groups and linked_sets live in labeltrace.data.copy_parts (the
# near-copy search builds on them too), and are this module's public names as before

def find_duplicates(images: Any, *, near: bool = False) -> np.ndarray:
    """Groups of exact duplicates among ``images``, an ``(N, ...)`` array (``(N, H, W)``, ``(N, H,
    W, C)``, torch tensors too): ``(N,)`` int64, the group id ``0..G-1`` each copy shares with the
    others of its group (numbered by first appearance), ``-1`` for an image without a copy.

    Two rows are copies when their values are identical (compared byte for byte, so ``0.0`` and
    ``-0.0`` differ). The array is hashed row by row in place: no copy of it is made unless it
    is not C-contiguous (then one row at a time).

    ``near=True``: groups of *near*-copies instead — likely copies re-encoded, resized or made
    brighter or darker (:mod:`labeltrace.data.near_duplicates`: ``(N, H, W[, C])`` images,
    uint8, uint16 or floats in [0, 1], each side at least 16 px; the exact copies of a member join
    its group); a group holds at least one pair that is not an exact copy. A likely copy, not a
    sure one.

    >>> import numpy as np
    >>> x = np.zeros((4, 2, 2), np.uint8); x[1] = 1; x[3] = 1
    >>> find_duplicates(x).tolist()
    [0, 1, 0, 1]
    """
    from labeltrace._checks import is_tensor

    if not isinstance(near, (bool, np.bool_)):
        raise TypeError(f"near must be True or False; got {near!r}")
    if is_tensor(images):
        images = images.detach().cpu().numpy()
    a = np.asarray(images)
    if a.dtype == object:
        raise TypeError("images must be one numeric array (N, H, W[, C]); got an object array (images of "
                        "several sizes? hash each with labeltrace.data.duplicates.digest_image)")  # fmt: skip
    if a.ndim < 2:
        raise ValueError(f"images must be an array of shape (N, ...) with one image per row; got shape {a.shape}")
    if near:
        if a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[3] not in (1, 3)):
            raise ValueError(f"near=True needs images shaped (N, H, W) or (N, H, W, C), C in {{1, 3}}; got {a.shape}")
        return find_near_duplicates(a)
    return duplicate_groups(row_digests(a))


def dataset_duplicates(ds: Any, *, workers: int | None = None, chunk: int = 1024) -> np.ndarray:
    """:func:`find_duplicates` for a :class:`~labeltrace.data.ImageDataset`: each sample's source
    pixels as decoded (``ds.load``), at their own size; an in-memory array is hashed as stored
    (rows mapped through the dataset's ``rows``, nothing copied), other sources are decoded
    ``chunk`` at a time on ``workers`` threads and only their digests kept."""
    from labeltrace.data.sources import ArraySource

    src = ds.source
    if isinstance(src, ArraySource):
        return duplicate_groups(row_digests(src.images, src.rows))
    parts = b"".join(d for _, got in decoded_chunks(ds, digest_image, workers=workers, chunk=chunk) for d in got)
    return duplicate_groups(np.frombuffer(parts, dtype=np.uint8).reshape(-1, DIGEST))


def group_members(groups: np.ndarray) -> list[np.ndarray]:
    """The sample ids of each group ``0..G-1`` of ``groups`` (:func:`duplicate_groups`), ascending."""
    g = np.asarray(groups, dtype=np.int64)
    ids = np.flatnonzero(g >= 0)
    order = ids[np.argsort(g[ids], kind="stable")]
    sizes = np.bincount(g[ids]) if ids.size else np.zeros(0, dtype=np.int64)
    return np.split(order, np.cumsum(sizes)[:-1]) if sizes.size else []


def conflicting_groups(groups: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(G,)`` bool: whether group ``g``'s copies carry more than one label."""
    g = np.asarray(groups, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64)
    n_groups = int(g.max()) + 1 if g.size and g.max() >= 0 else 0
    inside = g >= 0
    lo = np.full(n_groups, np.iinfo(np.int64).max)
    hi = np.full(n_groups, np.iinfo(np.int64).min)
    np.minimum.at(lo, g[inside], y[inside])
    np.maximum.at(hi, g[inside], y[inside])
    return lo != hi


def connected_sets(copies: np.ndarray, groups: Sequence[str] | None = None) -> np.ndarray:
    """``(N,)`` int64 set of each sample, ``0..S-1`` numbered by first appearance: samples linked by an
    exact copy (``copies``, :func:`duplicate_groups`) or by a shared ``groups`` key (a patient) share a
    set — the union of both groupings (two patients one of whose images is a copy of the other's are
    one set); a sample linked to none is a set of its own."""
    c = np.asarray(copies, dtype=np.int64).reshape(-1)
    n = c.shape[0]
    # one node per sample, one per copy group and one per user group; a sample joins its groups' nodes
    g_codes = group_codes(groups)[1] if groups is not None else np.full(n, -1, dtype=np.int64)
    n_copy = int(c.max()) + 1 if n and c.max() >= 0 else 0
    n_user = int(g_codes.max()) + 1 if n and g_codes.max() >= 0 else 0
    src = np.concatenate([np.flatnonzero(c >= 0), np.flatnonzero(g_codes >= 0)])
    dst = np.concatenate([n + c[c >= 0], n + n_copy + g_codes[g_codes >= 0]])
    return linked_sets(n, src, dst, n + n_copy + n_user)


def neighbour_groups(groups: Sequence[str] | None, copies: np.ndarray | None, k: int | None = None
                     ) -> Sequence[str] | None:  # fmt: skip
    """The groups a kNN vote leaves out of each sample's neighbours: ``groups`` (a patient's other
    images) joined with its exact copies (:func:`connected_sets`) — a copy is its twin's nearest
    neighbour and voted for its label, as a fold's model that trained on the twin would. ``groups``
    itself where there are no copies (the neighbours, and every score read from them, unchanged).

    ``k`` (the kNN's neighbours): copies whose set would leave fewer than ``k`` samples outside it
    (25 copies of one blank frame among 30 images; every image one) stay one another's neighbours,
    with a warning naming them — left out, they cut every sample's vote to what the set leaves (5 of
    10), or left no neighbour at all and stopped the scan; the other copies are left out as ever."""
    if copies is None or not (np.asarray(copies) >= 0).any():
        return groups
    c = np.asarray(copies, dtype=np.int64).reshape(-1)
    sets = connected_sets(c, groups)
    if k is not None:
        room = c.size - int(k)  # the largest set that leaves k samples outside it
        sizes = np.bincount(sets)
        mine = connected_sets(np.full(c.size, -1), groups)  # a user's groups alone
        own = np.bincount(mine)[mine]
        crowded = (sizes[sets] > room) & (own <= room) & (c >= 0)  # crowded by copies, not by a user's group
        if crowded.any():
            big = int(sizes[sets][crowded].max())
            warnings.warn(f"{int(crowded.sum()):,} exact copies ({describe_ids(crowded)}) are too many to leave "
                          f"out of one another's kNN neighbours: their set of {big:,} of {c.size:,} samples would "
                          f"leave fewer than the {int(k)} neighbours outside it, so they stay one another's "
                          "neighbours (and vote for the labels they share)", UserWarning, stacklevel=2)  # fmt: skip
            c = np.where(crowded, -1, c)
            if not (c >= 0).any():
                return groups
            sets = connected_sets(c, groups)
    return tuple(str(s) for s in sets.tolist())
