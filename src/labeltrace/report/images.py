"""Sample images for display: read through the run directory, scaled for a screen, PNG-encoded."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from labeltrace.rundir import Run

__all__ = ["display_image", "load_rgb", "png_bytes", "png_data_uri"]


def load_rgb(run: Run, sample_id: int) -> np.ndarray:
    """A sample's image as ``(H, W, 3)`` uint8 RGB.

    Read with :meth:`Run.image`: files are resolved with :meth:`Run.image_file` (which refuses paths
    outside the run's allowed roots) and decoded with :func:`labeltrace.data.decode.decode_image`;
    in-memory datasets come from the pixels the run kept, a ``.npz`` from its source.

    Raises
    ------
    ValueError
        Unknown sample id, a path escaping the allowed roots, or an unreadable image (the message
        names the sample and the file).
    """
    i = int(sample_id)
    if not 0 <= i < run.num_samples:
        raise ValueError(f"sample id {sample_id} out of range [0, {run.num_samples})")
    a = np.asarray(run.image(i))  # a file decoded (Run.image_file checks its root), or the kept pixels
    if a.dtype != np.uint8:  # an images.npy of another dtype (runs written before)
        from labeltrace.data.decode import (  # lazy: decoding lives at the data edge
            array_to_float,
            to_uint8,
        )

        a = to_uint8(array_to_float(a))
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


def display_image(img: np.ndarray, *, size: int = 256) -> np.ndarray:
    """Scale ``(H, W, 3)`` uint8 for display with the longer side close to ``size``.

    Small images are enlarged by the largest integer factor that keeps the longer side
    ``<= size``, with nearest neighbour (every source pixel becomes a crisp square); images
    larger than ``size`` are shrunk with Lanczos, keeping the aspect ratio.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    h, w = img.shape[:2]
    longest = max(h, w)
    if longest <= size:
        f = max(1, size // longest)
        return np.repeat(np.repeat(img, f, axis=0), f, axis=1) if f > 1 else img
    s = size / longest
    new = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(img).resize(new, Image.Resampling.LANCZOS))


def png_bytes(img: np.ndarray) -> bytes:
    """Encode ``(H, W, 3)`` uint8 as PNG."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
