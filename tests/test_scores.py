"""Trajectory scores: hand-computed values, signs, invariances, registry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeltrace import Recorder
from labeltrace.score import trajectory as scores

H = lambda p: -(p * np.log(p)).sum()  # noqa: E731


def record(logits_per_epoch, labels, num_classes=None, seen=None):
    labels = np.asarray(labels)
    k = num_classes or np.asarray(logits_per_epoch[0]).shape[1]
    rec = Recorder(len(labels), k)
    for t, z in enumerate(logits_per_epoch):
        z = np.asarray(z, np.float32)
        ids = np.arange(len(labels)) if seen is None else np.flatnonzero(seen[t])
        rec.update(ids, z[ids], labels[ids])
        rec.end_epoch()
    return rec.dynamics()


def softmax(z):
    z = np.asarray(z, float)
    e = np.exp(z - z.max())
    return e / e.sum()


def test_sei_hand_computed():
    # one sample, label 0, three epochs: wrong (uncertain), wrong, right (confident)
    z = [[[0.0, 0.5, 0.0]], [[0.2, 1.0, 0.0]], [[3.0, 0.0, 0.0]]]
    d = record(z, [0])
    h = [H(softmax(zz[0])) for zz in z]
    expected = (-h[0] - h[1] + h[2]) / 3
    assert scores.compute("sei", d)[0] == pytest.approx(expected, rel=1e-5)
    assert scores.compute("ei", d)[0] == pytest.approx(-sum(h) / 3, rel=1e-5)
    assert scores.compute("se_at", d, epoch=-1)[0] == pytest.approx(h[2], rel=1e-5)
    assert scores.compute("se_at", d, epoch=0)[0] == pytest.approx(-h[0], rel=1e-5)
    assert scores.compute("sei", d, epochs=slice(1, 3))[0] == pytest.approx((-h[1] + h[2]) / 2, rel=1e-5)


def test_aum_hand_computed():
    z = [[[1.0, 3.0, 2.0]], [[4.0, 1.0, 0.0]]]
    d = record(z, [0])
    # margins: 1 - 3 = -2 ; 4 - 1 = 3 -> mean 0.5
    assert scores.compute("aum", d)[0] == pytest.approx(0.5)


def test_loss_confidence_variability_hand_computed():
    z = [[[0.0, 0.0]], [[np.log(3.0), 0.0]]]  # p_given = 0.5 then 0.75
    d = record(z, [0])
    assert scores.compute("confidence", d)[0] == pytest.approx(0.625, rel=1e-6)
    assert scores.compute("variability", d)[0] == pytest.approx(-0.125, rel=1e-5)
    assert scores.compute("loss", d)[0] == pytest.approx(-(np.log(2) + np.log(4 / 3)) / 2, rel=1e-5)


def test_forgetting_score():
    good, bad = [2.0, 0.0], [0.0, 2.0]
    z = [[good, bad, good], [bad, bad, good], [good, good, bad], [bad, bad, bad]]
    d = record(list(np.array(z, np.float32)), [0, 0, 0])
    # per sample: s0 good,bad,good,bad -> 2 events; s1 bad,bad,good,bad -> 1; s2 good,good,bad,bad -> 1
    np.testing.assert_array_equal(scores.compute("forgetting", d), [-2, -1, -1])
    d2 = record([[bad, good]] * 3, [0, 0])
    f = scores.compute("forgetting", d2)
    assert f[0] == -(3 + 1) and f[1] == 0  # never learned ranks below any achievable count
    assert not np.signbit(f[1])  # no forgetting event is 0.0, not -0.0 (written '-0' in a table)


def test_signs_always_wrong_uncertain_vs_always_right():
    rng = np.random.default_rng(0)
    T, k = 8, 4
    zs = []
    for _ in range(T):
        wrong = rng.normal(0, 0.3, k)
        wrong[1] += 0.5  # argmax 1 but uncertain; label is 0
        right = rng.normal(0, 0.3, k)
        right[0] += 2.0
        zs.append(np.stack([wrong, right]))
    d = record(zs, [0, 0])
    s = scores.compute("sei", d)
    assert s[0] < -1.0  # always wrong and uncertain: strongly negative
    assert s[1] >= 0.0
    assert scores.compute("aum", d)[0] < 0 < scores.compute("aum", d)[1]


def test_hard_clean_cancels_out():
    # wrong-but-uncertain early, right later -> SEI near 0 and above a persistently wrong sample
    early = [[0.0, 0.3]]
    late = [[0.3, 0.0]]
    hard = record([early] * 5 + [late] * 5, [0])
    noisy = record([early] * 10, [0])
    assert abs(scores.compute("sei", hard)[0]) < 1e-6
    assert scores.compute("sei", noisy)[0] < scores.compute("sei", hard)[0]


def test_missing_epochs_excluded():
    z = [[[2.0, 0.0]], [[0.0, 2.0]], [[2.0, 0.0]]]
    seen = np.array([[True], [False], [True]])
    d = record(z, [0], seen=seen)
    assert scores.compute("sei", d)[0] == pytest.approx(H(softmax([2.0, 0.0])), rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 10),
    k=st.integers(2, 5),
    T=st.integers(1, 5),
    shift=st.floats(-50, 50),
)
def test_invariances_and_bounds(seed, n, k, T, shift):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    zs = [rng.normal(size=(n, k)).astype(np.float32) * 3 for _ in range(T)]
    d = record(zs, labels, k)
    base = {name: scores.compute(name, d) for name in scores.available()}
    for v in base.values():
        assert v.shape == (n,) and np.all(np.isfinite(v))
    assert np.all(np.abs(base["sei"]) <= np.log(k) + 1e-5)
    # adding a constant to every logit changes no score (softmax and margins are shift invariant)
    d_shift = record([z + np.float32(shift) for z in zs], labels, k)
    for name in ("sei", "ei", "aum", "loss", "confidence", "forgetting"):
        np.testing.assert_allclose(scores.compute(name, d_shift), base[name], atol=2e-3, err_msg=name)
    # permuting samples permutes scores
    perm = rng.permutation(n)
    d_perm = record([z[perm] for z in zs], labels[perm], k)
    for name in ("sei", "aum", "forgetting"):
        np.testing.assert_allclose(scores.compute(name, d_perm), base[name][perm], rtol=1e-6, err_msg=name)
    # relabelling classes consistently (logit columns and labels) changes nothing up to argmax ties
    cperm = rng.permutation(k)
    inv = np.argsort(cperm)
    d_c = record([z[:, inv] for z in zs], cperm[labels], k)
    np.testing.assert_allclose(scores.compute("sei", d_c), base["sei"], rtol=1e-5, atol=1e-6)


def test_streaming_scores_equal_full():
    rng = np.random.default_rng(3)
    n, k, T = 30, 4, 7
    labels = rng.integers(0, k, n)
    zs = [rng.normal(size=(n, k)).astype(np.float32) * 2 for _ in range(T)]
    full, stream = Recorder(n, k), Recorder(n, k, mode="streaming")
    for z in zs:
        for rec in (full, stream):
            rec.update(np.arange(n), z, labels)
            rec.end_epoch()
    for name in scores.available():
        np.testing.assert_allclose(
            scores.compute(name, stream.dynamics()), scores.compute(name, full.dynamics()), rtol=1e-9, atol=1e-12
        )


def test_registry_errors():
    d = record([[[1.0, 0.0]]], [0])
    with pytest.raises(ValueError, match="unknown score 'nope'"):
        scores.compute("nope", d)
    with pytest.raises(ValueError, match="Dynamics"):
        scores.compute("sei", np.zeros(3))  # type: ignore[arg-type]
    empty = Recorder(2, 2).dynamics()
    with pytest.raises(ValueError, match="no finished epoch"):
        scores.compute("sei", empty)
    assert {"sei", "ei", "se_at", "aum", "loss", "forgetting", "confidence", "variability"} <= set(scores.available())
    assert scores.describe("sei").startswith("Signed Entropy Integral")


def test_sei_sign_on_exact_ties_follows_the_official_code():
    """Margin >= 0 counts as agreement: a tie between the given label and another class is +H,
    whichever of the two argmax would name (the SEI paper's EntropySignedCalculator)."""
    h2 = np.log(2.0)  # two equal logits, the rest far below: H = log 2
    z = [[[5.0, 5.0, -50.0], [5.0, 5.0, -50.0]]]
    d = record(z, [0, 1])  # argmax is 0 for both rows; label 1 ties with it
    np.testing.assert_allclose(scores.compute("sei", d), [h2, h2], rtol=1e-6)
    d = record([[[5.0, 5.0 - 1e-3, -50.0]]], [1])  # just below the tie: disagreement
    assert scores.compute("sei", d)[0] < 0
    np.testing.assert_allclose(scores.compute("aum", record(z, [0, 1])), [0.0, 0.0])


def test_sei_with_the_auxiliary_logit():
    """K real classes + one auxiliary logit (class K): entropy over all K + 1 outputs, and an
    auxiliary sample agrees when the auxiliary logit is the largest."""
    z = np.array([[[0.0, 1.0, 3.0], [2.0, 0.0, 1.0]]])  # K = 2 real classes + the auxiliary column 2
    d = record(z, [2, 2], num_classes=3)  # both samples relabeled to the auxiliary class
    p0, p1 = softmax(z[0, 0]), softmax(z[0, 1])
    np.testing.assert_allclose(scores.compute("sei", d), [H(p0), -H(p1)], rtol=1e-6)


def test_an_unscored_sample_ranks_before_every_scored_one_even_minus_inf():
    from labeltrace.decide.ranking import rank_of

    assert rank_of(np.array([-np.inf, np.nan, 0.0])).tolist() == [2, 1, 3]
    assert rank_of(np.array([np.nan, 1.0, np.nan, -np.inf])).tolist() == [1, 4, 2, 3]
