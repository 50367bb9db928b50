"""A run directory never silently mixes two configurations (issue 11 §1): a scan into a directory
that holds another configuration is refused, naming what differs, or replaced with ``--force``;
the same command again re-scores the finished run without training; a resumed scan says from
which epoch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from labeltrace import rundir
from labeltrace.cli import main
from labeltrace.data import from_arrays
from labeltrace.record import Recorder
from labeltrace.scan import ScanConfig, scan
from labeltrace.train import protocol

torch.set_num_threads(1)
BASE = ["--model", "small-cnn", "--seed", "3", "--batch-size", "8", "--epochs", "2", "--detector", "sei",
        "--runs", "1", "--quiet"]  # fmt: skip


def _npz(path: Path, n: int = 96, seed: int = 0, size: int = 8) -> Path:
    d = load_digits()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(d.target), n, replace=False)
    imgs = (d.images[idx] / 16 * 255).astype(np.uint8)
    if size != 8:
        imgs = np.kron(imgs, np.ones((size // 8, size // 8), dtype=np.uint8))
    np.savez(path, train_images=imgs, train_labels=d.target[idx][:, None])
    return path


def test_another_noise_is_refused_naming_it_and_force_starts_fresh(tmp_path: Path, capsys) -> None:
    data = _npz(tmp_path / "d.npz")
    out = tmp_path / "R"
    assert main(["scan", str(data), "--out", str(out), *BASE]) == 0
    capsys.readouterr()
    assert main(["scan", str(data), "--out", str(out), *BASE, "--noise", "symmetric:0.3"]) == 2
    err = capsys.readouterr().err
    assert "another configuration" in err and "noise" in err and "--force" in err
    assert rundir.open_run(out).meta["noise"] is None  # the first scan's results are untouched
    assert main(["scan", str(data), "--out", str(out), *BASE, "--noise", "symmetric:0.3", "--force"]) == 0
    assert main(["scan", str(data), "--out", str(tmp_path / "fresh"), *BASE, "--noise", "symmetric:0.3"]) == 0
    forced, fresh = rundir.open_run(out), rundir.open_run(tmp_path / "fresh")
    for col in ("given_label_id", "score", "rank", "is_suspect"):
        np.testing.assert_array_equal(forced.column(col), fresh.column(col), err_msg=col)
    # the saved dynamics hold the labels the table says were given
    np.testing.assert_array_equal(forced.dynamics(0).labels, forced.column("given_label_id"))
    assert forced.meta["metrics"]["f1"] == fresh.meta["metrics"]["f1"]


def test_other_images_of_the_same_count_are_refused(tmp_path: Path, capsys) -> None:
    a, b = _npz(tmp_path / "a.npz", seed=0), _npz(tmp_path / "b.npz", seed=1)
    out = tmp_path / "R"
    assert main(["scan", str(a), "--out", str(out), *BASE]) == 0
    capsys.readouterr()
    assert main(["scan", str(b), "--out", str(out), *BASE]) == 2
    assert "differs in: data" in capsys.readouterr().err


@pytest.mark.parametrize("size", [12, 32])
def test_another_image_size_is_refused_not_mixed_or_crashed(tmp_path: Path, capsys, size: int) -> None:
    data = _npz(tmp_path / "d.npz", size=16)
    out = tmp_path / "R"
    assert main(["scan", str(data), "--out", str(out), *BASE]) == 0
    capsys.readouterr()
    assert main(["scan", str(data), "--out", str(out), *BASE, "--image-size", str(size)]) == 2
    err = capsys.readouterr().err
    assert "differs in: inputs" in err and "Traceback" not in err


def test_the_same_scan_again_rescored_without_training(tmp_path: Path, monkeypatch) -> None:
    ds = from_arrays(*_arrays())
    cfg = ScanConfig(model="small-cnn", epochs=2, seed=1, detector="sei", runs=2)
    first = scan(ds, tmp_path / "R", cfg, progress=False, log=lambda s: None)

    def no_training(*a, **k):
        raise AssertionError("a finished recording was retrained")

    monkeypatch.setattr(protocol, "train_recorded", no_training)
    logs: list[str] = []
    again = scan(ds, tmp_path / "R", cfg, progress=False, log=logs.append)
    assert any("already holds this finished scan" in s for s in logs)
    np.testing.assert_array_equal(first.detection.score, again.detection.score)
    # run.json keeps when the scan was made and how long it trained; the re-scoring is dated beside
    assert again.meta["created"] == first.meta["created"] and "rescored" in again.meta
    assert again.meta["timings"]["train"] == first.meta["timings"]["train"] and "train_now" in again.meta["timings"]


def test_a_scan_written_before_fingerprints_is_not_reused(tmp_path: Path) -> None:
    out = tmp_path / "R"
    out.mkdir()
    (out / "run.json").write_text("{}")
    with pytest.raises(rundir.RunDirConflict, match="without a fingerprint"):
        rundir.claim(out, {"a": 1})
    assert rundir.claim(out, {"a": 1}, force=True) == "new" and not (out / "run.json").exists()


def test_a_scan_refused_before_recording_leaves_no_claim(tmp_path: Path) -> None:
    """A scan that claimed the directory and then stopped at a bad setting recorded nothing: it
    releases its claim, so the corrected command takes the directory without --force; a scan
    that is still running (its fingerprint alone there) is not taken over."""
    out = tmp_path / "R"
    assert rundir.claim(out, {"clip_model": "missing"}) == "new"
    with pytest.raises(rundir.RunDirConflict, match="differs in: clip_model"):
        rundir.claim(out, {"clip_model": "right"})  # e.g. the first still extracting features
    rundir.release(out)
    assert not out.exists()
    assert rundir.claim(out, {"clip_model": "right"}) == "new"
    (out / rundir.RECORDING / "checkpoints").mkdir(parents=True)  # folders only: nothing recorded yet
    rundir.release(out)
    assert not out.exists()
    assert rundir.claim(out, {"clip_model": "right"}) == "new"
    (out / rundir.RECORDING / "checkpoints").mkdir(parents=True)
    (out / rundir.RECORDING / "checkpoints" / "state.pt").write_bytes(b"epoch 3")  # recorded: a resume's
    rundir.release(out)
    assert (out / rundir.FINGERPRINT).exists() and (out / rundir.RECORDING / "checkpoints" / "state.pt").exists()


def test_a_scan_failing_before_it_records_releases_its_claim(tmp_path: Path) -> None:
    x, y = _arrays()
    ds = from_arrays(x, y)
    cfg = ScanConfig(model="clip", clip_model=str(tmp_path / "no-such-clip"), epochs=1, detector="sei")
    with pytest.raises((ValueError, OSError)):
        scan(ds, tmp_path / "R", cfg, progress=False, log=lambda s: None)
    assert not (tmp_path / "R" / rundir.FINGERPRINT).exists()


def test_a_scan_stopped_by_ctrl_c_before_it_records_releases_its_claim_but_not_a_users_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the inputs were prepared (feature extraction: where a user notices a wrong
    setting) left the folder claimed, so the corrected command was refused; and a failed scan
    removed the empty --out folder the user had made."""
    import labeltrace.scan as scan_module

    def stop(*a: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(scan_module, "prepare_inputs", stop)
    x, y = _arrays()
    ds = from_arrays(x, y)
    cfg = ScanConfig(model="small-cnn", epochs=1, detector="sei", runs=1)
    with pytest.raises(KeyboardInterrupt):
        scan(ds, tmp_path / "R", cfg, progress=False, log=lambda s: None)
    assert not (tmp_path / "R").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(KeyboardInterrupt):
        scan(ds, mine, cfg, progress=False, log=lambda s: None)
    assert mine.is_dir() and not any(mine.iterdir())


def test_force_never_removes_a_folder_the_scan_does_not_write(tmp_path: Path) -> None:
    out = tmp_path / "R"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "model_epoch90.pt").write_bytes(b"mine")
    assert rundir.claim(out, {"a": 1}) == "new"
    (out / rundir.RUN_JSON).write_text("{}")
    assert rundir.claim(out, {"a": 2}, force=True) == "new"
    assert (out / "checkpoints" / "model_epoch90.pt").read_bytes() == b"mine"


def test_force_keeps_the_review_decisions_aside(tmp_path: Path) -> None:
    out = tmp_path / "R"
    assert rundir.claim(out, {"a": 1}) == "new"
    assert rundir.claim(out, {"a": 1}) == "resume"
    (out / "reviews.db").write_bytes(b"decisions")
    with pytest.warns(UserWarning, match="kept the earlier scan's review decisions aside as reviews.db.replaced-"):
        assert rundir.claim(out, {"a": 2}, force=True) == "new"  # a warning: said under --quiet too
    aside = list(out.glob("reviews.db.replaced-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"decisions" and not (out / "reviews.db").exists()


def test_a_new_scan_takes_back_set_aside_decisions_about_its_samples(tmp_path: Path) -> None:
    """A `scan --force` of other data by mistake, stopped at once, then the first scan's own command
    again: its 3 decisions stayed set aside for good, out of the review and every export."""
    out = tmp_path / "R"
    about_a = lambda db: db.read_bytes().startswith(b"A")  # noqa: E731 -- the decisions' binding, as bound_to reads it
    assert rundir.claim(out, {"scan": "A"}, reviews_fit=about_a) == "new"
    (out / rundir.RUN_JSON).write_text("{}")
    (out / "reviews.db").write_bytes(b"A: 3 decisions")
    (out / "reviews.db-wal").write_bytes(b"A: pending")
    assert rundir.claim(out, {"scan": "B"}, force=True, reviews_fit=lambda db: False) == "new"
    assert not (out / "reviews.db").exists()
    rundir.release(out)  # stopped before it recorded anything
    (out / "reviews.db.replaced-20200101T000000").write_bytes(b"B: an older scan's")  # not about A: stays aside
    logs: list[str] = []
    assert rundir.claim(out, {"scan": "A"}, reviews_fit=about_a, log=logs.append) == "new"
    assert (out / "reviews.db").read_bytes() == b"A: 3 decisions" and (out / "reviews.db-wal").read_bytes() == b"A: pending"
    assert [p.name for p in out.glob("reviews.db.replaced-*")] == ["reviews.db.replaced-20200101T000000"]
    assert any("took back the review decisions set aside as reviews.db.replaced-" in s for s in logs)


def test_force_removes_the_fiftyone_export_images_of_the_earlier_scan(tmp_path: Path) -> None:
    """The FiftyOne export writes an in-memory image once and reuses it: after --force the old
    scan's PNGs would have stood for the new scan's samples."""
    out = tmp_path / "R"
    assert rundir.claim(out, {"a": 1}) == "new"
    (out / rundir.FIFTYONE_IMAGES).mkdir()
    (out / rundir.FIFTYONE_IMAGES / "0000000.png").write_bytes(b"old image")
    (out / "notes.txt").write_text("mine")  # not the scan's: kept
    assert rundir.claim(out, {"a": 2}, force=True) == "new"
    assert not (out / rundir.FIFTYONE_IMAGES).exists() and (out / "notes.txt").read_text() == "mine"


def test_a_resumed_scan_says_from_which_epoch(tmp_path: Path, monkeypatch) -> None:
    ds = from_arrays(*_arrays())
    cfg = ScanConfig(model="small-cnn", epochs=4, seed=2, detector="sei", runs=1)

    class Killed(Exception):
        pass

    real_end = Recorder.end_epoch
    ends: list[int] = []

    def dies_after_two_epochs(self):  # noqa: ANN001
        if len(ends) == 3:  # three end_epoch calls passed and checkpointed; killed as the fourth epoch ends
            raise Killed
        ends.append(1)
        real_end(self)

    monkeypatch.setattr(Recorder, "end_epoch", dies_after_two_epochs)
    with pytest.raises(Killed):
        scan(ds, tmp_path / "R", cfg, progress=False, log=lambda s: None)
    monkeypatch.setattr(Recorder, "end_epoch", real_end)
    logs: list[str] = []
    resumed = scan(ds, tmp_path / "R", cfg, progress=False, log=logs.append)
    assert any("resuming after epoch 3 of 4" in s for s in logs), logs  # three epochs done, counted from 1
    fresh = scan(ds, tmp_path / "F", cfg, progress=False, log=lambda s: None)
    np.testing.assert_allclose(resumed.detection.score, fresh.detection.score, rtol=1e-5, atol=1e-6)


def _arrays() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return (d.images[:90] / 16).astype(np.float32), d.target[:90]


def test_force_removes_the_earlier_scans_report_and_exports_and_keeps_its_cleaned_labels(tmp_path: Path) -> None:
    out = tmp_path / "R"
    assert rundir.claim(out, {"a": 1}) == "new"
    (out / rundir.RUN_JSON).write_text("{}")
    for name in (rundir.REPORT_HTML, rundir.LABELSTUDIO_TASKS, rundir.LABELSTUDIO_CONFIG, "export.csv"):
        (out / name).write_text("old")
    (out / rundir.REPORT_PNG).mkdir()
    (out / "labels_cleaned.csv").write_text("path,label\n")
    (out / "labels_cleaned.unresolved.csv").write_text("id\n")
    (out / "my_report.html").write_text("mine")  # not a default name: the user's
    with pytest.warns(UserWarning, match="kept the earlier scan's cleaned labels aside") as said:
        assert rundir.claim(out, {"a": 2}, force=True) == "new"
    left = sorted(p.name for p in out.iterdir())
    assert rundir.REPORT_HTML not in left and rundir.REPORT_PNG not in left and "export.csv" not in left
    assert rundir.LABELSTUDIO_TASKS not in left and (out / "my_report.html").read_text() == "mine"
    assert [n for n in left if n.startswith("labels_cleaned.csv.replaced-")]
    assert [n for n in left if n.startswith("labels_cleaned.unresolved.csv.replaced-")]
    assert len(said) == 2  # the cleaned labels and their unresolved list


def test_a_second_scan_into_a_folder_being_written_is_refused_at_once(tmp_path: Path) -> None:
    """Two scans into one folder both ran; the second failed only after its training, naming the
    recorder's store, and two different configurations could both have claimed the folder."""
    out = tmp_path / "R"
    with rundir.writing(out) as made:
        assert made and out.is_dir()
        x, y = _arrays()
        cfg = ScanConfig(model="small-cnn", epochs=1, detector="sei", runs=1)
        with pytest.raises(rundir.RunDirConflict, match=r"another labeltrace command is using it now \(a scan, or a "):
            scan(from_arrays(x, y), out, cfg, progress=False, log=lambda s: None)
    assert not out.exists()  # made for the scan, left empty: removed
    out.mkdir()
    with rundir.writing(out) as made:
        assert not made
    assert out.is_dir()


def test_damaged_run_files_are_named_and_force_replaces_a_damaged_fingerprint(tmp_path: Path) -> None:
    """A cut-short fingerprint.json, run.json or dynamics file raised JSON's or zipfile's own
    error (no file named; a BadZipFile as a traceback), and --force could not replace a damaged
    fingerprint."""
    out = tmp_path / "R"
    x, y = _arrays()
    ds = from_arrays(x, y)
    cfg = ScanConfig(model="small-cnn", epochs=1, detector="sei", runs=1, seed=3, batch_size=8)
    scan(ds, out, cfg, progress=False, log=lambda s: None)
    run_json = out / rundir.RUN_JSON
    whole = run_json.read_bytes()
    run_json.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=rf"{run_json}: unreadable, damaged or cut short"):
        rundir.open_run(out)
    run_json.write_bytes(whole)
    npz = next((out / rundir.RECORDING).glob("run0*.npz"))
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(ValueError, match=rf"{npz}: unreadable"):
        rundir.recording_dir(out).load()
    fp = out / rundir.FINGERPRINT
    fp.write_text('{"model": "small-c')
    with pytest.raises(rundir.RunDirConflict, match="damaged fingerprint .*pass --force"):
        rundir.claim(out, {"a": 1})
    assert rundir.claim(out, {"a": 1}, force=True) == "new"


def test_a_killed_writes_temporaries_are_removed_when_the_folder_is_claimed_again(tmp_path: Path) -> None:
    out = tmp_path / "R"
    assert rundir.claim(out, {"a": 1}) == "new"
    left = [out / f"{rundir.SAMPLES}.oqxeawmb.tmp", out / f"{rundir.RUN_JSON}.x1.tmp"]
    for f in left:
        f.write_bytes(b"half")
    mine = out / "notes.x.tmp"  # not a name the scan writes
    mine.write_bytes(b"mine")
    queue = out / f"{rundir.QUEUE}.x2.tmp"  # `labeltrace queue` may be writing it now, without the scan's lock
    queue.write_bytes(b"being written")
    assert rundir.claim(out, {"a": 1}) == "resume"
    assert not any(f.exists() for f in left) and mine.exists() and queue.exists()


def test_atomic_writes_follow_the_umask_of_now(tmp_path: Path) -> None:
    """The umask read once at import let a later os.umask(0o077) go unheeded: cleaned labels and
    review files came out readable by every user."""
    import os
    import stat

    from labeltrace._io import atomic_write

    old = os.umask(0o077)
    try:
        f = atomic_write(tmp_path / "x.json", lambda fh: fh.write(b"{}"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    os.umask(0o022)
    try:
        assert stat.S_IMODE(atomic_write(tmp_path / "y.json", lambda fh: fh.write(b"{}")).stat().st_mode) == 0o644
    finally:
        os.umask(old)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_reading_names_a_damaged_file_but_not_an_out_of_memory_error(tmp_path: Path) -> None:
    from labeltrace._io import reading

    with pytest.raises(ValueError, match=r"x\.pt: unreadable, damaged or cut short \(RuntimeError: bad zip\); delete"):
        with reading(tmp_path / "x.pt", "; delete it"):
            raise RuntimeError("bad zip")
    with pytest.raises(torch.OutOfMemoryError):
        with reading(tmp_path / "x.pt"):
            raise torch.OutOfMemoryError("CUDA out of memory")


def test_a_refused_scan_leaves_the_folder_of_the_scan_that_holds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second scan that was refused removed the (still empty) folder the first had just made and
    held, when it had looked before the first made it."""
    out = tmp_path / "R"
    with rundir.writing(out):
        monkeypatch.setattr(Path, "exists", lambda self: False if self == out else Path.is_dir(self) or Path.is_file(self))
        with pytest.raises(rundir.RunDirConflict), rundir.writing(out):
            pass
        monkeypatch.undo()
        assert out.is_dir()


def test_force_clears_every_half_written_file_and_sets_none_aside(tmp_path: Path) -> None:
    out = tmp_path / "R"
    assert rundir.claim(out, {"a": 1}) == "new"
    (out / rundir.RUN_JSON).write_text("{}")
    stale = [out / f"{rundir.QUEUE}.ab12.tmp", out / f"{rundir.REVIEW_CONTEXT}.aa.tmp"]
    for f in stale:
        f.write_bytes(b"half")
    export = out / "labels_cleaned.csv.x9.tmp"  # not the scan's: left, and not set aside as review work
    export.write_bytes(b"half")
    assert rundir.claim(out, {"a": 2}, force=True) == "new"
    assert not any(f.exists() for f in stale) and export.exists() and not list(out.glob("*.replaced-*"))


def test_reading_passes_a_cpu_allocation_failure_through(tmp_path: Path) -> None:
    from labeltrace._io import reading

    with pytest.raises(RuntimeError, match="can't allocate memory"):
        with reading(tmp_path / "x.pt"):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory")


def test_the_refusal_names_the_setting_down_to_its_value(tmp_path: Path) -> None:
    """'differs in: train' left the user comparing two JSON texts to find --epochs 4 against 3."""
    import json

    out = tmp_path / "R"
    old = {"train": json.dumps({"train": {"epochs": 4, "lr": 0.05}}), "protocol": {"folds": 3, "runs": 2},
           "data": "a" * 24, "seed": 0}  # fmt: skip
    assert rundir.claim(out, old) == "new"
    new = {**old, "train": json.dumps({"train": {"epochs": 3, "lr": 0.05}}), "protocol": {"folds": 3},
           "data": "b" * 24}  # fmt: skip
    with pytest.raises(rundir.RunDirConflict) as err:
        rundir.claim(out, new)
    assert "differs in: data; protocol.runs (2, now absent); train.epochs (4, now 3)" in str(err.value)


def test_a_stopped_scan_names_the_command_that_resumes_it(tmp_path: Path, capsys, monkeypatch) -> None:
    """A user who stopped a scan and forgot its flags had only 'rerun the same command': the command
    was written at the scan's end, in run.json."""
    from labeltrace.train.checkpoint import Checkpoint

    data = _npz(tmp_path / "d.npz")
    out = tmp_path / "R"
    save = Checkpoint.save

    def stopped(self, *a, **k):  # Ctrl-C once the first epoch is saved
        save(self, *a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoint, "save", stopped)
    assert main(["scan", str(data), "--out", str(out), *BASE]) == 130
    capsys.readouterr()
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"run its command again, `labeltrace scan {data} --out {out} --model small-cnn --seed 3" in err
    monkeypatch.undo()
    assert main(["scan", str(data), "--out", str(out), *BASE]) == 0  # that command resumes it
    assert (out / "run.json").is_file()


def _holding(tmp_path: Path, code: str) -> subprocess.Popen[str]:
    """A second process that runs ``code`` (a `with` that holds the folder), says 'held', then waits
    for its stdin to close."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys\nfrom labeltrace import rundir, run_claim\n" + code
                             + "\n    print('held', flush=True)\n    sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_scan_and_a_command_writing_into_its_folder_exclude_each_other(tmp_path: Path) -> None:
    """`queue`, `report` and `export` took no hold of the folder: a `scan --force` started meanwhile
    removed their half-written file (a bare errno), or they wrote the first scan's queue or report into
    the second's folder after its claim. Now they share the folder with each other, not with a scan,
    and a refusal names the scan's process and command."""
    from runfactory import make_run

    from labeltrace.export import export_run
    from labeltrace.relabel.queue import write_queue
    from labeltrace.report import write_report

    rd = make_run(tmp_path / "w", n=20, k=3, seed=3)
    proc = _holding(tmp_path, f"with run_claim.using({str(rd)!r}):")  # a report being written
    try:
        with pytest.raises(rundir.RunDirConflict, match="another labeltrace command is using it now"):
            scan(from_arrays(*_arrays()), rd, ScanConfig(model="small-cnn", epochs=1, detector="sei", runs=1),
                 progress=False, log=lambda s: None, force=True)  # fmt: skip
        write_queue(rd, rd / "queue.parquet")  # another reader-writer meanwhile: fine
    finally:
        proc.communicate("")
    out = tmp_path / "R"
    rundir.claim(out, {"a": 1})
    proc = _holding(tmp_path, f"with rundir.writing({str(out)!r}):\n"  # the scan, training
                              f"    rundir.record_command({str(out)!r}, ['labeltrace', 'scan', 'data'])")
    (out / rundir.RUN_JSON).write_text((rd / rundir.RUN_JSON).read_text())  # (as if) finished: a reader would go on
    (out / rundir.SAMPLES).write_bytes((rd / rundir.SAMPLES).read_bytes())
    try:
        for write in (lambda: write_queue(out, out / "queue.parquet"), lambda: write_report(out),
                      lambda: export_run(out, "csv")):
            with pytest.raises(rundir.RunDirConflict, match=r"a scan is writing into it now; wait for it to end"):
                write()
        (out / rundir.RUN_JSON).unlink()  # unfinished: the scan's process and command are named
        with pytest.raises(ValueError, match=rf"a scan is writing into it now \(process {proc.pid}: labeltrace scan data"):
            rundir.open_run(out)
    finally:
        proc.communicate("")
    assert not list(out.glob("*.tmp")) and not (out / "queue.parquet").exists()


def test_files_written_as_one_batch_are_renamed_together_or_not_at_all(tmp_path: Path) -> None:
    """The cleaned labels (.csv beside .npy, the class list, the unresolved list) were renamed one by one
    as each was written: two exports at once, or one killed between two files, left a .csv saying
    label 5 beside a .npy saying 3. In a batch every file is written first, then all are renamed."""
    from labeltrace._io import atomic_batch, atomic_remove, atomic_write

    (tmp_path / "a.csv").write_text("old a")
    seen = []
    with atomic_batch():
        atomic_write(tmp_path / "a.csv", lambda fh: fh.write(b"new a"))
        seen.append((tmp_path / "a.csv").read_text())  # not yet renamed: the old file still there
        with atomic_batch():  # nested: the outer one renames
            atomic_write(tmp_path / "b.npy", lambda fh: fh.write(b"new b"))
        seen.append((tmp_path / "b.npy").exists())
    assert seen == ["old a", False]
    assert (tmp_path / "a.csv").read_text() == "new a" and (tmp_path / "b.npy").read_text() == "new b"
    with pytest.raises(RuntimeError, match="killed"), atomic_batch():
        atomic_write(tmp_path / "a.csv", lambda fh: fh.write(b"newer a"))
        raise RuntimeError("killed before the second file")
    assert (tmp_path / "a.csv").read_text() == "new a" and not list(tmp_path.glob("*.tmp"))
    (tmp_path / "b.classes.txt").write_text("old list")
    (tmp_path / "c.npy").mkdir()  # a rename that fails partway: the rest is cleaned, nothing removed before
    with pytest.raises(OSError), atomic_batch():
        atomic_write(tmp_path / "a.csv", lambda fh: fh.write(b"newest a"))
        atomic_remove(tmp_path / "b.classes.txt")
        atomic_write(tmp_path / "c.npy", lambda fh: fh.write(b"c"))
        atomic_write(tmp_path / "d.csv", lambda fh: fh.write(b"d"))
        assert (tmp_path / "b.classes.txt").exists()  # removed with the batch, not before
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "d.csv").exists()


def test_a_refused_second_hold_leaves_the_first_holders(tmp_path: Path) -> None:
    """A second writing() refused inside the first dropped the first's hold: the process then refused
    its own folder to a queue it wrote."""
    from runfactory import make_run

    from labeltrace.relabel.queue import write_queue

    rd = make_run(tmp_path, n=20, k=3, seed=3)
    with rundir.writing(rd):
        with pytest.raises(rundir.RunDirConflict), rundir.writing(rd):
            pass
        write_queue(rd, rd / "queue.parquet")  # this process holds the folder: its own commands go on


def test_a_killed_writers_temporary_file_goes_with_the_next_write(tmp_path: Path) -> None:
    """A SIGKILLed export left labelstudio_tasks.json.<random>.tmp (hundreds of MB for a large one) for
    good: only `scan --force` removed it. The next write of that file removes one untouched for an hour,
    never a live writer's."""
    import os
    import time

    from labeltrace._io import STALE_SECONDS, atomic_write

    stale, live = tmp_path / "tasks.json.0badc0de.tmp", tmp_path / "tasks.json.1234abcd.tmp"
    other = tmp_path / "report.html.0badc0de.tmp"
    for f in (stale, live, other):
        f.write_bytes(b"half written")
    old = time.time() - STALE_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    atomic_write(tmp_path / "tasks.json", lambda fh: fh.write(b"{}"))
    assert not stale.exists() and live.exists() and other.exists()  # another file's: its own write removes it


def test_force_keeps_an_older_decisions_file_about_the_same_images(tmp_path: Path) -> None:
    """A reviews.db written before stores kept their sample ids was set aside by `scan --force` of the
    very same images ('other samples or classes'), and its decisions left the cleaned labels. It is
    about the scan whose folder holds it: compared with that scan's ids before they are replaced."""
    import sqlite3

    from runfactory import make_run

    from labeltrace.relabel.runstore import run_store
    from labeltrace.relabel.store_file import bound_to

    rd = make_run(tmp_path, n=12, k=3, seed=4)
    run = rundir.open_run(rd)
    run_store(run).add(1, run.classes[0], reviewer="bob")
    with sqlite3.connect(rd / "reviews.db") as con:  # as an older version wrote it
        con.execute("DELETE FROM meta WHERE key = 'samples'")
    ids = run.column("external_id").tolist()
    assert not bound_to(rd / "reviews.db", classes=run.classes, ids=ids)  # its samples unknown
    assert not bound_to(rd / "reviews.db", classes=run.classes, ids=ids[::-1], held_ids=rundir.held_ids(rd))
    logs: list[str] = []

    def fits(db: Path) -> bool:
        return bound_to(db, classes=run.classes, ids=ids, held_ids=rundir.held_ids(rd))

    rundir.claim(rd, {"another": "setting"}, force=True, reviews_fit=fits, log=logs.append)
    assert (rd / "reviews.db").is_file() and not list(rd.glob("reviews.db.replaced-*"))
    assert any("kept the review decisions" in s for s in logs)


@pytest.mark.parametrize(("detector", "unused", "other"), [
    ("crossfit", ["--runs", "1"], ["--runs", "2"]),
    ("sei", ["--folds", "3"], []),
])  # fmt: skip
def test_a_setting_the_detector_does_not_use_does_not_block_the_same_scan_again(
        tmp_path: Path, capsys, detector: str, unused: list[str], other: list[str]) -> None:  # fmt: skip
    """``scan --runs 1`` under crossfit (which records no in-sample run: run.json's ``config.runs``
    is null) kept ``runs`` in the folder's fingerprint, so the same scan without it was refused:
    'differs in: protocol.runs (1, now 2)'; the same for ``--folds`` under sei. An unused setting
    now holds its default there: the scan is the finished one, re-scored."""
    data = _npz(tmp_path / "d.npz")
    out = tmp_path / "R"
    flags = ["--model", "small-cnn", "--seed", "3", "--batch-size", "8", "--epochs", "1", "--detector", detector]
    assert main(["scan", str(data), "--out", str(out), *flags, *unused]) == 0
    assert f"--detector {detector} does not read {' '.join(unused)}: not used" in capsys.readouterr().err  # said
    assert main(["scan", str(data), "--out", str(out), *flags, *other]) == 0
    assert "already holds this finished scan: results recomputed" in capsys.readouterr().err


def test_the_default_protocol_fingerprint_is_the_one_earlier_run_directories_hold() -> None:
    """Settings at their defaults keep the fingerprint's protocol keys (earlier folders stay valid)."""
    from labeltrace.scan_settings import fingerprint

    ds = from_arrays(*_arrays())
    for detector in ("crossfit", "sei", "cl", "knn_vote", "single"):
        fp = fingerprint(ds, ScanConfig(model="small-cnn", resolution=96, detector=detector), "small-cnn", None)
        assert {k: fp["protocol"][k] for k in ("runs", "folds", "aux_fraction", "suggest_last")} == {
            "runs": 2, "folds": 5, "aux_fraction": None, "suggest_last": 5}, detector
    used = ScanConfig(model="small-cnn", resolution=96, detector="sei", runs=1, suggest_last=3)
    assert fingerprint(ds, used, "small-cnn", None)["protocol"]["runs"] == 1  # a setting used stays
    assert fingerprint(ds, used, "small-cnn", None)["protocol"]["suggest_last"] == 3
    unused = ScanConfig(model="small-cnn", resolution=96, runs=1, aux_fraction=0.2, suggest_last=3)  # crossfit
    assert fingerprint(ds, unused, "small-cnn", None) == fingerprint(ds, ScanConfig(model="small-cnn", resolution=96),
                                                                     "small-cnn", None)  # fmt: skip


def test_a_forked_child_does_not_keep_a_scans_hold_on_its_folder(tmp_path: Path) -> None:
    """A streaming scan's decoding workers are forked while the scan holds its folder: a killed
    scan's orphaned workers kept the flock for seconds, and the same command run at once was refused
    as 'another labeltrace command is using it now' (an audit's finding)."""
    import fcntl
    import multiprocessing
    import os

    from labeltrace.run_claim import writing

    folder = tmp_path / "run"
    folder.mkdir()
    ctx = multiprocessing.get_context("fork")
    started = ctx.Event()
    with writing(folder):
        child = ctx.Process(target=_started_then_asleep, args=(started,))
        child.start()
        assert started.wait(30)  # past its fork: what it inherited is settled
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while the child held it
        finally:
            os.close(fd)
    finally:
        child.terminate()
        child.join()


def _started_then_asleep(started: object) -> None:
    import time

    started.set()  # type: ignore[attr-defined]
    time.sleep(30)
