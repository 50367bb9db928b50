"""The pixels of in-memory images kept in a run directory, so that the report, the review page and
the exports can show them: one ``(N, H, W, C)`` array when the images share a size, else every
image at its own size, flattened one after another (``images_flat.npy``) with an index of offsets
and shapes (``images_index.npy``). Both are read memory-mapped, one image at a time. 16-bit
pixels (a ``uint16`` array, Hugging Face rows of 16-bit images: :func:`labeltrace.run_source.
source_bits`) are kept as ``uint16`` (12-bit data in 16 bits, as X-ray exports hold it, would keep
17 grey levels in 8 bits), any other as ``uint8``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labeltrace._io import atomic_save_array
from labeltrace.data.transforms import to_uint8, to_uint16
from labeltrace.run_source import source_bits

__all__ = ["ImageStore", "write_images"]


def write_images(ds: Any, single: Path, flat: Path, index: Path) -> list[Path]:
    """Write ``ds``'s pixels (``uint16`` for 16-bit ones, else ``uint8``): to ``single`` when
    they share a size, else to ``flat`` and ``index`` (each image decoded twice, never all held at
    once). Returns the files written."""
    wide = source_bits(ds) == 16
    dtype, quantize = (np.uint16, to_uint16) if wide else (np.uint8, to_uint8)
    if ds.image_shape is not None:
        imgs = ds.materialize(dtype=dtype).transpose(0, 2, 3, 1)
        atomic_save_array(single, imgs)
        return [single]
    n = len(ds)
    shapes = np.asarray(ds.shapes, np.int64) if ds.shapes is not None else \
        np.array([ds.load(i).shape for i in range(n)], np.int64).reshape(n, 3)  # fmt: skip
    sizes = shapes.prod(axis=1)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    tmp = flat.with_name(flat.name + ".partial")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(int(offsets[-1]),))
    for i in range(n):
        img = quantize(ds.load(i))
        if img.shape != tuple(shapes[i]):
            raise ValueError(f"sample {ds.sources[i]}: shape {img.shape} differs from the dataset's {tuple(shapes[i])}")
        out[offsets[i] : offsets[i + 1]] = img.reshape(-1)
    out.flush()
    del out
    tmp.replace(flat)
    table = np.column_stack([offsets[:-1], shapes])
    atomic_save_array(index, table)
    return [flat, index]


class ImageStore:
    """Read side of :func:`write_images`: ``store[i]`` is image ``i`` as ``(H, W, C)``, uint8 or
    uint16 as written."""

    def __init__(self, single: Path, flat: Path, index: Path) -> None:
        self._single = np.load(single, mmap_mode="r", allow_pickle=False) if single.exists() else None
        self._flat = self._index = None
        if self._single is None:
            self._flat = np.load(flat, mmap_mode="r", allow_pickle=False)
            self._index = np.load(index, allow_pickle=False)

    @staticmethod
    def exists(single: Path, flat: Path, index: Path) -> bool:
        return single.exists() or (flat.exists() and index.exists())

    def __getitem__(self, i: int) -> np.ndarray:
        if self._single is not None:
            img = np.asarray(self._single[i])
            return img if img.ndim == 3 else img[:, :, None]
        assert self._flat is not None and self._index is not None
        off, h, w, c = (int(v) for v in self._index[i])
        return np.asarray(self._flat[off : off + h * w * c]).reshape(h, w, c)
