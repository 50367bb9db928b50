"""find_suspects: the one-training mode on a Recorder's dynamics, as the scan's `single` detector."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from labeltrace import Recorder, find_suspects
from labeltrace.decide import detectors
from labeltrace.decide.evidence import Evidence
from labeltrace.record.recording import RecordedRun

torch.set_num_threads(1)


def _dynamics(n: int = 120, k: int = 3, flip: int = 20, epochs: int = 6) -> tuple[Recorder, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    true = rng.integers(0, k, n)
    x = torch.tensor(rng.normal(0, 1, (n, 8)) + 3.0 * np.eye(k, 8)[true], dtype=torch.float32)
    given = true.copy()
    wrong = rng.choice(n, flip, replace=False)
    given[wrong] = (given[wrong] + 1) % k
    y = torch.tensor(given)
    torch.manual_seed(0)
    model = torch.nn.Linear(8, k)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(n, k)
    for _ in range(epochs):
        for ids in torch.randperm(n).split(16):
            logits = model(x[ids])
            loss = torch.nn.functional.cross_entropy(logits, y[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.update(ids, logits, y[ids])
        rec.end_epoch()
    return rec, np.isin(np.arange(n), wrong), x.numpy()


def test_find_suspects_is_the_single_detector_and_finds_flipped_labels() -> None:
    rec, wrong, x = _dynamics()
    dyn = rec.dynamics()
    det = find_suspects(dyn, features=x)
    # the same decision as the detector table's row, computed here by hand
    want = detectors.detect("single", Evidence(dyn.labels, 3, single=RecordedRun(dyn, np.zeros(120, bool), 3),
                                               features=x))  # fmt: skip
    np.testing.assert_array_equal(det.flagged, want.flagged)
    assert (det.flagged & wrong).sum() >= 0.7 * wrong.sum() and det.flagged.sum() <= 2 * wrong.sum()


def test_find_suspects_refuses_what_it_cannot_decide() -> None:
    rec = Recorder(10, 2)
    rec.update(np.arange(8), np.zeros((8, 2)), np.zeros(8, dtype=int))
    rec.end_epoch()
    with pytest.raises(ValueError, match="2 samples were never recorded"):
        find_suspects(rec.dynamics())
    full, _, _ = _dynamics()
    with pytest.raises(ValueError, match="one plain run"):
        find_suspects(full.dynamics(), detector="crossfit")
    with pytest.raises(ValueError, match=r"features must be \(N=120, D\)"):
        find_suspects(full.dynamics(), features=np.zeros((5, 2)))


def _recorder(labels: np.ndarray, k: int, *, epochs: int = 3, keep_probs: int = 5, seed: int = 0) -> Recorder:
    rng = np.random.default_rng(seed)
    n = len(labels)
    rec = Recorder(n, k, keep_probs=keep_probs)
    for t in range(epochs):
        z = rng.normal(size=(n, k))
        z[np.arange(n), labels] += 1 + t
        rec.update(np.arange(n), z, labels)
        rec.end_epoch()
    return rec


@pytest.mark.parametrize(("n", "with_features"), [(500, True), (5000, False), (5000, True)])
def test_a_class_without_samples_is_named_up_front_where_the_count_is_per_class(n: int, with_features: bool) -> None:
    rng = np.random.default_rng(1)
    rec = _recorder(rng.integers(0, 3, n), 4)  # 4 outputs, class 3 never given
    x = rng.normal(size=(n, 8)) if with_features else None
    with pytest.raises(ValueError, match=r"class\(es\) \[3\] of num_classes=4 have no sample.*num_classes=3"):
        find_suspects(rec.dynamics(), features=x)


def test_a_small_set_without_features_counts_its_contradicted_samples_whatever_the_classes() -> None:
    """The contradicted count reads no per-class estimate: a class the model outputs but no sample
    is given keeps working there (as before the up-front check)."""
    rng = np.random.default_rng(1)
    rec = _recorder(rng.integers(0, 3, 500), 4)
    det = find_suspects(rec.dynamics())
    assert det.rule.startswith("contradicted-count") and det.flagged.sum() == det.n_hat


def test_a_tie_at_the_cut_is_said_in_the_rule_and_the_count_is_kept() -> None:
    n, y = 20, np.array([0] * 10 + [1] * 10)
    rec = Recorder(n, 2)
    for t in range(4):
        z = np.zeros((n, 2))
        z[np.arange(n), y] = 4.0
        z[0:4] = [-2.0, 2.0]  # 4 identical samples contradicted in every epoch
        z[4] = [40.0, 0.0] if t else [0.0, 60.0]  # contradicted once, with a huge loss
        rec.update(np.arange(n), z, y)
        rec.end_epoch()
    det = find_suspects(rec.dynamics())
    assert np.flatnonzero(det.flagged).tolist() == [0, 1, 2, 3, 4]  # the flagged set is as before
    assert det.n_hat == 4
    assert det.rule == "contradicted-count 4 (4 asked, 5 flagged: 4 samples tie at the cut, flagged all or none)"
    assert [f.name for f in dataclasses.fields(det)][:5] == ["name", "score", "flagged", "cutoff", "rule"]


def test_without_a_tie_the_rule_is_unchanged_and_n_hat_is_the_flagged_count() -> None:
    rec, _, x = _dynamics()
    det = find_suspects(rec.dynamics(), features=x)
    assert det.rule.endswith(f"-count {det.n_hat}") and det.flagged.sum() == det.n_hat and det.name == "single"


def test_samples_seen_only_in_an_epoch_never_closed_are_named() -> None:
    rng = np.random.default_rng(0)
    n, k = 100, 3
    y = rng.integers(0, k, n)
    rec = Recorder(n, k)
    for _ in range(3):
        rec.update(np.arange(90), rng.normal(size=(90, k)), y[:90])
        rec.end_epoch()
    rec.update(np.arange(n), rng.normal(size=(n, k)), y)  # 90..99 only here, and the epoch is never closed
    with pytest.raises(ValueError, match=r"10 samples were never recorded in a finished epoch \(sample ids \[90, 91,"
                                         r".*rec\.end_epoch\(\)"):  # fmt: skip
        find_suspects(rec.dynamics())
    fresh = Recorder(n, k)
    fresh.update(np.arange(n), rng.normal(size=(n, k)), y)
    with pytest.raises(ValueError, match=r"no finished epoch.*rec\.end_epoch\(\)"):
        find_suspects(fresh.dynamics())


@pytest.mark.parametrize("knn_k", [2.7, True, 0, -3, "10", None])
def test_knn_k_must_be_a_whole_number_of_neighbours(knn_k: object) -> None:
    rec = _recorder(np.arange(100) % 2, 2)
    with pytest.raises(ValueError, match=r"knn_k must be an int >= 1"):
        find_suspects(rec.dynamics(), features=np.random.default_rng(0).normal(size=(100, 4)), knn_k=knn_k)  # type: ignore[arg-type]


@pytest.mark.parametrize("knn_k", [99, 200])
def test_too_few_samples_for_knn_k_raise_instead_of_dropping_the_features(knn_k: int) -> None:
    rec = _recorder(np.arange(100) % 2, 2)
    x = np.random.default_rng(0).normal(size=(100, 4))
    with pytest.raises(ValueError, match=r"knn_k=\d+ neighbours per sample need at least .* got N=100: pass knn_k <= 98"):
        find_suspects(rec.dynamics(), features=x, knn_k=knn_k)
    assert find_suspects(rec.dynamics(), features=x, knn_k=98).rule  # N - 2 neighbours still work
    assert find_suspects(rec.dynamics(), knn_k=200).rule  # no features: knn_k is not used


def _scan_detection(rec: Recorder, x: np.ndarray) -> detectors.Detection:
    dyn = rec.dynamics()
    n = dyn.num_samples
    return detectors.detect("single", Evidence(dyn.labels, dyn.num_classes, single=RecordedRun(dyn, np.zeros(n, bool),
                                               dyn.num_classes), features=x))  # fmt: skip


def test_float64_features_are_read_as_float64() -> None:
    rng = np.random.default_rng(0)
    rec = _recorder(rng.integers(0, 3, 100), 3)
    big = rng.normal(size=(100, 4))
    big[7] *= 1e40  # finite in float64, inf in float32
    tiny = rng.normal(size=(100, 4)) * 1e-46  # zero in float32
    for x in (big, tiny):
        det = find_suspects(rec.dynamics(), features=x)
        np.testing.assert_array_equal(det.flagged, _scan_detection(rec, x).flagged)


def test_float32_and_low_precision_features_give_the_float32_result() -> None:
    rng = np.random.default_rng(0)
    rec = _recorder(rng.integers(0, 3, 300), 3, epochs=4)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    want = _scan_detection(rec, x)
    t = torch.tensor(x)
    for f in (x, t, t.clone().requires_grad_(True)):  # float32: as before
        got = find_suspects(rec.dynamics(), features=f)
        np.testing.assert_array_equal(got.flagged, want.flagged)
        assert got.rule == want.rule
    half = x.astype(np.float16)
    np.testing.assert_array_equal(find_suspects(rec.dynamics(), features=half).flagged,
                                  _scan_detection(rec, half.astype(np.float32)).flagged)  # fmt: skip
    bf = t.bfloat16()
    np.testing.assert_array_equal(find_suspects(rec.dynamics(), features=bf).flagged,
                                  _scan_detection(rec, bf.float().numpy()).flagged)  # fmt: skip
    with pytest.raises(ValueError, match=r"features must be real numbers, got dtype complex128"):
        find_suspects(rec.dynamics(), features=x.astype(complex))


def test_a_large_set_without_a_kept_softmax_says_to_keep_one() -> None:
    rec = _recorder(np.arange(5000) % 3, 3, epochs=2, keep_probs=0)
    with pytest.raises(ValueError, match=r"N=5000.*Recorder\(\.\.\., keep_probs=1\)"):
        find_suspects(rec.dynamics())


def test_the_docs_say_what_find_suspects_returns_and_needs() -> None:
    doc = find_suspects.__doc__ or ""
    for said in ("Detection(name,", "n_hat", "keep_probs=1", "N >= 5000", "duplicate", "end_epoch()", "num_classes"):
        assert said in doc, said
    summary = detectors.get("single").summary
    assert "lowest flagged" in summary and "flagged: on a small set the samples" not in summary


def test_samples_recorded_in_few_epochs_are_named_in_a_warning() -> None:
    """A sampler that dropped 30 samples after the first epoch: their scores average that epoch
    alone, and they were flagged silently."""
    rng = np.random.default_rng(1)
    n, k = 90, 3
    y = rng.integers(0, k, n)
    rec = Recorder(n, k)
    for epoch in range(6):
        ids = np.arange(n) if epoch == 0 else np.arange(30, n)
        rec.update(ids, rng.normal(size=(ids.size, k)), y[ids])
        rec.end_epoch()
    with pytest.warns(RuntimeWarning, match=r"30 of 90 samples .* \(1 of up to 6\): sample ids \[0, 1, 2,"):
        find_suspects(rec.dynamics())
    full, _, _ = _dynamics()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        find_suspects(full.dynamics())  # every sample in every epoch: no warning


def test_an_all_zero_feature_row_is_named_with_advice_the_caller_can_follow() -> None:
    """The kNN's message said to use metric='euclidean', which find_suspects does not take."""
    rec, _, x = _dynamics()
    x = x.copy()
    x[[3, 11]] = 0.0
    with pytest.raises(ValueError, match=r"all zeros for sample ids \[3, 11\].*before its last ReLU"):
        find_suspects(rec.dynamics(), features=x)


def test_find_suspects_groups_keep_a_twin_out_of_the_neighbours() -> None:
    from labeltrace.decide.own_run import one_run_evidence

    rng = np.random.default_rng(0)
    n, k = 120, 3
    true = rng.integers(0, k, n // 2)
    given = true.copy()
    wrong = rng.choice(n // 2, 10, replace=False)
    given[wrong] = (given[wrong] + 1) % k
    twins = np.repeat(np.arange(n // 2), 2)  # two near-identical views of each patient, one label
    x = (rng.normal(0, 1, (n // 2, 8)) + 3.0 * np.eye(k, 8)[true])[twins] + rng.normal(0, 1e-3, (n, 8))
    rec = Recorder(n, k)
    for _ in range(3):  # a network that memorised every label: it contradicts none, the neighbours do
        rec.update(np.arange(n), 4.0 * np.eye(k)[given[twins]] + rng.normal(0, 0.5, (n, k)), given[twins])
        rec.end_epoch()
    dyn, groups = rec.dynamics(), [f"p{i}" for i in twins]
    bad = np.isin(twins, wrong)
    share = {g is not None: one_run_evidence(dyn, features=x, groups=g).knn_shares()[np.arange(n), given[twins]]
             for g in (None, groups)}  # fmt: skip
    # without groups the twin (same wrong label) is each wrong sample's nearest neighbour and vouches for it
    assert share[True][bad].mean() < share[False][bad].mean() - 0.05
    plain, grouped = find_suspects(dyn, features=x), find_suspects(dyn, features=x, groups=groups)
    assert grouped.n_hat > plain.n_hat and "knn-count" in grouped.rule  # the twins no longer hide the wrong labels
    assert grouped.flagged.sum() > plain.flagged.sum()
    with pytest.raises(ValueError, match="groups has 3 entries for 120 samples"):
        find_suspects(dyn, features=x, groups=["a", "b", "c"])


def _long_tail(noise: float, seed: int = 0) -> tuple[Recorder, np.ndarray, np.ndarray]:
    """130 classes: two of 200 samples, the rest of 2 to 5; features that separate the true classes,
    a recording that agrees with the given labels; (recorder, features, wrong-label mask)."""
    rng = np.random.default_rng(seed)
    k = 130
    truth = np.repeat(np.arange(k), np.r_[[200, 200], rng.integers(2, 6, k - 2)])
    wrong = rng.random(truth.size) < noise
    y = truth.copy()
    y[wrong] = (truth[wrong] + rng.integers(1, k, int(wrong.sum()))) % k
    feats = np.eye(k)[truth] * 3 + rng.normal(size=(truth.size, k)) * 0.3
    rec = Recorder(truth.size, k)
    for t in range(3):  # a training that agrees with every given label, the wrong ones less surely
        z = rng.normal(size=(truth.size, k))
        z[np.arange(truth.size), y] += np.where(wrong, 3.0, 6.0) + t
        rec.update(np.arange(truth.size), z, y)
        rec.end_epoch()
    return rec, feats, wrong


def test_classes_smaller_than_knn_k_do_not_inflate_the_one_training_count() -> None:
    """A sample of a class of 3 has 2 neighbours of its class among its 10: its kNN posterior called
    every clean sample of such classes wrong, and find_suspects flagged 63 of a clean long-tailed
    set (226 for 80 wrong labels). Each sample's count now reads as many neighbours as its class has."""
    rec, feats, wrong = _long_tail(0.0)
    det = find_suspects(rec.dynamics(), features=feats)
    assert det.flagged.sum() == 0 and not wrong.any()
    rec, feats, wrong = _long_tail(0.1, seed=1)
    det = find_suspects(rec.dynamics(), features=feats)
    assert det.rule.startswith("knn-count") and det.n_hat < 1.5 * wrong.sum()
    assert (det.flagged & wrong).sum() >= 0.8 * wrong.sum()


def test_class_shares_read_each_sample_s_reach_with_groups_and_a_zero_row() -> None:
    """The neighbours a sample's class can fill (outside its group), and the set's shares for a
    sample without a direction; a set whose classes all reach knn_k reads the plain shares."""
    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(40, int), np.ones(40, int), np.full(3, 2)]
    x = np.eye(3)[y] * 5 + rng.normal(size=(y.size, 3)) * 0.1
    x[0] = 0.0
    groups = [f"g{i}" for i in range(y.size - 2)] + ["twin", "twin"]  # the small class's last two: one patient
    with pytest.warns(UserWarning, match="all zeros"):
        ev = Evidence(y, 3, features=x, groups=groups)
        shares = ev.knn_class_shares()
    assert np.allclose(shares[0], np.bincount(y) / y.size)
    assert np.allclose(shares[-3:, 2], 1.0)  # their own class's reach: 2, 1 and 1 neighbours
    assert np.allclose(shares[1:80], ev.knn_shares()[1:80])
    big = Evidence(y[:80], 2, features=x[:80] + 1)
    assert big.knn_class_shares() is big.knn_shares()
