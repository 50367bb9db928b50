"""Sample images for display: read through the run directory, scaled for a screen, PNG-encoded."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from labeltrace.rundir import Run

__all__ = ["browser_shows", "display_image", "load_rgb", "png_bytes", "png_data_uri", "stretch"]

#: image files a browser shows as they are (Label Studio's local-files serves the file itself)
_BROWSER_SHOWS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"})


def browser_shows(f: Path, name: Path | None = None) -> bool:
    """Whether a browser shows the file ``f`` as the scan saw it: not DICOM or TIFF, and not a PNG
    the scan read as 16-bit (:func:`labeltrace.data.decode.stored_bits`: a browser maps its full
    range to 8 bits, so 12-bit X-ray data in it shows nearly black). The type is ``name``'s when
    given — the path the dataset lists, a link into a content store whose files have no suffix
    (DVC's cache) — else ``f``'s."""
    from labeltrace.data.decode import stored_bits  # lazy: decoding lives at the data edge

    suffix = (name or f).suffix.lower()
    return suffix in _BROWSER_SHOWS and (suffix != ".png" or stored_bits(f) == 8)


def load_rgb(run: Run, sample_id: int) -> np.ndarray:
    """A sample's image for display, as ``(H, W, 3)`` uint8 RGB.

    Read with :meth:`Run.pixels`: files are resolved with :meth:`Run.image_file` (which refuses paths
    outside the run's allowed roots) and decoded with :func:`labeltrace.data.decode.decode_image`;
    in-memory datasets come from the pixels the run kept, a ``.npz`` from its source. An image whose
    source stores more than 8 bits per sample (a 16-bit PNG or TIFF, a ``uint16`` array, in an
    ``.npz`` source or handed to ``scan()`` in memory) is stretched per image to the full range
    (:func:`stretch`): 12-bit data in 16 bits, as X-ray exports hold it, would show black. 8-bit
    images are shown as they are.

    Raises
    ------
    ValueError
        Unknown sample id, a path escaping the allowed roots, a file changed since the scan, or an
        unreadable image (the message names the sample and the file).
    FileNotFoundError
        The image file is gone since the scan (the message names the sample and the file).
    """
    from labeltrace.data.decode import array_to_float  # lazy: decoding lives at the data edge
    from labeltrace.data.transforms import to_uint8

    a, bits = run.pixels(sample_id)  # a file decoded (Run.image_file checks its root), or the kept pixels
    if a.dtype != np.uint8:  # decoded, or an images.npy of another dtype (runs written before)
        f = a if a.dtype.kind == "f" else array_to_float(a)
        a = to_uint8(stretch(f) if bits > 8 else f)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


def stretch(img: np.ndarray) -> np.ndarray:
    """Min-max scale a float image to [0, 1], all channels together (a constant image unchanged);
    for display only, as :func:`labeltrace.data.decode.decode_image` does for grayscale DICOM."""
    a = np.asarray(img, dtype=np.float32)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    return (a - lo) / (hi - lo) if hi > lo else a


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
