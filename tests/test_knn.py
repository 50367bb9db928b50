"""labeltrace.knn against a brute-force full N x N reference, plus planted errors and ties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeltrace.score.knn import knn_indices, knn_probs, knn_vote


def brute_force(x: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Full similarity matrix in float64, self masked, stable sort by (-sim, index)."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        sim = np.round(xn @ xn.T, 10)  # duplicates tie despite BLAS rounding
    else:
        sim = -((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize(
    ("n", "d", "k", "batch_size", "seed"),
    [
        (50, 3, 1, 7, 0),
        (200, 8, 5, 64, 1),
        (333, 16, 10, 100, 2),
        (120, 2, 15, 1, 3),
        (64, 5, 63, 16, 4),
    ],
)
def test_matches_brute_force(
    metric: str, n: int, d: int, k: int, batch_size: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) + 3.0  # offset: cosine != euclidean ordering
    x[n // 2 :: 7] = x[n // 3]  # a few exact duplicates
    got = knn_indices(x, k=k, metric=metric, batch_size=batch_size)
    np.testing.assert_array_equal(got, brute_force(x, k, metric))
    # one big tile gives the same; float32 input is ranked on its own (float32) values
    np.testing.assert_array_equal(knn_indices(x, k=k, metric=metric, batch_size=10_000), got)
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(
        knn_indices(x32, k=k, metric=metric, batch_size=batch_size), brute_force(x32, k, metric)
    )


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(4, 40),
    d=st.integers(1, 3),
    k=st.integers(1, 12),
    n_groups=st.integers(2, 5),
    seed=st.integers(0, 10_000),
    batch_size=st.sampled_from([1, 4, 4096]),
    metric=st.sampled_from(["cosine", "euclidean"]),
)
def test_with_groups_matches_brute_force_ties_included(
    n: int, d: int, k: int, n_groups: int, seed: int, batch_size: int, metric: str
) -> None:
    """Small integer features (many exact ties) and unequal groups: a sample of a small group took
    only k + (N - largest group - k) candidates, and float32 rounding chose among equally near ones
    (an audit's finding: [9, 0, 4, 5, 10] for [9, 0, 4, 5, 6])."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=(n, d)).astype(np.float64)
    if metric == "cosine":
        x[(x == 0).all(axis=1)] = 1.0  # a zero vector has no direction
    g = rng.integers(0, n_groups, size=n)
    outside = n - int(np.bincount(g).max())
    if outside < 1:
        return
    k = min(k, outside)
    want = brute_force(x, n - 1, metric)
    same = g[want] == g[:, None]  # the brute force's order, the row's own group left out
    want = np.array([row[~s][:k] for row, s in zip(want, same, strict=True)])
    np.testing.assert_array_equal(knn_indices(x, k=k, metric=metric, groups=g, batch_size=batch_size), want)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(3, 80),
    d=st.integers(1, 6),
    k=st.integers(1, 20),
    batch_size=st.integers(1, 90),
    seed=st.integers(0, 10_000),
    metric=st.sampled_from(["cosine", "euclidean"]),
)
def test_batch_size_does_not_matter(
    n: int, d: int, k: int, batch_size: int, seed: int, metric: str
) -> None:
    k = min(k, n - 1)
    x = np.random.default_rng(seed).normal(size=(n, d))
    got = knn_indices(x, k=k, metric=metric, batch_size=batch_size)
    np.testing.assert_array_equal(got, brute_force(x, k, metric))
    assert not (got == np.arange(n)[:, None]).any()  # never itself


def test_ties_go_to_the_lower_index_and_duplicates_are_neighbours() -> None:
    # All similarities below are exact in floating point.
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [1.0, 0.0], [1.0, 1.0]])
    nb = knn_indices(x, k=3, metric="cosine")
    # sample 4 = (1,1): samples 0, 1, 3 all at cos = 1/sqrt(2) -> lowest ids first
    assert nb[4].tolist() == [0, 1, 3]
    # sample 1 = (1,0): its duplicate 3 (cos 1), then 4 (0.707), then 0 and 2 tie at 0 -> 0
    assert nb[1].tolist() == [3, 4, 0]
    assert nb[3].tolist() == [1, 4, 0]
    # euclidean, integer features: exact squared distances
    e = knn_indices(x, k=2, metric="euclidean")
    assert e[0].tolist() == [4, 1]  # d2: 4 -> 1, 1 -> 2, 3 -> 2 (tie, 1 < 3)


def test_planted_mislabel_in_pure_cluster_gets_zero_vote() -> None:
    rng = np.random.default_rng(0)
    centers = np.array([[10.0, 0, 0], [0, 10.0, 0], [0, 0, 10.0]])
    y = np.repeat(np.arange(3), 40)
    x = centers[y] + rng.normal(scale=0.5, size=(120, 3))
    y_noisy = y.copy()
    y_noisy[[5, 50, 100]] = [1, 2, 0]
    for metric in ("cosine", "euclidean"):
        v = knn_vote(x, y_noisy, k=10, metric=metric)
        assert v.shape == (120,) and v.dtype == np.float64
        assert v[[5, 50, 100]].tolist() == [0.0, 0.0, 0.0]
        clean = np.setdiff1d(np.arange(120), [5, 50, 100])
        assert v[clean].min() >= 0.9  # at most one planted neighbour among 10
        np.testing.assert_array_equal(np.argsort(v, kind="stable")[:3], [5, 50, 100])


def test_self_is_excluded_from_the_vote() -> None:
    # Two far-apart pairs; each sample's only other same-cluster point has a different label.
    x = np.array([[0.0, 1.0], [0.0, 1.1], [5.0, 0.0], [5.1, 0.0]])
    y = np.array([0, 1, 0, 1])
    v = knn_vote(x, y, k=1, metric="euclidean")
    assert v.tolist() == [0.0, 0.0, 0.0, 0.0]  # counting itself would give 1.0
    # an exact duplicate with the same label *is* a neighbour (only index i is excluded)
    x2 = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert knn_vote(x2, np.array([0, 0, 1, 1]), k=1).tolist() == [1.0] * 4


def test_knn_probs_consistent_with_vote() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 4))
    y = rng.integers(0, 4, size=90)
    pr = knn_probs(x, y, k=7, num_classes=5)
    assert pr.shape == (90, 5)
    np.testing.assert_allclose(pr.sum(axis=1), 1.0)
    np.testing.assert_array_equal(pr[:, 4], 0.0)
    np.testing.assert_allclose(pr[np.arange(90), y], knn_vote(x, y, k=7))
    nb = brute_force(x, 7, "cosine")
    np.testing.assert_allclose(pr, np.stack([np.bincount(y[r], minlength=5) / 7 for r in nb]))


def test_medium_size_runs_quickly() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 64)).astype(np.float32)
    y = rng.integers(0, 10, size=3000)
    v = knn_vote(x, y, k=10, batch_size=1024)
    assert v.shape == (3000,) and np.all((v >= 0) & (v <= 1))


@pytest.mark.parametrize(
    ("x", "y", "kw", "match"),
    [
        (np.ones(5), np.zeros(5, int), {}, r"2-D"),
        (
            np.array([[1.0, 0], [np.nan, 1], [1, 1], [0, np.inf]]),
            np.zeros(4, int),
            {},
            r"NaN/inf in sample ids \[1, 3\]",
        ),
        (
            np.array([[1.0, 0], [0, 0], [1, 1]]),
            np.zeros(3, int),
            {},
            r"all-zero feature rows: sample ids \[1\]",
        ),
        (np.eye(4), np.zeros(4, int), {"k": 4}, r"k must be an int >= 1 and <= 3"),
        (np.eye(4), np.zeros(4, int), {"k": 0}, r"k must be an int >= 1"),
        (np.eye(4), np.zeros(4, int), {"metric": "manhattan", "k": 1}, r"metric must be one of"),
        (np.eye(4), np.zeros(4, int), {"batch_size": 0, "k": 1}, r"batch_size must be an int >= 1"),
        (np.eye(4), np.zeros(3, int), {"k": 1}, r"labels must have shape \(4,\)"),
        (np.eye(4), np.zeros(4), {"k": 1}, r"labels must be integers"),
        (np.eye(1), np.zeros(1, int), {"k": 1}, r"at least 2 samples"),
    ],
)
def test_validation_errors(x: np.ndarray, y: np.ndarray, kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        knn_vote(x, y, **kw)


def test_zero_rows_fine_for_euclidean() -> None:
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.1], [3.0, 3.0]])
    assert knn_indices(x, k=1, metric="euclidean")[:, 0].tolist() == [2, 0, 0, 1]


def test_knn_probs_label_range() -> None:
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\); sample ids \[2\]"):
        knn_probs(np.eye(3) + 0.1, np.array([0, 1, 2]), k=1, num_classes=2)
