"""In-memory images scaled to float32 in [0, 1] as the decoder scales files (``uint8`` / 255,
``uint16`` / 65535, ``bool`` to {0, 1}, floats checked to lie in [0, 1]); re-exported by
:mod:`labeltrace.data.decode`."""

from __future__ import annotations

import numpy as np

from labeltrace.data.errors import DataError

__all__ = ["array_to_float", "batch_to_float", "pixel_text", "rows_out_of_range"]


def rows_out_of_range(x: np.ndarray) -> np.ndarray:
    """The rows (first axis) of a float array ``(N, ...)`` holding a value that is not finite or lies
    outside [0, 1], ascending (none of no rows: reshape's -1 cannot be read from 0 values)."""
    a = np.asarray(x)
    flat = a.reshape(len(a), int(np.prod(a.shape[1:])))
    return np.flatnonzero(~np.all(np.isfinite(flat) & (flat >= 0) & (flat <= 1), axis=1))


def pixel_text(v: float) -> str:
    """``v`` in short (``:g``), unless that would round a value outside [0, 1] into it (1 + 1e-9 is no "1")."""
    short = f"{v:g}"
    return short if (0 <= float(short) <= 1) == (0 <= v <= 1) else repr(float(v))


def batch_to_float(x: np.ndarray, first: int | None = None) -> np.ndarray:
    """Scale a batch of in-memory images ``(N, ...)`` to float32 in [0, 1], as the dataset loader
    scales each (:func:`array_to_float`): ``uint8`` divided by 255, ``uint16`` by 65535, ``bool`` to
    {0, 1}; floats must already be finite and inside [0, 1].

    Raises
    ------
    DataError
        For other dtypes, or floats out of range: the first such image is named ``sample first + row``
        (``first``: the batch's first sample; None for an image of its own).
    """
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255)
    if x.dtype == np.uint16:
        return x.astype(np.float32) / np.float32(65535)
    if x.dtype == np.bool_:
        return x.astype(np.float32)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"unsupported image dtype {x.dtype}; use uint8, uint16, bool or float in [0, 1]")
    bad = rows_out_of_range(x)
    if bad.size:
        row = np.asarray(x[int(bad[0])], dtype=np.float64)
        seen = row[np.isfinite(row)]
        lo, hi = (float(seen.min()), float(seen.max())) if seen.size else (np.nan, np.nan)
        hint = "; 0..255 stored as float? divide by 255" if lo >= 0 and 1.5 < hi <= 255 else ""
        where = "float image" if first is None else f"sample {first + int(bad[0])}: float pixels"
        found = (f"finite values seen {pixel_text(lo)}..{pixel_text(hi)}{', and some not finite' if seen.size < row.size else ''}"
                 if seen.size else "no finite value")  # fmt: skip
        raise DataError(f"{where} must be finite and in [0, 1] ({found}{hint})")
    return x.astype(np.float32)


def array_to_float(a: np.ndarray) -> np.ndarray:
    """Scale one in-memory image to float32 in [0, 1], shaped ``(H, W, C)``.

    ``uint8`` is divided by 255, ``uint16`` by 65535, ``bool`` maps to {0, 1}; floats must
    already be finite and inside [0, 1] (:func:`batch_to_float`). ``(H, W)`` gains a channel axis.

    Raises
    ------
    DataError
        For other dtypes, out-of-range floats, or channel counts other than 1 or 3.
    """
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise DataError(f"image must be (H, W), (H, W, 1) or (H, W, 3); got shape {a.shape}")
    return batch_to_float(a[None])[0]
