"""The cleaned label file (``review --export``): which runs can be written back, and how."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runfactory import make_run

from labeltrace.export.cleaned import export_labels
from labeltrace.relabel.decisions import run_store
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
