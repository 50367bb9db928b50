"""A seeded in-memory batch loader for training, with simple tensor augmentation (no torchvision).

:class:`TensorLoader` yields ``(ids, x, y)``: sample ids (int64), images ``(B, C, H, W)``
float32 and labels (int64). Shuffling and augmentation draw from a ``torch.Generator`` seeded
from ``(seed, epoch)``, so a given seed and epoch always give the same batches -- also after
resuming with :meth:`TensorLoader.set_epoch`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from labeltrace._checks import id_list
from labeltrace.data.base import ImageDataset
from labeltrace.data.errors import DataError

__all__ = ["Augment", "TensorLoader", "augment_batch", "channel_stats"]


@dataclass(frozen=True)
class Augment:
    """Augmentation settings: random crop after padding by ``pad`` pixels, horizontal flip.

    ``pad_mode`` is ``"constant"`` (zeros, i.e. black before normalisation), ``"reflect"``
    or ``"replicate"``.
    """

    pad: int = 4
    hflip: bool = True
    pad_mode: Literal["constant", "reflect", "replicate"] = "constant"

    def __post_init__(self) -> None:
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0; got {self.pad}")
        if self.pad_mode not in ("constant", "reflect", "replicate"):
            raise ValueError(
                f"pad_mode must be constant, reflect or replicate; got {self.pad_mode!r}"
            )


def augment_batch(x: torch.Tensor, augment: Augment, *, generator: torch.Generator) -> torch.Tensor:
    """Randomly crop (after padding) and flip each image of ``x`` ``(B, C, H, W)``, same shape out.

    Per sample, in this order: a vertical offset and a horizontal offset, each uniform in
    ``0..2*pad``, then a flip with probability 1/2. All draws come from ``generator`` (CPU).
    """
    b, _, h, w = x.shape
    out = x
    if augment.pad > 0:
        p = augment.pad
        xp = F.pad(x, (p, p, p, p), mode=augment.pad_mode)
        dy = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(x.device)
        rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, H)
        cols = dx[:, None] + torch.arange(w, device=x.device)  # (B, W)
        bi = torch.arange(b, device=x.device)[:, None, None]
        out = xp[bi, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, C, H, W)
    if augment.hflip:
        flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out.contiguous()


def channel_stats(x: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``(N, C, H, W)`` images (uint8 read as /255)."""
    t = torch.as_tensor(x)
    t = t.double() / 255.0 if t.dtype == torch.uint8 else t.double()
    mean = t.mean(dim=(0, 2, 3))
    std = t.std(dim=(0, 2, 3), unbiased=False)
    return mean.numpy(), std.numpy()


class TensorLoader:
    """Seeded batches ``(ids, x, y)`` from in-memory images.

    Parameters
    ----------
    x : ndarray or Tensor, shape (N, C, H, W)
        float32 in [0, 1], or uint8 (divided by 255 per batch; 4x less memory).
    y : ndarray or Tensor, shape (N,)
        Integer labels (the given, possibly noisy, labels).
    batch_size : int
        Samples per batch.
    shuffle : bool
        New random order every epoch (else ids in order).
    seed : int
        Seed; epoch ``e`` uses a generator seeded from ``(seed, e)``.
    augment : Augment, optional
        Crop / flip augmentation (None: none).
    mean, std : sequence of float, optional
        Per-channel normalisation applied after augmentation: ``(x - mean) / std``.
    drop_last : bool
        Drop a last incomplete batch.
    ids : ndarray, optional
        Sample ids to yield (default ``0..N-1``).
    device : str or torch.device, optional
        Where ``x`` is kept and batches are made.
    """

    def __init__(
        self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, *, batch_size: int = 128,
        shuffle: bool = True, seed: int = 0, augment: Augment | None = None,
        mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
        drop_last: bool = False, ids: np.ndarray | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        if isinstance(x, np.ndarray) and not x.flags.writeable:
            x = x.copy()
        self.x = torch.as_tensor(x).to(self.device)
        if self.x.ndim != 4:
            raise ValueError(f"x must be (N, C, H, W); got shape {tuple(self.x.shape)}")
        if self.x.dtype not in (torch.uint8, torch.float32):
            raise ValueError(f"x must be uint8 or float32; got {self.x.dtype}")
        ya = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
        if ya.dtype.kind not in "iuf" or (ya.dtype.kind == "f" and ya.size and not np.all(np.isfinite(ya))):
            raise ValueError(f"y must be integer class ids; got dtype {ya.dtype}" + (
                "" if ya.dtype.kind != "f" else " with values that are not finite"))  # fmt: skip
        off = np.flatnonzero((ya < 0) | (ya != np.round(ya))) if ya.ndim == 1 else np.zeros(0, np.int64)
        if off.size:  # int64 would truncate 1.7 to class 1
            raise ValueError(f"y must be integer class ids >= 0; not so at samples {id_list(off.tolist())}")
        self.y = torch.as_tensor(ya.astype(np.int64)).to(self.device)
        n = self.x.shape[0]
        if self.y.shape != (n,):
            raise ValueError(f"y must have shape ({n},); got {tuple(self.y.shape)}")
        self.ids = torch.arange(n, dtype=torch.int64) if ids is None else torch.as_tensor(
            np.array(ids, dtype=np.int64))
        if self.ids.shape != (n,):
            raise ValueError(f"ids must have shape ({n},); got {tuple(self.ids.shape)}")
        self.ids = self.ids.to(self.device)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        c = self.x.shape[1]
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        if mean is not None:
            m = torch.as_tensor(np.asarray(mean, dtype=np.float32)).reshape(-1)
            s = torch.as_tensor(np.asarray(std, dtype=np.float32)).reshape(-1)
            if m.numel() != c or s.numel() != c or bool((s <= 0).any()):
                raise ValueError(f"mean and std need {c} values each, std > 0")
            self.mean = m.view(1, c, 1, 1).to(self.device)
            self.std = s.view(1, c, 1, 1).to(self.device)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.augment = augment
        self.drop_last = bool(drop_last)
        self.epoch = 0

    @classmethod
    def from_dataset(
        cls, ds: ImageDataset, *, size: int | tuple[int, int] | None = None,
        channels: int | None = None,
        labels: np.ndarray | None = None, store: Literal["uint8", "float32"] = "float32",
        workers: int | None = None, **kwargs: object,
    ) -> TensorLoader:
        """Materialize ``ds`` once (see :meth:`ImageDataset.materialize`) and wrap it.

        ``labels`` overrides ``ds.labels`` (e.g. injected noise); ``store="uint8"`` keeps the
        images as bytes. Other keywords go to the constructor.
        """
        if store not in ("uint8", "float32"):
            raise ValueError(f"store must be 'uint8' or 'float32'; got {store!r}")
        x = ds.materialize(size=size, channels=channels, dtype=np.dtype(store), workers=workers)
        y = ds.labels if labels is None else np.asarray(labels)
        if y.shape != ds.labels.shape:
            raise DataError(f"labels must have shape {ds.labels.shape}; got {y.shape}")
        return cls(x, y, **kwargs)  # type: ignore[arg-type]

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch ``epoch``'s batches."""
        self.epoch = int(epoch)

    def _generator(self, epoch: int) -> torch.Generator:
        state = np.random.SeedSequence([self.seed, epoch]).generate_state(2, dtype=np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        g = self._generator(epoch)
        n = self.x.shape[0]
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        for k in range(len(self)):
            idx = order[k * self.batch_size:(k + 1) * self.batch_size]
            xb = self.x[idx]
            xb = xb.float().div_(255.0) if xb.dtype == torch.uint8 else xb
            if self.augment is not None:
                xb = augment_batch(xb, self.augment, generator=g)
            if self.mean is not None and self.std is not None:
                xb = (xb - self.mean) / self.std
            yield self.ids[idx], xb, self.y[idx]
