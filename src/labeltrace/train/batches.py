"""Where the training loop gets its inputs from: one in-memory tensor, or a streaming source.

The loop draws each epoch's order itself (seeded by ``(seed, epoch)``) and asks a
:class:`BatchSource` for the inputs of those ids, ``batch_size`` at a time, in that order. Two
kinds satisfy it:

* :class:`TensorBatches` — one ``(N, ...)`` CPU tensor (images or features) indexed per batch;
  what small data and the tests use;
* :class:`labeltrace.data.stream.StreamBatches` — images decoded from their source in DataLoader
  worker processes, normalised on the fly; nothing holds all images.

Anything with ``shape`` (``(N, *sample_shape)``) and ``batches(ids, batch_size)`` works.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch

__all__ = ["BatchSource", "TensorBatches", "as_source"]


@runtime_checkable
class BatchSource(Protocol):
    """The inputs of samples ``0..N-1``, fetched a batch at a time."""

    @property
    def shape(self) -> tuple[int, ...]:
        """``(N, *sample_shape)``: what a network is built for (see ``NetworkSpec.build``)."""
        ...

    def batches(self, ids: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(ids, x)`` for consecutive chunks of ``ids`` of ``batch_size``, in order; ``x`` a CPU
        float tensor ``(B, *sample_shape)``."""
        ...


class TensorBatches:
    """A :class:`BatchSource` over one in-memory tensor (``index_select`` per batch)."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.tensor.shape)

    def batches(self, ids: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for b in range(0, len(ids), batch_size):
            chunk = ids[b : b + batch_size]
            yield chunk, self.tensor.index_select(0, chunk)


def as_source(inputs: torch.Tensor | BatchSource) -> BatchSource:
    """A tensor wrapped in :class:`TensorBatches`; a source as it is."""
    if isinstance(inputs, torch.Tensor):
        return TensorBatches(inputs)
    if not isinstance(inputs, BatchSource):
        raise TypeError(f"inputs must be a tensor or a BatchSource (shape + batches), got {type(inputs).__name__}")
    return inputs
