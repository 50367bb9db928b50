"""The detector table: each row's score and rule, what it needs, and the held-out ``crossfit`` default.

Expected values come from first principles (numpy indexing of the posterior) or from the
independent ``cleanlab`` package, never from the functions under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from labeltrace.decide import detectors
from labeltrace.decide.evidence import Evidence
from labeltrace.record import Recorder
from labeltrace.record.recording import RecordedRun

cl_count = pytest.importorskip("cleanlab.count")
cl_filter = pytest.importorskip("cleanlab.filter")


def _recorded(seed: int = 0, n: int = 300, k: int = 4, epochs: int = 6, rate: float = 0.2,
              held_out: bool = True) -> tuple[RecordedRun, np.ndarray, np.ndarray]:  # fmt: skip
    """Logits that favour the true class; a fraction of the given labels flipped."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    given = true.copy()
    flip = rng.random(n) < rate
    given[flip] = (true[flip] + rng.integers(1, k, flip.sum())) % k
    rec = Recorder(n, k)
    for _ in range(epochs):
        logits = rng.normal(size=(n, k))
        logits[np.arange(n), true] += 2.5
        rec.update(np.arange(n), logits, given)
        rec.end_epoch()
    return RecordedRun(rec.dynamics(), np.zeros(n, bool), k, held_out=held_out), given, flip


def _normalized(p: np.ndarray) -> np.ndarray:
    return p / p.sum(1, keepdims=True)


def _cleanlab_rate_count(given: np.ndarray, post: np.ndarray) -> int:
    joint = cl_count.estimate_joint(given, post)
    return int(round((1.0 - np.trace(joint)) * given.size))


def test_crossfit_clcount_scores_held_out_p_given_and_cuts_at_cleanlabs_count() -> None:
    run, given, flip = _recorded()
    det = detectors.detect("crossfit_clcount", Evidence(given, 4, held_out=run))
    post = _normalized(run.dynamics.mean_posterior())
    np.testing.assert_allclose(det.score, post[np.arange(given.size), given])
    n_hat = int(cl_count.num_label_issues(given, post))
    assert det.flagged.sum() == n_hat
    assert det.score[det.flagged].max() < det.score[~det.flagged].min()  # exactly the n_hat lowest
    assert (det.flagged & flip).sum() > 0.8 * det.flagged.sum()  # and they are mostly the flipped labels


def test_crossfit_cl_flags_cleanlabs_own_mask_on_the_held_out_posterior() -> None:
    run, given, _ = _recorded(seed=5)
    det = detectors.detect("crossfit_cl", Evidence(given, 4, held_out=run))
    post = _normalized(run.dynamics.mean_posterior())
    mask = np.asarray(cl_filter.find_label_issues(given, post, filter_by="prune_by_noise_rate", n_jobs=1))
    np.testing.assert_array_equal(det.flagged, mask)
    np.testing.assert_allclose(det.score, post[np.arange(given.size), given])
    assert detectors.get("crossfit_cl").column == "crossfit"  # shares crossfit's score column


def test_crossfit_averages_the_in_sample_companion_and_counts_on_the_held_out_side() -> None:
    run, given, _ = _recorded(seed=3)
    comp, _, _ = _recorded(seed=4)  # another recording of the same labels
    both = RecordedRun(run.dynamics, run.is_auxiliary, run.num_classes, held_out=True, in_sample=comp.dynamics)
    det = detectors.detect("crossfit", Evidence(given, 4, held_out=both))
    h, i = _normalized(run.dynamics.mean_posterior()), _normalized(comp.dynamics.mean_posterior())
    np.testing.assert_allclose(det.score, ((h + i) / 2)[np.arange(given.size), given])
    # a small set (300 < LARGE samples): the held-out estimates only (the in-sample side is memorised),
    # the geometric mean of confident learning's count and its rate x N
    n_held, r_held = int(cl_count.num_label_issues(given, h)), _cleanlab_rate_count(given, h)
    assert n_held != r_held
    n_hat = round((n_held * r_held) ** 0.5)
    assert det.flagged.sum() == n_hat and det.rule == f"count {n_hat}"
    assert det.score[det.flagged].max() < det.score[~det.flagged].min()


def test_crossfit_with_frozen_features_on_a_small_set_mixes_in_a_quarter_of_the_knn_shares() -> None:
    run, given, _ = _recorded(seed=6, rate=0.3)
    comp, _, _ = _recorded(seed=7, rate=0.3)
    both = RecordedRun(run.dynamics, run.is_auxiliary, run.num_classes, held_out=True, in_sample=comp.dynamics)
    feats = np.random.default_rng(6).normal(size=(given.size, 4))  # any features: the mix is arithmetic
    h, i = _normalized(run.dynamics.mean_posterior()), _normalized(comp.dynamics.mean_posterior())
    plain = detectors.detect("crossfit", Evidence(given, 4, held_out=both))
    det = detectors.detect("crossfit", Evidence(given, 4, held_out=both, features=feats, features_frozen=True))
    nb = _knn_shares(feats, given, 10, 4)
    mh, mi = 0.75 * h + 0.25 * nb, 0.75 * i + 0.25 * nb
    np.testing.assert_allclose(det.score, ((mh + mi) / 2)[np.arange(given.size), given])
    n_hat = round((int(cl_count.num_label_issues(given, mh)) * _cleanlab_rate_count(given, mh)) ** 0.5)
    assert det.flagged.sum() == n_hat and det.rule == f"count {n_hat}"
    assert not np.allclose(det.score, plain.score)
    # the same features as a network's embedding (trained on these labels): not mixed
    emb = detectors.detect("crossfit", Evidence(given, 4, held_out=both, features=feats))
    np.testing.assert_array_equal(emb.score, plain.score)
    np.testing.assert_array_equal(emb.flagged, plain.flagged)
    # crossfit's count is what crossfit_knn cuts at
    knn = detectors.detect("crossfit_knn", Evidence(given, 4, held_out=both, features=feats, features_frozen=True))
    assert knn.flagged.sum() == n_hat


def test_crossfit_on_a_large_set_keeps_the_recorded_posterior_with_frozen_features() -> None:
    from labeltrace.decide.count import LARGE

    run, given, _ = _recorded(seed=9, n=LARGE + 10, epochs=2)
    feats = np.random.default_rng(9).normal(size=(given.size, 3))
    plain = detectors.detect("crossfit", Evidence(given, 4, held_out=run))
    det = detectors.detect("crossfit", Evidence(given, 4, held_out=run, features=feats, features_frozen=True))
    np.testing.assert_array_equal(det.score, plain.score)
    np.testing.assert_array_equal(det.flagged, plain.flagged)


def test_conservative_count_on_a_large_set_takes_the_smallest_estimate() -> None:
    from labeltrace.decide.count import LARGE, conservative_count

    rng = np.random.default_rng(8)
    n, k = LARGE + 500, 5
    y = rng.integers(0, k, n)
    h = rng.dirichlet(np.ones(k), n)
    h[np.arange(n), y] += rng.uniform(0, 2, n)
    h /= h.sum(1, keepdims=True)
    n_cl, r_cl = int(cl_count.num_label_issues(y, h)), _cleanlab_rate_count(y, h)
    assert (n_cl, r_cl) == (49, 81)
    # in sample more confident in the given labels; m: cleanlab's count on the mean posterior
    # w = 0: 2.5 x 49 = 123 > n = 49, so n binds; 2.5 x 9 = 22.5: halves round up
    for w, m, expected in ((0.0, 49, 49), (0.7, 0, 0), (0.15, 10, 25), (0.2, 9, 23)):
        i = np.eye(k)[y] * w + (1 - w) * h
        assert int(cl_count.num_label_issues(y, (h + i) / 2)) == m
        assert conservative_count(h, i, y) == expected <= min(n_cl, r_cl)
    assert conservative_count(h, None, y) == round((n_cl * r_cl) ** 0.5)  # no in-sample side


def test_bimodal_count_leaves_one_cluster_alone_and_splits_two() -> None:
    from labeltrace.decide.count import bimodal_count

    rng = np.random.default_rng(0)
    assert bimodal_count(rng.normal(size=2000)) == 0
    two = np.r_[rng.normal(-6, 1, 300), rng.normal(0, 1, 1700)]
    assert abs(bimodal_count(two) - 300) <= 5


def test_a_detector_runs_only_on_the_evidence_it_needs() -> None:
    run, given, _ = _recorded()
    held = Evidence(given, 4, held_out=run)
    ins = Evidence(given, 4, in_sample=[RecordedRun(run.dynamics, run.is_auxiliary, 4)])
    assert detectors.get("crossfit").needs == ("held_out",) and detectors.get("sei").needs == ("in_sample",)
    assert detectors.applicable("crossfit", held) and not detectors.applicable("crossfit", ins)
    assert detectors.applicable("sei", ins) and not detectors.applicable("sei", held)
    with pytest.raises(ValueError, match="needs held-out evidence"):
        detectors.detect("crossfit", ins)
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        detectors.get("nope")


def test_crossfit_rejects_a_sample_never_recorded() -> None:
    n, k = 20, 3
    rec = Recorder(n, k)
    rec.update(np.arange(n - 1), np.zeros((n - 1, k)), np.zeros(n - 1, dtype=int))
    rec.end_epoch()
    run = RecordedRun(rec.dynamics(), np.zeros(n, bool), k, held_out=True)
    with pytest.raises(ValueError, match="every sample"):
        detectors.detect("crossfit", Evidence(np.zeros(n, dtype=int), k, held_out=run))


def test_in_sample_trajectory_detector_uses_the_pooled_auxiliary_mean() -> None:
    """Two runs with disjoint auxiliary sets: SEI from the run where the sample kept its label,
    cut at the mean SEI of both runs' auxiliary samples (computed here from raw epochs)."""
    rng = np.random.default_rng(1)
    n, k, T = 120, 3, 5
    given = rng.integers(0, k, n)
    aux = [np.zeros(n, bool), np.zeros(n, bool)]
    aux[0][:20], aux[1][20:40] = True, True
    runs, per = [], []
    for r in range(2):
        y = np.where(aux[r], k, given)
        rec = Recorder(n, k + 1)
        se = np.zeros((T, n))
        for t in range(T):
            z = rng.normal(size=(n, k + 1))
            rec.update(np.arange(n), z, y)
            rec.end_epoch()
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            h = -(p * np.log(p)).sum(1)
            se[t] = np.where(z.argmax(1) == y, h, -h)
        runs.append(RecordedRun(rec.dynamics(), aux[r], k))
        per.append(se.mean(0))
    det = detectors.detect("sei", Evidence(given, k, in_sample=runs))
    expect = np.where(aux[0], per[1], np.where(aux[1], per[0], (per[0] + per[1]) / 2))
    np.testing.assert_allclose(det.score, expect, rtol=1e-5, atol=1e-6)
    cut = np.concatenate([per[0][aux[0]], per[1][aux[1]]]).mean()
    assert det.cutoff == pytest.approx(cut, rel=1e-5) and det.rule == "auxiliary-mean"
    np.testing.assert_array_equal(det.flagged, expect < det.cutoff)


def test_a_new_detector_is_one_row() -> None:
    def score(ev: Evidence) -> np.ndarray:
        return -ev.features[:, 0]

    row = detectors.Detector("toy", ("features",), score, lambda ev, s: (s < -1.0, -1.0, "toy < -1"), "a toy")
    detectors.register(row)
    try:
        assert "toy" in detectors.available() and "toy" in detectors.available(needs="features")
        ev = Evidence(np.zeros(4, dtype=int), 2, features=np.array([[0.0], [2.0], [3.0], [0.5]]))
        d = detectors.detect("toy", ev)
        np.testing.assert_array_equal(d.flagged, [False, True, True, False])
        with pytest.raises(ValueError, match="already registered"):
            detectors.register(row)
    finally:
        detectors.unregister("toy")
    assert "toy" not in detectors.available()


def test_evidence_is_computed_once_on_first_use() -> None:
    calls = []

    def feats() -> np.ndarray:
        calls.append(1)
        return np.eye(3)

    ev = Evidence(np.zeros(3, dtype=int), 2, features=feats, cost={"features": lambda: (1, 2.5)})
    assert ev.has("features") and not ev.has("cv_probs") and calls == []
    ev.features
    ev.features
    assert calls == [1]
    assert ev.cost(["features", "features", "cv_probs"]) == (1, 2.5)
    with pytest.raises(ValueError, match="no cv-probs evidence"):
        ev.cv_probs


def test_implant_weight_follows_the_signal_that_separates_wrong_labels() -> None:
    from labeltrace.decide.count import implant_weight

    rng = np.random.default_rng(2)
    n, k = 600, 4
    y = rng.integers(0, k, n)
    weak = rng.dirichlet(np.ones(k), n)
    weak[np.arange(n), y] += 0.1  # the posterior barely prefers the given label
    weak /= weak.sum(1, keepdims=True)
    sharp = np.eye(k)[y] * 0.9 + 0.1 / k  # the second signal is sure of it
    assert implant_weight(weak, sharp, y) == 0.5  # as much weight as allowed
    noise = rng.dirichlet(np.ones(k), n)  # unrelated to the labels: no weight
    assert implant_weight(sharp, noise, y) == 0.0


def test_single_on_a_small_set_counts_the_samples_contradicted_in_most_epochs() -> None:
    rng = np.random.default_rng(6)
    n, k, epochs = 300, 4, 5
    given = rng.integers(0, k, n)
    rec, wrong_epochs = Recorder(n, k), np.zeros(n, int)
    for _ in range(epochs):
        logits = rng.normal(size=(n, k))
        logits[np.arange(n), given] += rng.uniform(-1.0, 3.0, n)
        wrong_epochs += logits.argmax(1) != given
        rec.update(np.arange(n), logits, given)
        rec.end_epoch()
    run = RecordedRun(rec.dynamics(), np.zeros(n, bool), k, held_out=False)
    det = detectors.detect("single", Evidence(given, k, single=run))
    np.testing.assert_allclose(det.score, -run.dynamics.mean("loss"))
    expected = int((wrong_epochs >= 3).sum())  # contradicted in 3, 4 or 5 of the 5 epochs
    assert 0 < expected < n
    assert det.flagged.sum() == expected and det.rule == f"contradicted-count {expected}"
    assert det.score[det.flagged].max() < det.score[~det.flagged].min()
    assert not detectors.applicable("single", Evidence(given, k, held_out=run))


def _memorising_run(true: np.ndarray, given: np.ndarray, k: int, seed: int) -> RecordedRun:
    """A run that predicts the true class for 2 of 6 epochs, then its given label (memorised)."""
    rng = np.random.default_rng(seed)
    n = true.size
    rec = Recorder(n, k)
    for epoch in range(6):
        logits = rng.normal(size=(n, k))
        logits[np.arange(n), true if epoch < 2 else given] += 4.0
        rec.update(np.arange(n), logits, given)
        rec.end_epoch()
    return RecordedRun(rec.dynamics(), np.zeros(n, bool), k, held_out=False)


def _knn_shares(x: np.ndarray, y: np.ndarray, k: int, num_classes: int) -> np.ndarray:
    """Label shares of the ``k`` nearest other samples (cosine), by sklearn."""
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(x).kneighbors(x)[1]
    nb = np.array([[j for j in row if j != i][:k] for i, row in enumerate(idx)])
    return np.stack([(y[nb] == c).mean(1) for c in range(num_classes)], axis=1)


def test_single_on_a_small_set_takes_the_features_knn_count_when_the_run_memorised() -> None:
    rng = np.random.default_rng(11)
    n, k = 400, 4
    true = rng.integers(0, k, n)
    given = true.copy()
    flip = rng.random(n) < 0.2
    given[flip] = (true[flip] + rng.integers(1, k, flip.sum())) % k
    run = _memorising_run(true, given, k, seed=11)
    # the run contradicts almost no label in most epochs: the old count flags next to nothing
    alone = detectors.detect("single", Evidence(given, k, single=run))
    assert alone.flagged.sum() < 0.1 * flip.sum() and alone.rule.startswith("contradicted-count")
    # frozen features that cluster by the true class: the kNN shares are a held-out posterior
    feats = np.eye(k)[true] * 3.0 + rng.normal(size=(n, k))
    det = detectors.detect("single", Evidence(given, k, single=run, features=feats, knn_k=10))
    shares = _knn_shares(feats, given, 10, k)
    n_cl, r_cl = int(cl_count.num_label_issues(given, shares)), _cleanlab_rate_count(given, shares)
    expected = int(round(np.sqrt(n_cl * r_cl)))
    assert 0.7 * flip.sum() < expected < 1.3 * flip.sum()
    assert det.flagged.sum() == expected and det.rule == f"knn-count {expected}"
    np.testing.assert_allclose(det.score, alone.score)  # the ranking is the run's, only the count moved
    # features that follow the given labels (a network's embedding trained on them): the kNN agrees
    # with every label, its count is below the run's contradicted count, which decides
    emb = np.eye(k)[given] * 10.0 + rng.normal(size=(n, k))
    again = detectors.detect("single", Evidence(given, k, single=run, features=emb, knn_k=10))
    assert again.rule.startswith("contradicted-count")


def test_single_on_a_large_set_caps_the_mixture_count() -> None:
    from labeltrace._checks import round_half_up
    from labeltrace.decide.count import LARGE, bimodal_count

    run, given, flip = _recorded(seed=6, n=LARGE + 200, held_out=False)
    det = detectors.detect("single", Evidence(given, 4, single=run))
    post = _normalized(run.dynamics.mean_posterior())
    assert det.flagged.sum() <= round_half_up(3.5 * _cleanlab_rate_count(given, post))
    assert det.rule.startswith("min-count")
    assert det.score[det.flagged].max() < det.score[~det.flagged].min()

    # a run that memorises its wrong labels in the last 3 of 6 epochs: the trajectory-averaged
    # posterior's rate falls to 259 (cleanlab), the mixture still counts 1,114 for the 1,058 flips
    rng = np.random.default_rng(6)
    n, k = LARGE + 200, 4
    true = rng.integers(0, k, n)
    given = true.copy()
    flip = rng.random(n) < 0.2
    given[flip] = (true[flip] + rng.integers(1, k, flip.sum())) % k
    rec = Recorder(n, k)
    for epoch in range(6):
        logits = rng.normal(size=(n, k))
        logits[np.arange(n), true] += 2.5
        if epoch >= 3:
            logits[np.flatnonzero(flip), given[flip]] += 3.0
        rec.update(np.arange(n), logits, given)
        rec.end_epoch()
    run = RecordedRun(rec.dynamics(), np.zeros(n, bool), k, held_out=False)
    det = detectors.detect("single", Evidence(given, k, single=run))
    assert _cleanlab_rate_count(given, _normalized(run.dynamics.mean_posterior())) == 259
    assert bimodal_count(det.score) > 907
    assert det.flagged.sum() == 907 and det.rule == "min-count 907"  # 3.5 x 259 = 906.5, halves up
