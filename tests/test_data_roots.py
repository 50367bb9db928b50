"""Files outside the data root (issue 11 §3): decided once at scan time, followed by every later step.

Symlinked files or class folders and manifest paths with ``..`` or absolute paths that lead out
of the data root are refused by the adapters, naming the files, unless their target lies in a
root allowed explicitly (``allow_roots=`` / ``--allow-root``). The run records its allowed roots;
``Run.image_file``, the report, the review app and the exports serve exactly those files, and one
bad sample never aborts a whole export.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from runfactory import make_run

from labeltrace.cli import main
from labeltrace.data import DataError, from_folder, from_manifest
from labeltrace.export import export_run
from labeltrace.report import write_report
from labeltrace.review import create_app
from labeltrace.rundir import open_run, write_json, write_table

torch.set_num_threads(1)


def _png(path: Path, value: int, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(path)
    return path


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, Path]:
    """``data/{cat,dog}/k.png`` (4 each) and ``other/`` with images outside the data root."""
    data, other = tmp_path / "data", tmp_path / "other"
    for k in range(8):
        _png(data / ("cat" if k < 4 else "dog") / f"{k}.png", 20 * k)
    _png(other / "ext.png", 200)
    _png(other / "ext2.png", 210)
    _png(other / "more" / "m.png", 220)
    return {"data": data, "other": other, "tmp": tmp_path}


# --------------------------------------------------------------------------- adapters
def test_a_broken_symlink_leading_out_of_the_root_is_said_to_be_missing(tree: dict[str, Path]) -> None:
    """It was refused as a file outside the data root, to be read with --allow-root: which reads no
    file that is not there."""
    data = tree["data"]
    (data / "cat" / "gone.png").symlink_to(tree["tmp"] / "nowhere" / "gone.png")
    with pytest.raises(DataError, match=r"file not found: cat/gone.png -> .*nowhere/gone.png \(a broken symlink") as e:
        from_folder(data)
    assert "allow" not in str(e.value)


def test_symlinked_file_leading_out_of_the_root_is_refused(tree: dict[str, Path]) -> None:
    data, other = tree["data"], tree["other"]
    (data / "cat" / "ext.png").symlink_to(other / "ext.png")
    with pytest.raises(DataError, match=r"outside the data root") as e:
        from_folder(data)
    msg = str(e.value)
    assert "cat/ext.png" in msg and str((other / "ext.png").resolve()) in msg and "allow" in msg
    # on_bad_image="skip" is about unreadable images, not about where files may come from
    with pytest.raises(DataError, match="outside the data root"):
        from_folder(data, on_bad_image="skip", verify=False)
    ds = from_folder(data, allow_roots=[other])
    assert ds.allowed_roots == (data.resolve(), other.resolve())
    i = ds.sources.index("cat/ext.png")
    assert ds.load(i)[0, 0, 0] == np.float32(200) / np.float32(255)
    assert ds.subset([i, 0]).allowed_roots == ds.allowed_roots
    assert ds.with_labels(ds.labels).allowed_roots == ds.allowed_roots


def test_symlinked_class_folder_leading_out_is_refused(tree: dict[str, Path]) -> None:
    data, other = tree["data"], tree["other"]
    (data / "bird").symlink_to(other)
    with pytest.raises(DataError, match=r"3 files lie outside the data root") as e:
        from_folder(data)
    assert "bird/ext.png" in str(e.value) and "bird/ext2.png" in str(e.value) and "bird/more/m.png" in str(e.value)
    assert len(from_folder(data, allow_roots=[other])) == 11  # other/more/m.png too: images at any depth


def test_symlinks_inside_the_root_are_fine(tree: dict[str, Path]) -> None:
    data = tree["data"]
    (data / ".store").mkdir()  # hidden: not a class, but inside the root
    shutil.copy(data / "cat" / "0.png", data / ".store" / "x.png")
    (data / "dog" / "alias.png").symlink_to(data / ".store" / "x.png")
    ds = from_folder(data)
    assert ds.allowed_roots == (data.resolve(),) and len(ds) == 9  # 8 images + the alias
    # the dataset reads the resolved file: the one that was checked
    assert ds.path(ds.sources.index("dog/alias.png")) == (data / ".store" / "x.png").resolve()



def test_a_symlinked_folder_below_a_class_folder_is_named(tree: dict[str, Path]) -> None:
    """Not followed (a link could loop), and its images were left out without a word."""
    data, other = tree["data"], tree["other"]
    (data / "cat" / "p2").symlink_to(other / "more", target_is_directory=True)
    with pytest.warns(UserWarning, match=r"1 symlinked folders below the class folders .* not followed.*: cat/p2;"):
        ds = from_folder(data, allow_roots=[other])
    assert len(ds) == 8 and not any(s.startswith("cat/p2") for s in ds.sources)

def test_one_file_read_as_two_samples_is_refused(tree: dict[str, Path]) -> None:
    data = tree["data"]
    (data / "dog" / "alias.png").symlink_to(data / "cat" / "0.png")  # the same pixels, two labels
    with pytest.raises(DataError, match=r"the same image file is more than one sample.*cat/0.png, dog/alias.png"):
        from_folder(data)
    (data / "dog" / "alias.png").unlink()
    (data / "mouse").symlink_to(data / "cat", target_is_directory=True)  # a class folder linked to another
    with pytest.raises(DataError, match=r"the same image file is more than one sample"):
        from_folder(data)
    (data / "mouse").unlink()
    rows = "path,label\ncat/0.png,cat\ncat/1.png,cat\ndog/4.png,dog\ndog/5.png,dog\ncat/../cat/0.png,dog\n"
    (data / "m.csv").write_text(rows)
    with pytest.raises(DataError, match=r"more than one sample.*row 1 \(cat/0.png\), row 5 \(cat/../cat/0.png\)"):
        from_manifest(data / "m.csv")
    (data / "m.csv").write_text("id,path,label\na,cat/0.png,cat\nb,cat/0.png,dog\nc,cat/1.png,cat\nd,dog/4.png,dog\n")
    with pytest.raises(DataError, match=r"more than one sample"):  # an id column does not make them two images
        from_manifest(data / "m.csv")


def test_manifest_paths_leading_out_are_refused(tree: dict[str, Path]) -> None:
    data, other, tmp = tree["data"], tree["other"], tree["tmp"]
    rows = [f"cat/{k}.png,cat" for k in range(4)] + [f"dog/{k}.png,dog" for k in range(4, 8)]
    absolute_in = str(_png(data / "cat" / "extra.png", 30).resolve())  # not listed otherwise
    (data / "m.csv").write_text(
        "path,label\n"
        + "\n".join(rows)
        + f"\n../other/ext.png,cat\n{other.resolve()}/ext2.png,dog\n"
        f"{absolute_in},dog\n"
    )
    with pytest.raises(DataError, match=r"2 files .*outside the data root") as e:
        from_manifest(data / "m.csv")
    assert "../other/ext.png" in str(e.value) and "ext2.png" in str(e.value)
    assert absolute_in not in str(e.value)  # an absolute path inside the root is fine
    ds = from_manifest(data / "m.csv", allow_roots=[other])
    assert len(ds) == 11 and ds.allowed_roots == (data.resolve(), other.resolve())
    assert ds.load(ds.sources.index("../other/ext.png"))[0, 0, 0] == np.float32(200) / np.float32(
        255
    )
    # an allowed root elsewhere does not open its parent or siblings
    with pytest.raises(DataError, match="outside the data root"):
        from_manifest(data / "m.csv", allow_roots=[other / "more"])
    with pytest.raises(DataError, match=r"allowed root .*nowhere.* is not a folder"):
        from_manifest(data / "m.csv", allow_roots=[tmp / "nowhere"])
    # root= given separately: the manifest's own folder is not a root
    (tmp / "meta").mkdir()
    (tmp / "meta" / "m.csv").write_text("path,label\n" + "\n".join(rows) + "\n../meta/m.csv,cat\n")
    with pytest.raises(DataError, match=r"\.\./meta/m\.csv"):
        from_manifest(tmp / "meta" / "m.csv", root=data, verify=False)


# --------------------------------------------------------------------------- scan → later steps
def test_scan_records_the_decision_and_every_later_step_follows_it(
    tree: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, other, tmp = tree["data"], tree["other"], tree["tmp"]
    for k in range(8, 16):  # 8 per class
        _png(data / ("cat" if k < 12 else "dog") / f"{k}.png", 15 * k)
    (data / "cat" / "ext.png").symlink_to(other / "ext.png")
    out = tmp / "run"
    args = ["scan", str(data), "--out", str(out), "--epochs", "2", "--detector", "sei", "--runs", "1",
            "--batch-size", "8", "--quiet", "--top", "1"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cat/ext.png" in err and "--allow-root" in err and not out.joinpath("run.json").exists()
    assert main([*args, "--allow-root", str(other), "--max-pixels", "1000"]) == 0
    capsys.readouterr()
    run = open_run(out)
    assert run.meta["data"]["allowed_roots"] == [str(data.resolve()), str(other.resolve())]
    assert run.max_pixels == 1000  # later decoding (report, review, exports) uses the scan's limit
    i = run.column("path").tolist().index("cat/ext.png")
    assert run.image_file(i) == (other / "ext.png").resolve()
    # review serves it
    r = TestClient(create_app(out), base_url="http://127.0.0.1").get(f"/api/image/{i}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    # the report shows it
    page = write_report(out, top=run.num_samples).read_text(encoding="utf-8")
    assert "image unavailable" not in page
    # the Label Studio export embeds it
    tasks = json.loads(Path(export_run(out, "labelstudio")).read_text())
    task = next(t for t in tasks if t["data"]["labeltrace_id"] == i)
    assert task["data"]["image"].startswith("data:image/png;base64,")
    # a file moved out of the allowed roots after the scan is refused everywhere
    meta = json.loads((out / "run.json").read_text())
    meta["data"]["allowed_roots"] = [str(data.resolve())]
    write_json(out / "run.json", meta)
    with pytest.raises(ValueError, match="escapes the data root"):
        open_run(out).image_file(i)
    r = TestClient(create_app(out), base_url="http://127.0.0.1").get(f"/api/image/{i}")
    assert r.status_code == 403


def test_old_runs_without_the_key_allow_their_data_root(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=20, k=3)
    run = open_run(rd)
    assert "allowed_roots" not in run.meta["data"]
    assert run.allowed_roots == (run.data_root.resolve(),)
    assert run.image_file(0) == (run.data_root / run.column("path")[0]).resolve()


# --------------------------------------------------------------------------- exports
def _break_one(rd: Path, tmp_path: Path) -> int:
    """Point the most suspect sample's path out of the data root; return its id."""
    _png(tmp_path / "secret.png", 7)
    t = pq.read_table(rd / "samples.parquet")
    paths = t.column("path").to_pylist()
    bad = int(np.argmin(t.column("rank").to_numpy()))
    paths[bad] = "../secret.png"
    write_table(
        rd / "samples.parquet", t.set_column(t.column_names.index("path"), "path", pa.array(paths))
    )
    return bad


@pytest.mark.parametrize("images", ["data-uri", "local-files"])
def test_one_bad_sample_never_aborts_an_export(tmp_path: Path, images: str) -> None:
    rd = make_run(tmp_path, n=20, k=3, seed=4)
    bad = _break_one(rd, tmp_path)
    warnings: list[str] = []
    out = export_run(rd, "labelstudio", tmp_path / "t.json", images=images,  # type: ignore[arg-type]
                     warn=warnings.append)  # fmt: skip
    tasks = json.loads(Path(out).read_text())
    assert len(tasks) == 20
    by_id = {t["data"]["labeltrace_id"]: t for t in tasks}
    assert (
        by_id[bad]["data"]["image"] == ""
        and "escapes the data root" in by_id[bad]["data"]["image_error"]
    )
    assert all(t["data"]["image"] for i, t in by_id.items() if i != bad)
    assert len(warnings) == 1 and "1 of 20 images could not be exported" in warnings[0]
    assert f"sample {bad} (" in warnings[0] and "escapes the data root" in warnings[0]
    # without a callback: a Python warning, still no abort
    with pytest.warns(UserWarning, match="1 of 20 images could not be exported"):
        export_run(rd, "labelstudio", tmp_path / "t2.json", images=images)  # type: ignore[arg-type]


def test_export_cli_says_how_many_images_were_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rd = make_run(tmp_path, n=20, k=3, seed=4)
    bad = _break_one(rd, tmp_path)
    assert main(["export", str(rd), "--to", "labelstudio", "--out", str(tmp_path / "t.json")]) == 0
    cap = capsys.readouterr()
    assert "wrote" in cap.out
    assert "1 of 20 images could not be exported" in cap.err and f"sample {bad}" in cap.err
    # a wrong document root is refused, naming a root above the folder that holds the images (Label
    # Studio's storage must lie strictly below its document root)
    with pytest.raises(ValueError, match="19 of 19 images lie outside the Label Studio document root") as e:
        export_run(rd, "labelstudio", tmp_path / "t2.json", images="local-files",
                   document_root=tmp_path / "elsewhere")  # fmt: skip
    assert f"--document-root {tmp_path} " in str(e.value)
    assert not (tmp_path / "t2.json").exists()  # written one task at a time, yet nothing is left behind
