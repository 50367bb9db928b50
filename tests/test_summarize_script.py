"""benchmarks/summarize.py, the one command behind RESULTS.md's tables: failed rows stay out."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "summarize.py"
COLS = ["dataset", "labels", "model", "detector", "seed", "f1", "auroc", "n_flagged", "n_noisy", "true_rate",
        "wall_seconds", "n_trainings", "recall_at_200", "resolution", "note"]  # fmt: skip


def _row(det: str, seed: int, f1: float, flagged: int, note: str = "") -> dict[str, object]:
    failed = note.startswith("failed:")
    return {"dataset": "d", "labels": "symmetric:0.2", "model": "m", "detector": det, "seed": seed,
            "f1": "nan" if failed else f1, "auroc": "nan" if failed else 0.8, "n_flagged": flagged,
            "n_noisy": 100, "true_rate": 0.2, "wall_seconds": "nan" if failed else 10.0,
            "n_trainings": -1 if failed else 5, "recall_at_200": 0.5, "resolution": "", "note": note}  # fmt: skip


def test_failed_rows_are_left_out_of_means_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("summarize", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = [_row("crossfit", s, 0.6, 120) for s in range(4)] + [_row("crossfit", 4, 0, -1, "failed: not bimodal")]
    rows += [_row(d, s, 0.5, 110) for d in ("cleanlab", "single") for s in range(5)]
    p = tmp_path / "r.csv"
    with open(p, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLS)
        w.writeheader()
        w.writerows(rows)
    mod.main([str(p)])
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("| d | symmetric:0.2 | m | "))
    cols = [c.strip() for c in line.split("|")]
    assert cols[4] == "4"  # seeds: the four that did not fail
    assert cols[7] == "120"  # crossfit flags: not pulled down by the failed row's -1
    cost = next(x for x in out.splitlines() if x.startswith("| d | m | crossfit |"))
    assert cost.split("|")[4].strip() == "5"  # trainings: not (4 * 5 - 1) / 5
    assert "Failed rows, left out of every table above: 1" in out
    assert "crossfit | seed 4: failed: not bimodal" in out


def _load():
    spec = importlib.util.spec_from_file_location("summarize", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(p: Path, rows: list[dict[str, object]]) -> Path:
    with open(p, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLS)
        w.writeheader()
        w.writerows(rows)
    return p


def test_a_cell_given_twice_is_refused(tmp_path: Path) -> None:
    """The same (cell, detector, seed) in two files would count twice in the means and once in the
    paired differences."""
    a = _write(tmp_path / "a.csv", [_row("crossfit", 0, 0.4, 100), _row("cleanlab", 0, 0.5, 100)])
    b = _write(tmp_path / "b.csv", [_row("crossfit", 0, 0.6, 100)])
    with pytest.raises(SystemExit, match=r"d / symmetric:0.2 / m / crossfit seed 0 is in .*a.csv and in .*b.csv"):
        _load().main([str(a), str(b)])


def test_best_other_has_every_seed_and_crossfit_wins_an_auroc_tie(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    rows = [_row(d, s, 0.5, 100) for d in ("crossfit", "cleanlab", "single", "crossfit_rate") for s in range(3)]
    rows += [_row("gmm", s, 0.9, 100) for s in range(2)]  # failed (no row) on seed 2
    _load().main([str(_write(tmp_path / "r.csv", rows))])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("| d | symmetric:0.2 | m | "))
    cols = [c.strip() for c in line.split("|")]
    assert not cols[11].startswith("gmm")  # best other: not the detector missing a seed
    assert cols[14] == "0.800 (crossfit)"  # every AUROC is 0.8: crossfit's own, not another name's


def test_rows_of_two_settings_are_not_pooled_as_more_seeds(tmp_path: Path) -> None:
    """A grid run at 4 epochs (seeds 0, 1) and again at 12 (seeds 2, 3) summarised as one cell of 4
    seeds, with an interval over both settings."""
    mod = _load()
    cols = [*COLS, "settings"]

    def write(p: Path, seeds: range, settings: str) -> Path:
        with open(p, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            w.writerows([_row("crossfit", s, 0.6, 120) | {"settings": settings} for s in seeds])
        return p

    a, b = write(tmp_path / "a.csv", range(2), "aaaaaaaaaaaa"), write(tmp_path / "b.csv", range(2, 4), "bbbbbbbbbbbb")
    with pytest.raises(SystemExit, match=r"d / symmetric:0.2 / m has rows made with settings aaaaaaaaaaaa .* and "
                                         r"bbbbbbbbbbbb .*summarize each setting apart"):
        mod.main([str(a), str(b)])
    c = write(tmp_path / "c.csv", range(2, 4), "aaaaaaaaaaaa")
    mod.main([str(a), str(c)])  # one setting: four seeds
    old = _write(tmp_path / "old.csv", [_row("crossfit", s, 0.6, 120) for s in range(4, 6)])
    mod.main([str(a), str(old)])  # rows written before the column say nothing, and are not refused


def test_warned_rows_are_listed_and_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mod = _load()
    rows = [_row("crossfit", s, 0.6, 120) for s in range(4)]
    rows += [_row("crossfit", 4, 0.1, 83, "warning: flags every sample labelled class 1 (83)")]
    rows += [_row(d, s, 0.5, 110) for d in ("cleanlab", "single") for s in range(5)]
    mod.main([str(_write(tmp_path / "r.csv", rows))])
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("| d | symmetric:0.2 | m | "))
    assert [c.strip() for c in line.split("|")][4] == "5"  # all five seeds counted
    assert "look like a collapsed model, kept in every table above: 1" in out
    assert "crossfit | seed 4: warning: flags every sample labelled class 1 (83)" in out


def test_results_md_s_command_rebuilds_the_committed_summary(tmp_path: Path) -> None:
    """RESULTS.md's one command behind its tables, run as written (bash), gives the committed
    test-summary.md byte for byte: the glob `test-*.csv` it named stopped running once the
    precision reruns' CSVs joined results/ (the same cells twice; an audit's finding)."""
    import re
    import subprocess

    root = SCRIPT.parents[1]
    text = (root / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    cmd = re.search(r"^(python benchmarks/summarize\.py .*) > benchmarks/results/test-summary\.md$", text, re.M)
    assert cmd is not None
    out = subprocess.run(["bash", "-c", cmd.group(1).replace("python ", f"{__import__('sys').executable} ", 1)],
                         cwd=root, capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert out == (root / "benchmarks" / "results" / "test-summary.md").read_text(encoding="utf-8")
