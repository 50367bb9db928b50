"""Decoding: exact values per Pillow mode, 16-bit, alpha, DICOM, corrupt files, thumbnails."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeltrace.data import (
    DataError,
    array_to_float,
    convert_channels,
    decode_image,
    resize_image,
    to_uint8_thumbnail,
)

RNG = np.random.default_rng(0)


def _save(img: Image.Image, path: Path) -> Path:
    img.save(path)
    return path


def test_grayscale_png_exact(tmp_path: Path) -> None:
    a = RNG.integers(0, 256, size=(5, 7), dtype=np.uint8)
    out = decode_image(_save(Image.fromarray(a), tmp_path / "g.png"))
    assert out.shape == (5, 7, 1) and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., 0], a.astype(np.float32) / np.float32(255))


def test_rgb_png_exact(tmp_path: Path) -> None:
    a = RNG.integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
    out = decode_image(_save(Image.fromarray(a), tmp_path / "c.png"))
    assert out.shape == (4, 6, 3)
    np.testing.assert_array_equal(out, a.astype(np.float32) / np.float32(255))


def test_rgba_composited_on_black(tmp_path: Path) -> None:
    a = RNG.integers(0, 256, size=(3, 3, 4), dtype=np.uint8)
    a[0, 0, 3] = 0  # fully transparent -> black
    a[0, 1, 3] = 255  # opaque -> colour unchanged
    out = decode_image(_save(Image.fromarray(a, "RGBA"), tmp_path / "a.png"))
    expected = (a[..., :3] / 255.0) * (a[..., 3:] / 255.0)
    assert out.shape == (3, 3, 3)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_array_equal(out[0, 0], 0.0)
    np.testing.assert_allclose(out[0, 1], a[0, 1, :3] / 255.0, atol=1e-7)


def test_la_composited_on_black(tmp_path: Path) -> None:
    a = np.array([[[200, 255], [200, 0], [100, 51]]], dtype=np.uint8)
    out = decode_image(_save(Image.fromarray(a, "LA"), tmp_path / "la.png"))
    np.testing.assert_allclose(out[0, :, 0], [200 / 255, 0.0, 100 / 255 * 51 / 255], atol=1e-6)


def test_palette_png_to_rgb(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 128, 255] + [0] * (256 * 3 - 6))
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    out = decode_image(_save(img, tmp_path / "p.png"))
    np.testing.assert_allclose(out[0], [[1, 0, 0], [0, 128 / 255, 1]], atol=1e-7)


def test_16bit_png_full_range(tmp_path: Path) -> None:
    a = np.array([[0, 1, 32768, 65535]], dtype=np.uint16)
    out = decode_image(_save(Image.fromarray(a), tmp_path / "d.png"))
    assert out.shape == (1, 4, 1)
    assert out[0, 3, 0] == 1.0
    assert out[0, 0, 0] == 0.0
    assert abs(out[0, 2, 0] - 0.5) < 1e-4
    assert out[0, 1, 0] == pytest.approx(1 / 65535)  # not quantized to 8 bits


def test_exif_orientation_applied(tmp_path: Path) -> None:
    a = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180 degrees
    Image.fromarray(a).save(tmp_path / "o.png", exif=exif)
    out = decode_image(tmp_path / "o.png")
    np.testing.assert_array_equal(out[..., 0], np.rot90(a, 2) / np.float32(255))



#: how a viewer shows stored pixels ``a`` under each EXIF orientation (EXIF 2.3 / TIFF 6.0), written
#: from the standard's definitions with numpy, not with Pillow
_SHOWN = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1, :],
          5: lambda a: a.T, 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].T,
          8: lambda a: np.rot90(a, 1)}  # fmt: skip


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(("suffix", "save"), [
    (".png", {}), (".tif", {}), (".tif", {"compression": "tiff_lzw"}), (".tif", {"bits": 16}),
])  # fmt: skip
def test_every_exif_orientation_of_a_non_square_image(tmp_path: Path, orientation: int, suffix: str,
                                                      save: dict) -> None:  # fmt: skip
    """Pillow 13 turns a TIFF while loading it and scrambled a non-square one at orientations 5-8."""
    bits = save.pop("bits", 8)
    a = (np.arange(12).reshape(3, 4) * 20).astype(np.uint16 if bits == 16 else np.uint8)
    if bits == 16:
        a = a * 257
    f = tmp_path / f"o{orientation}{suffix}"
    if suffix == ".png":
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(a).save(f, exif=exif)
    else:
        Image.fromarray(a).save(f, tiffinfo={274: orientation}, **save)
    out = decode_image(f)
    np.testing.assert_array_equal(out[..., 0], _SHOWN[orientation](a) / np.float32(65535 if bits == 16 else 255))

def test_1bit_image(tmp_path: Path) -> None:
    img = Image.new("1", (2, 1))
    img.putpixel((1, 0), 1)
    out = decode_image(_save(img, tmp_path / "b.png"))
    np.testing.assert_array_equal(out[0, :, 0], [0.0, 1.0])


def test_jpeg_decodes_close(tmp_path: Path) -> None:
    a = np.full((16, 16, 3), 128, dtype=np.uint8)
    out = decode_image(_save(Image.fromarray(a), tmp_path / "j.jpg"))
    assert out.shape == (16, 16, 3)
    np.testing.assert_allclose(out, 128 / 255, atol=3 / 255)


def _truncated_jpeg(path: Path) -> Path:
    a = RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(a).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_jpeg_raises_naming_file(tmp_path: Path) -> None:
    p = _truncated_jpeg(tmp_path / "broken.jpg")
    with pytest.raises(DataError, match="broken.jpg"):
        decode_image(p)


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.png.*not found"):
        decode_image(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataError, match="text.png"):
        decode_image(tmp_path / "text.png")


def test_array_to_float_dtypes() -> None:
    np.testing.assert_array_equal(array_to_float(np.array([[0, 255]], np.uint8))[..., 0], [[0, 1]])
    u16 = np.array([[0, 65535]], np.uint16)
    np.testing.assert_array_equal(array_to_float(u16)[..., 0], [[0, 1]])
    with pytest.raises(DataError):
        array_to_float(np.array([[0.0, 1.5]]))
    with pytest.raises(DataError):
        array_to_float(np.array([[0, 3]], np.int64))


def test_an_image_and_a_batch_are_scaled_by_one_rule() -> None:
    """The loader's scaling of one image (array_to_float) and the near-copy search's of a batch were
    twins that had drifted: the search kept float64 pixels the loader makes float32, refused another
    dtype with another error, and the loader accepted a float64 pixel just over 1 (rounded to 1.0
    in float32 before its check) that the search and from_arrays refuse. One batch scaler now."""
    from labeltrace import find_duplicates
    from labeltrace.data.decode import batch_to_float
    from labeltrace.data.near_duplicates import find_near_duplicates

    rng = np.random.default_rng(3)
    for x in (rng.integers(0, 256, (4, 3, 5), dtype=np.uint8), rng.integers(0, 65536, (4, 3, 5), dtype=np.uint16),
              rng.random((4, 3, 5)) > 0.5, rng.random((4, 3, 5)), rng.random((4, 3, 5, 3), dtype=np.float32)):
        got = batch_to_float(x)
        assert got.dtype == np.float32
        for k in range(4):
            np.testing.assert_array_equal(got[k].reshape(array_to_float(x[k]).shape), array_to_float(x[k]))
    over = np.full((2, 2), 1 + 1e-9)
    with pytest.raises(DataError, match=r"float image must be finite and in \[0, 1\] \(finite values seen 1\.000000001\.\.1\.000000001\)"):
        array_to_float(over)
    bad = rng.random((5, 4, 4)) * 255
    bad[:3] /= 255
    with pytest.raises(DataError, match=r"sample 13: float pixels .*seen .*0\.\.2.*divide by 255"):
        batch_to_float(bad, first=10)
    bad[3] = np.nan
    with pytest.raises(DataError, match=r"sample 3: float pixels must be finite and in \[0, 1\] \(no finite value\)"):
        find_near_duplicates(bad)
    with pytest.raises(DataError, match="unsupported image dtype int32"):
        find_duplicates(np.zeros((3, 16, 16), np.int32), near=True)


def test_convert_channels() -> None:
    rgb = np.array([[[1.0, 0.5, 0.25]]], dtype=np.float32)
    gray = convert_channels(rgb, 1)
    assert gray.shape == (1, 1, 1)
    assert gray[0, 0, 0] == pytest.approx(0.299 + 0.587 * 0.5 + 0.114 * 0.25, abs=1e-6)
    np.testing.assert_array_equal(convert_channels(gray, 3), np.repeat(gray, 3, axis=-1))


def test_resize_keeps_precision() -> None:
    img = np.full((6, 10, 1), 1 / 65535, dtype=np.float32)
    out = resize_image(img, (3, 4))
    assert out.shape == (3, 4, 1)
    np.testing.assert_allclose(out, 1 / 65535, rtol=1e-4)
    # independent reference: torch's antialiased bilinear resize, built to match Pillow's
    torch = pytest.importorskip("torch")
    img = RNG.random((12, 9, 3)).astype(np.float32)
    for hw in [(5, 4), (24, 20), (7, 13)]:
        ref = torch.nn.functional.interpolate(
            torch.from_numpy(img).permute(2, 0, 1)[None], size=hw, mode="bilinear",
            align_corners=False, antialias=True,
        )[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(resize_image(img, hw), ref, atol=2e-3)


def test_thumbnail_nearest_upscale_and_aspect() -> None:
    img = RNG.random((8, 8, 1)).astype(np.float32)
    th = to_uint8_thumbnail(img, 32)
    assert th.shape == (32, 32, 3) and th.dtype == np.uint8
    expected = np.kron(np.round(img[..., 0] * 255), np.ones((4, 4))).astype(np.uint8)
    np.testing.assert_array_equal(th[..., 0], expected)
    assert to_uint8_thumbnail(np.zeros((3, 50, 100), np.float32), 20).shape == (10, 20, 3)


# ---------------------------------------------------------------- DICOM (optional pydicom)
needs_pydicom = pytest.mark.skipif(
    importlib.util.find_spec("pydicom") is None, reason="pydicom not installed")


def _write_dicom(
    path: Path, px: np.ndarray, *, slope: float, intercept: float, photometric: str,
) -> Path:
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
    ds.Rows, ds.Columns = px.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = px.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@needs_pydicom
def test_dicom_rescale_minmax(tmp_path: Path) -> None:
    px = np.array([[0, 100], [400, 4095]], dtype=np.uint16)
    p = _write_dicom(tmp_path / "a.dcm", px, slope=2.0, intercept=-100.0, photometric="MONOCHROME2")
    out = decode_image(p)
    hu = px * 2.0 - 100.0
    np.testing.assert_allclose(out[..., 0], (hu - hu.min()) / (hu.max() - hu.min()), atol=1e-6)


@needs_pydicom
def test_dicom_monochrome1_inverted_and_magic_detection(tmp_path: Path) -> None:
    px = np.array([[0, 10], [20, 40]], dtype=np.uint16)
    p = _write_dicom(tmp_path / "scan_without_suffix", px, slope=1.0, intercept=0.0,
                     photometric="MONOCHROME1")
    out = decode_image(p)
    np.testing.assert_allclose(out[..., 0], 1.0 - px / 40.0, atol=1e-6)


@needs_pydicom
def test_a_palette_colour_dicom_is_read_through_its_colour_table(tmp_path: Path) -> None:
    """PALETTE COLOR (ultrasound, nuclear medicine) was read as its indices scaled as gray: white
    came out black and dark gray the brightest. An interpretation not read is refused."""
    import pydicom

    idx = np.array([[0, 1], [2, 3]], dtype=np.uint16)
    p = _write_dicom(tmp_path / "pal.dcm", idx, slope=1.0, intercept=0.0, photometric="PALETTE COLOR")
    ds = pydicom.dcmread(p)
    lut = {"Red": [65535, 0, 65535, 16384], "Green": [65535, 0, 0, 16384], "Blue": [65535, 0, 0, 16384]}
    for c, v in lut.items():  # white, black, red, dark gray
        setattr(ds, f"{c}PaletteColorLookupTableDescriptor", [4, 0, 16])
        ds[f"{c}PaletteColorLookupTableDescriptor"].VR = "US"  # the standard's "US or SS": say which
        setattr(ds, f"{c}PaletteColorLookupTableData", np.array(v, "<u2").tobytes())
    ds.save_as(p, enforce_file_format=True)
    want = np.array([[[1, 1, 1], [0, 0, 0]], [[1, 0, 0], [16384 / 65535] * 3]], dtype=np.float32)
    np.testing.assert_allclose(decode_image(p), want, atol=1e-6)
    ds.PhotometricInterpretation = "HSV"
    ds.save_as(p, enforce_file_format=True)
    with pytest.raises(DataError, match=r"pal\.dcm: unsupported DICOM PhotometricInterpretation 'HSV'"):
        decode_image(p)


@needs_pydicom
def test_dicom_example_ct_matches_pydicom() -> None:
    import pydicom
    from pydicom import examples

    path = examples.get_path("ct")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    out = decode_image(path)
    np.testing.assert_allclose(out[..., 0], (hu - hu.min()) / (hu.max() - hu.min()), atol=1e-6)


def test_a_palette_image_with_alpha_keeps_its_colours(tmp_path: Path) -> None:
    """Mode PA (a palette with alpha) was read as gray: opaque pure red came out 0.30."""
    pa = Image.new("PA", (2, 2))
    pa.putpalette([255, 0, 0] + [0] * 765)
    pa.putdata([(0, 255)] * 4)
    path = tmp_path / "pa.tif"
    pa.save(path)
    assert Image.open(path).mode == "PA"
    np.testing.assert_allclose(decode_image(path), np.tile([1.0, 0.0, 0.0], (2, 2, 1)))


def test_a_file_that_is_no_image_says_what_it_is(tmp_path: Path) -> None:
    """'cannot decode image (UnidentifiedImageError: cannot identify image file '/abs/path')' repeated the
    path and did not say that the file was empty."""
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"empty\.png: empty file \(0 bytes; an interrupted copy\?\)$"):
        decode_image(tmp_path / "empty.png")
    with pytest.raises(DataError, match=r"notes\.png: not an image file Pillow knows, nor DICOM"):
        decode_image(tmp_path / "notes.png")


def test_big_endian_arrays_are_read_as_their_values() -> None:
    """A '>u2' array (saved on a big-endian machine, or by a tool that writes one) was refused as
    'unsupported image dtype >u2; use uint8, uint16, ...' (an audit's finding)."""
    from labeltrace.data import from_arrays

    native = (np.arange(4 * 4 * 4, dtype=np.uint16).reshape(4, 4, 4) * 1000).astype(np.uint16)
    for dt in (">u2", ">f4"):
        arr = native / 65535 if dt == ">f4" else native
        ds = from_arrays(arr.astype(dt), [0, 1, 0, 1])
        want = from_arrays(arr.astype(dt.replace(">", "<")), [0, 1, 0, 1])
        for i in range(4):
            np.testing.assert_array_equal(ds.load(i), want.load(i))
        assert ds.load(3).max() > 0.9  # the values, not their bytes swapped


def test_a_float_tiff_out_of_range_is_refused_with_the_values_it_holds(tmp_path: Path) -> None:
    """Every out-of-range float TIFF (0..255 as float, Hounsfield units, 1 + a hair) was refused
    with one sentence that named no value; an in-memory float image names its range and a hint."""
    from labeltrace.data.errors import DataError

    cases = {"gray255": (np.linspace(0, 255, 64), r"values seen 0\.\.255; 0\.\.255 stored as float\? divide by 255"),
             "hounsfield": (np.linspace(-1000, 400, 64), r"values seen -1000\.\.400\)"),
             "ok": (np.linspace(0, 1, 64), None)}  # fmt: skip
    for name, (values, message) in cases.items():
        path = tmp_path / f"{name}.tif"
        Image.fromarray(values.reshape(8, 8).astype(np.float32), mode="F").save(path)
        if message is None:
            assert decode_image(path).max() == pytest.approx(1.0)
            continue
        with pytest.raises(DataError, match=rf"{name}\.tif: float image must be finite and in \[0, 1\] \(finite {message}"):
            decode_image(path)


def test_an_image_named_dcm_that_is_no_dicom_is_read_as_what_it_is(tmp_path: Path) -> None:
    """A PNG saved under a .dcm name went to the DICOM reader by its extension alone, which refused
    it (pydicom's InvalidDicomError)."""
    Image.fromarray(np.full((4, 4), 128, np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "x.dcm").write_bytes((tmp_path / "x.png").read_bytes())
    assert decode_image(tmp_path / "x.dcm").max() == pytest.approx(128 / 255)


@needs_pydicom
def test_what_decoding_saw_is_the_last_images_not_the_one_before(tmp_path: Path) -> None:
    """The validation pass reads a decode's frames and see-through pixels from the thread: a DICOM
    decoded after an RGBA PNG with transparent pixels was said to have them too."""
    from labeltrace.data.decode import last_see_through

    rgba = np.zeros((4, 4, 4), np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "clear.png")
    decode_image(tmp_path / "clear.png")
    assert last_see_through()
    decode_image(_write_dicom(tmp_path / "a.dcm", np.arange(4, dtype=np.uint16).reshape(2, 2), slope=1.0,
                              intercept=0.0, photometric="MONOCHROME2"))  # fmt: skip
    assert not last_see_through()
