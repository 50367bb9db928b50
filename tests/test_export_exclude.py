"""The cleaned-label export of a review that excluded samples as of no class: a folder's or a
manifest's rows left out, an array run's ``.npy`` kept aligned (-1), the ``.excluded.csv`` list
(spreadsheet-safe), what the export says, and the rescan command on the result."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
from runfactory import csv_rows, make_run

from labeltrace.export.cleaned import export_labels
from labeltrace.export.excluded import excluded_path
from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.runstore import run_store
from labeltrace.rundir import open_run


def _exclude(rd: Path, *ids: int, who: str = "ada") -> None:
    st = run_store(open_run(rd))
    for i in ids:
        st.add(int(i), "exclude", kind="exclude", reviewer=who)


@pytest.mark.parametrize("kind", ["folder", "manifest"])
def test_a_folders_or_manifests_excluded_rows_are_left_out_and_listed(tmp_path: Path, kind: str) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=2, kind=kind)  # type: ignore[arg-type]
    run = open_run(rd)
    other = run.classes[(int(run.column("given_label_id")[4]) + 1) % 3]
    _exclude(rd, 2, 7)
    run_store(run).add(4, other, reviewer="ada")
    msgs: list[str] = []
    out = export_labels(rd, tmp_path / "clean.csv", report=msgs.append)
    rows = csv_rows(out)
    paths = [str(p) for p in run.column("path")]
    assert len(rows) == 10 and paths[2] not in {r["path"] for r in rows} and paths[7] not in {r["path"] for r in rows}
    assert next(r for r in rows if r["path"] == paths[4])["label"] == other
    listed = csv_rows(excluded_path(out))
    assert [(int(r["id"]), r["path"], r["reviewers"]) for r in listed] == [(2, paths[2], "ada"), (7, paths[7], "ada")]
    assert [r["given_label"] for r in listed] == [run.classes[int(g)] for g in run.column("given_label_id")[[2, 7]]]
    told = [m for m in msgs if "excluded as of no class" in m]
    assert told == [f"2 samples excluded as of no class: left out of {out}; listed in {excluded_path(out)}"]


def test_an_array_runs_npy_stays_aligned_with_the_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labeltrace.cli import main

    rd = make_run(tmp_path, n=12, k=3, seed=3, with_files=False)
    given = open_run(rd).column("given_label_id")
    _exclude(rd, 5)
    out = tmp_path / "clean.npy"
    assert main(["review", str(rd), "--export", str(out)]) == 0
    text = capsys.readouterr().out
    labels = np.load(out)
    assert labels.shape == (12,) and labels[5] == -1 and (np.delete(labels, 5) == np.delete(given, 5)).all()
    rows = csv_rows(out.with_suffix(".csv"))
    assert len(rows) == 12 and rows[5]["label_id"] == "-1" and rows[5]["label"] == ""
    assert rows[5]["review_status"] == "excluded" and rows[5]["review_decision"] == "exclude"
    assert (f"1 sample excluded as of no class: kept in {out} as label id -1 (no label name) so that its rows "
            "stay aligned with the images") in text
    assert "1 of 12 samples have a decision (a skip too), 0 labels changed, 1 excluded\n" in text
    assert [int(r["id"]) for r in csv_rows(excluded_path(out))] == [5]


def test_an_exclude_short_of_votes_keeps_its_label_and_is_listed_unresolved(tmp_path: Path) -> None:
    from labeltrace.export.cleaned import unresolved_path

    rd = make_run(tmp_path, n=12, k=3, seed=2)
    run_store(open_run(rd)).set_rule(ConsensusRule(agree=2))
    _exclude(rd, 3)
    out = export_labels(rd, tmp_path / "clean.csv")
    assert len(csv_rows(out)) == 12 and csv_rows(excluded_path(out)) == []  # the header alone
    assert excluded_path(out).read_text().startswith('"id","external_id","path","given_label"')
    listed = csv_rows(unresolved_path(out))
    assert [(r["id"], r["status"], r["votes"]) for r in listed] == [("3", "no consensus", "(exclude): ada")]


def test_the_excluded_list_is_safe_in_a_spreadsheet(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=2, seed=2, classes=["=HYPERLINK(1)", "cat"], kind="manifest")
    i = int(np.flatnonzero(open_run(rd).column("given_label_id") == 0)[0])  # given "=HYPERLINK(1)"
    _exclude(rd, i, who="+cmd")
    out = export_labels(rd, tmp_path / "clean.csv")
    row = csv_rows(excluded_path(out))[0]
    assert row["reviewers"] == "'+cmd" and row["given_label"] == "'=HYPERLINK(1)"


def test_the_rescan_command_reads_the_result_and_a_class_an_exclude_leaves_alone_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from labeltrace.cli import _load_dataset, build_parser, main

    rd = make_run(tmp_path, n=12, k=3, seed=10, classes=["a", "b", "rare"])
    run = open_run(rd)
    rare = np.flatnonzero(run.column("given_label_id") == 2).tolist()
    _exclude(rd, 0 if 0 not in rare else 1, *rare[1:])  # the rare class left with one image
    out = tmp_path / "clean.csv"
    assert main(["review", str(rd), "--export", str(out)]) == 0
    cap = capsys.readouterr()
    assert "one sample in class 'rare'" in cap.err and "fewer than 2 samples" in cap.err
    _exclude(rd, rare[0])  # the class emptied: the class list leaves it out, the rescan reads the rest
    assert main(["review", str(rd), "--export", str(out)]) == 0
    cap = capsys.readouterr()
    assert "one sample" not in cap.err
    line = next(ln for ln in cap.out.splitlines() if ln.startswith("to scan with the cleaned labels: "))
    argv = shlex.split(line.removeprefix("to scan with the cleaned labels: "))
    ds, _ = _load_dataset(build_parser().parse_args(argv[1:]))
    kept = np.flatnonzero(~np.isin(np.arange(12), [0 if 0 not in rare else 1, *rare]))
    assert ds.classes == ("a", "b") and len(ds) == kept.size
    assert ds.labels.tolist() == run.column("given_label_id")[kept].tolist()


def test_a_rescan_says_the_excluded_files_are_the_reviews_not_unlisted(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    # the printed rescan command warned "2 image files ... are not in the --labels manifest": the
    # review's own excluded images, as if something were missing from the labels
    import shutil

    from labeltrace.cli import _load_dataset, build_parser

    rd = make_run(tmp_path, n=12, k=3, seed=2, kind="folder")
    run = open_run(rd)
    paths = [str(p) for p in run.column("path")]
    _exclude(rd, 2, 7)
    out = export_labels(rd, tmp_path / "clean.csv")
    root = run.data_root
    stray = Path(paths[0]).with_name("stray.png").as_posix()  # a file no review listed: warned of as before
    shutil.copy(root / paths[0], root / stray)
    capsys.readouterr()
    _load_dataset(build_parser().parse_args(["scan", str(root), "--labels", str(out), "--classes",
                                             str(out.with_name("clean.classes.txt")), "--out", str(tmp_path / "r2")]))  # fmt: skip
    err = capsys.readouterr().err
    assert f"warning: 1 image files under {root} are not in the --labels manifest and are not scanned: {stray}" in err
    assert (f"2 image files under {root} that the --labels manifest leaves out are excluded by the review as of "
            f"no class ({excluded_path(out)}): not scanned") in err  # fmt: skip
    assert paths[2] not in err.split("warning:")[1]


def test_the_export_names_copies_whose_cleaned_labels_still_differ(tmp_path: Path) -> None:
    # exact copies under different labels ("at least one label of each is wrong") went into the
    # cleaned labels as they were, without a word, unless the review had reached them
    import pyarrow as pa

    from labeltrace.rundir import write_table

    rd = make_run(tmp_path, n=12, k=3, seed=2, kind="folder")
    run = open_run(rd)
    given = run.column("given_label_id")
    a, b = 0, next(i for i in range(1, 12) if given[i] != given[0])
    c, d = next((i, j) for i in range(1, 12) for j in range(i + 1, 12)
                if given[i] != given[j] and {i, j}.isdisjoint({a, b}))  # fmt: skip
    groups = np.full(12, -1, dtype=np.int64)
    groups[[a, b]], groups[[c, d]] = 0, 1
    write_table(rd / "samples.parquet", run.samples.append_column("duplicate_group", pa.array(groups)))
    paths = [str(p) for p in run.column("path")]
    names = run.classes
    run_store(open_run(rd)).add(a, names[int(given[b])], reviewer="ada")  # group 0 now agrees
    msgs: list[str] = []
    out = export_labels(rd, tmp_path / "clean.csv", report=msgs.append)
    told = [m for m in msgs if "exact copies" in m]
    assert told == [f"warning: 1 group of exact copies (identical pixels) still carries different labels in {out}: "
                    "at least one label of each is wrong; decide the copies on the review page: "
                    f"{paths[c]} ({names[int(given[c])]}) = {paths[d]} ({names[int(given[d])]})"]  # fmt: skip
    _exclude(rd, c)  # an image of no class: no label to differ
    msgs.clear()
    export_labels(rd, tmp_path / "clean.csv", report=msgs.append)
    assert not [m for m in msgs if "exact copies" in m]
