"""`labeltrace relocate`: a run whose images folder moved reads them at the new place."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from runfactory import make_run

from labeltrace import rundir
from labeltrace.cli import main
from labeltrace.export import export_run
from labeltrace.report import write_report
from labeltrace.review import create_app


def test_a_moved_images_folder_is_read_at_its_new_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Copied to the reviewer's laptop, a run could show none of its images (the page: 'unavailable'),
    and nothing could point it at the folder's new place."""
    rd = make_run(tmp_path, n=12, k=3, seed=4)
    old = Path(rundir.open_run(rd).data_root)
    first = rundir.open_run(rd).image(0)
    moved = tmp_path / "elsewhere" / "images"
    moved.parent.mkdir()
    shutil.move(str(old), moved)
    with pytest.raises((ValueError, OSError)):
        rundir.open_run(rd).image(0)
    c = TestClient(create_app(rd), base_url="http://127.0.0.1")
    assert c.get("/api/image/0").status_code == 404
    told: list[str] = []  # the report wrote 48 "image unavailable" tiles without a word
    write_report(rd, tmp_path / "r.html", warn=told.append)
    export_run(rd, "csv", tmp_path / "e.csv", warn=told.append)
    assert len(told) == 2 and all(f"labeltrace relocate {rd} NEW_ROOT" in t and "is not there" in t for t in told)
    assert main(["relocate", str(rd), str(tmp_path / "nowhere")]) == 2  # no such folder
    assert main(["relocate", str(rd), str(tmp_path)]) == 2  # holds none of the run's images
    assert "none of the run's 12 image files is under" in capsys.readouterr().err
    assert main(["relocate", str(rd), str(moved)]) == 0
    assert "12 of 12 image files found there" in capsys.readouterr().out
    run = rundir.open_run(rd)
    assert run.data_root == moved.resolve() and (run.image(0) == first).all()
    assert run.allowed_roots == (moved.resolve(),)
    c = TestClient(create_app(rd), base_url="http://127.0.0.1")  # a server (re)started after it
    assert c.get("/api/image/0").status_code == 200
    rundir.claim(rd, {"another": "scan"}, force=True)  # a new scan removes the move with the rest
    assert not (rd / rundir.MOVED).exists()
