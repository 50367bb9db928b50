"""Tests for labeltrace.threshold: auxiliary samples, cutoff rules, run combination, flagging."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.mixture import GaussianMixture

from labeltrace.decide import cutoffs as th

# --------------------------------------------------------------------------- assign_auxiliary


def test_default_count_and_balanced_stratification() -> None:
    y = np.repeat(np.arange(4), 25)  # N=100, K=4 -> 100 // 5 = 20 auxiliary samples
    aux = th.assign_auxiliary(y, 4, seed=0)
    assert aux.dtype == bool and aux.sum() == 20
    np.testing.assert_array_equal(np.bincount(y[aux], minlength=4), [5, 5, 5, 5])


def test_imbalanced_stratification_largest_remainder() -> None:
    # sizes 60/30/10, K=3 -> M = 25, ideal 15 / 7.5 / 2.5 -> floors 15/7/2, the spare unit
    # goes to the tied shortfall with the lower class id (class 1).
    y = np.repeat(np.arange(3), [60, 30, 10])
    aux = th.assign_auxiliary(y, 3, seed=1)
    np.testing.assert_array_equal(np.bincount(y[aux], minlength=3), [15, 8, 2])


def test_fraction_and_every_class_keeps_a_sample() -> None:
    y = np.array([0] + [1] * 9)  # class 0 has one sample: it can never be auxiliary
    aux = th.assign_auxiliary(y, 2, fraction=0.5, seed=0)
    assert aux.sum() == 5
    assert not aux[0]
    with pytest.raises(ValueError, match="not enough samples"):
        th.assign_auxiliary(y, 2, fraction=0.95, seed=0)  # needs 10 but only 8 can go


def test_second_and_third_runs_are_disjoint_then_exhausted() -> None:
    y = np.repeat(np.arange(2), 15)  # N=30, K=2 -> 10 per run
    a = th.assign_auxiliary(y, 2, seed=0)
    b = th.assign_auxiliary(y, 2, seed=0, exclude=a)
    assert a.sum() == b.sum() == 10
    assert not (a & b).any()
    np.testing.assert_array_equal(np.bincount(y[b], minlength=2), [5, 5])
    c = th.assign_auxiliary(y, 2, seed=0, exclude=a | b)
    assert not (c & (a | b)).any() and c.sum() == 10
    with pytest.raises(ValueError, match=r"only 0 can be picked \(30 excluded"):
        th.assign_auxiliary(y, 2, seed=0, exclude=a | b | c)


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(2, 6),
    n=st.integers(20, 200),
    data_seed=st.integers(0, 10_000),
    seed=st.integers(0, 10_000),
)
def test_assign_auxiliary_properties(k: int, n: int, data_seed: int, seed: int) -> None:
    y = np.random.default_rng(data_seed).integers(0, k, size=n)
    counts = np.bincount(y, minlength=k)
    a = th.assign_auxiliary(y, k, seed=seed)
    assert a.sum() == n // (k + 1)
    per_class = np.bincount(y[a], minlength=k)
    assert (per_class <= np.maximum(counts - 1, 0)).all()  # every present class keeps samples
    # stratified: each class within one of its proportional share when nothing is capped
    if (counts >= 2).all():
        assert (np.abs(per_class - a.sum() * counts / n) < 1 + 1e-9).all()
    np.testing.assert_array_equal(a, th.assign_auxiliary(y, k, seed=seed))  # deterministic
    b = th.assign_auxiliary(y, k, seed=seed + 1, exclude=a)
    assert not (a & b).any() and b.sum() == a.sum()


def test_assign_auxiliary_different_seeds_differ() -> None:
    y = np.repeat(np.arange(5), 40)
    assert not np.array_equal(
        th.assign_auxiliary(y, 5, seed=0), th.assign_auxiliary(y, 5, seed=1)
    )


def test_assign_auxiliary_validation() -> None:
    y = np.array([0, 1, 1, 0, 1, 0])
    with pytest.raises(ValueError, match=r"sample ids \[2\]"):
        th.assign_auxiliary(np.array([0, 1, 2]), 2, seed=0)
    with pytest.raises(ValueError, match="exclude must be a boolean"):
        th.assign_auxiliary(y, 2, seed=0, exclude=np.zeros(6, dtype=int))
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        th.assign_auxiliary(y, 2, seed=0, exclude=np.zeros(5, dtype=bool))
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        th.assign_auxiliary(y, 2, seed=0, fraction=1.0)


def test_auxiliary_labels() -> None:
    y = np.array([0, 1, 2, 1])
    aux = np.array([False, True, False, True])
    out = th.auxiliary_labels(y, aux, 3)
    np.testing.assert_array_equal(out, [0, 3, 2, 3])
    np.testing.assert_array_equal(y, [0, 1, 2, 1])  # original untouched
    with pytest.raises(ValueError, match="is_aux"):
        th.auxiliary_labels(y, aux[:3], 3)


# --------------------------------------------------------------------------- cutoffs


def test_auxiliary_cutoff_mean() -> None:
    s = np.array([5.0, -1.0, 3.0, -3.0, np.nan])  # NaN outside the auxiliary set is fine
    aux = np.array([False, True, False, True, False])
    assert th.auxiliary_cutoff(s, aux) == -2.0


def test_auxiliary_cutoff_percentile_matches_aum_reference_rule() -> None:
    # AUM reference code: flag a sample when more than 1% of threshold samples score strictly
    # higher. With 101 auxiliary scores 0..100 the 99th percentile is exactly 99.0 and the two
    # rules coincide on every sample, ties included.
    aux_scores = np.arange(101, dtype=float)
    others = np.random.default_rng(0).integers(-5, 106, size=500).astype(float)
    others[:5] = [98.0, 98.5, 99.0, 99.5, 100.0]
    s = np.concatenate([aux_scores, others])
    is_aux = np.zeros(s.size, dtype=bool)
    is_aux[:101] = True
    cutoff = th.auxiliary_cutoff(s, is_aux, rule="percentile")
    assert cutoff == 99.0
    reference = (aux_scores[None, :] > s[:, None]).mean(axis=1) > 0.01
    np.testing.assert_array_equal(th.flag(s, cutoff), reference)
    assert th.auxiliary_cutoff(s, is_aux, rule="percentile", q=50) == 50.0


@pytest.mark.parametrize("seed", range(3))
def test_the_percentile_cut_is_the_aum_reference_rule_at_every_size(seed: int) -> None:
    """At 101 auxiliary scores the interpolated 99th percentile happened to be the reference's cut;
    at M = 90 with one memorised threshold sample it sat 4.45 below it and flagged none of the
    samples the reference flags between the two (the order statistic is ``M - floor(M / 100)``)."""
    rng = np.random.default_rng(seed)
    for m in range(1, 602, 3):
        aux = rng.integers(-8, 8, m).astype(float)  # ties everywhere
        aux[rng.random(m) < 0.03] = 20.0  # a few memorised threshold samples
        s = np.concatenate([aux, np.arange(-9.0, 21.0, 0.5)])
        is_aux = np.arange(s.size) < m
        reference = (aux[None, :] > s[:, None]).mean(axis=1) > 0.01
        np.testing.assert_array_equal(th.flag(s, th.auxiliary_cutoff(s, is_aux, rule="percentile")), reference,
                                      err_msg=f"M = {m}")  # fmt: skip
    aux = np.r_[np.full(89, -3.0), 2.0]
    assert th.auxiliary_cutoff(aux, np.ones(90, bool), rule="percentile") == 2.0
    assert th.auxiliary_cutoff(aux, np.ones(90, bool), rule="percentile", method="linear") == pytest.approx(-2.45)


def test_auxiliary_cutoff_validation() -> None:
    s = np.array([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match=r"1 NaN values at sample ids \[1\]"):
        th.auxiliary_cutoff(s, np.array([True, True, False]))
    with pytest.raises(ValueError, match="no samples"):
        th.auxiliary_cutoff(s, np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="rule"):
        th.auxiliary_cutoff(
            s, np.array([True, False, False]), rule="median"  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match=r"q must be in \[0, 100\]"):
        th.auxiliary_cutoff(s, np.array([True, False, False]), rule="percentile", q=120)
    # an audit's findings: +inf auxiliary scores made the cut inf (every finite sample flagged); True
    # read as the number 1, a string as its number
    with pytest.raises(ValueError, match=r"auxiliary scores must be finite; 1 are infinite at sample ids \[2\]"):
        th.auxiliary_cutoff(np.array([-1.0, 0.0, np.inf]), np.array([True, False, True]))
    with pytest.raises(ValueError, match=r"q must be a float, got True"):
        th.auxiliary_cutoff(np.array([1.0, 2.0]), np.array([True, True]), rule="percentile", q=True)
    with pytest.raises(ValueError, match=r"rate must be a float, got True"):
        th.top_fraction(np.array([1.0, 2.0]), True)
    with pytest.raises(ValueError, match=r"cutoff must be a float, got '1'"):
        th.flag(np.array([1.0, 2.0]), "1")  # type: ignore[arg-type]
    assert th.flag(np.array([1.0, 2.0]), np.float32(1.5)).tolist() == [True, False]


def test_combine_two_runs_hand_checked() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([10.0, 20.0, 30.0, 40.0])
    aux_a = np.array([True, False, False, False])
    aux_b = np.array([False, True, False, False])
    out = th.combine_two_runs(a, b, aux_a, aux_b)
    np.testing.assert_allclose(out, [10.0, 2.0, 16.5, 22.0])
    with pytest.raises(ValueError, match=r"auxiliary in both runs .*sample ids \[0\]"):
        th.combine_two_runs(a, b, aux_a, aux_a)
    nan_a = a.copy()
    nan_a[2] = np.nan
    assert np.isnan(th.combine_two_runs(nan_a, b, aux_a, aux_b)[2])  # NaN propagates


def test_combine_cutoffs_and_pooled() -> None:
    assert th.combine_cutoffs(-1.0, 3.0) == 1.0
    with pytest.raises(ValueError, match="finite"):
        th.combine_cutoffs(np.nan, 1.0)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    aux_a = th.assign_auxiliary(y, 3, seed=0)
    aux_b = th.assign_auxiliary(y, 3, seed=1, exclude=aux_a)
    sa, sb = rng.normal(size=60), rng.normal(size=60)
    pooled = th.pooled_auxiliary_cutoff(sa, sb, aux_a, aux_b)
    assert pooled == pytest.approx(
        th.combine_cutoffs(th.auxiliary_cutoff(sa, aux_a), th.auxiliary_cutoff(sb, aux_b))
    )
    p99 = th.pooled_auxiliary_cutoff(sa, sb, aux_a, aux_b, rule="percentile")
    pooled_aux = np.sort(np.r_[sa[aux_a], sb[aux_b]])
    assert p99 == pooled_aux[pooled_aux.size - pooled_aux.size // 100 - 1]  # the order statistic M - floor(M/100)


def _bimodal(seed: int, n_lo: int = 150, n_hi: int = 450) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-3.0, 0.6, n_lo), rng.normal(2.0, 1.0, n_hi)])


def test_gmm_cutoff_between_modes_and_posterior_half() -> None:
    s = _bimodal(0)
    c = th.gmm_cutoff(s, seed=0)
    assert -3.0 < c < 2.0
    # independent check: refit the documented model and read its posterior at the cutoff
    mu, sd = s.mean(), s.std()
    gmm = GaussianMixture(n_components=2, random_state=0).fit(((s - mu) / sd).reshape(-1, 1))
    lo = int(np.argmin(gmm.means_.ravel()))
    post = gmm.predict_proba(np.array([[(c - mu) / sd]]))[0, lo]
    assert post == pytest.approx(0.5, abs=1e-8)
    # and it separates the clusters almost perfectly
    truth = np.r_[np.ones(150, bool), np.zeros(450, bool)]
    assert (th.flag(s, c) == truth).mean() > 0.99


def test_gmm_cutoff_symmetric_mixture_near_midpoint() -> None:
    rng = np.random.default_rng(1)
    s = np.concatenate([rng.normal(-4, 1, 2000), rng.normal(4, 1, 2000)])
    assert th.gmm_cutoff(s) == pytest.approx(0.0, abs=0.15)


def test_gmm_cutoff_scale_invariant() -> None:
    s = _bimodal(2)
    c = th.gmm_cutoff(s)
    assert th.gmm_cutoff(s * 1e-4 + 7.0) == pytest.approx(c * 1e-4 + 7.0, rel=1e-6)


def test_gmm_cutoff_validation() -> None:
    with pytest.raises(ValueError, match="distinct"):
        th.gmm_cutoff(np.ones(10))
    with pytest.raises(ValueError, match=r"NaN values at sample ids \[3\]"):
        th.gmm_cutoff(np.array([0.0, 1.0, 2.0, np.nan]))
    with pytest.raises(ValueError, match="finite"):
        th.gmm_cutoff(np.array([0.0, 1.0, np.inf]))


def test_top_fraction_hand_checked() -> None:
    s = np.array([5.0, 1.0, 3.0, 2.0, 4.0])
    c = th.top_fraction(s, 0.4)  # k = 2 -> flags the scores 1 and 2
    np.testing.assert_array_equal(th.flag(s, c), [False, True, False, True, False])
    assert not th.flag(s, th.top_fraction(s, 0.0)).any()
    assert th.flag(s, th.top_fraction(s, 1.0)).all()
    assert th.flag(s, th.top_fraction(s, 0.5)).sum() == 3  # 2.5 rounds half up
    ties = np.array([0.0, 1.0, 1.0, 2.0])  # k = 2 sits in a tie: 1 or 3 flagged, a draw -> the fewer
    assert th.flag(ties, th.top_fraction(ties, 0.5)).sum() == 1
    ties = np.array([0.0, 1.0, 1.0, 2.0, 3.0, 4.0])  # k = 3 (rate 0.5): 3 with the tie, 1 without
    assert th.flag(ties, th.top_fraction(ties, 0.5)).sum() == 3
    forgetting = np.r_[-1.0, np.zeros(99)]  # most samples never forget: 5 asked, the 99 ties are not all flagged
    assert th.flag(forgetting, th.top_fraction(forgetting, 0.05)).sum() == 1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        th.top_fraction(s, 1.5)


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60, unique=True),
    rate=st.floats(0, 1),
)
def test_top_fraction_flags_expected_count(scores: list[float], rate: float) -> None:
    s = np.array(scores)
    k = int(np.floor(rate * s.size + 0.5))
    flagged = th.flag(s, th.top_fraction(s, rate))
    assert flagged.sum() == k
    if 0 < k < s.size:
        assert s[flagged].max() < s[~flagged].min()


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=40),
    rate=st.floats(0, 1),
)
def test_top_fraction_with_ties_flags_the_tie_group_or_none_of_it_whichever_is_nearer(
    scores: list[float], rate: float
) -> None:
    s = np.array(scores)
    k = int(np.floor(rate * s.size + 0.5))
    n = int(th.flag(s, th.top_fraction(s, rate)).sum())
    if k == 0:
        assert n == 0
        return
    kth = np.sort(s)[k - 1]
    below, at_most = int((s < kth).sum()), int((s <= kth).sum())
    assert n in (below, at_most)
    assert abs(n - k) <= min(abs(below - k), abs(at_most - k))  # the nearer of the two
    if at_most - k == k - below and at_most > k:
        assert n == below  # a draw goes to the fewer


def test_flag_strict_and_nan() -> None:
    s = np.array([0.0, 1.0, 2.0])
    np.testing.assert_array_equal(th.flag(s, 1.0), [True, False, False])
    with pytest.raises(ValueError, match=r"1 NaN values at sample ids \[1\]"):
        th.flag(np.array([0.0, np.nan]), 1.0)
    with pytest.raises(ValueError, match="cutoff is NaN"):
        th.flag(s, float("nan"))


def test_estimate_noise_rate_delegates() -> None:
    from labeltrace.score import probs as probs_mod

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    probs = rng.dirichlet(np.ones(3), size=90)
    probs[np.arange(90), y] += 2.0
    probs /= probs.sum(axis=1, keepdims=True)
    assert th.estimate_noise_rate(probs, y) == probs_mod.estimate_noise_rate(probs, y)


def test_assign_auxiliary_pair_is_the_two_run_draw():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, 200)
    a, b = th.assign_auxiliary_pair(y, 4, seed=7)
    np.testing.assert_array_equal(a, th.assign_auxiliary(y, 4, seed=14))
    np.testing.assert_array_equal(b, th.assign_auxiliary(y, 4, seed=15, exclude=a))
    assert not (a & b).any() and a.sum() == b.sum() == 200 // 5


def test_neighbouring_seeds_draw_unrelated_auxiliary_sets():
    """Seed s's second set and seed s + 1's first are independent draws: about the overlap of two
    random sets of that size (a fifth here), not the three quarters of a shared draw."""
    y = np.random.default_rng(0).integers(0, 4, 1000)
    for s in range(4):
        second = th.assign_auxiliary_pair(y, 4, seed=s)[1]
        first_next = th.assign_auxiliary_pair(y, 4, seed=s + 1)[0]
        assert (second & first_next).sum() / second.sum() < 0.35


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_top_fraction_cutoff_flags_the_tie_group_in_the_scores_own_precision(dtype: type) -> None:
    """The next float above a tie group was float64's: `float32_scores < c` compares in float32
    (NumPy 2), rounded c back to the tie and flagged one sample instead of two."""
    s = np.array([0.1, 0.2, 0.3, 0.4], dtype=dtype)
    c = th.top_fraction(s, 0.5)
    assert int((s < c).sum()) == 2 and int((s.astype(np.float64) < c).sum()) == 2
