"""What the Label Studio and FiftyOne exports do with each image: large ones embedded shrunk, gone
ones named, a local-files export whose document root cannot serve the images refused."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from runfactory import link_into_store, make_run
from test_export import _fake_fiftyone

import labeltrace.export as ex
from labeltrace.cli import main
from labeltrace.export import export_run
from labeltrace.rundir import open_run


def _size(uri: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size


def _tasks(path: Path | str) -> dict[int, dict]:
    return {t["data"]["labeltrace_id"]: t for t in json.loads(Path(path).read_text())}


def _photo(rd: Path, i: int, size: tuple[int, int] = (1500, 900)) -> None:
    run = open_run(rd)
    rng = np.random.default_rng(i)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(run.data_root / run.column("path")[i])


def test_a_large_image_is_embedded_shrunk_to_max_side_and_counted(tmp_path: Path) -> None:
    """A 2,000 x 1,500 photo went into its task whole, re-encoded as PNG: 5.4 MB a task, 108 MB for 20."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    _photo(rd, 3)
    told: list[str] = []
    tasks = _tasks(export_run(rd, "labelstudio", tmp_path / "t.json", warn=told.append))
    assert _size(tasks[3]["data"]["image"]) == (1024, 614)  # the longer side at 1024, the aspect kept
    assert _size(tasks[4]["data"]["image"])[0] < 1024  # a small one: enlarged as before, not to 1024
    assert any("1 of 12 images is larger than 1024 px" in t and "--max-side 0" in t for t in told)
    whole = _tasks(export_run(rd, "labelstudio", tmp_path / "w.json", max_side=None, warn=told.append))
    assert _size(whole[3]["data"]["image"]) == (1500, 900)
    small = _tasks(export_run(rd, "labelstudio", tmp_path / "s.json", max_side=300, warn=told.append))
    assert _size(small[3]["data"]["image"]) == (300, 180)
    with pytest.raises(ValueError, match="max_side must be >= 1"):
        export_run(rd, "labelstudio", tmp_path / "z.json", max_side=0)


def test_the_cli_max_side_and_where_it_does_not_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    _photo(rd, 3)
    assert main(["export", str(rd), "--to", "labelstudio", "--out", str(tmp_path / "t.json"), "--max-side", "0"]) == 0
    assert _size(_tasks(tmp_path / "t.json")[3]["data"]["image"]) == (1500, 900)
    assert main(["export", str(rd), "--to", "labelstudio", "--out", str(tmp_path / "u.json"), "--max-side", "500"]) == 0
    assert _size(_tasks(tmp_path / "u.json")[3]["data"]["image"]) == (500, 300)
    assert "1 of 12 images is larger than 500 px" in capsys.readouterr().err
    for extra in (["--to", "csv"], ["--to", "labelstudio", "--images", "local-files"]):
        assert main(["export", str(rd), *extra, "--max-side", "500"]) != 0
        assert "--max-side sets the size of the images a Label Studio export embeds" in capsys.readouterr().err


def test_a_tasks_file_over_label_studios_upload_limit_is_warned_of(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    monkeypatch.setattr(ex, "LARGE_UPLOAD", 1000)
    told: list[str] = []
    out = ex.export_run(rd, "labelstudio", tmp_path / "t.json", warn=told.append)
    assert any(f"{out} is" in t and "over 250 MB" in t and "--images local-files" in t for t in told)
    monkeypatch.setattr(ex, "LARGE_UPLOAD", 10**9)
    told.clear()
    ex.export_run(rd, "labelstudio", tmp_path / "t.json", warn=told.append)
    assert not any("250 MB" in t for t in told)


def test_an_image_gone_since_the_scan_is_named_not_linked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deleted file was linked in the Label Studio task and kept as the FiftyOne sample's filepath,
    without a word (only PNGs were ever opened)."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    gone = run.data_root / run.column("path")[5]
    gone.unlink()
    told: list[str] = []
    tasks = _tasks(export_run(rd, "labelstudio", tmp_path / "t.json", images="local-files", warn=told.append))
    assert tasks[5]["data"]["image"] == "" and "is not there" in tasks[5]["data"]["image_error"]
    assert any("1 of 12 images could not be exported (exported without image)" in t and "sample 5" in t for t in told)
    made = _fake_fiftyone(monkeypatch)
    told.clear()
    export_run(rd, "fiftyone", "fo", warn=told.append)
    assert sorted(s["labeltrace_id"] for s in made["fo"].samples) == [i for i in range(12) if i != 5]  # type: ignore[attr-defined]
    assert any("1 of 12 images could not be exported (left out of the export)" in t and "sample 5" in t for t in told)


def test_local_files_refused_when_the_root_holds_none_of_them_and_told_how_to_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong --document-root wrote 1,813 of 2,000 tasks without an image and exited 0; and nothing
    said that Label Studio serves a local file only under a Local Files storage of the project."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    root = open_run(rd).data_root
    with pytest.raises(ValueError, match=r"7 of 12 images lie outside the Label Studio document root .*none of those") as e:
        export_run(rd, "labelstudio", tmp_path / "t.json", images="local-files", document_root=root / "cat")
    assert f"--document-root {root.parent} " in str(e.value) and not (tmp_path / "t.json").exists()
    assert main(["export", str(rd), "--to", "labelstudio", "--images", "local-files", "--out", str(tmp_path / "t.json")]) == 0
    out = capsys.readouterr().out
    assert f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root.resolve().parent}" in out
    assert f"Local Files source storage (Settings > Cloud Storage > Add Source Storage > Local files) whose absolute local path is {root.resolve()} " in out


def test_local_files_of_an_array_dataset_are_refused_once(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=20, k=3, with_files=False)
    with pytest.raises(ValueError, match="data-uri") as e:
        export_run(rd, "labelstudio", images="local-files")
    assert str(e.value).count("array dataset") == 1 and len(str(e.value)) < 300


def test_the_report_caps_its_suspects_and_says_how_many_are_flagged(tmp_path: Path) -> None:
    """`report --top 50000` drew 50,000 thumbnails into a 121 MB page (4 minutes, 3.4 GB) headed
    "Top 50000 suspects" over 2,615 flagged."""
    from labeltrace.report import write_report

    rd = make_run(tmp_path, n=30, k=3, seed=1)
    flagged = int(open_run(rd).column("is_suspect").sum())
    assert 0 < flagged < 30
    page = Path(write_report(rd, tmp_path / "r.html", top=30)).read_text()
    assert f"The 30 most suspect samples, {flagged} of them flagged</h2>" in page
    page = Path(write_report(rd, tmp_path / "r2.html", top=flagged)).read_text()
    assert f"Top {flagged} suspects</h2>" in page
    with pytest.raises(ValueError, match=r"top must lie in \[0, 1000\], got 1001.*samples.csv"):
        write_report(rd, tmp_path / "r3.html", top=1001)


def test_a_jpeg_goes_into_its_task_as_a_jpeg(tmp_path: Path) -> None:
    """Re-encoded as PNG a photo took 8 times its file's bytes (20 JPEGs of 13 MB: 108 MB of tasks)."""
    import pyarrow as pa

    from labeltrace.rundir import write_table

    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    paths = run.samples.column("path").to_pylist()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(run.data_root / "x.JPG", quality=90)
    paths[3] = "x.JPG"
    write_table(rd / "samples.parquet", run.samples.set_column(run.samples.column_names.index("path"), "path",
                                                                pa.array(paths)))  # fmt: skip
    tasks = _tasks(export_run(rd, "labelstudio", tmp_path / "t.json"))
    assert tasks[3]["data"]["image"].startswith("data:image/jpeg;base64,") and _size(tasks[3]["data"]["image"]) == (240, 160)
    assert all(t["data"]["image"].startswith("data:image/png;base64,") for i, t in tasks.items() if i != 3)


def test_max_side_bounds_the_enlargement_of_a_small_image_too(tmp_path: Path) -> None:
    """`--max-side 100` embedded 8 px images at 256 x 256 (enlarged for display first): a maximum."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    tasks = _tasks(export_run(rd, "labelstudio", tmp_path / "t.json", max_side=100))
    assert max(_size(tasks[0]["data"]["image"])) <= 100
    assert max(_size(_tasks(export_run(rd, "labelstudio", tmp_path / "u.json"))[0]["data"]["image"])) > 100


def test_local_files_link_a_symlinked_file_as_the_dataset_lists_it(tmp_path: Path) -> None:
    """A data root of links into a content store (DVC, git-annex): the files resolved outside the
    data root, so every task was refused, though Label Studio serves the link under the root."""
    from urllib.parse import parse_qs, urlparse

    rd = make_run(tmp_path, n=12, k=3, seed=1)
    store = tmp_path / "store"
    link_into_store(rd, store, lambda k: f"{k}.png")
    tasks = _tasks(export_run(rd, "labelstudio", tmp_path / "t.json", images="local-files"))
    for i, t in tasks.items():
        assert parse_qs(urlparse(t["data"]["image"]).query)["d"] == ["data/" + open_run(rd).column("path")[i]]
    linked = _tasks(export_run(rd, "labelstudio", tmp_path / "u.json", images="local-files", document_root=tmp_path))
    assert parse_qs(urlparse(linked[0]["data"]["image"]).query)["d"] == ["data/" + open_run(rd).column("path")[0]]
