"""The cleaned label file (``review --export``): which runs can be written back, and how."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from runfactory import csv_rows, make_run, rescan_on

from labeltrace.export import export_run
from labeltrace.export.cleaned import export_labels
from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.runstore import run_store
from labeltrace.rundir import open_run


def _inject_noise(rd: Path) -> None:
    """Mark a run as scanned with ``--noise`` (what ``scan`` writes into run.json)."""
    meta = json.loads((rd / "run.json").read_text())
    meta["noise"] = {"spec": "symmetric:0.2", "realised_rate": 0.2, "n_flipped": 3}
    meta["config"]["noise"] = "symmetric:0.2"
    (rd / "run.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("kind", ["manifest", "folder", "arrays"])
def test_a_noise_injected_run_is_refused_before_anything_is_written(tmp_path: Path, kind: str) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=3, kind=kind, with_files=kind != "arrays")
    _inject_noise(rd)
    run = open_run(rd)
    flipped = int(run.column("is_noisy").argmax())
    run_store(run).add(flipped, run.column("suggested_label")[flipped], reviewer="ann")
    out = tmp_path / ("clean.csv")
    with pytest.raises(ValueError, match=r"--noise symmetric:0\.2.*--to csv"):
        export_labels(rd, out)
    assert not out.exists() and not (tmp_path / "clean.unresolved.csv").exists()


def test_a_class_named_like_an_action_is_told_apart_from_the_action(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=4, classes=["cat", "unsure", "skip"])
    st = run_store(open_run(rd))
    st.add(0, "unsure", kind="label", reviewer="ann")
    st.add(1, "unsure", kind="unsure", reviewer="ann")
    st.add(2, "skip", kind="label", reviewer="ann")
    st.add(3, "skip", kind="skip", reviewer="ann")
    rows = csv_rows(export_labels(rd, tmp_path / "clean.csv"))
    assert [r["review_decision"] for r in rows[:5]] == ["unsure", "unsure", "skip", "skip", ""]
    assert [r["review_status"] for r in rows[:5]] == ["consensus", "unsure", "consensus", "skip", ""]
    given = open_run(rd).column("given_label")
    assert [r["label"] for r in rows[:4]] == ["unsure", given[1], "skip", given[3]]
    t = pq.read_table(export_run(rd, "parquet", tmp_path / "t.parquet"))
    by_id = dict(zip(t.column("id").to_pylist(), t.column("review_status").to_pylist(), strict=True))
    assert [by_id[i] for i in range(5)] == ["consensus", "unsure", "consensus", "skip", None]


def test_the_table_export_credits_the_reviewers_whose_votes_made_the_consensus(tmp_path: Path
                                                                               ) -> None:  # fmt: skip
    rd = make_run(tmp_path, n=12, k=3, seed=5)
    st = run_store(open_run(rd))
    st.set_rule(ConsensusRule(agree=2))
    st.add(0, "cat", reviewer="ada", decided_at="2025-01-01T10:00:00.000+00:00")
    st.add(0, "bird", reviewer="eve", decided_at="2025-01-01T11:00:00.000+00:00")
    st.add(0, "cat", reviewer="bob", decided_at="2025-01-01T12:00:00.000+00:00")
    st.add(0, "unsure", reviewer="zed", decided_at="2025-01-01T13:00:00.000+00:00")  # the latest row
    st.add(1, "bird", reviewer="eve")  # no consensus: the latest decision's reviewer
    t = pq.read_table(export_run(rd, "parquet", tmp_path / "t.parquet")).to_pylist()
    row = {r["id"]: r for r in t}
    assert (row[0]["final_label"], row[0]["reviewer"]) == ("cat", "ada, bob")
    assert row[0]["reviewed_at"] == "2025-01-01T12:00:00.000+00:00"
    assert (row[1]["reviewer"], row[1]["review_status"]) == ("eve", "no consensus")


def test_class_names_a_manifest_reads_as_missing_are_named(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from labeltrace.cli import main

    rd = make_run(tmp_path, n=12, k=3, seed=6, classes=["cat", "none", "NA"])
    out = tmp_path / "clean.csv"
    assert main(["review", str(rd), "--export", str(out)]) == 0
    said = capsys.readouterr()
    text, err = said.out, said.err  # warnings on stderr, the written file and the command on stdout
    assert "warning: " in err and "'none', 'NA'" in err and "missing_values=()" in err and "warning" not in text
    assert "--out NEW_RUN_DIR" in text and text.rstrip().endswith("--no-missing-markers")
    assert {r["label"] for r in csv_rows(out)} == {"cat", "none", "NA"}  # written as they are
    assert main(["review", str(make_run(tmp_path / "b", n=12, k=3, seed=6)), "--export",
                 str(tmp_path / "b.csv")]) == 0  # fmt: skip
    assert "warning" not in capsys.readouterr().err


def test_the_printed_rescan_command_reads_the_cleaned_labels_back(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """The command `review --export` prints: numeric class folders (3 / 5) were read back as
    positions 0..5 and refused; the class list written beside the labels keeps them names."""
    import shlex

    from labeltrace.cli import _load_dataset, build_parser, main

    rd = make_run(tmp_path, n=12, k=2, seed=7, classes=["3", "5"])
    out = tmp_path / "clean.csv"
    assert main(["review", str(rd), "--export", str(out)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("to scan with the cleaned labels: "))
    argv = shlex.split(line.removeprefix("to scan with the cleaned labels: "))
    assert argv[:2] == ["labeltrace", "scan"] and "--classes" in argv
    assert (tmp_path / "clean.classes.txt").read_text() == "3\n5\n"
    ds, _ = _load_dataset(build_parser().parse_args(argv[1:]))
    run = open_run(rd)
    assert ds.classes == ("3", "5") and ds.labels.tolist() == run.column("given_label_id").tolist()


def test_the_rescan_command_names_a_manifest_s_own_columns(tmp_path: Path) -> None:
    """A manifest scanned with --path-column file --label-column dx keeps those columns in its
    cleaned copy; the printed command left the flags out and failed with 'missing columns'."""
    from labeltrace.export.rescan import rescan_command

    rd = make_run(tmp_path, n=12, k=3, seed=8, kind="manifest")
    meta = json.loads((rd / "run.json").read_text())
    meta["data"].update(path_column="file", label_column="dx", id_column="uid")
    (rd / "run.json").write_text(json.dumps(meta))
    cmd = rescan_command(open_run(rd), tmp_path / "clean.csv")
    assert cmd is not None and "--path-column file --label-column dx --id-column uid" in cmd


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_second_review_round_keeps_the_first_round_s_columns(tmp_path: Path, suffix: str) -> None:
    """A cleaned manifest scanned and reviewed again was refused: 'already has a column review_decision'."""
    rd = make_run(tmp_path, n=12, k=3, seed=9, kind="manifest")
    meta = json.loads((rd / "run.json").read_text())
    src = Path(meta["data"]["source"])
    t = pa.Table.from_pylist(csv_rows(src)) if src.suffix == ".csv" else pq.read_table(src)
    t = t.append_column("review_decision", pa.array(["round1"] * t.num_rows)).append_column(
        "review_status", pa.array(["consensus"] * t.num_rows))
    new_src = src.with_suffix(suffix)
    (pq.write_table(t, new_src) if suffix == ".parquet" else pacsv.write_csv(t, new_src))
    meta["data"]["source"] = str(new_src)
    (rd / "run.json").write_text(json.dumps(meta))
    st = run_store(open_run(rd))
    st.add(0, open_run(rd).classes[1], reviewer="ada")
    out = export_labels(rd, tmp_path / f"clean{suffix}")
    got = pq.read_table(out) if suffix == ".parquet" else pa.Table.from_pylist(csv_rows(out))
    assert got.column_names[-4:] == ["review_decision_1", "review_status_1", "review_decision", "review_status"]
    assert set(got.column("review_decision_1").to_pylist()) == {"round1"}


def test_a_class_the_review_empties_leaves_the_class_list_and_an_older_list_is_removed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """The printed command failed ('classes with fewer than 2 samples') when reviewers merged a class
    away; and a .classes.txt of an earlier export could be picked up."""
    import shlex

    from labeltrace.cli import _load_dataset, build_parser, main

    rd = make_run(tmp_path, n=12, k=3, seed=10, classes=["a", "b", "junk"])
    run = open_run(rd)
    st = run_store(run)
    for i in np.flatnonzero(run.column("given_label_id") == 2).tolist():
        st.add(int(i), "a", reviewer="ada")
    out = tmp_path / "clean.csv"
    assert main(["review", str(rd), "--export", str(out)]) == 0
    assert (tmp_path / "clean.classes.txt").read_text() == "a\nb\n"
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("to scan with"))
    ds, _ = _load_dataset(build_parser().parse_args(shlex.split(line.split(": ", 1)[1])[1:]))
    assert ds.classes == ("a", "b")
    m = make_run(tmp_path / "m", n=12, k=3, seed=10, kind="manifest")  # integer-safe list impossible: no list
    mrun = open_run(m)
    for i in np.flatnonzero(mrun.column("given_label_id") == 2).tolist():
        run_store(mrun).add(int(i), mrun.classes[0], reviewer="ada")
    (tmp_path / "m.classes.txt").write_text("stale\nlist\n")
    msgs: list[str] = []
    export_labels(m, tmp_path / "m.csv", report=msgs.append)
    assert not (tmp_path / "m.classes.txt").exists()
    assert any("left no sample in class" in x for x in msgs)


def test_a_class_the_review_leaves_with_one_sample_is_named_before_the_rescan_refuses_it(tmp_path: Path) -> None:
    """A class of two or three images (a long tail) with all but one relabelled: the export said nothing
    and printed a rescan command, which refused the labels ('classes with fewer than 2 samples')."""
    rd = make_run(tmp_path, n=12, k=3, seed=10, classes=["a", "b", "rare"])
    run = open_run(rd)
    rare = np.flatnonzero(run.column("given_label_id") == 2).tolist()
    assert len(rare) >= 2
    for i in rare[1:]:
        run_store(run).add(int(i), "a", reviewer="ada")
    msgs: list[str] = []
    export_labels(rd, tmp_path / "clean.csv", report=msgs.append)
    kept = str(run.column("path")[rare[0]])
    told = [x for x in msgs if "one sample" in x]
    assert len(told) == 1 and f"'rare' ({kept})" in told[0] and "fewer than 2 samples" in told[0]
    msgs.clear()
    run_store(run).add(int(rare[0]), "a", reviewer="ada")  # emptied: the class list leaves it out, no warning
    export_labels(rd, tmp_path / "clean.csv", report=msgs.append)
    assert not [x for x in msgs if "one sample" in x]


def test_the_rescan_command_repeats_the_scan_s_allowed_roots_pixel_limit_and_markers(tmp_path: Path) -> None:
    from labeltrace.export.rescan import rescan_command

    rd = make_run(tmp_path, n=12, k=3, seed=11, kind="manifest")
    meta = json.loads((rd / "run.json").read_text())
    root = meta["data"].get("data_root") or str(open_run(rd).data_root)
    meta["data"].update(allowed_roots=[str(Path(root).resolve()), "/srv/extra"], max_pixels=50_000_000,
                        missing_markers=False)  # fmt: skip
    (rd / "run.json").write_text(json.dumps(meta))
    cmd = rescan_command(open_run(rd), tmp_path / "clean.csv")
    assert cmd is not None and "--allow-root /srv/extra" in cmd and "--max-pixels 50000000" in cmd
    assert cmd.endswith("--no-missing-markers") and cmd.count("--allow-root") == 1


def test_class_folders_spelled_like_array_paths_are_still_image_files(tmp_path: Path) -> None:
    """A folder run whose class folders are named 'array:one' (legal on Linux and macOS) holds
    image files; the rescan command was withheld as if its samples were arrays."""
    from labeltrace.export.rescan import rescan_command

    rd = make_run(tmp_path, n=12, k=2, seed=9, kind="folder", classes=["array:one", "array:two"])
    run = open_run(rd)
    assert all(str(p).startswith("array:") for p in run.column("path"))
    assert rescan_command(run, tmp_path / "clean.csv") is not None
    arrays = make_run(tmp_path / "b", n=12, k=2, seed=9, kind="arrays", with_files=False)
    assert rescan_command(open_run(arrays), tmp_path / "b.csv") is None


def test_a_run_with_a_truth_column_writes_its_cleaned_labels(tmp_path: Path) -> None:
    """--truth-column records "known true labels" where --noise records its spec: the export took
    it for injected noise and refused, naming --noise."""
    rd = make_run(tmp_path, n=12, k=3, seed=3, kind="manifest")
    meta = json.loads((rd / "run.json").read_text())
    meta["noise"] = {"spec": "known true labels", "realised_rate": 0.25, "n_flipped": 3}
    (rd / "run.json").write_text(json.dumps(meta))
    run = open_run(rd)
    run_store(run).add(0, run.classes[1], reviewer="ann")
    rows = csv_rows(export_labels(rd, tmp_path / "clean.csv"))
    assert rows[0]["label"] == run.classes[1] and rows[0]["review_status"] == "consensus"


def test_the_rescan_command_skips_the_images_the_scan_skipped(tmp_path: Path) -> None:
    from labeltrace.export.rescan import rescan_command

    rd = make_run(tmp_path, n=12, k=3, seed=11, kind="manifest")
    assert "--on-bad-image" not in (rescan_command(open_run(rd), tmp_path / "clean.csv") or "")
    meta = json.loads((rd / "run.json").read_text())
    meta["data"]["skipped"] = [["benign/corrupt.png", "cannot identify image file"]]
    (rd / "run.json").write_text(json.dumps(meta))
    assert "--on-bad-image skip" in (rescan_command(open_run(rd), tmp_path / "clean.csv") or "")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_relabelled_sample_whose_manifest_row_is_gone_is_refused(tmp_path: Path, suffix: str) -> None:
    """The manifest edited after the scan (a row removed): the export reported success without the
    expert's relabel of that row's sample."""
    rd = make_run(tmp_path, n=10, k=3, seed=5, kind="manifest")
    meta = json.loads((rd / "run.json").read_text())
    src = Path(meta["data"]["source"])
    rows = csv_rows(src)
    run = open_run(rd)
    given = run.column("given_label_id")
    run_store(run).add(0, run.classes[(given[0] + 1) % 3], reviewer="ann")  # relabels sample 0
    run_store(run).add(1, "unsure", reviewer="ann")
    kept = pa.Table.from_pylist(rows[2:])  # samples 0 and 1 no longer in the manifest
    new_src = src.with_suffix(suffix)
    (pq.write_table(kept, new_src) if suffix == ".parquet" else pacsv.write_csv(kept, new_src))
    meta["data"]["source"] = str(new_src)
    (rd / "run.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"no row for the relabelled sample\(s\) 0 \(") as e:
        export_labels(rd, tmp_path / f"clean{suffix}")
    assert "sample(s) 0 (" in str(e.value) and " 1 (" not in str(e.value)  # an unsure changes no label
    assert not (tmp_path / f"clean{suffix}").exists()


def test_the_rescan_command_trains_the_model_the_scan_ran(tmp_path: Path) -> None:
    """Round 1 ran effnet-lite0 (picked by --model auto); the printed rescan probed again and got the
    small CNN, so the two rounds' counts (68 -> 78 flagged after 4 fixes) compared two models."""
    import shlex

    from labeltrace.cli import build_parser
    from labeltrace.export.rescan import rescan_command

    rd = make_run(tmp_path, n=12, k=3, seed=12, kind="manifest")
    meta = json.loads((rd / "run.json").read_text())
    meta["model"] = "effnet-lite0"
    meta["config"].update(model="auto", resolution=96, epochs=7, lr=0.01, augment=False, seed=3, csv=True,
                          device="cpu", detector="crossfit")  # fmt: skip
    (rd / "run.json").write_text(json.dumps(meta))
    cmd = rescan_command(open_run(rd), tmp_path / "clean.csv")
    assert cmd is not None
    args = build_parser().parse_args(shlex.split(cmd.replace("NEW_RUN_DIR", str(tmp_path / "r2")))[1:])
    assert (args.model, args.resolution, args.epochs, args.lr, args.augment, args.seed) == (
        "effnet-lite0", 96, 7, 0.01, False, 3)
    assert args.csv and args.device == "auto" and args.detector is None  # its tables kept, the machine not; the default detector (crossfit): not passed


def test_an_array_run_s_npy_export_names_the_csv_it_writes_beside_it(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """`review --export clean.npy` of an array run wrote clean.csv beside the ids too (replacing a
    clean.csv there) and said only "wrote clean.npy"."""
    from labeltrace.cli import main

    rd = make_run(tmp_path, n=12, k=2, seed=3, with_files=False)
    out = tmp_path / "clean.npy"
    assert main(["review", str(rd), "--export", str(out)]) == 0
    said = capsys.readouterr().out
    assert (tmp_path / "clean.csv").is_file() and f"wrote {out} and {tmp_path / 'clean.csv'}" in said
    assert np.load(out).tolist() == open_run(rd).column("given_label_id").tolist()


def test_the_rescan_command_keeps_the_scan_s_truth_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest scanned with --truth-column keeps that column in its cleaned copy, but the printed
    rescan command left the flag out: round 2 lost its detection metrics."""
    import shlex

    from PIL import Image
    from sklearn.datasets import load_digits

    from labeltrace.cli import main
    from labeltrace.export.rescan import rescan_command

    d = load_digits()
    rows = ["path,label,clean"]
    for i in range(60):
        Image.fromarray((d.images[i] / 16 * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{(d.target[i] + (i % 7 == 0)) % 10},{d.target[i]}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    flags = ["--detector", "sei", "--runs", "1", "--epochs", "1", "--model", "small-cnn", "--quiet"]
    assert main(["scan", str(tmp_path / "m.csv"), "--truth-column", "clean", "--out", str(tmp_path / "r"), *flags]) == 0
    assert open_run(tmp_path / "r").meta["data"]["truth_column"] == "clean"
    capsys.readouterr()
    assert main(["review", str(tmp_path / "r"), "--export", str(tmp_path / "clean.csv")]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("to scan with the cleaned labels: "))
    argv = shlex.split(line.removeprefix("to scan with the cleaned labels: ").replace("NEW_RUN_DIR", str(tmp_path / "r2")))
    assert argv[argv.index("--truth-column") + 1] == "clean"
    assert main(argv[1:]) == 0
    assert open_run(tmp_path / "r2").meta["metrics"] is not None  # round 2 measured against the known labels
    # a run written before run.json kept the column: its command says it
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    del meta["data"]["truth_column"]
    for spelled in (["--truth-column", "clean"], ["--truth-column=clean"], ["--truth", "clean"]):
        meta["command"] = ["labeltrace", "scan", str(tmp_path / "m.csv"), *spelled, "--out", "r"]
        (tmp_path / "r" / "run.json").write_text(json.dumps(meta))
        assert "--truth-column clean" in (rescan_command(open_run(tmp_path / "r"), tmp_path / "clean.csv") or ""), spelled
    meta["command"] = ["labeltrace", "scan", str(tmp_path / "m.csv"), "--out", "r"]
    (tmp_path / "r" / "run.json").write_text(json.dumps(meta))
    assert "--truth-column" not in (rescan_command(open_run(tmp_path / "r"), tmp_path / "clean.csv") or "")


@pytest.mark.parametrize(("native", "ran", "flag"), [
    (True, "float32", "--precision float32"),  # named float32 (or scanned before auto) on a CPU with native bfloat16
    (True, None, "--precision float32"),  # a run.json from before the field: float32
    (True, "bfloat16", None),  # auto would take it again
    (False, "float32", None),  # auto gives float32 here too
    (False, "bfloat16", "--precision bfloat16"),  # scanned on a CPU with native bfloat16, exported on one without
])
def test_the_rescan_command_trains_in_the_precision_the_scan_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  native: bool, ran: str | None, flag: str | None) -> None:  # fmt: skip
    """A scan named --precision float32 on a CPU with AMX: the printed rescan, left at auto, trained
    in bfloat16, and the two rounds' counts compared two trainings."""

    def edit(meta: dict) -> None:
        meta["model"] = "small-cnn"
        meta["config"].update(model="small-cnn", detector="crossfit")
        meta["train"] = {} if ran is None else {"precision": ran}

    cmd, args = rescan_on(tmp_path, monkeypatch, native=native, edit=edit)
    assert (flag in cmd) if flag else "--precision" not in cmd
    assert args.precision == (flag.split()[1] if flag else "auto")


def test_without_report_the_export_s_warnings_are_python_warnings_at_the_caller_s_line(tmp_path: Path) -> None:
    """``export_labels(run_dir)``'s default report dropped every message (a class left with one sample,
    decisions a scan set aside ...): they are UserWarnings now, as export_run's, pointing at this file."""
    rd = make_run(tmp_path, n=12, k=3, seed=10, classes=["a", "b", "rare"])
    run = open_run(rd)
    rare = np.flatnonzero(run.column("given_label_id") == 2).tolist()
    for i in rare[1:]:
        run_store(run).add(int(i), "a", reviewer="ada")
    (rd / "reviews.db.replaced-20240101").write_bytes(b"")  # decisions a scan with --force set aside
    with pytest.warns(UserWarning) as told:
        export_labels(rd, tmp_path / "clean.csv")
    texts = [str(w.message) for w in told]
    assert any(t.startswith("the review left one sample in class 'rare'") for t in texts), texts
    assert any("reviews.db.replaced-20240101" in t for t in texts), texts
    assert not [t for t in texts if t.startswith("warning:")]
    assert {w.filename for w in told} == {__file__}  # not a line inside labeltrace
    with pytest.warns(UserWarning, match="reviews.db.replaced-20240101") as said:  # export_run: the same helper
        export_run(rd, "csv", tmp_path / "t.csv")
    assert {w.filename for w in said} == {__file__}
