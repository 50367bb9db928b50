"""Out-of-core dynamics: per-field (T, N) files, zero-copy snapshots, O(N) checkpoints, resume
after kill -9, refusal of files that no longer match a checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeltrace import Recorder
from labeltrace.record import FIELDS

SRC = str(Path(__file__).resolve().parents[1] / "src")


def feed(recs, zs, labels, seen=None, batch=4):
    """Feed the same epochs to every recorder in ``recs``."""
    n = len(labels)
    for t, z in enumerate(zs):
        ids = np.arange(n) if seen is None else np.flatnonzero(seen[t])
        for b in range(0, len(ids), batch):
            i = ids[b : b + batch]
            for r in recs:
                r.update(i, z[i], labels[i])
        for r in recs:
            r.end_epoch()


def assert_same_dynamics(a, b):
    assert (a.num_epochs, a.num_samples, a.streaming) == (b.num_epochs, b.num_samples, b.streaming)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.n_seen, b.n_seen)
    T = a.num_epochs
    for f in FIELDS:
        np.testing.assert_array_equal(a.mean(f), b.mean(f))
        np.testing.assert_array_equal(a.std(f), b.std(f))
        np.testing.assert_array_equal(a.at(f, -1), b.at(f, -1))
        if not a.streaming:
            np.testing.assert_array_equal(a.epochs(f), b.epochs(f))
            if T > 1:  # an empty window is refused
                np.testing.assert_array_equal(a.mean(f, slice(1, T)), b.mean(f, slice(1, T)))
            np.testing.assert_array_equal(a.std(f, slice(0, T, 2)), b.std(f, slice(0, T, 2)))
    if not a.streaming:
        np.testing.assert_array_equal(a.seen(), b.seen())
    np.testing.assert_array_equal(a.posterior(), b.posterior())
    np.testing.assert_array_equal(a.mean_posterior(), b.mean_posterior())
    for x, y in zip(a.forgetting_events(), b.forgetting_events(), strict=True):
        np.testing.assert_array_equal(x, y)


def random_epochs(seed, n, k, T, p_seen=0.8):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    zs = [rng.normal(size=(n, k)).astype(np.float32) * 3 for _ in range(T)]
    seen = rng.random((T, n)) < p_seen
    return labels, zs, seen


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 9), n=st.integers(1, 12), cap=st.integers(1, 4))
def test_directory_and_memory_record_the_same(tmp_path_factory, seed, T, n, cap):
    labels, zs, seen = random_epochs(seed, n, 3, T)
    d = tmp_path_factory.mktemp("dyn")
    files = Recorder(n, 3, directory=d / "store", max_epochs=cap)  # grows past max_epochs
    mem = Recorder(n, 3, max_epochs=cap)
    plain = Recorder(n, 3)
    feed([files, mem, plain], zs, labels, seen)
    assert_same_dynamics(files.dynamics(), plain.dynamics())
    assert_same_dynamics(mem.dynamics(), plain.dynamics())
    if T == 1:
        return
    # and the windowed reductions agree with a direct computation on the per-epoch values
    e = plain.dynamics().epochs("signed_entropy").astype(np.float64)[1:]
    cnt = (~np.isnan(e)).sum(axis=0)
    ref = np.where(cnt > 0, np.nansum(e, axis=0) / np.maximum(cnt, 1), np.nan)
    np.testing.assert_allclose(files.dynamics().mean("signed_entropy", slice(1, None)), ref, rtol=1e-12, equal_nan=True)


def test_snapshot_is_read_only_and_survives_later_epochs(tmp_path):
    labels, zs, _ = random_epochs(0, 10, 3, 12)
    for rec in (Recorder(10, 3, directory=tmp_path / "d", max_epochs=2), Recorder(10, 3, max_epochs=2)):
        feed([rec], zs[:3], labels)
        snap = rec.dynamics()
        before = {f: snap.epochs(f) for f in FIELDS}
        feed([rec], zs[3:], labels)  # grows the store several times
        assert snap.num_epochs == 3 and rec.dynamics().num_epochs == 12
        for f in FIELDS:
            np.testing.assert_array_equal(snap.epochs(f), before[f])
        with pytest.raises(ValueError, match="read-only"):
            snap.labels[0] = 1
        with pytest.raises(ValueError, match="read-only"):
            snap._values[0][0, 0] = 1.0  # the per-epoch arrays themselves are views, not copies


@pytest.mark.parametrize("where", ["memory", "files"])
def test_dynamics_copies_no_history(tmp_path, where):
    n, k, T = 20_000, 3, 40
    rec = Recorder(n, k, keep_probs=1, max_epochs=T, directory=tmp_path / "d" if where == "files" else None)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)).astype(np.float32)
    for _ in range(T):
        rec.update(np.arange(n), z, labels)
        rec.end_epoch()
    tracemalloc.start()
    try:
        dyn = rec.dynamics()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    history = len(FIELDS) * T * n * 4
    assert peak < history / 20, (peak, history)  # only O(N) bookkeeping (the labels' copy)
    assert dyn.epochs("loss").shape == (T, n)


def test_checkpoint_holds_no_history_and_does_not_grow(tmp_path):
    labels, zs, _ = random_epochs(2, 500, 4, 30)
    rec = Recorder(500, 4, directory=tmp_path / "dyn")
    sizes = []
    for t in range(30):
        feed([rec], [zs[t]], labels)
        if t in (9, 29):  # the softmax ring (keep_probs=5) is full at both
            sizes.append(rec.save(tmp_path / f"ck{t}.npz").stat().st_size)
    assert sizes[1] - sizes[0] < 30 * 8  # the row tokens only: 8 bytes per epoch
    assert "rows" not in rec.state_dict()
    with np.load(tmp_path / "ck29.npz", allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        assert meta["storage"]["kind"] == "files" and meta["storage"]["directory"] == "dyn"


def test_resume_from_files_equals_uninterrupted(tmp_path):
    labels, zs, seen = random_epochs(3, 30, 3, 8)
    full = Recorder(30, 3)
    feed([full], zs, labels, seen)
    part = Recorder(30, 3, directory=tmp_path / "dyn", max_epochs=4)
    feed([part], zs[:5], labels, seen[:5])
    ck = part.save(tmp_path / "ck.npz")
    del part
    again = Recorder.load(ck)
    feed([again], zs[5:], labels, seen[5:])
    assert_same_dynamics(again.dynamics(), full.dynamics())


def test_a_fresh_recorder_leaves_the_store_until_it_writes(tmp_path):
    labels, zs, _ = random_epochs(4, 6, 2, 3)
    rec = Recorder(6, 2, directory=tmp_path / "dyn")
    feed([rec], zs, labels)
    ck = rec.save(tmp_path / "ck.npz")
    # what a training loop does before it looks for a checkpoint: build a new recorder ...
    Recorder(6, 2, directory=tmp_path / "dyn")
    # ... which must not have touched the files the checkpoint points to
    np.testing.assert_array_equal(Recorder.load(ck).dynamics().epochs("loss"), rec.dynamics().epochs("loss"))


def test_checkpoint_moves_with_its_directory(tmp_path):
    labels, zs, _ = random_epochs(5, 6, 2, 3)
    rec = Recorder(6, 2, directory=tmp_path / "run" / "dynamics")
    feed([rec], zs, labels)
    ck = rec.save(tmp_path / "run" / "ckpt" / "rec.npz")
    want = rec.dynamics().epochs("margin")
    shutil.move(tmp_path / "run", tmp_path / "moved")
    got = Recorder.load(tmp_path / "moved" / "ckpt" / ck.name).dynamics()
    np.testing.assert_array_equal(got.epochs("margin"), want)


def test_rewritten_epochs_are_refused(tmp_path):
    labels, zs, _ = random_epochs(6, 8, 3, 6)
    rec = Recorder(8, 3, directory=tmp_path / "dyn")
    feed([rec], zs[:3], labels)
    old = rec.save(tmp_path / "old.npz")
    feed([rec], zs[3:5], labels)
    new = rec.save(tmp_path / "new.npz")
    # resuming from the older checkpoint rewrites epoch 4 (counted from 1) with other logits ...
    stale = Recorder.load(old)
    feed([stale], [zs[5]], labels)
    # ... so the newer checkpoint no longer matches its files
    with pytest.raises(ValueError, match=r"epochs \[4\] were rewritten"):
        Recorder.load(new)
    # a new recording in the same directory replaces the store
    feed([Recorder(8, 3, directory=tmp_path / "dyn")], [zs[0]], labels)
    with pytest.raises(ValueError, match="belong to another recording"):
        Recorder.load(old)


def test_truncated_or_missing_files_are_refused(tmp_path):
    labels, zs, _ = random_epochs(7, 8, 3, 3)
    rec = Recorder(8, 3, directory=tmp_path / "dyn", max_epochs=3)
    feed([rec], zs, labels)
    ck = rec.save(tmp_path / "ck.npz")
    del rec
    with open(tmp_path / "dyn" / "loss.f32", "r+b") as fh:
        fh.truncate(8 * 4)
    with pytest.raises(ValueError, match=r"loss\.f32 is missing or truncated"):
        Recorder.load(ck)
    shutil.rmtree(tmp_path / "dyn")  # the folder gone: named, with the way to point at it elsewhere
    with pytest.raises(ValueError, match=r"dyn, which is not a folder .*pass directory="):
        Recorder.load(ck)
    (tmp_path / "dyn").mkdir()  # a folder without the store
    with pytest.raises(ValueError, match="no readable dynamics store"):
        Recorder.load(ck)


@pytest.mark.parametrize("name", ["margin.f32", "seen.u8"])
def test_damaged_rows_are_refused_naming_the_epoch(tmp_path, name):
    """Bytes flipped in a dynamics file were read as recorded values (an AUM of -3e25), though
    every epoch row's CRC-32 is stored beside it."""
    labels, zs, _ = random_epochs(8, 16, 3, 4)
    rec = Recorder(16, 3, directory=tmp_path / "dyn", max_epochs=4)
    feed([rec], zs, labels)
    ck = rec.save(tmp_path / "ck.npz")
    del rec
    Recorder.load(ck)  # whole: loads
    f = tmp_path / "dyn" / name
    data = bytearray(f.read_bytes())
    row = len(data) // 4  # 4 epochs of capacity: the third epoch's row starts at half the file
    data[2 * row + 3] ^= 0x5A
    f.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"dyn are damaged: epochs \[3\] no longer hold"):
        Recorder.load(ck)


def test_rows_of_another_recording_are_not_called_damaged(tmp_path):
    from labeltrace.record.storage import FileStore

    labels, zs, _ = random_epochs(8, 16, 3, 2)
    rec = Recorder(16, 3, directory=tmp_path / "dyn", max_epochs=2)
    feed([rec], zs, labels)
    store, tokens = rec._store, rec._row_tokens.copy()
    feed([Recorder(16, 3, directory=tmp_path / "dyn", max_epochs=2)], zs, labels)  # replaces the store
    assert isinstance(store, FileStore)
    with pytest.raises(ValueError, match="now holds another recording's store"):
        store.check_rows(tokens)


def test_embedded_save_and_load_into_a_directory(tmp_path):
    labels, zs, seen = random_epochs(8, 9, 3, 4)
    rec = Recorder(9, 3, directory=tmp_path / "dyn")
    feed([rec], zs, labels, seen)
    emb = rec.save(tmp_path / "emb.npz", embed=True)
    want = rec.dynamics()
    with np.load(emb, allow_pickle=False) as z:
        assert z["rows"].shape == (len(FIELDS), 4, 9) and z["seen_rows"].shape == (4, 9)
    shutil.rmtree(tmp_path / "dyn")  # the embedded file stands alone
    back = Recorder.load(emb)
    assert_same_dynamics(back.dynamics(), want)
    # an embedded state loaded into a recorder with a directory moves its arrays there
    into = Recorder(9, 3, directory=tmp_path / "other")
    into.load_state_dict(back.state_dict())
    feed([into, back], [zs[0]], labels)
    assert (tmp_path / "other" / "loss.f32").exists()
    assert_same_dynamics(into.dynamics(), back.dynamics())


def test_mid_epoch_state_with_files(tmp_path):
    labels, zs, _ = random_epochs(9, 6, 2, 2)
    rec = Recorder(6, 2, directory=tmp_path / "dyn")
    ref = Recorder(6, 2)
    feed([rec, ref], zs[:1], labels)
    for r in (rec, ref):
        r.update([0, 1, 1], zs[1][[0, 1, 1]], labels[[0, 1, 1]])
    again = Recorder.load(rec.save(tmp_path / "mid.npz"))
    assert again.epoch_in_progress
    for r in (again, ref):
        r.update(np.arange(2, 6), zs[1][2:], labels[2:])
        r.end_epoch()
    assert_same_dynamics(again.dynamics(), ref.dynamics())


def test_old_format_state_still_loads():
    labels, zs, _ = random_epochs(10, 5, 3, 3)
    rec = Recorder(5, 3, keep_probs=2)
    feed([rec], zs, labels)
    rec.update([1], zs[0][[1]], labels[[1]])  # a pending update, stored densely in format 1
    st = rec.state_dict()
    meta = json.loads(str(st["meta"]))
    meta.update(format="labeltrace.recorder/1")
    del meta["storage"], meta["max_epochs"]
    old = {k: v for k, v in st.items() if not k.startswith("pending_")}
    old["meta"] = np.array(json.dumps(meta))
    old["acc"], old["cnt"], old["pacc"] = rec._acc, rec._cnt, rec._pacc
    back = Recorder.from_state_dict(old)
    for r in (back, rec):
        r.end_epoch()
    assert_same_dynamics(back.dynamics(), rec.dynamics())


def test_streaming_mode_takes_no_directory(tmp_path):
    with pytest.raises(ValueError, match="only mode='full'"):
        Recorder(3, 2, mode="streaming", directory=tmp_path)
    with pytest.raises(ValueError, match="max_epochs"):
        Recorder(3, 2, max_epochs=0)


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import numpy as np
    from labeltrace import Recorder

    root, kill_at, when = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    n, k, T = 40, 4, 6
    labels = np.random.default_rng(0).integers(0, k, n)
    ck = root / "ck.npz"
    rec = Recorder.load(ck) if ck.exists() else Recorder(n, k, directory=root / "dyn", max_epochs=2)
    for t in range(rec.num_epochs, T):
        rng = np.random.default_rng(100 + t)
        z = rng.normal(size=(n, k)) * 3
        order = rng.permutation(n)
        for b in range(0, n, 7):
            i = order[b : b + 7]
            rec.update(i, z[i], labels[i])
        if t == kill_at and when == "in-epoch":
            os.kill(os.getpid(), signal.SIGKILL)
        rec.end_epoch()
        if t == kill_at and when == "before-save":  # this epoch's rows are on disk, the state is not
            os.kill(os.getpid(), signal.SIGKILL)
        rec.save(ck)
        if t == kill_at and when == "after-save":
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize("when", ["in-epoch", "before-save", "after-save"])
def test_resume_after_kill_9(tmp_path, when):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    root = tmp_path / "run"
    root.mkdir()
    first = subprocess.run([sys.executable, str(script), str(root), "3", when], env=env, capture_output=True, check=False)
    assert first.returncode == -signal.SIGKILL, first.stderr.decode()
    second = subprocess.run([sys.executable, str(script), str(root), "-1", when], env=env, capture_output=True, check=False)
    assert second.returncode == 0, second.stderr.decode()
    got = Recorder.load(root / "ck.npz").dynamics()
    # the same epochs, uninterrupted, in memory
    n, k, T = 40, 4, 6
    labels = np.random.default_rng(0).integers(0, k, n)
    ref = Recorder(n, k)
    for t in range(T):
        rng = np.random.default_rng(100 + t)
        z = rng.normal(size=(n, k)) * 3
        rng.permutation(n)
        ref.update(np.arange(n), z, labels)
        ref.end_epoch()
    assert got.num_epochs == T
    np.testing.assert_array_equal(got.n_seen, np.full(n, T))
    for f in FIELDS:
        np.testing.assert_array_equal(got.epochs(f), ref.dynamics().epochs(f))
        np.testing.assert_array_equal(got.mean(f), ref.dynamics().mean(f))


def test_loading_an_embedded_file_reads_the_rows_once(tmp_path):
    n, k, T = 10_000, 2, 100  # the rows (24 MB) outweigh the O(N) state
    rec = Recorder(n, k, keep_probs=0)
    z = np.random.default_rng(11).normal(size=(n, k)).astype(np.float32)
    for _ in range(T):
        rec.update(np.arange(n), z, np.zeros(n, int))
        rec.end_epoch()
    path = rec.save(tmp_path / "emb.npz")
    rows = len(FIELDS) * T * n * 4
    tracemalloc.start()
    try:
        back = Recorder.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * rows, (peak, rows)  # not once more for a copy into the store
    feed([back, rec], [z], np.zeros(n, int))  # and it records on
    np.testing.assert_array_equal(back.dynamics().epochs("loss"), rec.dynamics().epochs("loss"))


def test_two_recorders_in_one_directory_never_read_each_others_rows(tmp_path):
    """A train and a val recorder given one directory: the second replaced the first's files and
    the first then read the second's rows as its own."""
    labels, zs, _ = random_epochs(9, 6, 3, 2)
    train, val = Recorder(6, 3, directory=tmp_path), Recorder(6, 3, directory=tmp_path)
    feed([train], zs[:1], labels)
    feed([val], zs[:1], labels)  # creates its own store there: the first one's files are gone
    with pytest.raises(ValueError, match=r"two recorders cannot share one directory.*give each Recorder its own"):
        feed([train], zs[1:], labels)
    with pytest.raises(ValueError, match=f"dynamics directory {tmp_path} now holds another recording's store"):
        train.dynamics()
    with pytest.raises(ValueError, match="cannot share one directory"):
        train.save(tmp_path / "train.npz")  # a state that would point to the other's rows
    assert val.dynamics().num_epochs == 1


def test_a_loaded_recorder_refuses_files_replaced_after_it_was_loaded(tmp_path):
    labels, zs, _ = random_epochs(10, 6, 3, 3)
    a = Recorder(6, 3, directory=tmp_path / "rows")
    feed([a], zs, labels)
    snap = a.dynamics()  # mapped before: keeps reading its own rows
    want = snap.epochs("margin")
    loaded = Recorder.load(a.save(tmp_path / "a.npz"))
    feed([Recorder(6, 3, directory=tmp_path / "rows")], zs[:1], labels)
    with pytest.raises(ValueError, match="now holds another recording's store"):
        loaded.dynamics()
    np.testing.assert_array_equal(snap.epochs("margin"), want)


def _finished(n: int = 4000, k: int = 50, epochs: int = 4, keep: int = 3) -> Recorder:
    rng = np.random.default_rng(21)
    rec, labels = Recorder(n, k, keep_probs=keep), rng.integers(0, k, n)
    for _ in range(epochs):
        rec.update(np.arange(n), rng.normal(size=(n, k)).astype(np.float32), labels)
        rec.end_epoch()
    return rec


def test_a_finished_recording_can_be_read_through_memory_maps(tmp_path):
    """`score` / `queue` / the review server held every kept softmax epoch (N × K float32 each) and
    its float64 sum in memory, copied up to three times while loading (849 MB for a 100k × 100
    run's queue); `Recorder.load(mmap=True)` maps them from the file, read as used."""
    rec = _finished(epochs=8, keep=8)
    path = rec.save(tmp_path / "r.npz")
    window = 8 * 4000 * 50 * 4 + 4000 * 50 * 8  # the kept softmax and its float64 sum: 8 MB
    peaks = {}
    for mmap in (False, True):
        tracemalloc.start()
        try:
            back = Recorder.load(path, mmap=mmap)
            peaks[mmap] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        got, want = back.dynamics(), rec.dynamics()
        np.testing.assert_array_equal(got.posterior(last=8), want.posterior(last=8))
        np.testing.assert_array_equal(got.mean_posterior(), want.mean_posterior())
        for f in FIELDS:
            np.testing.assert_array_equal(got.epochs(f), want.epochs(f))
    assert peaks[True] < peaks[False] - 0.8 * window, peaks  # (the recorder's own O(N K) state: in both)
    back = Recorder.load(path, mmap=True)  # and a mapped recorder records on like any other
    z = np.random.default_rng(22).normal(size=(4000, 50)).astype(np.float32)
    for r in (back, rec):
        r.update(np.arange(4000), z, rec.labels)
        r.end_epoch()
    np.testing.assert_array_equal(back.dynamics().posterior(last=3), rec.dynamics().posterior(last=3))


def test_a_mapped_load_reads_compressed_entries_and_names_a_cut_short_file(tmp_path):
    rec = _finished(n=3000)
    path = rec.save(tmp_path / "r.npz")
    with np.load(path, allow_pickle=False) as z:
        np.savez_compressed(tmp_path / "c.npz", **{k: z[k] for k in z.files})  # as another tool may rewrite it
    back = Recorder.load(tmp_path / "c.npz", mmap=True)
    np.testing.assert_array_equal(back.dynamics().posterior(last=3), rec.dynamics().posterior(last=3))
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 100):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"cut\.npz: unreadable, damaged or cut short"):
            Recorder.load(tmp_path / "cut.npz", mmap=True)


def test_a_mapped_entry_whose_header_does_not_fit_it_is_refused(tmp_path):
    """read_npz(mmap=True) trusted an entry's .npy header: a shape claiming twice the rows mapped the
    next entry's bytes as its own (np.load refuses the same file)."""
    import struct
    import zipfile

    from labeltrace.record.state import read_npz

    a = np.arange(300_000, dtype=np.float64).reshape(1000, 300)
    np.savez(tmp_path / "ok.npz", a=a, b=np.ones((1000, 300)))
    data = bytearray((tmp_path / "ok.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "ok.npz") as zf:
        info = zf.getinfo("a.npy")
    local = info.header_offset
    start = local + 30 + struct.unpack("<H", data[local + 26 : local + 28])[0] + struct.unpack("<H", data[local + 28 : local + 30])[0]
    at = data.index(b"(1000, 300)", start)
    data[at : at + 11] = b"(2000, 300)"
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    np.testing.assert_array_equal(read_npz(tmp_path / "ok.npz", mmap=True)["a"], a)
    with pytest.raises(ValueError, match=r"entry 'a\.npy': its header's shape \(2000, 300\) does not fill"):
        read_npz(tmp_path / "bad.npz", mmap=True)
