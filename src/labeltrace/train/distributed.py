"""Data-parallel training for the recording protocols (``torch.distributed``), in one small object.

Under ``torchrun --nproc_per_node N`` (or any initialised default process group) the protocols'
trainings run data-parallel: every rank draws the same seeded epoch order, takes its shard of it
as ``torch.utils.data.DistributedSampler(shuffle=False)`` does (the order padded with its start
to a multiple of the world size, then every ``world_size``-th sample from ``rank``), trains a
``DistributedDataParallel`` copy of the model on batches of ``ceil(batch_size / world_size)``
(so the global batch and the number of steps stay those of one process) and records into a
:class:`~labeltrace.integrations.ddp.DistributedRecorder`. The padding rows train (every rank
must run the same steps) but are never recorded, so every sample is recorded exactly once per
model and epoch. Only rank 0 writes files.

What holds against one process: the same samples, epochs, schedule and seeds; every recorded
value is a real forward pass of the model at that step. What differs: the gradient of a step is
the mean over ranks of per-rank means (equal to the global mean when the shards' batches have
equal size, the padding rows counted), batch-norm statistics are per rank (rank 0's buffers are
broadcast), and floating-point reductions run in another order — so the numbers are close to,
not equal to, a single-process run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["LOCAL", "Dist", "current", "init_from_env"]

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place in a data-parallel training (``world_size`` 1: a single process)."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        """True on the rank that writes files (rank 0)."""
        return self.rank == 0

    def shard(self, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's part of ``order`` and a mask of its real rows (False: padding).

        ``DistributedSampler(range(len(order)), world_size, rank, shuffle=False)``'s indices into
        ``order``: padded with the start of ``order`` to a multiple of the world size, every
        ``world_size``-th position from ``rank``.
        """
        if not self.active:
            return order, torch.ones(len(order), dtype=torch.bool)
        from torch.utils.data import DistributedSampler

        n = len(order)
        pos = torch.as_tensor(list(DistributedSampler(cast(Any, range(n)), self.world_size, self.rank, shuffle=False)),
                              dtype=torch.long)  # fmt: skip
        real = torch.arange(self.rank, len(pos) * self.world_size, self.world_size) < n
        return order[pos], real

    def batch_size(self, global_batch: int) -> int:
        """Per-rank batch size: ``ceil(global_batch / world_size)``."""
        return -(-int(global_batch) // self.world_size)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``DistributedDataParallel(model)`` when data-parallel, else ``model``."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box: list[Any] = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sync_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (e.g. BatchNorm's running statistics) on every rank: each rank's last
        training steps updated its own from its own batches, and an eval-mode prediction reads them."""
        if not self.active:
            return
        for b in model.buffers():
            dist.broadcast(b, src=0)

    def sum(self, *values: float) -> tuple[float, ...]:
        """Each value summed over the ranks."""
        if not self.active:
            return tuple(float(v) for v in values)
        t = torch.tensor([float(v) for v in values], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        return tuple(float(v) for v in t.cpu())

    @contextmanager
    def writer_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. fills a cache), the other ranks after it."""
        if not self.is_writer:
            self.barrier()
        try:
            yield
        finally:
            if self.is_writer:
                self.barrier()

    def recorder(self, num_samples: int, num_classes: int, *, dedupe: bool = True, **kw: Any) -> Any:
        """A :class:`~labeltrace.record.Recorder` (one process) or a
        :class:`~labeltrace.integrations.ddp.DistributedRecorder` (``dedupe`` as there); ``kw``
        the Recorder's settings."""
        if not self.active:
            from labeltrace.record import Recorder

            return Recorder(num_samples, num_classes, local=True, **kw)  # this process trains on every sample
        from labeltrace.integrations.ddp import DistributedRecorder

        return DistributedRecorder(num_samples, num_classes, dedupe=dedupe, **kw)

    def describe(self) -> dict[str, Any]:
        """For run.json."""
        return {"world_size": self.world_size,
                "backend": dist.get_backend() if self.active else None}  # fmt: skip


LOCAL = Dist()


def current() -> Dist:
    """The default process group's rank and size, or :data:`LOCAL` when none is initialised."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size())
    return LOCAL


def init_from_env(device: str = "auto") -> Dist:
    """Initialise the default process group from torchrun's environment when ``WORLD_SIZE`` > 1
    and none is initialised yet: NCCL when training on CUDA (each rank on ``cuda:LOCAL_RANK``),
    else gloo. Returns :func:`current`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and dist.is_available() and not dist.is_initialized():
        cuda = torch.cuda.is_available() and device != "cpu" and not device.startswith("cpu")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return current()
