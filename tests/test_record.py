"""Recorder and Dynamics: exact values, missing epochs, repeats, resume, streaming, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax

from labeltrace import Recorder
from labeltrace.record import FIELDS

torch.set_num_threads(1)


def reference_quantities(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Independent numpy/scipy reference for one update."""
    logp = log_softmax(logits.astype(np.float64), axis=1)
    p = np.exp(logp)
    H = -(p * logp).sum(1)
    idx = np.arange(len(labels))
    other = logits.astype(np.float64).copy()
    other[idx, labels] = -np.inf
    correct = (logits[idx, labels] >= other.max(1)).astype(float)  # an exact tie agrees (the SEI code's rule)
    return {
        "entropy": H,
        "signed_entropy": np.where(correct > 0, H, -H),
        "correct": correct,
        "margin": logits[idx, labels] - other.max(1),
        "p_given": p[idx, labels],
        "loss": -logp[idx, labels],
    }


def run_epochs(rec: Recorder, logits_per_epoch, labels, batch=3, seen_masks=None):
    N = len(labels)
    for t, z in enumerate(logits_per_epoch):
        ids = np.arange(N) if seen_masks is None else np.flatnonzero(seen_masks[t])
        for b in range(0, len(ids), batch):
            i = ids[b : b + batch]
            rec.update(torch.as_tensor(i), torch.as_tensor(z[i]), torch.as_tensor(labels[i]))
        rec.end_epoch()
    return rec


def test_hand_computed_two_class():
    # sample 0: logits (2, 0), label 0 -> correct; sample 1: same logits, label 1 -> wrong
    z = np.array([[2.0, 0.0], [2.0, 0.0]], dtype=np.float32)
    rec = Recorder(2, 2)
    rec.update([0, 1], z, [0, 1])
    rec.end_epoch()
    d = rec.dynamics()
    p = np.exp(2) / (np.exp(2) + 1)
    H = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    np.testing.assert_allclose(d.at("entropy", 0), [H, H], rtol=1e-6)
    np.testing.assert_allclose(d.at("signed_entropy", 0), [H, -H], rtol=1e-6)
    np.testing.assert_allclose(d.at("margin", 0), [2.0, -2.0], rtol=1e-6)
    np.testing.assert_allclose(d.at("p_given", 0), [p, 1 - p], rtol=1e-6)
    np.testing.assert_allclose(d.at("loss", 0), [-np.log(p), -np.log(1 - p)], rtol=1e-5)
    np.testing.assert_array_equal(d.at("correct", 0), [1.0, 0.0])


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 12),
    k=st.integers(2, 6),
    t=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.01, 30.0),
)
def test_matches_reference(n, k, t, seed, scale):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    zs = [(rng.normal(size=(n, k)) * scale).astype(np.float32) for _ in range(t)]
    d = run_epochs(Recorder(n, k), zs, labels).dynamics()
    for f in FIELDS:
        ref = np.stack([reference_quantities(z, labels)[f] for z in zs])
        np.testing.assert_allclose(d.epochs(f), ref, rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(d.mean(f), ref.mean(0), rtol=2e-4, atol=2e-5)
    # entropy is bounded by log K and non-negative
    H = d.epochs("entropy")
    assert np.all(H >= 0) and np.all(H <= np.log(k) + 1e-5)


def test_extreme_logits_are_stable():
    z = np.array([[1e4, -1e4, 0.0], [-80.0, 80.0, 0.0]], dtype=np.float32)
    rec = Recorder(2, 3)
    rec.update([0, 1], z, [1, 1])
    rec.end_epoch()
    d = rec.dynamics()
    for f in FIELDS:
        assert np.all(np.isfinite(d.at(f, 0))), f
    assert d.at("loss", 0)[0] == pytest.approx(2e4, rel=1e-6)


def test_missing_epochs_excluded_not_zero():
    labels = np.array([0, 1])
    zs = [np.array([[3.0, 0.0], [0.0, 1.0]], np.float32)] * 3
    seen = np.array([[True, True], [False, True], [True, True]])
    d = run_epochs(Recorder(2, 2), zs, labels, seen_masks=seen).dynamics()
    ref = reference_quantities(zs[0], labels)
    # sample 0 seen twice with the same logits: mean equals the single-epoch value (not 2/3 of it)
    np.testing.assert_allclose(d.mean("signed_entropy")[0], ref["signed_entropy"][0], rtol=1e-6)
    np.testing.assert_array_equal(d.n_seen, [2, 3])
    assert np.isnan(d.epochs("entropy")[1, 0])
    assert np.isnan(d.at("entropy", 1)[0])


def test_never_seen_is_nan():
    rec = Recorder(3, 2)
    rec.update([0], np.zeros((1, 2)), [0])
    rec.end_epoch()
    d = rec.dynamics()
    assert np.isnan(d.mean("entropy")[2]) and d.labels[2] == -1


def test_repeated_sample_in_one_epoch_is_averaged():
    rec = Recorder(1, 2)
    z1 = np.array([[2.0, 0.0]], np.float32)
    z2 = np.array([[0.0, 1.0]], np.float32)
    rec.update([0], z1, [0])
    rec.update([0, 0], np.concatenate([z2, z2]), [0, 0])  # repeated within one batch too
    rec.end_epoch()
    d = rec.dynamics()
    r1, r2 = reference_quantities(z1, np.array([0])), reference_quantities(z2, np.array([0]))
    for f in FIELDS:
        np.testing.assert_allclose(d.at(f, 0)[0], (r1[f][0] + 2 * r2[f][0]) / 3, rtol=1e-5)
    assert d.n_seen[0] == 1


def test_forgetting_counts_and_never_learned():
    # label 0; correct pattern over epochs: sample0: 1,0,1,0 -> 2 events; sample1 never learned;
    # sample2: 1,1,1,1 -> 0; sample3 seen only in epochs 0 and 3: 1, (missing), (missing), 0 -> 1 event
    good, bad = [2.0, 0.0], [0.0, 2.0]
    pattern = {0: [good, bad, good, bad], 1: [bad] * 4, 2: [good] * 4, 3: [good, good, good, bad]}
    zs = [np.array([pattern[i][t] for i in range(4)], np.float32) for t in range(4)]
    seen = np.ones((4, 4), bool)
    seen[1:3, 3] = False
    d = run_epochs(Recorder(4, 2), zs, np.zeros(4, int), seen_masks=seen).dynamics()
    counts, never = d.forgetting_events()
    np.testing.assert_array_equal(counts, [2, 0, 0, 1])
    np.testing.assert_array_equal(never, [False, True, False, False])


def test_posterior_window():
    rec = Recorder(1, 2, keep_probs=2)
    for z in ([[5.0, 0.0]], [[0.0, 0.0]], [[0.0, 5.0]]):
        rec.update([0], np.array(z, np.float32), [0])
        rec.end_epoch()
    d = rec.dynamics()
    p = np.exp(5) / (1 + np.exp(5))
    np.testing.assert_allclose(d.posterior(), [[(0.5 + 1 - p) / 2, (0.5 + p) / 2]], rtol=1e-6)
    np.testing.assert_allclose(d.posterior(last=1), [[1 - p, p]], rtol=1e-6)
    with pytest.raises(ValueError, match="last must be an int >= 1"):
        d.posterior(last=3)


@pytest.mark.parametrize("mode", ["full", "streaming"])
def test_resume_equals_uninterrupted(tmp_path, mode):
    rng = np.random.default_rng(0)
    n, k, T = 20, 3, 6
    labels = rng.integers(0, k, n)
    zs = [rng.normal(size=(n, k)).astype(np.float32) * 3 for _ in range(T)]
    full = run_epochs(Recorder(n, k, mode=mode), zs, labels)
    part = run_epochs(Recorder(n, k, mode=mode), zs[:3], labels)
    path = part.save(tmp_path / "rec.npz")
    del part
    resumed = run_epochs(Recorder.load(path), zs[3:], labels)
    a, b = full.dynamics(), resumed.dynamics()
    assert b.num_epochs == T
    for f in FIELDS:
        np.testing.assert_array_equal(a.mean(f), b.mean(f))
        np.testing.assert_array_equal(a.std(f), b.std(f))
    np.testing.assert_array_equal(a.posterior(), b.posterior())
    np.testing.assert_array_equal(a.forgetting_events()[0], b.forgetting_events()[0])
    # state dicts round-trip exactly
    sa, sb = full.state_dict(), resumed.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)


def test_state_mid_epoch_is_kept(tmp_path):
    rec = Recorder(4, 2)
    rec.update([0, 1], np.array([[1.0, 0.0], [0.0, 1.0]]), [0, 0])
    path = rec.save(tmp_path / "mid")
    assert path.suffix == ".npz"
    again = Recorder.load(path)
    assert again.epoch_in_progress
    again.update([2, 3], np.array([[1.0, 0.0], [0.0, 1.0]]), [1, 1])
    again.end_epoch()
    np.testing.assert_array_equal(again.dynamics().n_seen, [1, 1, 1, 1])


def test_saved_file_loads_without_pickle(tmp_path):
    rec = Recorder(3, 2)
    rec.update([0, 1, 2], np.eye(3, 2), [0, 1, 1])
    rec.end_epoch()
    path = rec.save(tmp_path / "r.npz")
    with np.load(path, allow_pickle=False) as z:
        assert "meta" in z.files and z["rows"].dtype == np.float32


@pytest.mark.parametrize("name", ["epoch3.ckpt", "state"])
def test_load_reads_the_path_save_was_given(tmp_path, name):
    """save("epoch3.ckpt") writes epoch3.ckpt.npz; load("epoch3.ckpt") raised FileNotFoundError."""
    rec = Recorder(3, 2)
    rec.update([0, 1, 2], np.eye(3, 2), [0, 1, 1])
    rec.end_epoch()
    written = rec.save(tmp_path / name)
    assert written == tmp_path / f"{name}.npz"
    for path in (tmp_path / name, written):
        np.testing.assert_array_equal(Recorder.load(path).dynamics().n_seen, [1, 1, 1])


class _TwoProcesses:
    """A stand-in for torch.distributed with a 2-process group."""

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def is_initialized() -> bool:
        return True

    @staticmethod
    def get_world_size() -> int:
        return 2


def test_a_plain_recorder_under_several_processes_warns_once(monkeypatch, tmp_path):
    """Under torchrun a plain Recorder records this rank's shard only, and flagged without a word."""
    import sys
    import warnings

    monkeypatch.setitem(sys.modules, "torch.distributed", _TwoProcesses)
    rec = Recorder(3, 2)
    with pytest.warns(RuntimeWarning, match="runs 2 processes.*DistributedRecorder"):
        rec.update([0, 1], np.eye(2), [0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.update([2], np.eye(1, 2), [0])  # once per recorder
        Recorder(3, 2, local=True).update([0, 1], np.eye(2), [0, 1])  # gathered here, or one rank's own fit
        from labeltrace.train.distributed import LOCAL

        LOCAL.recorder(3, 2).update([0, 1], np.eye(2), [0, 1])  # the scan's rank-0-only fits
        loc = Recorder(3, 2, local=True)
        loc.update([0, 1], np.eye(2), [0, 1])
        loc.end_epoch()
        Recorder.from_state_dict(loc.state_dict(), local=True).update([2], np.eye(1, 2), [0])
        Recorder.load(loc.save(tmp_path / "loc"), local=True).update([2], np.eye(1, 2), [0])
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Recorder(3, 2).update([0, 1], np.eye(2), [0, 1])  # one process: silent


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 6), n=st.integers(1, 15))
def test_streaming_equals_full(seed, T, n):
    rng = np.random.default_rng(seed)
    k = 3
    labels = rng.integers(0, k, n)
    zs = [rng.normal(size=(n, k)).astype(np.float32) * 4 for _ in range(T)]
    seen = rng.random((T, n)) < 0.8
    full = run_epochs(Recorder(n, k), zs, labels, seen_masks=seen).dynamics()
    stream = run_epochs(Recorder(n, k, mode="streaming"), zs, labels, seen_masks=seen).dynamics()
    assert stream.streaming and not full.streaming
    for f in FIELDS:
        np.testing.assert_allclose(stream.mean(f), full.mean(f), rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(stream.std(f), full.std(f), rtol=1e-9, atol=1e-9, equal_nan=True)
        np.testing.assert_array_equal(stream.at(f, -1), full.at(f, -1))
    np.testing.assert_array_equal(stream.forgetting_events()[0], full.forgetting_events()[0])
    np.testing.assert_array_equal(stream.forgetting_events()[1], full.forgetting_events()[1])


def test_streaming_refuses_per_epoch_access():
    rec = Recorder(2, 2, mode="streaming")
    for _ in range(2):
        rec.update([0, 1], np.eye(2), [0, 1])
        rec.end_epoch()
    d = rec.dynamics()
    with pytest.raises(ValueError, match="streaming"):
        d.epochs("entropy")
    with pytest.raises(ValueError, match="streaming"):
        d.mean("entropy", slice(0, 1))
    with pytest.raises(ValueError, match="only the last epoch"):
        d.at("entropy", 0)


def test_merge_ranks_equals_single_recorder():
    rng = np.random.default_rng(1)
    n, k = 10, 3
    labels = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)).astype(np.float32)
    single = Recorder(n, k)
    single.update(np.arange(n), z, labels)
    single.end_epoch()
    r0, r1 = Recorder(n, k), Recorder(n, k)
    r0.update(np.arange(0, n, 2), z[0::2], labels[0::2])
    r1.update(np.arange(1, n, 2), z[1::2], labels[1::2])
    r0.merge([r1])
    r0.end_epoch()
    for f in FIELDS:
        np.testing.assert_allclose(r0.dynamics().mean(f), single.dynamics().mean(f), rtol=1e-6)


def test_accepts_grad_tensors_and_keeps_no_graph():
    w = torch.randn(4, 3, requires_grad=True)
    logits = torch.ones(2, 4) @ w
    rec = Recorder(2, 3)
    rec.update(torch.tensor([0, 1]), logits, torch.tensor([0, 2]))
    rec.end_epoch()
    assert w.grad is None
    assert np.isfinite(rec.dynamics().mean("loss")).all()


@pytest.mark.parametrize(
    ("ids", "logits", "labels", "match"),
    [
        ([0, 5], np.zeros((2, 3)), [0, 0], r"ids out of range.*5"),
        ([-1, 0], np.zeros((2, 3)), [0, 0], r"ids out of range.*-1"),
        ([0, 1], np.zeros((2, 3)), [0, 3], r"labels out of range.*sample ids \[1\]"),
        ([0, 1], np.zeros((2, 4)), [0, 0], r"shape"),
        ([0, 1], np.zeros((3, 3)), [0, 0], r"shape"),
        ([0, 1], np.zeros((2, 3)), [0], r"labels has 1"),
        ([[0, 1]], np.zeros((2, 3)), [0, 0], r"1-D"),
        ([0.5, 1], np.zeros((2, 3)), [0, 0], r"integers"),
        ([0, 1], np.array([[0, np.nan, 0], [0, 0, 0]]), [0, 0], r"NaN or Inf logits for sample ids \[0\]"),
        ([3, 1], np.array([[0, 0, 0], [np.inf, 0, 0]]), [0, 0], r"NaN or Inf logits for sample ids \[1\]"),
    ],
)
def test_bad_input_raises(ids, logits, labels, match):
    rec = Recorder(4, 3)
    with pytest.raises(ValueError, match=match):
        rec.update(ids, logits, labels)


def test_label_change_is_an_error():
    rec = Recorder(2, 2)
    rec.update([0], np.zeros((1, 2)), [0])
    with pytest.raises(ValueError, match="label of a sample changed.*0"):
        rec.update([0], np.zeros((1, 2)), [1])


def test_bad_constructor_and_state():
    with pytest.raises(ValueError):
        Recorder(0, 2)
    with pytest.raises(ValueError):
        Recorder(3, 1)
    with pytest.raises(ValueError):
        Recorder(3, 2, mode="lazy")  # type: ignore[arg-type]
    rec = Recorder(3, 2)
    with pytest.raises(ValueError, match="does not match"):
        Recorder(4, 2).load_state_dict(rec.state_dict())
    with pytest.raises(ValueError, match="not a labeltrace recorder state"):
        rec.load_state_dict({})


@pytest.mark.parametrize("mode", ["full", "streaming"])
def test_mean_posterior_over_all_epochs(mode):
    rec = Recorder(2, 2, keep_probs=1, mode=mode)
    zs = ([[5.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 5.0], [0.0, 0.0]])
    for t, z in enumerate(zs):
        ids = [0, 1] if t != 1 else [0]  # sample 1 unseen in epoch 1
        rec.update(ids, np.array(z, np.float32)[ids], [0] * len(ids))
        rec.end_epoch()
    p = np.exp(5) / (1 + np.exp(5))
    mp = rec.dynamics().mean_posterior()
    np.testing.assert_allclose(mp[0], [(p + 0.5 + 1 - p) / 3, (1 - p + 0.5 + p) / 3], rtol=1e-6)
    np.testing.assert_allclose(mp[1], [0.5, 0.5], rtol=1e-6)


def test_merge_refuses_a_recorder_that_keeps_no_softmax():
    """Its zero softmax sums were counted as seen: the merged posterior rows summed to 0."""
    a, b = Recorder(4, 2, keep_probs=1), Recorder(4, 2, keep_probs=0)
    a.update(torch.tensor([0, 1]), torch.tensor([[2.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 0]))
    b.update(torch.tensor([2, 3]), torch.tensor([[2.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="keep the softmax or none"):
        a.merge([b])
    c = Recorder(4, 2, keep_probs=1)
    c.update(torch.tensor([2, 3]), torch.tensor([[2.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 0]))
    a.merge([c])
    a.end_epoch()
    np.testing.assert_allclose(a.dynamics().posterior().sum(1), 1.0)


def test_epochs_of_chosen_ids_refuses_ids_that_are_no_samples():
    """ids=[-1] read the last sample and 1.7 sample 1; N raised a bare IndexError."""
    rec = Recorder(3, 2)
    rec.update(torch.tensor([0, 1, 2]), torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 0.0]]), torch.tensor([0, 0, 0]))
    rec.end_epoch()
    d = rec.dynamics()
    np.testing.assert_array_equal(d.epochs("margin", ids=[2, 0]), d.epochs("margin")[:, [2, 0]])
    for bad, what in (([-1], "out of range"), ([1.7], "fractional"), ([3], "out of range")):
        with pytest.raises(ValueError, match=what):
            d.epochs("margin", ids=bad)


def test_an_exact_tie_agrees_whatever_the_order_of_the_classes():
    """`correct` used the first maximum while the SEI sign used margin >= 0: on a tie, forgetting
    events and accuracy changed when the classes were listed in another order."""
    out = []
    for z, label in (([[0.0, 2.0], [1.0, 1.0]], 1), ([[2.0, 0.0], [1.0, 1.0]], 0)):  # the same, classes swapped
        zs = [np.array([row], dtype=np.float32) for row in z]
        d = run_epochs(Recorder(1, 2), zs, np.array([label])).dynamics()
        out.append((d.mean("correct")[0], d.forgetting_events()[0][0], d.mean("signed_entropy")[0]))
    assert out[0] == out[1] and out[0][0] == 1.0 and out[0][1] == 0


def test_an_epoch_window_selecting_no_epoch_is_refused():
    """slice(10, 20) of 4 epochs gave every sample a NaN score, without a word."""
    from labeltrace.score import trajectory as scores

    rec = Recorder(3, 2)
    for _ in range(4):
        rec.update([0, 1, 2], np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]), [0, 0, 1])
        rec.end_epoch()
    d = rec.dynamics()
    with pytest.raises(ValueError, match=r"epoch window 10:20 selects none of the 4 recorded epochs \(0\.\.3\)"):
        scores.compute("sei", d, epochs=slice(10, 20))
    with pytest.raises(ValueError, match="epoch window 2:2 selects none"):
        d.std("margin", epochs=slice(2, 2))
    for bad in (slice(0, 1.5), slice(0, 3, 0)):  # range()'s TypeError / ValueError, in its words
        with pytest.raises(ValueError, match=r"the epoch window must be a slice of whole numbers with a non-zero step"):
            scores.compute("sei", d, epochs=bad)
    np.testing.assert_array_equal(scores.compute("sei", d, epochs=slice(-2, None)), scores.compute("sei", d, epochs=slice(2, 4)))


def test_a_recorder_goes_into_a_torch_checkpoint_beside_the_model(tmp_path) -> None:
    """rec.state_dict() beside a model's weights: torch.load (weights_only by default since torch
    2.6) refused its numpy arrays (UnpicklingError)."""
    rng = np.random.default_rng(0)
    rec = Recorder(30, 3)
    for _ in range(2):
        rec.update(np.arange(30), rng.normal(size=(30, 3)), np.arange(30) % 3)
        rec.end_epoch()
    rec.update(np.arange(10), rng.normal(size=(10, 3)), np.arange(10) % 3)  # an epoch in progress
    model = torch.nn.Linear(4, 3)
    torch.save({"model": model.state_dict(), "recorder": rec.state_dict(tensors=True)}, tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt")  # weights_only=True
    back = Recorder.from_state_dict(state["recorder"])
    again = Recorder(30, 3)
    again.load_state_dict(state["recorder"])
    for r in (back, again):
        assert r.num_epochs == 2 and r.epoch_in_progress
        r.end_epoch()
    rec.end_epoch()
    for r in (back, again):
        for f in ("loss", "margin", "correct"):
            np.testing.assert_array_equal(r.dynamics().epochs(f), rec.dynamics().epochs(f))
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|numpy"):  # the plain form: refused there
        torch.save({"recorder": rec.state_dict()}, tmp_path / "plain.pt")
        torch.load(tmp_path / "plain.pt")


def test_a_recorder_saved_mid_epoch_says_so_when_loaded(tmp_path) -> None:
    """A loop that restarts the epoch from its start's model checkpoint averaged the loaded pending
    updates with the redone ones, silently."""
    import warnings

    rec = Recorder(12, 2)
    rec.update(np.arange(12), np.zeros((12, 2)), np.arange(12) % 2)
    rec.end_epoch()
    rec.save(tmp_path / "between.npz")
    rec.update(np.arange(5), np.ones((5, 2)), np.arange(5) % 2)
    rec.save(tmp_path / "mid.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not Recorder.load(tmp_path / "between.npz").epoch_in_progress
    with pytest.warns(UserWarning, match=r"mid\.npz was saved mid-epoch, with 5 samples' updates of epoch 2 \(counted from 1\) pending.*"
                                         r"rec\.clear_pending\(\)"):  # fmt: skip
        back = Recorder.load(tmp_path / "mid.npz")
    back.clear_pending()
    assert not back.epoch_in_progress


def test_a_lightning_callbacks_checkpoint_entry_given_as_a_recorder_state_says_where_the_state_is() -> None:
    """The README names a Lightning checkpoint's recorder `ckpt["callbacks"]["RecorderCallback"]`:
    that entry is the callback's ({"recorder": ..., "pending_epoch": ...}), and
    Recorder.from_state_dict(entry) said only "not a labeltrace recorder state: 'meta'"."""
    rec = Recorder(4, 2)
    rec.update(np.arange(4), np.zeros((4, 2)), np.arange(4) % 2)
    rec.end_epoch()
    entry = {"recorder": rec.state_dict(tensors=True), "pending_epoch": -1}
    with pytest.raises(ValueError, match=r"a RecorderCallback's checkpoint entry.*\[\"recorder\"\]"):
        Recorder.from_state_dict(entry)
    assert Recorder.from_state_dict(entry["recorder"]).num_epochs == 1
    with pytest.raises(ValueError, match=r"not a labeltrace recorder state: no 'meta' entry \(it holds 'weights'\)"):
        Recorder.from_state_dict({"weights": np.zeros(2)})
