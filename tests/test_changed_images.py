"""An image changed since the scan is never shown beside the scanned image's scores: a replaced file
is refused by name (report, review page), an ``.npz`` whose time alone moved still shows, and a
moved ``.npz`` can be pointed at."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from labeltrace import data, rundir
from labeltrace.cli import main
from labeltrace.report import write_report
from labeltrace.review import create_app
from labeltrace.run_files import EDGE, file_stamp, write_stamps
from labeltrace.scan import ScanConfig, scan


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = (rng.random((n, 12, 12)) * 80 + 120 * y[:, None, None]).astype(np.uint8)
    return x, y


def _folder(root: Path, n: int = 24) -> Path:
    x, y = _images(n, 0)
    for i in range(n):
        d = root / ("ab"[y[i]])
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i]).save(d / f"{i:03d}.png")
    return root


def _scan(ds: data.ImageDataset, out: Path, origin: dict | None = None) -> Path:
    scan(ds, out, ScanConfig(epochs=2, folds=2, batch_size=16, seed=0), progress=False, log=lambda s: None,
         origin=origin)
    return out


def test_stamps_tell_another_file_not_a_copy(tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    payload = bytes(np.random.default_rng(1).integers(0, 256, 3 * EDGE + 17, dtype=np.uint8))
    a.write_bytes(payload)
    shutil.copy(a, b)  # a copy (another path, another time) keeps its stamp
    os.utime(b, (1, 1))
    assert file_stamp(a) == file_stamp(b)
    b.write_bytes(payload[:-1] + bytes([payload[-1] ^ 1]))  # the last byte: the tail is read
    assert file_stamp(a) != file_stamp(b)
    b.write_bytes(bytes([payload[0] ^ 1]) + payload[1:])  # the first byte: the head is read
    assert file_stamp(a) != file_stamp(b)
    b.write_bytes(payload + b"\0")  # one byte longer: the size is in the stamp
    assert file_stamp(a) != file_stamp(b)
    small = tmp_path / "s.bin"  # smaller than one edge: read whole
    small.write_bytes(b"xy")
    assert file_stamp(small) != file_stamp(a)
    write_stamps([a, b, small], tmp_path / "st.npy")
    st = np.load(tmp_path / "st.npy")
    assert st.shape == (3, 16) and st.dtype == np.uint8 and st[0].tobytes() == file_stamp(a)


def test_a_file_that_cannot_be_stamped_is_never_shown(tmp_path: Path) -> None:
    """A file gone between the fingerprint and the stamps failed the whole scan at its end."""
    a = tmp_path / "a.png"
    a.write_bytes(b"x" * 10)
    assert write_stamps([a, tmp_path / "gone.png"], tmp_path / "st.npy") == [str(tmp_path / "gone.png")]
    assert not np.load(tmp_path / "st.npy")[1].any()


def test_a_replaced_image_file_is_refused_not_shown(tmp_path: Path) -> None:
    """The report and the review page showed the new picture beside the old score (the rank-3 card
    read 'malignant → benign, p 0.92' under an image the model never saw)."""
    root = _folder(tmp_path / "imgs")
    rd = _scan(data.from_folder(root), tmp_path / "run")
    assert (rd / rundir.IMAGE_FILES).is_file()
    run = rundir.open_run(rd)
    victim = int(np.flatnonzero(run.column("rank") == 1)[0])  # the top suspect: on the report's first card
    f = run.image_file(victim)
    assert f is not None
    original = f.read_bytes()
    before = run.image(victim)
    donor = next(p for p in sorted(root.rglob("*.png")) if p != f)
    shutil.copy(donor, f)  # another picture under the scanned name
    with pytest.raises(ValueError, match=rf"sample {victim}: its image file .* changed since the scan"):
        rundir.open_run(rd).image(victim)
    told: list[str] = []
    page = write_report(rd, tmp_path / "r.html", warn=told.append).read_text()
    assert len(told) == 1 and "1 of the" in told[0] and "changed since the scan" in told[0]
    assert "suspects&#x27; images could not be shown" in page or "suspects' images could not be shown" in page
    c = TestClient(create_app(rd), base_url="http://127.0.0.1")
    r = c.get(f"/api/image/{victim}")  # the page says what (its status line shows it), not where
    assert r.status_code == 404 and "its file changed since the scan" in r.json()["detail"]
    assert str(f) not in r.json()["detail"]
    from labeltrace.export import export_run

    told.clear()  # nor linked by an export
    export_run(rd, "labelstudio", tmp_path / "ls.json", images="local-files", warn=told.append)
    assert len(told) == 1 and f"sample {victim}" in told[0] and "changed since the scan" in told[0]
    other = tmp_path / "other"  # a folder of other pictures under the scanned names
    shutil.copytree(root, other)
    for p in other.rglob("*.png"):
        Image.fromarray(np.full((12, 12), 7, np.uint8)).save(p)
    assert main(["relocate", str(rd), str(other)]) == 2
    f.write_bytes(original)  # put back: shown again (a copy's time does not matter)
    os.utime(f, (1, 1))
    assert (rundir.open_run(rd).image(victim) == before).all()
    assert c.get(f"/api/image/{victim}").status_code == 200


def test_a_touched_npz_still_shows_and_a_moved_one_can_be_pointed_at(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A ``touch`` (a copy without ``cp -p``, a checkout) lost every image of an .npz run ('changed
    since the scan', false), and ``relocate`` refused .npz runs."""
    x, y = _images(24, 2)
    npz = tmp_path / "d.npz"
    np.savez(npz, train_images=x, train_labels=y)
    rd = _scan(data.from_npz(npz), tmp_path / "run", {"kind": "npz", "source": str(npz)})  # as the CLI scans it
    assert not (rd / rundir.IMAGES).exists()  # read again from the .npz
    first = rundir.open_run(rd).image(0)
    os.utime(npz, (1, 1))  # the same bytes, another time
    assert (rundir.open_run(rd).image(0) == first).all()
    x2 = x.copy()
    x2[3] = 255 - x2[3]  # the same size, other pixels
    np.savez(npz, train_images=x2, train_labels=y)
    with pytest.raises(ValueError, match="changed since the scan"):
        rundir.open_run(rd).image(0)
    np.savez(npz, train_images=x, train_labels=y)
    moved = tmp_path / "else" / "moved.npz"
    moved.parent.mkdir()
    shutil.move(str(npz), moved)
    told: list[str] = []
    write_report(rd, tmp_path / "r.html", warn=told.append)
    assert any(f"labeltrace relocate {rd} NEW.npz" in t for t in told)
    other = tmp_path / "other.npz"
    np.savez(other, train_images=x2, train_labels=y)
    assert main(["relocate", str(rd), str(other)]) == 2
    assert "holds other images than the scan read" in capsys.readouterr().err
    assert main(["relocate", str(rd), str(moved)]) == 0
    assert "the scanned pixels, all 24" in capsys.readouterr().out
    assert (rundir.open_run(rd).image(0) == first).all()
    moved2 = tmp_path / "again.npz"  # moved a second time: pointed at from the new place again
    shutil.move(str(moved), moved2)
    assert main(["relocate", str(rd), str(moved2)]) == 0
    assert (rundir.open_run(rd).image(0) == first).all()


def test_a_rescan_of_changed_images_names_them(tmp_path: Path) -> None:
    """The refusal said 'differs in: data' and named no file."""
    root = _folder(tmp_path / "imgs")
    rd = _scan(data.from_folder(root), tmp_path / "run")
    files = sorted(root.rglob("*.png"))
    Image.fromarray(np.full((12, 12), 3, np.uint8)).save(files[2])  # edited
    files[5].unlink()  # gone
    Image.fromarray(np.full((12, 12), 200, np.uint8)).save(root / "b" / "new.png")  # new
    with pytest.raises(rundir.RunDirConflict, match=r"differs in: data.*\(the images that differ from that scan's: "
                       rf"{files[2].relative_to(root).as_posix()}, {files[5].relative_to(root).as_posix()} \(gone\), "
                       r"b/new.png \(new\)\)"):  # fmt: skip
        _scan(data.from_folder(root), rd)


def test_byte_identical_files_are_named_with_their_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An image filed under both classes (benign/P002/img_0005.png, malignant/P002/img_0005_followup.png)
    was never called a conflict: one copy was flagged, the other shown clean."""
    root = _folder(tmp_path / "d")
    shutil.copy(root / "a" / "000.png", root / "b" / "000_followup.png")  # under the other label
    shutil.copy(root / "b" / "001.png", root / "b" / "001_again.png")  # twice under its own
    out = tmp_path / "run"
    scan(data.from_folder(root), out, ScanConfig(epochs=2, folds=2, batch_size=16, seed=0), progress=False,
         log=lambda s: None)  # fmt: skip
    err = capsys.readouterr().err
    run = rundir.open_run(out)
    paths = run.column("path").tolist()
    groups = [[paths[i] for i in g] for g in run.meta["identical_files"]]
    assert sorted(groups) == [["a/000.png", "b/000_followup.png"], ["b/001.png", "b/001_again.png"]]
    assert ("2 images are exact copies (identical pixels) filed under different labels: at least one label of each "
            "group is wrong" in err and "a/000.png (a) = b/000_followup.png (b)" in err)  # fmt: skip
    # the copies under one label share a fold (the cross-fitted folds keep copies together): listed, not warned of
    assert "under the same label" not in err and "b/001.png = b/001_again.png" not in err
    copies = run.column("duplicate_group")
    assert copies[paths.index("b/001.png")] == copies[paths.index("b/001_again.png")] >= 0
    assert run.meta["duplicates"]["groups"] == 2 and run.meta["duplicates"]["conflicting_groups"] == 1
    assert sum("exact copies" in w for w in run.meta["warnings"]) == 1  # the report shows them


def test_equal_stamps_of_different_files_are_no_copies(tmp_path: Path) -> None:
    from labeltrace.run_files import identical_files

    rng = np.random.default_rng(2)
    ends = bytes(rng.integers(0, 256, 2 * EDGE, dtype=np.uint8))
    files = [tmp_path / f"{i}.bin" for i in range(4)]
    files[0].write_bytes(ends[:EDGE] + b"middle one" + ends[EDGE:])
    files[1].write_bytes(ends[:EDGE] + b"middle two" + ends[EDGE:])  # same size and ends: the same stamp
    files[2].write_bytes(files[0].read_bytes())
    files[3].write_bytes(b"small")
    assert file_stamp(files[0]) == file_stamp(files[1])
    write_stamps(files, tmp_path / "stamps.npy")
    assert identical_files(tmp_path / "stamps.npy", files) == [[0, 2]]
