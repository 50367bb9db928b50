"""Images streamed from their source: a torch ``DataLoader`` with decoding in worker processes.

Nothing here holds all images: a :class:`StreamBatches` decodes the batches it is asked for (in
``workers`` processes, each with one torch thread), resized and converted exactly as
:meth:`ImageDataset.materialize` would, and normalised on the fly with per-channel statistics
computed in one streaming pass (:func:`channel_stats`). It is a
:class:`~labeltrace.train.batches.BatchSource`: the training loop draws each epoch's order
itself, seeded by ``(seed, epoch)``, and asks for those ids in that order, so a resumed run sees
the same batches. Given the same statistics, a batch equals the in-memory tensor's rows bit for
bit (same decoding, same float32 arithmetic).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from labeltrace.data.base import ImageDataset

__all__ = ["ImageStream", "StreamBatches", "channel_stats", "default_stream_workers", "iterate"]


def default_stream_workers() -> int:
    """Decoding processes: the CPU count less one (the trainer's), at least 1, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


class ImageStream(Dataset):
    """Sample ``i`` → ``(i, (C, H, W) float32)``: decoded, converted to ``channels``, resized to
    ``hw``, then ``(x - mean) / std`` when statistics are given (``(C, 1, 1)`` float32)."""

    def __init__(self, ds: ImageDataset, hw: tuple[int, int], channels: int, mean: np.ndarray | None = None,
                 std: np.ndarray | None = None, *, resize: bool = True, convert: bool = True) -> None:  # fmt: skip
        self.ds, self.hw, self.channels = ds, (int(hw[0]), int(hw[1])), int(channels)
        self.mean, self.std = mean, std
        self.resize, self.convert = resize, convert  # False: another size / channel count is refused

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray]:
        x = self.ds.load_fixed(int(i), self.hw, self.channels, resize=self.resize, convert=self.convert)
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        return int(i), np.ascontiguousarray(x, dtype=np.float32)


def _collate(items: list[tuple[int, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.as_tensor([i for i, _ in items], dtype=torch.long)
    return ids, torch.from_numpy(np.stack([x for _, x in items]))


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


def iterate(stream: ImageStream, ids: Sequence[int] | torch.Tensor | np.ndarray, batch_size: int,
            workers: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """``(ids, x)`` batches of ``stream`` for ``ids`` in order, ``batch_size`` at a time, decoded in
    ``workers`` processes (0: in this one)."""
    idx = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    chunks = [idx[b : b + batch_size].tolist() for b in range(0, len(idx), batch_size)]
    if not chunks:
        return iter(())
    kw: dict[str, Any] = {"worker_init_fn": _one_thread, "prefetch_factor": 2} if workers > 0 else {}
    return iter(DataLoader(stream, batch_sampler=chunks, num_workers=min(workers, len(chunks)),
                           collate_fn=_collate, **kw))  # fmt: skip


def channel_stats(ds: ImageDataset, hw: tuple[int, int], channels: int, *, workers: int,
                  batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per-channel mean and population standard deviation of every image (as decoded for
    ``hw``, ``channels``), ``(C, 1, 1)`` float32 each, from float64 running sums in one pass."""
    s = np.zeros(channels)
    ss = np.zeros(channels)
    count = 0
    for _, x in iterate(ImageStream(ds, hw, channels), np.arange(len(ds)), batch_size, workers):
        v = x.double()
        s += v.sum(dim=(0, 2, 3)).numpy()
        ss += (v * v).sum(dim=(0, 2, 3)).numpy()
        count += v.shape[0] * v.shape[2] * v.shape[3]
    mean = s / count
    std = np.sqrt(np.maximum(ss / count - mean * mean, 0.0))
    return mean.astype(np.float32).reshape(-1, 1, 1), std.astype(np.float32).reshape(-1, 1, 1)


class StreamBatches:
    """A :class:`~labeltrace.train.batches.BatchSource` decoding images from ``ds`` on demand.

    Parameters
    ----------
    ds : ImageDataset
        The images (files, arrays, Hugging Face rows).
    size : int or (h, w), optional
        Resize every image (as :meth:`ImageDataset.materialize`); default: the native size.
    channels : {1, 3}, optional
        Convert channels; default as :meth:`ImageDataset.materialize`.
    normalize : bool
        Standardise each channel with the statistics of the whole dataset (one streaming pass
        at construction, or ``mean``/``std`` when given, ``(C, 1, 1)``); ``std`` gets ``+ 1e-6``
        like the in-memory path's.
    workers : int, optional
        Decoding processes (default :func:`default_stream_workers`; 0 decodes in this process).
    """

    def __init__(self, ds: ImageDataset, *, size: int | tuple[int, int] | None = None, channels: int | None = None,
                 normalize: bool = True, mean: np.ndarray | None = None, std: np.ndarray | None = None,
                 workers: int | None = None) -> None:  # fmt: skip
        self.ds = ds
        self.workers = default_stream_workers() if workers is None else int(workers)
        self.hw, self.channels = ds.output_shape(size=size, channels=channels)
        if normalize and (mean is None or std is None):
            mean, std = channel_stats(ds, self.hw, self.channels, workers=self.workers)
        self.mean = None if not normalize or mean is None else np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.std = None if not normalize or std is None else np.asarray(std, np.float32).reshape(-1, 1, 1) + \
            np.float32(1e-6)  # fmt: skip
        first_size, first_channels = ds.follows_first_image(size=size, channels=channels)
        # as materialize: a size or channel count taken from the first image is every image's, or refused
        self.stream = ImageStream(ds, self.hw, self.channels, self.mean, self.std, resize=not first_size,
                                  convert=not first_channels)  # fmt: skip

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.ds), self.channels, *self.hw)

    def batches(self, ids: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iterate(self.stream, ids, batch_size, self.workers)

    def describe(self) -> dict[str, Any]:
        """For run.json."""
        return {"streamed": True, "workers": self.workers,
                "mean": None if self.mean is None else self.mean.ravel().tolist(),
                "std": None if self.std is None else self.std.ravel().tolist()}  # fmt: skip
