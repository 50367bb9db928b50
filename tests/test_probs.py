"""labeltrace.score.probs / score.confident: hand-computed confident learning on a tiny example, properties, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeltrace.score import probs as P

# Six samples, three classes. Hand computation (comments) of every step.
#   thresholds t = mean self-confidence per class:
#     t0 = (0.7 + 0.3) / 2 = 0.5, t1 = (0.8 + 0.1) / 2 = 0.45, t2 = (0.4 + 0.25) / 2 = 0.325
#   confident classes (p >= t - 1e-6) and guess (argmax of p when several):
#     s0 {0} -> 0 | s1 {1} -> 1 | s2 {1} -> 1 | s3 {0, 2} -> argmax 0 | s4 {1, 2} -> argmax 1
#     s5 {0} -> 0 (0.5 >= t0 - 1e-6)
#   raw joint C[given, guess]: s0 (0,0) s1 (0,1) s2 (1,1) s3 (1,0) s4 (2,1) s5 (2,0)
#     -> [[1,1,0],[1,1,0],[1,1,0]]; diagonal raised to >= 1 -> C[2,2] = 1
#   calibration: rows scaled to the class counts (2, 2, 2): row 2 = [2/3, 2/3, 2/3], total 6;
#     rounding keeps the row total 2: [1, 1, 1] minus one, at the first of the tied entries.
PROBS = np.array(
    [
        [0.70, 0.20, 0.10],
        [0.30, 0.60, 0.10],
        [0.10, 0.80, 0.10],
        [0.55, 0.10, 0.35],
        [0.10, 0.50, 0.40],
        [0.50, 0.25, 0.25],
    ]
)
LABELS = np.array([0, 0, 1, 1, 2, 2])


def test_hand_computed_thresholds_and_joint() -> None:
    np.testing.assert_allclose(P.confident_thresholds(PROBS, LABELS), [0.5, 0.45, 0.325])
    raw = P.confident_joint(PROBS, LABELS, calibrate=False)
    assert raw.tolist() == [[1, 1, 0], [1, 1, 0], [1, 1, 1]]
    cal = P.confident_joint(PROBS, LABELS)
    assert cal.tolist() == [[1, 1, 0], [1, 1, 0], [0, 1, 1]]
    assert cal.sum(axis=1).tolist() == [2, 2, 2]
    assert P.estimate_noise_rate(PROBS, LABELS) == pytest.approx(3 / 6)


def test_hand_computed_label_issues() -> None:
    # prune counts = calibrated joint transposed; one to prune per off-diagonal 1:
    #   given 0, true 1: largest p1 - p0 among {s0: -0.5, s1: 0.3} -> s1
    #   given 1, true 0: largest p0 - p1 among {s2: -0.7, s3: 0.45} -> s3
    #   given 2, true 1: largest p1 - p2 among {s4: 0.1, s5: 0.0} -> s4
    flagged = P.find_label_issues(PROBS, LABELS, filter_by="prune_by_noise_rate")
    assert np.flatnonzero(flagged).tolist() == [1, 3, 4]
    # by class: n_c - C[c, c] = 1 per class, smallest p_c: s1 (0.3), s3 (0.1), s5 (0.25)
    assert np.flatnonzero(
        P.find_label_issues(PROBS, LABELS, filter_by="prune_by_class")
    ).tolist() == [1, 3, 5]
    assert np.flatnonzero(P.find_label_issues(PROBS, LABELS, filter_by="both")).tolist() == [1, 3]
    # off-diagonal confident samples: s1, s3, s4, s5
    assert np.flatnonzero(
        P.find_label_issues(PROBS, LABELS, filter_by="confident_learning")
    ).tolist() == [1, 3, 4, 5]


def test_hand_computed_scores() -> None:
    np.testing.assert_allclose(P.self_confidence(PROBS, LABELS), [0.7, 0.3, 0.8, 0.1, 0.4, 0.25])
    raw_margin = np.array([0.5, -0.3, 0.7, -0.45, -0.1, -0.25])
    np.testing.assert_allclose(P.normalized_margin(PROBS, LABELS), (raw_margin + 1) / 2)
    scores = P.confident_learning(PROBS, LABELS)
    np.testing.assert_allclose(scores, (raw_margin + 1) / 2 - 2 * np.isin(np.arange(6), [1, 3, 4]))
    assert np.flatnonzero(scores < P.CL_CUTOFF).tolist() == [1, 3, 4]


def test_given_label_argmax_never_flagged() -> None:
    # Sample 2 is labeled 1 with p = [0.5, 0.5]: the 1e-6 bump makes its label the argmax.
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.5, 0.5], [0.1, 0.9], [0.2, 0.8], [0.95, 0.05]])
    y = np.array([0, 0, 1, 1, 1, 1])
    for filter_by in P.FILTER_BY:
        mask = P.find_label_issues(p, y, filter_by=filter_by)
        assert not mask[2]
        assert mask[5]  # labeled 1, confidently 0


@st.composite
def prob_matrices(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    k = draw(st.integers(2, 5))
    n = draw(st.integers(k, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    p = rng.dirichlet(np.full(k, draw(st.sampled_from([0.2, 1.0, 5.0]))), size=n)
    y = rng.integers(0, k, size=n)
    y[:k] = np.arange(k)
    return p, y


@settings(max_examples=60, deadline=None)
@given(prob_matrices())
def test_score_properties(case: tuple[np.ndarray, np.ndarray]) -> None:
    p, y = case
    sc = P.self_confidence(p, y)
    nm = P.normalized_margin(p, y)
    assert sc.shape == nm.shape == (y.size,)
    assert np.all((nm >= 0) & (nm <= 1))
    # nm >= 0.5 exactly when the given label is (one of) the argmax
    assert np.array_equal(nm >= 0.5, p[np.arange(y.size), y] >= p.max(axis=1))
    # permuting samples permutes the simple scores
    perm = np.random.default_rng(0).permutation(y.size)
    np.testing.assert_array_equal(P.self_confidence(p[perm], y[perm]), sc[perm])
    np.testing.assert_array_equal(P.normalized_margin(p[perm], y[perm]), nm[perm])
    # the CL score: flagged all below the cutoff and below every unflagged sample
    flagged = P.find_label_issues(p, y)
    cl = P.confident_learning(p, y)
    assert np.array_equal(P.confident_learning_flags(cl), flagged)
    if flagged.any() and (~flagged).any():
        assert cl[flagged].max() < P.CL_CUTOFF <= cl[~flagged].min()
    # "both" is the intersection of the two pruning methods
    both = P.find_label_issues(p, y, filter_by="both")
    assert np.array_equal(
        both,
        P.find_label_issues(p, y, filter_by="prune_by_class")
        & P.find_label_issues(p, y, filter_by="prune_by_noise_rate"),
    )
    # calibrated joint: rows sum to the class counts
    assert np.array_equal(P.confident_joint(p, y).sum(axis=1), np.bincount(y, minlength=p.shape[1]))
    assert 0.0 <= P.estimate_noise_rate(p, y) <= 1.0


def test_registry() -> None:
    assert P.available_from_probs() == [
        "confident_learning",
        "normalized_margin",
        "self_confidence",
    ]
    for name in P.available_from_probs():
        out = P.from_probs(name, PROBS, LABELS)
        assert out.shape == (6,) and out.dtype == np.float64
    with pytest.raises(ValueError, match="unknown probability score 'nope'"):
        P.from_probs("nope", PROBS, LABELS)


def test_float32_kept_and_inputs_not_modified() -> None:
    p32 = PROBS.astype(np.float32)
    before = p32.copy()
    q, y = P.validate_probs(p32, LABELS)
    assert q.dtype == np.float32 and y.dtype == np.int64
    P.find_label_issues(p32, LABELS)
    P.confident_learning(p32, LABELS)
    np.testing.assert_array_equal(p32, before)
    assert P.confident_thresholds(p32, LABELS).dtype == np.float32


@pytest.mark.parametrize(
    ("probs", "labels", "match"),
    [
        (np.ones(4) / 4, [0, 1, 0, 1], r"2-D"),
        (np.ones((3, 1)), [0, 0, 0], r"at least 2 columns"),
        (np.zeros((0, 2)), np.zeros(0, dtype=int), r"no rows"),
        (
            [[0.5, 0.5], [np.nan, 1.0], [0.5, 0.5], [np.inf, 0]],
            [0, 1, 0, 1],
            r"NaN/inf in sample ids \[1, 3\]",
        ),
        ([[0.5, 0.5], [1.2, -0.2], [0.5, 0.5]], [0, 1, 0], r"negative entries in sample ids \[1\]"),
        (
            [[0.5, 0.5], [0.5, 0.6], [0.5, 0.5], [0.1, 0.1]],
            [0, 1, 0, 1],
            r"sample ids \[1, 3\] do not",
        ),
        ([[0.5, 0.5]] * 3, [0, 1], r"labels has 2 entries but probs has 3 rows"),
        ([[0.5, 0.5]] * 3, [[0], [1], [0]], r"labels must be 1-D"),
        ([[0.5, 0.5]] * 3, [0.0, 1.0, 0.0], r"labels must be integers"),
        ([[0.5, 0.5]] * 4, [0, 2, 1, -1], r"sample ids \[1, 3\] have labels \[2, -1\]"),
        ([[1 / 3] * 3] * 4, [0, 2, 0, 2], r"class\(es\) \[1\] of 3 never"),
    ],
)
def test_validation_errors(probs: object, labels: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        P.validate_probs(probs, labels)
    with pytest.raises(ValueError, match=match):
        P.find_label_issues(probs, labels)


def test_row_sum_tolerance() -> None:
    p = PROBS.copy()
    p[0] *= 1 + 5e-4  # within 1e-3: accepted
    P.validate_probs(p, LABELS)
    p[0] = PROBS[0] * (1 + 2e-3)
    with pytest.raises(ValueError, match=r"sample ids \[0\]"):
        P.validate_probs(p, LABELS)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"filter_by": "predicted_neq_given"}, "filter_by must be one of"),
        ({"frac_noise": 0.0}, r"frac_noise must be in \(0, 1\]"),
        ({"frac_noise": 1.5}, r"frac_noise must be in \(0, 1\]"),
        ({"filter_by": "confident_learning", "frac_noise": 0.5}, "prune_\\* and 'both'"),
        ({"min_examples_per_class": -1}, "must be >= 0"),
        ({"min_examples_per_class": 1.5}, "must be an int"),
    ],
)
def test_option_errors(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        P.find_label_issues(PROBS, LABELS, **kw)
