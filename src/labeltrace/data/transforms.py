"""Small transforms of a decoded image (an ``(H, W, C)`` float32 array in [0, 1],
:mod:`labeltrace.data.decode`): its channels (:func:`convert_channels`), its size
(:func:`resize_image`), and back to integers — ``uint8`` or ``uint16`` pixels (:func:`to_uint8`,
:func:`to_uint16`), an RGB thumbnail (:func:`to_uint8_thumbnail`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["convert_channels", "resize_image", "to_uint8", "to_uint8_thumbnail", "to_uint16"]

# ITU-R BT.601 luma weights, the same ones Pillow uses for RGB -> L.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def convert_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """Return ``img`` (``(H, W, C)``) with ``channels`` channels.

    Grayscale to RGB repeats the channel; RGB to grayscale uses BT.601 luma weights.
    """
    c = img.shape[-1]
    if channels == c:
        return img
    if channels == 3 and c == 1:
        return np.repeat(img, 3, axis=-1)
    if channels == 1 and c == 3:
        return (img @ _LUMA)[..., None].astype(np.float32)
    raise ValueError(f"cannot convert {c} channels to {channels}; channels must be 1 or 3")


def resize_image(img: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize an ``(H, W, C)`` float image to ``size`` (``s`` or ``(h, w)``), bilinear.

    The aspect ratio is not kept. Pillow's resampling antialiases when shrinking; it works
    in float per channel, so no precision is lost to 8 bits.
    """
    h, w = (size, size) if isinstance(size, int) else size
    if img.shape[:2] == (h, w):
        return img
    chans = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(img[..., k], dtype=np.float32)).resize(
                (w, h), Image.Resampling.BILINEAR
            )
        )
        for k in range(img.shape[-1])
    ]
    return np.clip(np.stack(chans, axis=-1), 0.0, 1.0).astype(np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """A decoded float image in [0, 1] as uint8: ``round(255 * x)``, clipped (halves to even)."""
    return np.rint(np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def to_uint16(img: np.ndarray) -> np.ndarray:
    """A decoded float image in [0, 1] as uint16: ``round(65535 * x)``, clipped (halves to even);
    gives back a ``uint16`` array's values exactly after :func:`~labeltrace.data.decode.array_to_float`."""
    return np.rint(np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0) * 65535.0).astype(np.uint16)


def to_uint8_thumbnail(img: np.ndarray, size: int) -> np.ndarray:
    """Make an ``(h, w, 3)`` uint8 RGB thumbnail whose longer side is ``size`` pixels.

    ``img`` is ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` float in [0, 1] (``C`` in {1, 3}).
    The aspect ratio is kept; small images are enlarged with nearest-neighbour (crisp
    pixels), large ones shrunk with Lanczos.
    """
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.ndim != 3 or a.shape[-1] not in (1, 3):
        raise ValueError(
            f"expected (H, W), (H, W, C) or (C, H, W) with C in {{1, 3}}; got {a.shape}"
        )
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    u8 = to_uint8(a)
    pil = Image.fromarray(np.repeat(u8, 3, axis=-1) if u8.shape[-1] == 1 else u8)
    h, w = a.shape[:2]
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    method = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    return np.asarray(pil.resize(new, method))
