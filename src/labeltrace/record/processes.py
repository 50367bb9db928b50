"""The one check a Recorder makes of the processes around it: under several ``torch.distributed``
processes a plain Recorder records only what its own process passes to ``update``."""

from __future__ import annotations

import sys
import warnings

__all__ = ["warn_if_sharded"]


def warn_if_sharded() -> None:
    """Warn when torch.distributed runs several processes: a plain Recorder records only what this
    process passes to ``update``, a shard under a DistributedSampler."""
    dist = sys.modules.get("torch.distributed")  # never imports torch itself
    if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
        return
    warnings.warn(f"labeltrace.Recorder: torch.distributed runs {dist.get_world_size()} processes and this "
                  "Recorder records only the batches this process passes to update(): under a DistributedSampler "
                  "each sample would be scored on the few epochs it landed on this process, and each process would "
                  "save its own shard. Use labeltrace.integrations.ddp.DistributedRecorder (the same arguments); "
                  "if this process does see every sample (you gather the ids, logits and labels here, or train "
                  "on this rank alone), pass Recorder(..., local=True)", RuntimeWarning, stacklevel=3)
