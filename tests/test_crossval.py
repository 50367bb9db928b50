"""labeltrace.crossval: out-of-fold guarantee, missing classes, determinism, cleanlab parity."""

from __future__ import annotations

import numpy as np
import pytest

from labeltrace.train.crossval import crossval_probs, fold_ids


class Memorizer:
    """Predicts the mean one-hot label of *identical* training rows, uniform when none match.

    If a sample's own row had been in the training set, its own label would get >= 1/2.
    """

    def fit(self, X: np.ndarray, y: np.ndarray) -> Memorizer:
        self.X_, self.y_ = np.asarray(X), np.asarray(y)
        self.classes_ = np.unique(self.y_)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        same = np.all(
            np.asarray(X)[:, None, :] == self.X_[None, :, :], axis=-1
        )  # (n_test, n_train)
        onehot = (self.y_[:, None] == self.classes_[None, :]).astype(float)
        counts = same.astype(float) @ onehot
        hits = counts.sum(axis=1, keepdims=True)
        uniform = np.full_like(counts, 1.0 / self.classes_.size)
        return np.where(hits > 0, counts / np.maximum(hits, 1), uniform)


def paired_data(
    m: int = 40, k: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """m distinct points, each present twice with two different labels; returns x, y, partner id."""
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(m, 3))
    x = np.repeat(pts, 2, axis=0)
    first = rng.integers(0, k, size=m)
    second = (first + rng.integers(1, k, size=m)) % k  # always different
    y = np.stack([first, second], axis=1).ravel()
    partner = np.arange(2 * m) ^ 1
    return x, y, partner


def test_out_of_fold_with_conflicting_duplicates() -> None:
    x, y, partner = paired_data()
    p = crossval_probs(x, y, n_folds=5, seed=3, standardize=False, estimator_factory=Memorizer)
    rows = np.arange(y.size)
    # Never trained on itself: own-label mass is 0 (partner seen, other label) or uniform 1/4.
    assert np.all(p[rows, y] <= 0.25 + 1e-12)
    # The construction is sensitive: where the partner was in the training folds, the
    # memorizer returns exactly the partner's label.
    folds = fold_ids(y, n_folds=5, seed=3)
    split = folds != folds[partner]
    assert split.sum() > 0.5 * y.size
    np.testing.assert_array_equal(p[rows[split], y[partner][split]], 1.0)
    # ... and leakage would have been caught: in-sample predictions give own label >= 1/2.
    leaked = Memorizer().fit(x, y).predict_proba(x)
    assert np.all(leaked[rows, y] >= 0.5)


def test_fold_ids_is_stratified_partition() -> None:
    y = np.repeat(np.arange(3), [20, 30, 50])
    f = fold_ids(y, n_folds=5, seed=1)
    assert f.shape == (100,) and set(f.tolist()) == set(range(5))
    for c in range(3):
        assert np.bincount(f[y == c], minlength=5).tolist() == [np.sum(y == c) // 5] * 5


def test_all_columns_present_when_a_fold_lacks_a_class() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.repeat([0, 1], 30), [2]]  # class 2 has a single sample
    x = rng.normal(size=(y.size, 4)) + 2.0 * y[:, None]
    with pytest.warns(UserWarning, match="least populated class"):  # scikit-learn's warning
        p = crossval_probs(x, y, n_folds=3, seed=0)
    assert p.shape == (61, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # the lone class-2 sample is held out once; its model never saw class 2
    assert p[60, 2] == 0.0
    # every other fold did see it, so those rows give it some mass
    with pytest.warns(UserWarning, match="least populated class"):
        folds = fold_ids(y, n_folds=3, seed=0)
    other = folds != folds[60]
    assert np.all(p[other, 2] > 0.0)
    assert np.all(p[(folds == folds[60]), 2] == 0.0)


def test_num_classes_adds_empty_columns() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 20)
    x = rng.normal(size=(40, 2)) + y[:, None]
    p = crossval_probs(x, y, n_folds=4, num_classes=3)
    assert p.shape == (40, 3)
    np.testing.assert_array_equal(p[:, 2], 0.0)


def test_deterministic_by_seed() -> None:
    x, y, _ = paired_data(seed=5)
    a = crossval_probs(x, y, seed=7, estimator_factory=Memorizer, standardize=False)
    b = crossval_probs(x, y, seed=7, estimator_factory=Memorizer, standardize=False)
    c = crossval_probs(x, y, seed=8, estimator_factory=Memorizer, standardize=False)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    rng = np.random.default_rng(0)
    xr = rng.normal(size=(150, 5))
    yr = rng.integers(0, 3, size=150)
    np.testing.assert_array_equal(crossval_probs(xr, yr, seed=1), crossval_probs(xr, yr, seed=1))


def test_matches_cleanlab_cv_recipe() -> None:
    cl_count = pytest.importorskip("cleanlab.count")
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, size=120)
    x = rng.normal(size=(120, 6)) + y[:, None] * 0.8
    ours = crossval_probs(x, y, n_folds=4, seed=11, C=0.5, standardize=False, max_iter=500)
    theirs = cl_count.estimate_cv_predicted_probabilities(
        x, y, clf=LogisticRegression(C=0.5, max_iter=500, random_state=11), cv_n_folds=4, seed=11
    )
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_standardize_makes_feature_scale_irrelevant() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, size=150)
    x = rng.normal(size=(150, 4)) + y[:, None]
    scaled = x * np.array([1e3, 1e-2, 5.0, 1.0]) + 7.0
    np.testing.assert_allclose(crossval_probs(x, y), crossval_probs(scaled, y), atol=1e-6)
    p = crossval_probs(x, y)
    assert (p.argmax(axis=1) == y).mean() > 0.6


@pytest.mark.parametrize(
    ("x", "y", "kw", "match"),
    [
        (np.ones(10), np.zeros(10, int), {}, r"2-D"),
        (
            np.c_[np.arange(10.0), [np.nan] + [0.0] * 9],
            np.arange(10) % 2,
            {},
            r"NaN/inf in sample ids \[0\]",
        ),
        (np.ones((10, 2)), np.arange(9) % 2, {}, r"labels must have shape \(10,\)"),
        (np.ones((10, 2)), np.arange(10) % 2 * 1.0, {}, "labels must be integers"),
        (np.ones((10, 2)), np.r_[np.arange(9) % 2, -1], {}, r"sample ids \[9\]"),
        (
            np.ones((10, 2)),
            np.arange(10) % 2,
            {"num_classes": 1},
            r"num_classes must be an int >= 2",
        ),
        (np.ones((10, 2)), np.arange(10) % 3, {"num_classes": 2}, r"labels must lie in \[0, 2\)"),
        (np.ones((10, 2)), np.zeros(10, int), {"num_classes": 2}, "at least 2 distinct classes"),
        (np.ones((10, 2)), np.arange(10) % 2, {"n_folds": 1}, "n_folds must be an int >= 2"),
        (np.ones((4, 2)), np.arange(4) % 2, {"n_folds": 5}, r"cannot exceed the number of samples"),
        (np.ones((10, 2)), np.arange(10) % 2, {"C": 0.0}, "C must be > 0"),
    ],
)
def test_validation_errors(x: np.ndarray, y: np.ndarray, kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        crossval_probs(x, y, **kw)
