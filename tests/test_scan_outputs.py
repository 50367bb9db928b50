"""What a scan writes beside its table: the warnings it printed kept in run.json (and shown by the
report), no stale samples.csv after a re-score without --csv, honest timings of a re-score, and no
negative zeros in the score columns."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from labeltrace import scan_outputs
from labeltrace.cli import main
from labeltrace.report import write_report
from labeltrace.report.summary import summary_text
from labeltrace.rundir import open_run

torch.set_num_threads(1)
BASE = ["--model", "small-cnn", "--seed", "3", "--batch-size", "8", "--epochs", "2", "--detector", "sei",
        "--runs", "1", "--quiet"]  # fmt: skip


def _npz(path: Path, n: int = 60) -> Path:
    d = load_digits()
    idx = np.concatenate([np.flatnonzero(d.target == c)[: n // 3] for c in range(3)])
    np.savez(path, train_images=(d.images[idx] / 16 * 255).astype(np.uint8), train_labels=d.target[idx])
    return path


WORDS = "sei flags 41 of 60 samples (68%): a cut that accuses most of a dataset <says> more"


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A scan with --csv whose over-flagging warning fires: (data, run dir, its stderr)."""
    tmp = tmp_path_factory.mktemp("scan")
    data, out = _npz(tmp / "d.npz"), tmp / "R"
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
        mp.setattr(scan_outputs, "overflagging", lambda *a, **k: WORDS)
        assert main(["scan", str(data), "--out", str(out), *BASE, "--csv"]) == 0
    return data, out, err.getvalue()


def test_the_scans_warnings_are_kept_in_run_json_and_shown_by_the_report(scanned: tuple[Path, Path, str]) -> None:
    _, out, err = scanned
    assert f"warning: {WORDS}" in err
    assert open_run(out).meta["warnings"] == [WORDS]
    page = write_report(out, out / "r.html", top=3).read_text(encoding="utf-8")
    assert '<div class="quality warn">sei flags 41 of 60 samples (68%): a cut that accuses most of a dataset ' \
           "&lt;says&gt; more.</div>" in page  # fmt: skip


def test_no_negative_zero_in_the_score_columns(scanned: tuple[Path, Path, str]) -> None:
    """forgetting is a negated count: -0.0 for a sample never forgotten, written "-0" in the CSV."""
    run = open_run(scanned[1])
    forgetting = run.column("forgetting")
    assert (forgetting == 0).any() and not np.signbit(forgetting[forgetting == 0]).any()
    for col in [*run.score_columns(), "score", "suggested_prob"]:
        v = run.column(col)
        assert not np.signbit(v[v == 0]).any(), col
    csv = (scanned[1] / "samples.csv").read_text()
    assert ",-0," not in csv and ",-0\n" not in csv


def test_a_rescore_without_csv_removes_the_old_csv_and_keeps_honest_timings(scanned: tuple[Path, Path, str],
                                                                              tmp_path: Path) -> None:  # fmt: skip
    data, first_dir, _ = scanned
    out = tmp_path / "R"
    shutil.copytree(first_dir, out)
    first = open_run(out).meta["timings"]
    assert (out / "samples.csv").exists()
    assert main(["scan", str(data), "--out", str(out), *BASE]) == 0  # the same scan: re-scored
    assert not (out / "samples.csv").exists()
    assert "samples.csv" not in summary_text(out).splitlines()[-1]  # the "files:" line
    t = json.loads((out / "run.json").read_text())["timings"]
    assert t["train"] == first["train"] and "train_now" in t and "total_now" in t
    assert t["total"] >= t["train"]  # was 0.31 s beside 16.09 s of training
    assert abs(t["total"] - (t["train"] + t["total_now"] - t["train_now"])) < 1e-9
