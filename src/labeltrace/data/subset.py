"""Seeded stratified subsets of sample ids (the ``--model auto`` / ``--resolution auto`` probes'
subset, the benchmark's dev / test subsets). Split from :mod:`labeltrace.data.base`, which
re-exports :func:`stratified_subset`."""

from __future__ import annotations

import operator

import numpy as np

from labeltrace._checks import seeded

__all__ = ["stratified_subset"]


def _sklearn_refuses(counts: np.ndarray, n: int, size: int) -> bool:
    """Whether scikit-learn's stratified split of ``n`` samples with class ``counts`` (classes
    present only) into ``size`` and ``n - size`` refuses: a class of one sample, or fewer samples
    than classes on either side."""
    return bool(counts.min() < 2 or size < counts.size or n - size < counts.size)


def _shares(counts: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Samples drawn per class: one of each class when ``size`` allows (else ``size`` classes
    drawn with probability proportional to their counts), the rest by largest remainder of the
    proportional shares, never more than a class holds."""
    k, n = counts.size, int(counts.sum())
    take = np.zeros(k, np.int64)
    if size < k:
        take[rng.choice(k, size=size, replace=False, p=counts / n)] = 1
        return take
    quota = size * counts / n
    take[:] = np.minimum(counts, np.maximum(1, np.floor(quota).astype(np.int64)))
    while take.sum() > size:  # minimum-one rounding overshot: take back where the quota is exceeded most
        over = np.where(take > 1, take - quota, -np.inf)
        take[int(np.argmax(over))] -= 1
    while take.sum() < size:  # the rest to the largest remainders, among classes with samples left
        room = np.where(take < counts, quota - take, -np.inf)
        take[int(np.argmax(room))] += 1
    return take


def stratified_subset(labels: np.ndarray, size: int, *, seed: int = 0) -> np.ndarray:
    """Sorted ids of a seeded random subset of ``size`` samples with the classes in the proportions
    of ``labels``; every id when ``size >= len(labels)``, none when ``size`` is 0.

    scikit-learn's stratified split draws it where that split works (every class present has at
    least 2 samples, and both the subset and the rest hold at least one sample per class present);
    otherwise (e.g. 601 samples of 2 classes, subset 600; or more classes than ``size``) the
    subset is drawn per class here, seeded: one sample of each class where ``size`` allows, the
    rest in proportion to the class counts (largest remainder)."""
    labels = np.asarray(labels).reshape(-1)
    size = operator.index(size)
    if size < 0:
        raise ValueError(f"subset size must be >= 0, got {size}")
    if size >= labels.size:
        return np.arange(labels.size)
    if size == 0:
        return np.zeros(0, np.int64)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if not _sklearn_refuses(counts, labels.size, size):
        from sklearn.model_selection import train_test_split

        from labeltrace.train.seeds import legacy_seed

        # scikit-learn takes 32 bits of seed: identical below 2**32
        idx, _ = train_test_split(np.arange(labels.size), train_size=size, stratify=labels,
                                  random_state=legacy_seed(seed))  # fmt: skip
        return np.sort(idx)
    rng = seeded(seed)
    take = _shares(counts, size, rng)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    picked = [rng.choice(m, size=int(t), replace=False) for m, t in zip(members, take, strict=True) if t]
    return np.sort(np.concatenate(picked)).astype(np.int64)
