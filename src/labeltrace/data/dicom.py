"""DICOM files, read through the optional ``pydicom`` (``pip install 'labeltrace[dicom]'``).

:func:`labeltrace.data.decode.decode_image` reads a DICOM file in three steps, so that the pixel
limit is checked on the header before any pixel is decoded: :func:`read_dicom`, the size
(``Columns`` x ``Rows`` x :func:`dicom_frames`), then :func:`dicom_to_array`. The conversion rules
are those of :mod:`labeltrace.data.decode`'s docstring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labeltrace.data.errors import DataError, MissingDependencyError

__all__ = ["DICOM_SUFFIXES", "dicom_frames", "dicom_to_array", "has_dicom_magic", "read_dicom"]

DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom")


def has_dicom_magic(path: Path) -> bool:
    """Whether ``path`` starts as a DICOM Part 10 file does (``DICM`` after a 128-byte preamble)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_dicom(path: Path) -> Any:
    """The pydicom dataset of ``path`` (its pixels not decoded yet)."""
    try:
        import pydicom
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{path} is a DICOM file; reading it needs pydicom (pip install 'labeltrace[dicom]')"
        ) from exc
    return pydicom.dcmread(path)


def dicom_frames(ds: Any) -> int:
    """The number of frames a dataset declares (1 when it declares none)."""
    return int(getattr(ds, "NumberOfFrames", 1) or 1)


def dicom_to_array(ds: Any) -> np.ndarray:
    """The first frame of ``ds`` as an ``(H, W, C)`` float32 array in [0, 1]: grayscale rescaled
    (``RescaleSlope`` / ``RescaleIntercept``, ``MONOCHROME1`` inverted) and min-max scaled per
    image; colour divided by ``2**BitsStored - 1``; ``PALETTE COLOR`` through its colour table."""
    px = np.asarray(ds.pixel_array)
    spp = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if dicom_frames(ds) > 1:
        px = px[0]
    if spp == 3:
        bits = int(getattr(ds, "BitsStored", 8) or 8)
        return (px.astype(np.float32) / float(2**bits - 1)).clip(0.0, 1.0)
    if spp != 1 or px.ndim != 2:
        raise DataError(f"unsupported DICOM pixel layout {px.shape} (SamplesPerPixel={spp})")
    photometric = str(getattr(ds, "PhotometricInterpretation", "")).upper()
    if photometric == "PALETTE COLOR":  # ultrasound, nuclear medicine: indices into a colour table
        try:
            from pydicom.pixels import apply_color_lut
        except ImportError:  # pydicom 2.x
            from pydicom.pixel_data_handlers.util import apply_color_lut  # type: ignore[no-redef]

        rgb = apply_color_lut(px, ds)  # 8- or 16-bit entries, as the table's descriptor says
        return (rgb.astype(np.float32) / float(np.iinfo(rgb.dtype).max)).clip(0.0, 1.0)
    if photometric not in ("MONOCHROME1", "MONOCHROME2", ""):
        raise DataError(f"unsupported DICOM PhotometricInterpretation {photometric!r} for one sample per pixel "
                        "(MONOCHROME1, MONOCHROME2 and PALETTE COLOR are read)")  # fmt: skip
    a = px.astype(np.float64) * float(getattr(ds, "RescaleSlope", 1) or 1) + float(
        getattr(ds, "RescaleIntercept", 0) or 0
    )
    if photometric == "MONOCHROME1":
        a = -a
    lo, hi = float(a.min()), float(a.max())
    out = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return out.astype(np.float32)[..., None]
