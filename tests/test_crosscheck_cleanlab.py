"""labeltrace.score.probs / score.confident against cleanlab 2.9.0 (an independent implementation), value for value.

No known case differs: every comparison below is exact (``array_equal``), including float32
inputs, exact ties (duplicated rows, quantised probabilities), one-hot rows, rare classes and
non-default ``frac_noise`` / ``min_examples_per_class``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeltrace.score import probs as P

cl_count = pytest.importorskip("cleanlab.count")
cl_filter = pytest.importorskip("cleanlab.filter")
cl_rank = pytest.importorskip("cleanlab.rank")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def make_case(kind: str, n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A (probs, labels) pair of a given flavour; every class present."""
    rng = np.random.default_rng(seed)
    if kind == "imbalanced":
        prior = rng.dirichlet(np.full(k, 0.4))
        y = rng.choice(k, size=n, p=prior)
    else:
        y = rng.integers(0, k, size=n)
    y[:k] = np.arange(k)
    true = y.copy()
    flip = rng.random(n) < 0.25
    true[flip] = rng.integers(0, k, size=int(flip.sum()))
    logits = rng.normal(size=(n, k)) * rng.uniform(0.5, 3.0)
    logits[np.arange(n), true] += rng.uniform(0.5, 3.0)
    p = _softmax(logits)
    if kind == "near_ties":  # everything within ~1e-7 of uniform
        p = np.abs(np.full((n, k), 1.0 / k) + rng.normal(0, 1e-7, size=(n, k)))
        p /= p.sum(axis=1, keepdims=True)
    elif kind == "duplicates":  # a handful of distinct rows: exact ties everywhere
        p = p[rng.integers(0, 6, size=n)]
    elif kind == "quantised":  # few distinct values per entry
        p = np.round(p, 1) + 1e-9
        p /= p.sum(axis=1, keepdims=True)
    elif kind == "onehot":
        p = np.eye(k)[true]
    elif kind == "sparse":
        p = rng.dirichlet(np.full(k, 0.1), size=n)
        p /= p.sum(axis=1, keepdims=True)
    return p, y


KINDS = ("plain", "imbalanced", "near_ties", "duplicates", "quantised", "onehot", "sparse")
CASES = [
    (kind, n, k, seed)
    for seed, (kind, n, k) in enumerate(
        [
            (kind, n, k)
            for kind in KINDS
            for n, k in ((30, 2), (30, 5), (200, 3), (500, 11), (2000, 7))
        ]
    )
]


def _cl_issues(p: np.ndarray, y: np.ndarray, **kw: object) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cl_filter.find_label_issues(y, p, n_jobs=1, **kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("kind", "n", "k", "seed"), CASES)
def test_find_label_issues_matches_cleanlab(
    kind: str, n: int, k: int, seed: int, dtype: type
) -> None:
    p, y = make_case(kind, n, k, seed)
    p = p.astype(dtype)
    for filter_by in P.FILTER_BY:
        ours = P.find_label_issues(p, y, filter_by=filter_by)
        theirs = _cl_issues(p, y, filter_by=filter_by)
        assert np.array_equal(ours, theirs), (filter_by, int(ours.sum()), int(theirs.sum()))


@pytest.mark.parametrize(("kind", "n", "k", "seed"), CASES[::3])
@pytest.mark.parametrize(
    "kw",
    [
        {"frac_noise": 0.5},
        {"min_examples_per_class": 0},
        {"min_examples_per_class": 5},
        {"frac_noise": 0.3, "min_examples_per_class": 3},
    ],
)
def test_find_label_issues_options_match_cleanlab(
    kind: str, n: int, k: int, seed: int, kw: dict[str, float]
) -> None:
    p, y = make_case(kind, n, k, seed)
    for filter_by in ("prune_by_noise_rate", "prune_by_class", "both"):
        ours = P.find_label_issues(p, y, filter_by=filter_by, **kw)
        theirs = _cl_issues(p, y, filter_by=filter_by, **kw)
        assert np.array_equal(ours, theirs), (filter_by, kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("kind", "n", "k", "seed"), CASES)
def test_joint_thresholds_and_scores_match_cleanlab(
    kind: str, n: int, k: int, seed: int, dtype: type
) -> None:
    p, y = make_case(kind, n, k, seed)
    p = p.astype(dtype)
    assert np.array_equal(P.confident_thresholds(p, y), cl_count.get_confident_thresholds(y, p))
    assert np.array_equal(P.confident_joint(p, y), cl_count.compute_confident_joint(y, p))
    assert np.array_equal(
        P.confident_joint(p, y, calibrate=False),
        cl_count.compute_confident_joint(y, p, calibrate=False),
    )
    for method in ("self_confidence", "normalized_margin"):
        theirs = cl_rank.get_label_quality_scores(y, p, method=method)
        ours = P.from_probs(method, p, y)
        assert ours.dtype == np.float64
        assert np.array_equal(ours, theirs.astype(np.float64)), method
    joint = cl_count.estimate_joint(y, p)
    assert P.estimate_noise_rate(p, y) == pytest.approx(1.0 - np.trace(joint), abs=1e-12)


@st.composite
def prob_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    k = draw(st.integers(2, 6))
    n = draw(st.integers(k, 60))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    y[:k] = np.arange(k)
    # coarse integer weights -> many exact ties, zeros and duplicate rows
    w = rng.integers(0, draw(st.integers(1, 4)) + 1, size=(n, k)).astype(float)
    w[w.sum(axis=1) == 0, 0] = 1.0
    return w / w.sum(axis=1, keepdims=True), y


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prob_cases())
def test_find_label_issues_matches_cleanlab_property(case: tuple[np.ndarray, np.ndarray]) -> None:
    p, y = case
    assert np.array_equal(P.confident_joint(p, y), cl_count.compute_confident_joint(y, p))
    assert P.num_label_issues(p, y) == int(cl_count.num_label_issues(y, p))
    for filter_by in P.FILTER_BY:
        assert np.array_equal(
            P.find_label_issues(p, y, filter_by=filter_by), _cl_issues(p, y, filter_by=filter_by)
        )


@pytest.mark.parametrize(("kind", "n", "k", "seed"), CASES[::4])
def test_confident_learning_score_cutoff_reproduces_cleanlab(
    kind: str, n: int, k: int, seed: int
) -> None:
    p, y = make_case(kind, n, k, seed)
    scores = P.from_probs("confident_learning", p, y)
    theirs = _cl_issues(p, y, filter_by="prune_by_noise_rate")
    assert np.array_equal(scores < P.CL_CUTOFF, theirs)
    assert np.array_equal(P.confident_learning_flags(scores), theirs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("kind", "n", "k", "seed"), CASES)
def test_num_label_issues_matches_cleanlab(kind: str, n: int, k: int, seed: int, dtype: type) -> None:
    p, y = make_case(kind, n, k, seed)
    p = p.astype(dtype)
    assert P.num_label_issues(p, y) == int(cl_count.num_label_issues(y, p))
