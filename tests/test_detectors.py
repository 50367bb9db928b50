"""The trajectory detectors' label-free cut (no auxiliary samples) on signed entropies."""

from __future__ import annotations

import numpy as np
import pytest

from labeltrace.decide import detectors, flagging
from labeltrace.decide.evidence import Evidence


@pytest.mark.parametrize("name", ["sei", "se_last", "se_mid"])
def test_signed_entropy_without_auxiliary_samples_never_flags_agreeing_samples(name: str) -> None:
    """Easy clean samples sit near 0, hard clean ones near +log K, wrong labels below 0: the
    mixture split fell between the two clean groups and flagged the easy majority (313 of 400
    for 20 wrong). Capped at 0, the cut flags the samples whose prediction disagrees."""
    from labeltrace.record import Recorder
    from labeltrace.record.recording import RecordedRun

    rng = np.random.default_rng(0)
    n, k = 400, 3
    true = rng.integers(0, k, n)
    y = true.copy()
    noisy = rng.choice(n, 20, replace=False)
    y[noisy] = (y[noisy] + 1) % k
    hard = rng.random(n) < 0.25
    rec = Recorder(num_samples=n, num_classes=k)
    for _ in range(5):  # the model predicts the true class: agrees with every clean label
        z = rng.normal(size=(n, k)) * 0.05
        z[np.arange(n), true] += np.where(hard, 0.6, 6.0)
        rec.update(np.arange(n), z, y)
        rec.end_epoch()
    ev = Evidence(y, k, in_sample=[RecordedRun(rec.dynamics(), np.zeros(n, bool), k)])
    d = detectors.detect(name, ev)
    assert set(np.flatnonzero(d.flagged)) == set(noisy.tolist())
    assert d.cutoff <= 0.0


@pytest.mark.parametrize("bad", [[1.7, 0.0], [-1, 0], [0, 3]])
def test_evidence_refuses_labels_that_are_not_class_ids(bad: list[float]) -> None:
    """1.7 was read as class 1 and -1 indexed the posterior's last column."""
    with pytest.raises(ValueError, match="labels"):
        Evidence(np.array(bad), 3)
    assert Evidence(np.array([0.0, 2.0]), 3).labels.tolist() == [0, 2]


@pytest.mark.parametrize("knn_k", [2.7, True, 0])
def test_evidence_refuses_a_knn_k_that_is_not_a_whole_number_of_neighbours(knn_k: object) -> None:
    with pytest.raises(ValueError, match=r"knn_k must be an int >= 1"):
        Evidence(np.array([0, 1, 0]), 2, knn_k=knn_k)  # type: ignore[arg-type]


def test_a_detection_keeps_its_fields_and_order_with_n_hat_last() -> None:
    import dataclasses

    d = detectors.Detection("x", np.zeros(2), np.zeros(2, bool), 0.0, "r")
    assert [f.name for f in dataclasses.fields(d)] == ["name", "score", "flagged", "cutoff", "rule", "n_hat"]
    assert d.n_hat is None


def test_a_count_rule_reports_its_count_and_a_plain_tuple_rule_still_works() -> None:
    """The count that set a detector's cut travels as ``n_hat`` (it used to be parsed back out of the
    rule's text); a registered rule returning a plain ``(flagged, cutoff, rule)`` keeps working."""
    from labeltrace.decide.evidence import Need

    rng = np.random.default_rng(0)
    n, k = 60, 3
    y = rng.integers(0, k, n)
    scores = rng.random(n)
    ev = Evidence(y, k, features=rng.normal(size=(n, 4)))
    need: tuple[Need, ...] = ("features",)
    detectors.register(detectors.Detector("toy_count", need, lambda e: scores,
                                          lambda e, s: flagging.by_count(s, 7, "toy-count"), "toy"))
    detectors.register(detectors.Detector("toy_tuple", need, lambda e: scores,
                                          lambda e, s: (s < 0.25, 0.25, "below 0.25"), "toy"))
    try:
        d = detectors.detect("toy_count", ev)
        assert d.n_hat == 7 and d.rule == "toy-count 7" and d.flagged.sum() == 7
        assert set(np.flatnonzero(d.flagged)) == set(np.argsort(scores)[:7].tolist())
        t = detectors.detect("toy_tuple", ev)
        assert t.n_hat is None and t.rule == "below 0.25" and t.cutoff == 0.25
        np.testing.assert_array_equal(t.flagged, scores < 0.25)
    finally:
        detectors.unregister("toy_count")
        detectors.unregister("toy_tuple")


def test_an_all_zero_feature_row_gets_the_sets_label_shares_and_a_warning_not_a_failed_detector() -> None:
    # a network's embedding is all zeros for a sample whose every unit is off; cosine neighbours
    # are undefined for it, which had failed every kNN detector of the scan
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.0, 0.0]])
    y = np.array([0, 0, 1, 1, 1])
    ev = Evidence(y, 2, features=x, knn_k=1)
    with pytest.warns(UserWarning, match=r"all zeros for .*\b4\b"):
        shares = ev.knn_shares()
    # the others' neighbours are found among the rest, never the zero row
    np.testing.assert_array_equal(shares[:4], [[1, 0], [1, 0], [0, 1], [0, 1]])
    np.testing.assert_allclose(shares[4], [2 / 5, 3 / 5])
    assert detectors.detect("knn_vote", ev).score[4] == pytest.approx(3 / 5)


def test_features_with_fewer_than_two_nonzero_rows_are_refused_by_name() -> None:
    ev = Evidence(np.array([0, 1, 1]), 2, features=np.array([[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]]), knn_k=1)
    with pytest.raises(ValueError, match=r"all zeros for .*1.*2"):
        ev.knn_shares()


def test_the_middle_epoch_rule_names_the_epoch_counted_from_one() -> None:
    """se_mid's rule said "auxiliary-mean (epoch 2)" for the third of five epochs: an index where
    every other message counts epochs from 1."""
    from labeltrace.record import Recorder
    from labeltrace.record.recording import RecordedRun

    rng = np.random.default_rng(1)
    n, k = 60, 3
    y = rng.integers(0, k, n)
    runs = []
    for part in (slice(0, 12), slice(12, 24)):  # two runs, disjoint auxiliary sets
        aux = np.zeros(n, bool)
        aux[part] = True
        trained = np.where(aux, k, y)  # the auxiliary samples carry the extra class
        rec = Recorder(num_samples=n, num_classes=k + 1)
        for _ in range(5):
            z = rng.normal(size=(n, k + 1))
            z[np.arange(n), trained] += 2.0
            rec.update(np.arange(n), z, trained)
            rec.end_epoch()
        runs.append(RecordedRun(rec.dynamics(), aux, k))
    ev = Evidence(y, k, in_sample=runs)
    assert detectors.detect("se_mid", ev).rule == "auxiliary-mean (epoch 3)"
    assert detectors.detect("se_last", ev).rule == "auxiliary-mean"
