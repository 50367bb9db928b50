"""Image decoding to float32 arrays in [0, 1]; the transforms of a decoded image (channels, size,
back to integers) are in :mod:`labeltrace.data.transforms`.

Every decoded image is an ``(H, W, C)`` float32 array with ``C`` in ``{1, 3}`` and values in
``[0, 1]``. Conversion rules (by Pillow mode):

- ``1``, ``L``: grayscale, divided by the format's maximum (1 or 255).
- ``I;16*`` (16-bit PNG / TIFF): divided by 65535 -- the full 16-bit range is kept, never
  reduced to 8 bits. ``I`` (32-bit int) is accepted when its values lie in 0..65535 and then
  scaled the same way; other ranges are refused.
- ``F`` (32-bit float): accepted when all values are finite and inside [0, 1].
- ``LA``, ``RGBA``, ``PA``, and palette, ``L`` or ``RGB`` images with a transparent colour (PNG
  ``tRNS``): **composited on black**, i.e.
  colour is multiplied by alpha; the alpha channel is then dropped (a folder's or manifest's files
  with pixels less than opaque are named in a warning: :func:`labeltrace.data.probing.see_through`).
- ``P`` and every other colour mode (``RGB``, ``CMYK``, ``YCbCr``, ...): converted to RGB.
  Pillow reads 16-bit-per-channel RGB PNGs as 8-bit RGB (the high byte of each value); that
  precision loss is Pillow's. Such files count as 16-bit in the depth check of a folder
  (:mod:`labeltrace.data.probing`): dim ones beside 8-bit files are named.
- Multi-frame files (GIF, TIFF stacks, multi-frame DICOM) use their first frame (a folder's or
  manifest's TIFF stacks are named in a warning: :func:`labeltrace.data.probing.stacks`).
- The EXIF orientation tag is applied (the image is shown the way viewers show it).
- DICOM (``.dcm``/``.dicom`` or the ``DICM`` magic), through the optional ``pydicom``:
  ``RescaleSlope`` / ``RescaleIntercept`` are applied, ``MONOCHROME1`` is inverted so that
  high values are bright, and grayscale pixels are min-max scaled per image to [0, 1] (a
  constant image becomes all zeros). Colour DICOM is divided by ``2**BitsStored - 1``;
  ``PALETTE COLOR`` (ultrasound, nuclear medicine) has its colour table applied, RGB scaled by
  the table's 8- or 16-bit range; other one-sample interpretations are refused.

**Pixel limit.** A small file can declare a huge image (a "decompression bomb": a 420 KB PNG
of 12000x12000 pixels costs gigabytes once decoded). Every decoder reads the size from the
header first and refuses, with a :class:`DataError` naming the file and its size, an image of
more than ``max_pixels`` pixels (default :data:`MAX_PIXELS`, 40 megapixels; for DICOM, rows x
columns x frames). Pillow's own guard (``Image.MAX_IMAGE_PIXELS``, about 89 megapixels with a
warning, twice that with an error) stays in place above it, unless a larger ``max_pixels``
raises it (:func:`open_image`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from labeltrace.data.dicom import (
    DICOM_SUFFIXES,
    dicom_frames,
    dicom_to_array,
    has_dicom_magic,
    read_dicom,
)
from labeltrace.data.errors import DataError, MissingDependencyError
from labeltrace.data.scaling import (  # re-exported: in-memory arrays' scaling, in its own module
    array_to_float,
    batch_to_float,
    pixel_text,
    rows_out_of_range,
)
from labeltrace.data.transforms import (  # re-exported: this module's public names before the split
    convert_channels,
    resize_image,
    to_uint8,
    to_uint8_thumbnail,
    to_uint16,
)

__all__ = [
    "DICOM_SUFFIXES",
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "array_to_float",
    "batch_to_float",
    "check_pixels",
    "convert_channels",
    "decode_image",
    "load_pixels",
    "mode_bits",
    "open_image",
    "pil_to_array",
    "pixel_limit",
    "pixel_text",
    "resize_image",
    "rows_out_of_range",
    "stored_bits",
    "to_uint8",
    "to_uint8_thumbnail",
    "to_uint16",
]

IMAGE_SUFFIXES: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
)

#: Default pixel limit of every decoder (a module-level setting; each call can pass its own).
MAX_PIXELS = 40_000_000

def pixel_limit(max_pixels: int | None = None) -> int:
    """The pixel limit in force: ``max_pixels``, or :data:`MAX_PIXELS` when None."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    return int(limit)


def check_pixels(width: int, height: int, max_pixels: int | None = None, frames: int = 1) -> None:
    """Refuse an image of ``width`` x ``height`` (x ``frames``) over the pixel limit.

    ``max_pixels`` None means the module default :data:`MAX_PIXELS`.

    Raises
    ------
    DataError
        Over the limit (the message gives the size and the limit).
    ValueError
        ``max_pixels`` not a positive integer.
    """
    limit = pixel_limit(max_pixels)
    n = int(width) * int(height) * max(1, int(frames))
    if n > limit:
        size = f"{width}x{height}" + (f"x{frames} frames" if frames > 1 else "")
        raise DataError(
            f"image of {size} = {n:,} pixels is over the limit of {int(limit):,} pixels "
            "(a decompression-bomb guard; raise it with --max-pixels or max_pixels=)"
        )


_GUARD = threading.Lock()  # Pillow's guard is one global: raised by one open at a time


def open_image(fp: str | Path | BinaryIO, max_pixels: int | None = None) -> Image.Image:
    """``Image.open`` (header only) and the pixel limit; the caller loads and closes it.

    A limit above Pillow's own guard (``Image.MAX_IMAGE_PIXELS``, about 89 megapixels, refusing
    twice that) raises that guard to it for this open alone, under a lock, then puts it back:
    ``--max-pixels`` is the user's word on how large an image may be, and this function checks it
    before anything is decoded.
    """
    limit = pixel_limit(max_pixels)
    try:
        if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
            with _GUARD:  # raised for this open alone (the header is read), then put back
                guard = Image.MAX_IMAGE_PIXELS
                Image.MAX_IMAGE_PIXELS = int(limit)
                try:
                    img = Image.open(fp)
                finally:
                    Image.MAX_IMAGE_PIXELS = guard
        else:
            img = Image.open(fp)
    except Image.DecompressionBombError as exc:  # over twice Pillow's guard: over ours too
        raise DataError(f"{exc} (over the limit of {int(limit):,} pixels; raise it with --max-pixels or "
                        "max_pixels=)") from None
    try:
        check_pixels(img.width, img.height, max_pixels)
    except BaseException:
        img.close()
        raise
    return img


#: Pillow's turn for each EXIF orientation (as ImageOps.exif_transpose applies them)
_TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
          5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_90}  # fmt: skip


def _tiff_as_stored_then_turned(img: Image.Image) -> Image.Image:
    """A TIFF whose orientation tag swaps its sides (5-8), loaded as stored and then turned here.
    Pillow 13 turns a TIFF while loading it, and scrambles the pixels of a non-square one at
    orientations 5-8 (same shape as stored, values out of place); other images, and Pillows that
    do not turn TIFFs while loading (no ``_tile_size``), pass through unchanged."""
    tag = getattr(img, "tag_v2", None)
    orientation = tag.get(0x0112, 1) if img.format == "TIFF" and tag is not None else 1
    stored = getattr(img, "_tile_size", None)
    if orientation not in (5, 6, 7, 8) or stored is None or getattr(img, "_im", None) is not None:
        return img
    img._size = tuple(stored)  # the stored width and height, not the turned ones
    assert tag is not None  # orientations 5-8 come from it
    del tag[0x0112]
    exif = img.getexif()
    exif.pop(0x0112, None)
    img.load()
    if img.size != tuple(stored):
        raise DataError(f"cannot read the TIFF as stored to apply its orientation {orientation} "
                        f"(Pillow {Image.__version__}); save it without the orientation tag")  # fmt: skip
    return img.transpose(_TURNS[orientation])


_DECODED = threading.local()  # what the last pil_to_array of this thread saw beside the pixels


def last_frames() -> int:
    """The frames of the last image :func:`decode_image` (or :func:`pil_to_array`) decoded on this
    thread (a stack's, when its second frame has the first one's size; 1 otherwise): the validation
    pass reads it after each decode instead of opening the file again."""
    return int(getattr(_DECODED, "frames", 1))


def last_see_through() -> bool:
    """Whether the last image :func:`decode_image` (or :func:`pil_to_array`) decoded on this thread
    had pixels less than opaque (an alpha channel, or a transparent colour), which it composited on
    black."""
    return bool(getattr(_DECODED, "see_through", False))


def load_pixels(img: Image.Image) -> Image.Image:
    """``img`` with its pixels loaded (decoding errors raise here): a TIFF at orientation 5-8 read
    as stored and turned (:func:`_tiff_as_stored_then_turned`), any other image as Pillow loads it."""
    img = _tiff_as_stored_then_turned(img)
    img.load()
    return img


def pil_to_array(img: Image.Image) -> np.ndarray:
    """Convert a Pillow image to an ``(H, W, C)`` float32 array in [0, 1] (see module doc).

    Raises
    ------
    DataError
        For integer or float images whose values cannot be mapped to [0, 1] without guessing.
    """
    frames = getattr(img, "n_frames", 1)
    if frames > 1:  # a stack when its second frame is of the first one's size (a thumbnail page is not)
        img.seek(0)
        first = img.size
        img.seek(1)
        frames = frames if img.size == first else 1
        img.seek(0)
    _DECODED.frames, _DECODED.see_through = frames, False
    img = _tiff_as_stored_then_turned(img)
    if img.getexif().get(0x0112, 1) != 1:  # EXIF orientation
        img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode == "1":
        return np.asarray(img, dtype=np.float32)[..., None]
    if mode_bits(mode) == 16:
        a = np.asarray(img)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise DataError(
                f"integer image (mode {mode}) with values {a.min()}..{a.max()} outside "
                "0..65535; convert it to unsigned 8 or 16 bit first"
            )
        return (a.astype(np.float32) / 65535.0)[..., None]
    if mode == "F":  # refused as an in-memory float image is: with the values seen, and a hint
        return batch_to_float(np.asarray(img, dtype=np.float32)[None])[0][..., None].copy()
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("L", "RGB") and "transparency" in img.info:  # a transparent colour (PNG tRNS), as a palette's
        img = img.convert("LA" if mode == "L" else "RGBA")
        mode = img.mode
    if mode == "PA":  # a palette with alpha: its colours, not their gray
        img = img.convert("RGBA")
        mode = img.mode
    if mode in ("LA", "La"):
        img = img.convert("LA")
        a = np.asarray(img, dtype=np.float32) / 255.0
        _DECODED.see_through = bool((a[..., 1] < 1).any())
        return (a[..., :1] * a[..., 1:2]).astype(np.float32)
    if mode == "L":
        return (np.asarray(img, dtype=np.float32) / 255.0)[..., None]
    if mode in ("RGBA", "RGBa"):
        img = img.convert("RGBA")
        a = np.asarray(img, dtype=np.float32) / 255.0
        _DECODED.see_through = bool((a[..., 3] < 1).any())
        return (a[..., :3] * a[..., 3:4]).astype(np.float32)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.float32) / 255.0


def _decode_dicom(path: Path, max_pixels: int) -> np.ndarray:
    ds = read_dicom(path)
    check_pixels(int(getattr(ds, "Columns", 0) or 0), int(getattr(ds, "Rows", 0) or 0), max_pixels,
                 frames=dicom_frames(ds))  # fmt: skip
    return dicom_to_array(ds)


def decode_image(path: str | Path, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode one image file to an ``(H, W, C)`` float32 array in [0, 1].

    Parameters
    ----------
    path : str or Path
        Image file (any format Pillow reads) or DICOM file.
    max_pixels : int, optional
        Refuse images whose header declares more pixels (default :data:`MAX_PIXELS`).

    Raises
    ------
    DataError
        If the file is missing, unreadable, truncated, over the pixel limit or has unsupported
        values; the message names the file.
    MissingDependencyError
        For DICOM files when ``pydicom`` is not installed.
    """
    path = Path(path)
    max_pixels = pixel_limit(max_pixels)
    dicom_name = path.suffix.lower() in DICOM_SUFFIXES
    _DECODED.frames, _DECODED.see_through = 1, False  # a DICOM's: not the last Pillow image's
    try:
        if dicom_name and has_dicom_magic(path):
            return _decode_dicom(path, max_pixels)
        try:  # a .dcm without the preamble that Pillow reads (a PNG so named) is its format's
            with open_image(path, max_pixels) as img:
                return pil_to_array(load_pixels(img))
        except UnidentifiedImageError:
            if dicom_name or has_dicom_magic(path):  # a .dcm without the preamble: by its name
                return _decode_dicom(path, max_pixels)
            if path.stat().st_size == 0:
                raise DataError("empty file (0 bytes; an interrupted copy?)") from None
            raise DataError("not an image file Pillow knows, nor DICOM (cannot identify its format)") from None
    except MissingDependencyError:
        raise
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except Exception as exc:  # Pillow / pydicom raise many types for corrupt data
        raise DataError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc


def mode_bits(mode: str) -> int:
    """Bits per sample of a Pillow image mode as :func:`pil_to_array` reads it: 16 for 16-bit
    grayscale (``I;16*``) and 32-bit integer (``I``) images, else 8."""
    return 16 if mode == "I" or mode.startswith("I;16") else 8


def stored_bits(path: str | Path | BinaryIO) -> int:
    """Bits per sample of an image file (or its bytes, as a file object) as :func:`decode_image`
    reads it, from its header alone (:func:`mode_bits`); 8 for DICOM, which :func:`decode_image`
    min-max scales already, and for an unreadable header."""
    try:
        with Image.open(path) as img:
            args = img.tile[0].args if img.tile else None
            packed = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else None
            if img.format in ("PNG", "TIFF") and isinstance(packed, str) and packed.endswith((";16B", ";16L", ";16N")):
                # 16-bit colour (RGB;16B): Pillow keeps the high byte, so its values are divided by 65535
                return 16  # too, in effect (12-bit data: 16 levels); a 16-bit BMP (RGB565) is 8-bit-like
            return mode_bits(img.mode)
    except Exception:  # noqa: BLE001 - DICOM, or a file decode_image reports on
        return 8
