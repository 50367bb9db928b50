"""stratified_subset: the subsets scikit-learn draws today stay the same (pinned with the code before
the per-class fallback), and the splits scikit-learn refuses are drawn per class instead of crashing."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from labeltrace.data.base import stratified_subset

Y1 = np.repeat([0, 1, 2], [10, 20, 30])
Y3 = np.array([0] * 50 + [1] * 3 + [2] * 7 + [3] * 40)


@pytest.mark.parametrize(("labels", "size", "seed", "want"), [
    (Y1, 5, 0, [2, 12, 25, 35, 46]),
    (Y1, 10, 7, [5, 8, 11, 12, 27, 40, 42, 45, 47, 59]),
    (Y3, 10, 0, [2, 10, 11, 28, 41, 56, 62, 73, 77, 83]),
    (Y3, 5, 7, [13, 15, 22, 86, 96]),
])  # fmt: skip
def test_the_subsets_scikit_learn_draws_are_unchanged(labels: np.ndarray, size: int, seed: int, want: list[int]) -> None:
    assert stratified_subset(labels, size, seed=seed).tolist() == want


def test_a_large_subset_is_unchanged() -> None:
    idx = stratified_subset(np.arange(5000) % 10, 600, seed=0)
    assert idx[:10].tolist() == [10, 25, 42, 62, 75, 79, 83, 85, 88, 94]
    assert hashlib.sha256(idx.astype(np.int64).tobytes()).hexdigest() == \
        "322b7ca65a73b11a7a6fe63ccac3368e8564de4a35b3b18262e2dc93a0721e3f"  # fmt: skip


@pytest.mark.parametrize(("labels", "size"), [
    (np.arange(601) % 2, 600),  # 1 sample left over for 2 classes (the default probe on 601 images)
    (np.arange(603) % 5, 600),
    (np.repeat(np.arange(1000), 4), 600),  # more classes than the subset holds
    (np.repeat(np.arange(10), 3), 7),
    (np.array([0] * 20 + [1] + [2] * 5), 10),  # a class of one sample
])  # fmt: skip
def test_splits_scikit_learn_refuses_are_drawn_per_class(labels: np.ndarray, size: int) -> None:
    idx = stratified_subset(labels, size, seed=3)
    assert idx.size == size and np.array_equal(idx, np.unique(idx)) and idx.min() >= 0 and idx.max() < labels.size
    assert np.array_equal(idx, stratified_subset(labels, size, seed=3))  # seeded
    counts, got = np.bincount(labels), np.bincount(labels[idx], minlength=labels.max() + 1)
    if size >= (counts > 0).sum():
        assert (got[counts > 0] >= 1).all()  # one of each class where the subset can hold them all
        assert np.abs(got - size * counts / labels.size).max() < 2  # the rest in proportion
    else:
        assert got.max() == 1  # one sample each of `size` classes


def test_edge_sizes() -> None:
    y = np.arange(10) % 2
    assert stratified_subset(y, 0).size == 0
    assert np.array_equal(stratified_subset(y, 10), np.arange(10))
    with pytest.raises(ValueError, match="subset size must be >= 0, got -1"):
        stratified_subset(y, -1)


def test_a_seed_past_32_bits_draws_the_subset_of_its_low_32_bits() -> None:
    """scikit-learn's random_state takes [0, 2**32): a scan seed of 2**32 crashed the --model auto
    probe on more than 600 images; it now reads the seed modulo 2**32, as the folds do."""
    from labeltrace.data.subset import stratified_subset

    labels = np.arange(700) % 3
    np.testing.assert_array_equal(stratified_subset(labels, 600, seed=2**32 + 5), stratified_subset(labels, 600, seed=5))
