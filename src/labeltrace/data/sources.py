"""Where an :class:`~labeltrace.data.base.ImageDataset`'s pixels come from: the
:class:`ImageSource` protocol and its file and in-memory array implementations (the Hugging Face
one is :class:`labeltrace.data.hf.HFSource`), and the thread pool that decodes with them
(:func:`parallel_map`). The classes are re-exported by :mod:`labeltrace.data.base`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from labeltrace.data.decode import array_to_float, decode_image
from labeltrace.data.errors import DataError

__all__ = ["ArraySource", "FileSource", "ImageSource", "default_workers", "parallel_map"]


def default_workers() -> int:
    """Thread count for decoding: the CPU count, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def parallel_map(fn: Callable[[int], object], idx: Sequence[int] | np.ndarray, workers: int | None) -> list:
    """``[fn(i) for i in idx]``, in order, on a thread pool (Pillow releases the GIL).

    The ids are split into a few chunks per thread, so per-task overhead stays small.
    """
    workers = default_workers() if workers is None else int(workers)
    idx = [int(i) for i in idx]
    if workers <= 1 or len(idx) <= 1:
        return [fn(i) for i in idx]
    chunks = [c.tolist() for c in np.array_split(np.asarray(idx), min(len(idx), 4 * workers))]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(lambda c: [fn(i) for i in c], chunks))
    return [r for part in parts for r in part]


@runtime_checkable
class ImageSource(Protocol):
    """Where pixels come from: ``load(i)`` decodes sample ``i`` to ``(H, W, C)`` float32."""

    def __len__(self) -> int: ...

    def load(self, i: int) -> np.ndarray: ...

    def take(self, idx: np.ndarray) -> ImageSource: ...

    def path(self, i: int) -> Path | None: ...


@dataclass(frozen=True, eq=False)
class FileSource:
    """Images in files, decoded with :func:`labeltrace.data.decode.decode_image`.

    Parameters
    ----------
    paths : tuple of Path
        Absolute file paths, one per sample.
    max_pixels : int, optional
        Pixel limit of every decode (default :data:`labeltrace.data.decode.MAX_PIXELS`).
    """

    paths: tuple[Path, ...]
    max_pixels: int | None = None
    kind: ClassVar[str] = "files"

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> np.ndarray:
        return decode_image(self.paths[i], max_pixels=self.max_pixels)

    def take(self, idx: np.ndarray) -> FileSource:
        return FileSource(tuple(self.paths[int(i)] for i in idx), self.max_pixels)

    def path(self, i: int) -> Path | None:
        return self.paths[i]


@dataclass(frozen=True, eq=False)
class ArraySource:
    """Images in one in-memory array ``(M, H, W)`` or ``(M, H, W, C)``, ``C`` in {1, 3}.

    ``uint8`` is scaled by 1/255, ``uint16`` by 1/65535, floats must lie in [0, 1] (see
    :func:`labeltrace.data.decode.array_to_float`). ``rows`` maps sample ``i`` to
    ``images[rows[i]]`` (default: identity); the array is never copied.
    """

    images: np.ndarray
    rows: np.ndarray | None = None
    kind: ClassVar[str] = "arrays"

    def __post_init__(self) -> None:
        shape = self.images.shape
        if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3)):
            raise DataError(f"images must be (N, H, W) or (N, H, W, C), C in {{1, 3}}; got {shape}")
        rows = np.arange(shape[0]) if self.rows is None else np.asarray(self.rows, dtype=np.int64)
        object.__setattr__(self, "rows", rows)

    @property
    def _rows(self) -> np.ndarray:
        assert self.rows is not None  # set by __post_init__
        return self.rows

    def __len__(self) -> int:
        return len(self._rows)

    def load(self, i: int) -> np.ndarray:
        return array_to_float(self.images[self._rows[i]])

    def take(self, idx: np.ndarray) -> ArraySource:
        return ArraySource(self.images, self._rows[np.asarray(idx, dtype=np.int64)])

    def stored_bits(self) -> int:
        """Bits per sample of the array: 16 for ``uint16``, else 8."""
        return 16 if self.images.dtype == np.uint16 else 8

    def path(self, i: int) -> Path | None:
        return None
