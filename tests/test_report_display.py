"""The images the report, the review app and the exports show: 16-bit sources holding a few bits
of data are stretched for display (and only for display), 8-bit ones shown as they are; whether a
run's images are files is read from its metadata, never from the path column's text."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image
from runfactory import make_run

from labeltrace.report import write_report
from labeltrace.report.images import load_rgb
from labeltrace.rundir import IMAGES, RUN_JSON, open_run, write_json


def _gradient(bits: int, h: int = 8, w: int = 8) -> np.ndarray:
    """(h, w) uint16 ramp over 0 .. 2**bits - 1 (12-bit data in a 16-bit container, as X-ray exports)."""
    return np.linspace(0, 2**bits - 1, h * w).reshape(h, w).astype(np.uint16)


def test_a_16_bit_file_with_12_bit_data_is_stretched_for_display_only(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=30, k=3)
    run = open_run(rd)
    f12, f8 = run.image_file(0), run.image_file(1)
    assert f12 is not None and f8 is not None
    Image.fromarray(_gradient(12)).save(f12)  # Pillow writes mode I;16
    dark8 = (np.arange(64).reshape(8, 8) % 11).astype(np.uint8)  # a dark 8-bit image: values 0..10
    Image.fromarray(dark8).save(f8)
    shown = load_rgb(run, 0)
    assert shown.shape == (8, 8, 3) and (shown.min(), shown.max()) == (0, 255)
    assert np.all(np.diff(shown[..., 0].reshape(-1).astype(int)) >= 0)  # the ramp keeps its order
    # what the scan and the features read is the decoded image, unstretched (4095 / 65535 of white)
    assert run.image(0).max() == round(4095 / 65535 * 255)
    np.testing.assert_array_equal(load_rgb(run, 1)[..., 0], dark8)  # 8 bits: exactly as stored
    page = write_report(rd, top=30, thumb_size=8).read_text(encoding="utf-8")
    assert "image unavailable" not in page


def test_a_uint16_npz_source_is_stretched_for_display(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=30, k=3, with_files=False)
    imgs = np.stack([_gradient(12) // (i + 1) for i in range(30)])  # ever darker 12-bit ramps
    npz = tmp_path / "d.npz"
    np.savez(npz, train_images=imgs, train_labels=np.arange(30) % 3)
    st = npz.stat()
    meta = open_run(rd).meta
    meta["data"]["image_source"] = {"kind": "npz", "path": str(npz), "split": "train", "size": st.st_size,
                                    "mtime_ns": st.st_mtime_ns}  # fmt: skip
    write_json(rd / RUN_JSON, meta)
    (rd / IMAGES).unlink()  # read again from the .npz, as a scan of a .npz does
    run = open_run(rd)
    for i in (0, 7, 29):
        shown = load_rgb(run, i)
        assert (shown.min(), shown.max()) == (0, 255), i
    assert run.image(29).max() < 10  # the scan's view: unstretched


def test_class_folders_named_like_array_sources_show_their_images(tmp_path: Path) -> None:
    """A folder run whose class folders are called ``hf:one`` and ``array:two``: their paths start
    like array sources' (``hf:<row>``, ``array:<i>``), yet they are files under the data root."""
    rd = make_run(tmp_path, n=30, k=3, classes=["hf:one", "array:two", "zero"])
    run = open_run(rd)
    paths = [str(p) for p in run.column("path")]
    assert any(p.startswith("hf:") for p in paths) and any(p.startswith("array:") for p in paths)
    for i in range(run.num_samples):
        f = run.image_file(i)
        assert f is not None and f.is_file()
        np.testing.assert_array_equal(load_rgb(run, i), np.asarray(Image.open(f).convert("RGB")))
    page = write_report(rd, top=30).read_text(encoding="utf-8")
    assert "image unavailable" not in page and len(re.findall(r'<img alt="sample', page)) == 30
    # an array run (no data root, no allowed root) still reads the pixels it kept
    arr = open_run(make_run(tmp_path / "arr", n=30, k=3, with_files=False))
    assert arr.image_file(0) is None and load_rgb(arr, 0).shape == (8, 8, 3)


def test_uint16_arrays_handed_over_in_memory_keep_their_16_bits(tmp_path: Path) -> None:
    # a scan of in-memory arrays keeps their pixels in the run (run_images.write_images): uint16 ones
    # as uint16, so 12-bit data is stretched from its 4,096 levels, not from the 17 left in 8 bits
    from labeltrace.data import from_arrays
    from labeltrace.run_images import ImageStore, write_images
    from labeltrace.rundir import IMAGES_FLAT, IMAGES_INDEX

    rd = make_run(tmp_path, n=30, k=3, with_files=False)
    imgs = np.stack([_gradient(12) // (i + 1) for i in range(30)])
    ds = from_arrays(imgs, np.arange(30) % 3)
    files = rd / IMAGES, rd / IMAGES_FLAT, rd / IMAGES_INDEX
    assert write_images(ds, *files) == [rd / IMAGES]
    kept = ImageStore(*files)
    assert kept[5].dtype == np.uint16
    np.testing.assert_array_equal(kept[5][..., 0], imgs[5])  # exactly the values handed over
    run = open_run(rd)
    shown = load_rgb(run, 0)
    assert (shown.min(), shown.max()) == (0, 255)
    assert len(np.unique(shown[..., 0])) == 64  # every one of the ramp's 64 values stays apart
    assert run.image(0).dtype == np.uint8 and run.image(0).max() == round(4095 / 65535 * 255)  # the scan's view
    # 8-bit arrays stay 8 bits
    write_images(from_arrays((imgs // 16).astype(np.uint8), np.arange(30) % 3), *files)
    assert ImageStore(*files)[0].dtype == np.uint8
