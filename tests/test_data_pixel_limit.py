"""Pixel bombs (issue 11 §4): images whose header declares more pixels than the limit are refused
from the header, before any decoding, naming the file and its size -- in the parallel decoder too."""

from __future__ import annotations

import importlib.util
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeltrace.data import DataError, decode_image, from_folder, from_manifest
from labeltrace.data import decode as decode_mod
from labeltrace.export import export_run
from labeltrace.rundir import open_run, write_json


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(path: Path, width: int, height: int, *, truncate: bool = False) -> Path:
    """A valid 1-bit black PNG of ``width`` x ``height``, compressed row by row (a few KB on disk,
    little memory to write); ``truncate`` keeps only the header and the first bytes of the data."""
    row = b"\x00" + bytes((width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    if truncate:
        idat = idat[:64]
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )
    return path


def _gray(path: Path, value: int, size: tuple[int, int] = (4, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, dtype=np.uint8)).save(path)
    return path


def test_the_bomb_helper_writes_a_valid_png(tmp_path: Path) -> None:
    p = _bomb_png(tmp_path / "small.png", 20, 10)
    np.testing.assert_array_equal(decode_image(p), np.zeros((10, 20, 1), np.float32))


def test_header_over_the_default_limit_is_refused(tmp_path: Path) -> None:
    p = _bomb_png(tmp_path / "bomb.png", 7000, 7000)  # 49 megapixels, under Pillow's own limit
    assert p.stat().st_size < 100_000
    with pytest.raises(DataError, match=r"bomb\.png: .*7000x7000 = 49,000,000 pixels.*40,000,000"):
        decode_image(p)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, at open
def test_refused_from_the_header_before_any_decoding(tmp_path: Path) -> None:
    # 12000 x 12000 declared, the pixel data cut short: decoding would fail on the data;
    # the refusal names the size, so it came from the header alone
    p = _bomb_png(tmp_path / "huge.png", 12000, 12000, truncate=True)
    with pytest.raises(DataError, match=r"huge\.png: .*12000x12000 = 144,000,000 pixels"):
        decode_image(p)


def test_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _bomb_png(tmp_path / "b.png", 200, 100)
    with pytest.raises(DataError, match=r"200x100 = 20,000 pixels.*limit of 10,000"):
        decode_image(p, max_pixels=10_000)
    assert decode_image(p, max_pixels=20_000).shape == (100, 200, 1)
    monkeypatch.setattr(decode_mod, "MAX_PIXELS", 5_000)  # the module-level default
    with pytest.raises(DataError, match="limit of 5,000"):
        decode_image(p)
    with pytest.raises(ValueError, match="max_pixels"):
        decode_image(p, max_pixels=0)


def test_limit_holds_in_the_parallel_decoder(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for k in range(6):
        _gray(root / ("cat" if k % 2 else "dog") / f"{k}.png", 10 * k)
    _bomb_png(root / "cat" / "bomb.png", 300, 300)
    with pytest.raises(DataError, match=r"cat/bomb\.png \(.*300x300 = 90,000 pixels"):
        from_folder(root, max_pixels=50_000, workers=4)
    ds = from_folder(root, max_pixels=50_000, workers=4, on_bad_image="skip")
    assert len(ds) == 6 and [s for s, _ in ds.skipped] == ["cat/bomb.png"]
    assert "90,000 pixels" in ds.skipped[0][1]
    # the limit travels with the dataset: later loads (training batches) are held to it too
    ds = from_folder(root, max_pixels=50_000, verify=False)
    bomb = ds.sources.index("cat/bomb.png")
    with pytest.raises(DataError, match="90,000 pixels"):
        ds.load_batch([0, bomb], size=4, workers=2)
    assert len(from_folder(root, max_pixels=100_000, workers=4)) == 7
    (tmp_path / "m.csv").write_text(
        "path,label\nds/cat/bomb.png,a\nds/cat/1.png,a\nds/dog/0.png,b\nds/dog/2.png,b\n"
    )
    with pytest.raises(DataError, match="90,000 pixels"):
        from_manifest(tmp_path / "m.csv", max_pixels=50_000)


def test_runs_decode_with_the_limit_of_their_scan(tmp_path: Path) -> None:
    from runfactory import make_run

    rd = make_run(tmp_path, n=20, k=3)  # 8 x 8 images
    assert open_run(rd).image(0).shape == (8, 8, 3)
    meta = open_run(rd).meta
    meta["data"]["max_pixels"] = 50
    write_json(rd / "run.json", meta)
    with pytest.raises(DataError, match="8x8 = 64 pixels is over the limit of 50"):
        open_run(rd).image(0)
    with pytest.raises(ValueError, match="no image could be exported.*limit of 50"):
        export_run(rd, "labelstudio")


@pytest.mark.skipif(importlib.util.find_spec("pydicom") is None, reason="pydicom not installed")
def test_dicom_rows_and_columns_are_checked_before_the_pixel_data(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = 9000, 8000
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.zeros((2, 2), "<u2").tobytes()  # the header alone declares the size
    p = tmp_path / "big.dcm"
    ds.save_as(p, enforce_file_format=True)
    with pytest.raises(DataError, match=r"big\.dcm: .*8000x9000 = 72,000,000 pixels"):
        decode_image(p)


def test_a_limit_above_pillows_guard_lets_such_an_image_be_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--max-pixels 300000000 could not read a 196-megapixel scan: Pillow's own guard (twice ~89 MP)
    refused it first, in its own words. A larger limit raises that guard; over it, ours speaks."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)  # Pillow refuses over 10,000 pixels
    p = tmp_path / "big.png"
    Image.new("L", (200, 100)).save(p)  # 20,000 pixels
    assert decode_image(p, max_pixels=50_000).shape == (100, 200, 1)
    assert Image.MAX_IMAGE_PIXELS == 5_000  # raised for that open alone: the process keeps Pillow's guard
    with pytest.raises(DataError, match=r"big\.png: .*over the limit of 8,000 pixels"):
        decode_image(p, max_pixels=8_000)
