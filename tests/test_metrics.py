"""Tests for labeltrace.metrics against hand-computed values and brute-force definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeltrace.evaluate import metrics


def _auroc_brute(truth: np.ndarray, scores: np.ndarray) -> float:
    """P(noisy scores lower than clean) + 0.5 P(tie), over all noisy/clean pairs."""
    pos, neg = scores[truth], scores[~truth]
    lower = (pos[:, None] < neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((lower + 0.5 * ties) / (pos.size * neg.size))


def test_precision_recall_f1_hand_checked() -> None:
    truth = np.array([True, True, False, False, False])
    flags = np.array([True, False, True, False, False])
    rep = metrics.detection_report(truth, flags)
    assert rep["precision"] == 0.5
    assert rep["recall"] == 0.5
    assert rep["f1"] == 0.5
    assert rep["n_flagged"] == 2 and rep["n_noisy"] == 2 and rep["n"] == 5
    assert rep["noise_rate"] == pytest.approx(0.4)
    assert math.isnan(rep["auroc"]) and math.isnan(rep["average_precision"])
    assert rep["n_scored"] == 0


def test_f1_uneven() -> None:
    truth = np.array([1, 1, 1, 1, 0, 0], dtype=np.int64)
    flags = np.array([1, 0, 0, 0, 1, 1], dtype=np.int64)
    rep = metrics.detection_report(truth, flags)
    p, r = 1 / 3, 1 / 4
    assert rep["precision"] == pytest.approx(p)
    assert rep["recall"] == pytest.approx(r)
    assert rep["f1"] == pytest.approx(2 * p * r / (p + r))


def test_no_flags_and_no_noise_edge_cases() -> None:
    truth = np.array([True, False, False])
    rep = metrics.detection_report(truth, np.zeros(3, dtype=bool))
    assert rep["precision"] == 0.0 and rep["recall"] == 0.0 and rep["f1"] == 0.0
    clean = np.zeros(3, dtype=bool)
    one_flag = np.array([True, False, False])
    rep2 = metrics.detection_report(clean, one_flag, np.array([0.1, 0.2, 0.3]))
    assert rep2["precision"] == 0.0
    assert math.isnan(rep2["recall"]) and math.isnan(rep2["f1"])
    assert math.isnan(rep2["auroc"]) and math.isnan(rep2["average_precision"])
    all_noisy = np.ones(3, dtype=bool)
    rep3 = metrics.detection_report(all_noisy, all_noisy, np.array([0.1, 0.2, 0.3]))
    assert math.isnan(rep3["auroc"])
    assert rep3["average_precision"] == pytest.approx(1.0)


def test_auroc_direction_perfect_and_reversed() -> None:
    truth = np.array([True, True, False, False, False])
    low_for_noisy = np.array([-3.0, -2.0, 1.0, 2.0, 3.0])
    rep = metrics.detection_report(truth, truth, low_for_noisy)
    assert rep["auroc"] == 1.0
    assert rep["average_precision"] == 1.0
    rev = metrics.detection_report(truth, truth, -low_for_noisy)
    assert rev["auroc"] == 0.0


def test_average_precision_hand_checked() -> None:
    # ranked by ascending score: noisy, clean, noisy, clean -> AP = (1/1 + 2/3) / 2
    truth = np.array([True, False, True, False])
    scores = np.array([0.0, 1.0, 2.0, 3.0])
    rep = metrics.detection_report(truth, np.zeros(4, dtype=bool), scores)
    assert rep["average_precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert rep["auroc"] == pytest.approx(0.75)


@settings(max_examples=50, deadline=None)
@given(
    truth=st.lists(st.booleans(), min_size=2, max_size=40),
    scores=st.lists(st.integers(-3, 3), min_size=40, max_size=40),
)
def test_auroc_matches_pairwise_definition(truth: list[bool], scores: list[int]) -> None:
    t = np.array(truth)
    s = np.array(scores[: t.size], dtype=float)  # small integer range -> many ties
    rep = metrics.detection_report(t, t, s)
    if t.all() or not t.any():
        assert math.isnan(rep["auroc"])
    else:
        assert rep["auroc"] == pytest.approx(_auroc_brute(t, s))


def test_nan_scores_raise_or_omit() -> None:
    truth = np.array([True, False, True, False, False])
    scores = np.array([0.0, np.nan, 1.0, np.nan, 5.0])
    with pytest.raises(ValueError, match=r"2 NaN .*sample ids \[1, 3\]"):
        metrics.detection_report(truth, truth, scores)
    rep = metrics.detection_report(truth, truth, scores, nan_policy="omit")
    assert rep["n_scored"] == 3
    assert rep["auroc"] == 1.0  # scored: noisy 0, 1 < clean 5
    assert rep["n"] == 5 and rep["precision"] == 1.0
    with pytest.raises(ValueError, match="nan_policy"):
        metrics.detection_report(truth, truth, scores, nan_policy="drop")  # type: ignore[arg-type]


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="shape"):
        metrics.detection_report(np.zeros(3, bool), np.zeros(4, bool))
    with pytest.raises(ValueError, match=r"0/1; sample ids \[1\]"):
        metrics.detection_report(np.array([0, 2, 1]), np.zeros(3, bool))
    with pytest.raises(ValueError, match="boolean"):
        metrics.detection_report(np.array([0.0, 1.0]), np.zeros(2, bool))
    with pytest.raises(ValueError, match="expected 3"):
        metrics.detection_report(np.zeros(3, bool), np.zeros(3, bool), np.zeros(2))


def test_flag_top_k_ties_by_index() -> None:
    scores = np.array([1.0, 0.0, 0.0, 0.0, -1.0])
    np.testing.assert_array_equal(
        metrics.flag_top_k(scores, 3), [False, True, True, False, True]
    )
    assert not metrics.flag_top_k(scores, 0).any()
    assert metrics.flag_top_k(scores, 5).all()
    with pytest.raises(ValueError, match=r"k must be an int >= 0 and <= 5"):
        metrics.flag_top_k(scores, 6)
    with pytest.raises(ValueError, match="NaN"):
        metrics.flag_top_k(np.array([0.0, np.nan]), 1)
    omit = metrics.flag_top_k(np.array([np.nan, 2.0, 1.0]), 2, nan_policy="omit")
    np.testing.assert_array_equal(omit, [False, True, True])


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.integers(-5, 5), min_size=1, max_size=50),
    frac=st.floats(0, 1),
)
def test_flag_top_k_properties(scores: list[int], frac: float) -> None:
    s = np.array(scores, dtype=float)
    k = int(frac * s.size)
    m = metrics.flag_top_k(s, k)
    assert m.sum() == k
    if 0 < k < s.size:
        assert s[m].max() <= s[~m].min()
        # among samples tied at the boundary, lower ids are flagged first
        b = s[m].max()
        tied = np.flatnonzero(s == b)
        flagged_tied = tied[m[tied]]
        np.testing.assert_array_equal(flagged_tied, tied[: flagged_tied.size])


def test_report_at_true_rate() -> None:
    truth = np.array([True, False, True, False, False, False])
    scores = np.array([0.1, 0.0, 0.5, 0.9, 0.8, 0.7])  # flags ids 1 and 0
    rep = metrics.report_at_true_rate(truth, scores)
    assert rep["n_flagged"] == 2
    assert rep["precision"] == rep["recall"] == rep["f1"] == 0.5
    assert rep["auroc"] == pytest.approx(_auroc_brute(truth, scores))


@settings(max_examples=40, deadline=None)
@given(truth=st.lists(st.booleans(), min_size=1, max_size=40), seed=st.integers(0, 1000))
def test_report_at_true_rate_precision_equals_recall(truth: list[bool], seed: int) -> None:
    t = np.array(truth)
    s = np.random.default_rng(seed).normal(size=t.size)
    rep = metrics.report_at_true_rate(t, s)
    assert rep["n_flagged"] == t.sum()
    if t.any():
        assert rep["precision"] == pytest.approx(rep["recall"])


def test_infinite_scores_rank_first_or_last() -> None:
    """±inf is a valid score (it ranks first or last); AUROC and AP are those of the same order."""
    from sklearn.metrics import roc_auc_score

    t = np.array([1, 0, 0, 0, 1, 0], bool)
    s = np.array([-np.inf, 0.5, 0.7, 0.1, np.inf, 0.3])
    finite = np.array([-1e9, 0.5, 0.7, 0.1, 1e9, 0.3])  # the same order
    rep = metrics.detection_report(t, s < 0.2, s)
    assert rep["auroc"] == pytest.approx(roc_auc_score(t, -finite))
    assert metrics.report_at_true_rate(t, s)["f1"] == metrics.report_at_true_rate(t, finite)["f1"]


def test_t_interval_refuses_a_confidence_outside_0_1() -> None:
    with pytest.raises(ValueError, match="confidence must be in"):
        metrics.t_interval([0.1, 0.2, 0.3], confidence=95)


def test_a_tie_at_the_cut_counts_its_average_not_the_order_of_the_samples() -> None:
    """A constant score got F1@true 1.0 when the noisy samples had the lowest ids (a class-sorted
    folder; the scan's 'ranking F1' then crowned the forgetting count, most samples tied at -4)."""
    from labeltrace.evaluate.metrics import expected_hits, report_at_true_rate

    truth = np.r_[np.ones(20, bool), np.zeros(80, bool)]
    assert report_at_true_rate(truth, np.zeros(100))["f1"] == pytest.approx(0.2)  # 20 % of any 20
    assert report_at_true_rate(truth[::-1], np.zeros(100))["f1"] == pytest.approx(0.2)
    s = np.r_[np.zeros(10), np.ones(90)]  # 10 noisy below the cut, 10 more among the 90 tied
    assert expected_hits(truth, s, 20) == pytest.approx(10 + 10 * 10 / 90)
    rep = report_at_true_rate(truth, s)
    assert rep["precision"] == rep["recall"] == rep["f1"] == pytest.approx((10 + 10 / 9) / 20)
    assert rep["n_flagged"] == 20
    distinct = np.r_[np.arange(20.0), np.arange(20.0, 100.0)]  # no ties: the exact count, as before
    assert expected_hits(truth, distinct, 20) == 20 and report_at_true_rate(truth, distinct)["f1"] == 1.0
    with_nan = np.r_[np.nan, np.zeros(99)]
    assert expected_hits(truth, with_nan, 20, nan_policy="omit") == pytest.approx(20 * 19 / 99)
