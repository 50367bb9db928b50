"""Numerical edges found by a property-based review of the scores and cutoffs: each case returned a
silently wrong value or an error that named the wrong thing."""

from __future__ import annotations

import numpy as np
import pytest

from labeltrace.decide import auxiliary, cutoffs, detectors
from labeltrace.decide.evidence import Evidence
from labeltrace.record import Recorder
from labeltrace.record.recording import RecordedRun
from labeltrace.score import probs as P
from labeltrace.score import trajectory as T
from labeltrace.score.knn import knn_indices


@pytest.mark.parametrize("mode", ["full", "streaming"])
@pytest.mark.parametrize("gap", [120.0, 800.0])
def test_a_confidently_wrong_sample_keeps_a_negative_signed_entropy(mode: str, gap: float) -> None:
    """At a logit gap of ~110 the entropy underflows float32 (and float64 past ~746): the wrong
    sample's signed entropy was -0.0, tied with the right one's and never flagged by a cut at 0."""
    rec = Recorder(num_samples=2, num_classes=2, mode=mode)
    for _ in range(3):
        rec.update([0, 1], np.array([[0.0, gap], [gap, 0.0]]), [0, 0])
        rec.end_epoch()
    d = rec.dynamics()
    sei = T.compute("sei", d)
    assert sei[0] < 0.0 and sei[1] == 0.0
    if mode == "full":
        assert T.compute("se_at", d, epoch=-1)[0] < 0.0


def test_euclidean_neighbours_of_huge_features_are_right() -> None:
    """|x|^2 fitted float32 but 2 q.r did not: 44 of 80 neighbours came back wrong (then refused)."""
    v = np.linspace(1.35e19, 1.8e19, 40)
    x = np.r_[v, -v]
    got = knn_indices(x[:, None], k=1, metric="euclidean")[:, 0]
    d = np.abs(x[:, None] - x[None, :])  # float64; the two sides' values are nearly evenly spaced
    np.fill_diagonal(d, np.inf)
    np.testing.assert_array_equal(d[np.arange(80), got], d.min(axis=1))  # a nearest one, for every sample
    assert (np.abs(got - np.arange(80)) == 1).all() and ((got < 40) == (np.arange(80) < 40)).all()


@pytest.mark.parametrize("scale", [1e-25, 1e-170, 1e25, 1e300, 3.75e307])
def test_euclidean_neighbours_do_not_depend_on_the_features_scale(scale: float) -> None:
    """Squared distances of tiny features underflowed float32: 323 of 400 votes changed (an audit's
    finding), every neighbour chosen by its index."""
    u = np.random.default_rng(1).normal(size=(60, 4))
    d = ((u[:, None, :] - u[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    expected = np.argsort(d, axis=1, kind="stable")[:, :3]  # no ties among random normal rows
    np.testing.assert_array_equal(knn_indices(u * scale, k=3, metric="euclidean"), expected)


@pytest.mark.parametrize("scale", [1e160, 1e-170, 1e300])
def test_cosine_neighbours_do_not_depend_on_the_features_scale(scale: float) -> None:
    """The norms overflowed (every neighbour wrong) or underflowed ("all-zero feature rows")."""
    u = np.random.default_rng(0).normal(size=(30, 3))
    expected = knn_indices(u, k=2)
    np.testing.assert_array_equal(knn_indices(u * scale, k=2), expected)
    mixed = u.copy()
    mixed[:10] *= scale
    np.testing.assert_array_equal(knn_indices(mixed, k=2), expected)  # rows at other scales
    assert np.array_equal(mixed[:10], u[:10] * scale)  # the caller's array is not changed


def test_top_fraction_refuses_scores_it_could_never_flag() -> None:
    """``scores < cutoff`` cannot flag +inf: asked for both samples, it flagged one."""
    with pytest.raises(ValueError, match=r"\+inf at sample ids \[1\], and rate 1.0 asks"):
        cutoffs.top_fraction(np.array([0.0, np.inf]), 1.0)
    s = np.r_[np.arange(99.0), np.inf]  # a rate that stops short of +inf still works
    assert cutoffs.flag(s, cutoffs.top_fraction(s, 0.1)).sum() == 10
    s = np.array([-np.inf, 0.0, 1.0])
    assert cutoffs.flag(s, cutoffs.top_fraction(s, 2 / 3)).tolist() == [True, True, False]


def _aux_run(n: int, k: int, aux: np.ndarray, unseen: int, seed: int) -> RecordedRun:
    rng = np.random.default_rng(seed)
    rec = Recorder(num_samples=n, num_classes=k + 1)
    y = np.where(aux, k, rng.integers(0, k, n))
    ids = np.setdiff1d(np.arange(n), [unseen])
    for _ in range(3):
        rec.update(ids, rng.normal(size=(ids.size, k + 1)), y[ids])
        rec.end_epoch()
    return RecordedRun(rec.dynamics(), aux, k)


def test_an_unscored_auxiliary_sample_is_named_by_its_sample_id() -> None:
    """The error named position 1 of the pooled auxiliary scores instead of sample 10."""
    n, k = 24, 2
    a, b = np.zeros(n, bool), np.zeros(n, bool)
    a[[3, 10]] = True
    b[[5, 17]] = True
    ev = Evidence(np.zeros(n, int), k, in_sample=[_aux_run(n, k, a, 10, 0), _aux_run(n, k, b, 0, 1)])
    with pytest.raises(ValueError, match=r"run 0: 1 of its auxiliary samples .* sample ids \[10\]"):
        detectors.detect("sei", ev)
    s = np.zeros(n)
    s[17] = np.nan
    with pytest.raises(ValueError, match=r"score_b's auxiliary scores .* sample ids \[17\]"):
        auxiliary.pooled_auxiliary_cutoff(s, s, a, b)


def test_a_huge_unsigned_label_is_reported_as_given() -> None:
    """2**64 - 1 was reported as label -1."""
    with pytest.raises(ValueError, match=r"sample ids \[2\] have labels \[18446744073709551615\]"):
        P.self_confidence(np.full((3, 3), 1 / 3), np.array([0, 1, 2**64 - 1], np.uint64))


def test_a_probability_above_one_is_refused() -> None:
    """A row [1.0009, 0] passed the row-sum tolerance and gave a self-confidence above 1."""
    with pytest.raises(ValueError, match=r"entries above 1 in sample ids \[0\]"):
        P.self_confidence(np.array([[1.0009, 0.0], [0.0, 1.0]]), np.array([0, 1]))
    ok = np.array([[1.0 + 5e-7, 0.0], [0.0, 1.0]])  # float rounding of a softmax is accepted
    assert P.self_confidence(ok, np.array([0, 1])).shape == (2,)


def test_the_twins_of_the_label_and_probability_checks_agree() -> None:
    """The same two checks on their second paths: crossval's labels, the relabel posterior."""
    from labeltrace.relabel.arrays import check_posterior
    from labeltrace.train.crossval import crossval_probs

    x = np.random.default_rng(0).normal(size=(6, 2))
    with pytest.raises(ValueError, match=r"sample ids \[4\] have labels \[18446744073709551615\]"):
        crossval_probs(x, np.array([0, 1, 0, 1, 2**64 - 1, 0], np.uint64))
    with pytest.raises(ValueError, match=r"posterior has entries above 1 in sample ids \[0\]"):
        check_posterior(np.array([[1.0009, 0.0], [0.0, 1.0]]))
