"""Frozen EfficientNet-Lite0 features of a dataset: extracted once, chunk by chunk, resumable.

The images go through the streaming loader (:mod:`labeltrace.data.stream`: decoding in worker
processes) in batches of 256; every chunk of :data:`CHUNK` rows is written to the cache entry's
``.partial.npy`` with plain file writes (no array of all features is ever held) and recorded in
its ``.partial.json``; a killed extraction resumes at the first unfinished chunk, and the finished
file is renamed into place — the same entry :func:`labeltrace.models.backbone.cached_features`
keeps (the batches are the same 256-image windows, so the values are too). The entry's key holds
:data:`~labeltrace.models.feature_cache.PIPELINE_VERSION`: bump it when the decoding or the
preprocessing changes.

In memory the features are standardised per dimension into one tensor; streamed, they are read
from the cache entry batch by batch (:class:`FeatureBatches`) and standardised on the fly with
statistics from one pass over the file.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labeltrace._io import atomic_write_json, entry_lock
from labeltrace.data import ImageDataset
from labeltrace.data.stream import ImageStream
from labeltrace.models import backbone
from labeltrace.models.feature_cache import features_dir
from labeltrace.models.inputs import Inputs, pixels_fingerprint, standardize
from labeltrace.train.batches import TensorBatches
from labeltrace.train.precision import TRAINED

__all__ = ["BATCH", "CHUNK", "FeatureBatches", "extract_chunked", "frozen_features"]

BATCH = 256  # images per backbone forward pass
CHUNK = 16 * BATCH  # rows per resumable chunk


def extract_chunked(path: Path, n: int, dim: int, rows: Callable[[int, int], np.ndarray], *,
                    chunk: int = CHUNK, progress: bool = False) -> Path:  # fmt: skip
    """Fill ``path`` (an ``(n, dim)`` float32 ``.npy``) with ``rows(a, b)`` for consecutive
    chunks ``[a, b)``, resuming an interrupted fill at its first unfinished chunk."""
    partial = path.with_name(path.stem + ".partial.npy")
    state = path.with_name(path.stem + ".partial.json")
    st = json.loads(state.read_text()) if state.is_file() and partial.is_file() else None
    if st is None or (st["n"], st["dim"], st["chunk"]) != (n, dim, chunk):
        mm = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(n, dim))
        st = {"n": n, "dim": dim, "chunk": chunk, "rows": 0, "offset": int(mm.offset)}
        del mm
        atomic_write_json(state, st)
    starts = range(int(st["rows"]), n, chunk)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=-(-n // chunk), initial=int(st["rows"]) // chunk, desc="features", unit="chunk")
    with open(partial, "r+b") as fh:
        for a in starts:
            b = min(a + chunk, n)
            f = np.ascontiguousarray(rows(a, b), dtype=np.float32)
            if f.shape != (b - a, dim):
                raise ValueError(f"feature rows {a}..{b - 1} came back with shape {f.shape}, expected {(b - a, dim)}")
            fh.seek(int(st["offset"]) + a * dim * 4)
            fh.write(f.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
            atomic_write_json(state, st | {"rows": b})
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    try:
        os.replace(partial, path)
    except FileNotFoundError:  # another process (where no lock was to be had) finished this very entry first
        if not path.is_file():
            raise
    state.unlink(missing_ok=True)
    return path


class FeatureBatches:
    """A :class:`~labeltrace.train.batches.BatchSource` over an ``(N, D)`` float32 ``.npy`` feature
    file, standardised per dimension on the fly (``(f - mean) / (std + 1e-6)``). Rows are read
    with ``pread`` as batches ask for them (never mapped), so the process holds one batch."""

    def __init__(self, path: Path, mean: np.ndarray, std: np.ndarray) -> None:
        self.path = Path(path)
        head = np.load(self.path, mmap_mode="r", allow_pickle=False)
        if head.dtype != np.float32 or head.ndim != 2 or not head.flags.c_contiguous:
            raise ValueError(f"{self.path}: expected a C-ordered (N, D) float32 array, got {head.dtype} {head.shape}")
        self._shape = (int(head.shape[0]), int(head.shape[1]))
        self._offset = int(head.offset)
        del head
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32) + np.float32(1e-6)
        self._fd: int | None = None

    @classmethod
    def from_file(cls, path: Path, chunk: int = 4096) -> FeatureBatches:
        """The file's rows standardised with statistics from one chunked float64 pass over it."""
        src = cls(path, np.zeros(0), np.zeros(0))
        n, d = src._shape
        s, ss = np.zeros(d), np.zeros(d)
        for a in range(0, n, chunk):
            block = src._read(a, min(a + chunk, n)).astype(np.float64)
            s += block.sum(0)
            ss += (block * block).sum(0)
        mean = s / n
        return cls(path, mean.astype(np.float32), np.sqrt(np.maximum(ss / n - mean * mean, 0.0)).astype(np.float32))

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def _read(self, a: int, b: int) -> np.ndarray:
        row = self._shape[1] * 4
        buf = os.pread(self._file(), (b - a) * row, self._offset + a * row)
        return np.frombuffer(buf, dtype=np.float32).reshape(b - a, self._shape[1])

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The raw feature rows ``ids``, in that order."""
        return np.stack([self._read(int(i), int(i) + 1)[0] for i in ids]) if len(ids) else \
            np.zeros((0, self._shape[1]), np.float32)  # fmt: skip

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    def _standardised(self, rows: np.ndarray) -> np.ndarray:
        return ((rows - self.mean) / self.std).astype(np.float32)

    def matrix(self) -> np.ndarray:
        """Every row, standardised as :meth:`batches` hands them over: ``(N, D)`` float32 in memory."""
        return self._standardised(self._read(0, self._shape[0]))

    def batches(self, ids: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for b in range(0, len(ids), batch_size):
            chunk = ids[b : b + batch_size]
            rows = self.rows(chunk.numpy())
            yield chunk, torch.from_numpy(self._standardised(rows))


class _OwnSizeStream(ImageStream):
    """:class:`~labeltrace.data.stream.ImageStream` for images decoded at their own size (``hw``: the
    first image's): an image of another size is refused, naming it, instead of being squashed to
    ``hw`` (its sizes were not verified, see :func:`_decode_size`)."""

    def __getitem__(self, i: int) -> tuple[int, np.ndarray]:
        x = self.ds.load_fixed(int(i), self.hw, self.channels, resize=False)
        return int(i), np.ascontiguousarray(x, dtype=np.float32)


def _decode_size(ds: ImageDataset, resolution: int) -> tuple[int | None, Any]:
    """The size the images are decoded at before the backbone, and what the cache key says of it.

    Images of one known shape: their own size (the backbone resizes them), nothing added to the
    key. Images known to differ in size: resized once, straight to the backbone's ``resolution``.
    One size with mixed channels, or sizes not known (the data not verified): the first image's
    size, which all must share (an image of another size is refused, naming it, not squashed to
    it: :func:`_image_batches`) — added to the key unless 32 px, the size such data were decoded at
    before (their key parts stay as they were)."""
    if ds.image_shape is not None:
        return None, None
    if ds.shapes is not None and ds.image_size is None:
        return resolution, resolution
    # one size, channels mixed (grayscale and RGB), or sizes not known: the images' own size
    (h, w), _ = ds.output_shape(channels=3)
    return None, (None if (h, w) == (32, 32) else [h, w])


def _image_batches(ds: ImageDataset, workers: int | None,
                   size: int | None) -> Callable[[int, int], Iterable[torch.Tensor]]:  # fmt: skip
    from labeltrace.data.stream import default_stream_workers, iterate

    hw, c = ds.output_shape(size=size, channels=3)
    stream = ImageStream(ds, hw, c) if size is not None else _OwnSizeStream(ds, hw, c)
    w = default_stream_workers() if workers is None else int(workers)
    # channels-last, the layout ImageDataset.load_batch hands over (a transposed view of HWC images):
    # the backbone's convolutions round differently by layout, and the cache must not depend on the path
    return lambda a, b: (x.contiguous(memory_format=torch.channels_last)
                         for _, x in iterate(stream, np.arange(a, b), BATCH, w))  # fmt: skip


def _extract(ds: ImageDataset, path: Path, key: dict[str, Any], *, resolution: int, device: str, progress: bool,
             workers: int | None, size: int | None, precision: str) -> None:  # fmt: skip
    model = backbone.load_efficientnet_lite0(pretrained=True)
    images = _image_batches(ds, workers, size)

    def rows(a: int, b: int) -> np.ndarray:
        return backbone.extract_features(images(a, b), model=model, resolution=resolution, device=device,
                                         progress=False, precision=precision)  # fmt: skip

    extract_chunked(path, len(ds), backbone.FEATURE_DIM, rows, progress=progress)
    backbone.write_sidecar(path, key, (len(ds), backbone.FEATURE_DIM), np.dtype(np.float32))


def _readable(path: Path, shape: tuple[int, int]) -> bool:
    """``path`` is a whole float32 ``.npy`` of ``shape`` (its header, and a size that holds it)."""
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return False
    return a.shape == shape and a.dtype == np.float32


def frozen_features(ds: ImageDataset, *, resolution: int = 96, cache_dir: str | Path | None = None,
                    device: str = "cpu", progress: bool = False, stream: bool = False,
                    workers: int | None = None, precision: str = "float32") -> Inputs:  # fmt: skip
    """The effnet-lite0 inputs of ``ds``: cached features (extracted on a miss), standardised, in
    memory or streamed from the cache entry. ``precision``: the backbone's forward passes
    (:func:`labeltrace.models.backbone.extract_features`); ``bfloat16`` features are an entry of
    their own (the key says so), float32 ones keep the key they always had."""
    cache = features_dir(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    key = {"data": pixels_fingerprint(ds), "n": len(ds), "model": "efficientnet-lite0", "resolution": resolution}
    size, decoded = _decode_size(ds, resolution)
    if decoded is not None:  # before, images without one known size were decoded at 32 px
        key["decoded"] = decoded
    if precision not in TRAINED:
        raise ValueError(f"the backbone runs in {' or '.join(TRAINED)}, got {precision!r} (resolve 'auto' first)")
    if precision != "float32":
        key["precision"] = precision
    path = backbone.cache_entry(key, cache)
    shape = (len(ds), backbone.FEATURE_DIM)
    if not _readable(path, shape):
        with entry_lock(path):  # checked again under the lock: another scan may have just extracted it
            if not _readable(path, shape):
                if path.exists():  # truncated or damaged (a full disk, a copy cut short): extracted again
                    warnings.warn(f"unreadable feature cache entry {path}; extracting the features again",
                                  stacklevel=2)  # fmt: skip
                    path.unlink()
                _extract(ds, path, key, resolution=resolution, device=device, progress=progress, workers=workers,
                         size=size, precision=precision)  # fmt: skip
    desc = {"kind": "features", "dim": backbone.FEATURE_DIM, "resolution": resolution, "cache_dir": str(cache),
            "cache_key": key}  # run.json keeps it: the review page finds the same entry again
    if stream:
        src = FeatureBatches.from_file(path)
        return Inputs(src, desc | {"streamed": True})
    f = standardize(np.load(path, allow_pickle=False))
    return Inputs(TensorBatches(torch.from_numpy(f)), desc, f)
