"""Record inside a data-parallel (``torch.distributed``) training: :class:`DistributedRecorder`.

Every rank calls :meth:`~DistributedRecorder.update` with the batches of its shard, exactly as
with a :class:`~labeltrace.record.Recorder`; :meth:`~DistributedRecorder.end_epoch` is a
collective (every rank calls it once per epoch): it gathers the epoch's updates of all ranks
(the ids and labels to every rank, the recorded quantities to rank 0 only: two collectives per
epoch, none per batch, so ranks may run different numbers of batches) and rank 0, which holds
the Recorder, closes the epoch. Only rank 0 writes files (``directory``,
:meth:`~DistributedRecorder.save`); :meth:`~DistributedRecorder.dynamics` is rank 0's.

**A sample updated on several ranks in one epoch** (``dedupe=True``, the default) is counted
once: its updates are taken from the lowest rank that updated it in that epoch, and its updates
on the other ranks in that epoch are dropped (:attr:`~DistributedRecorder.dropped` counts them).
Repeats within one rank are averaged, as in a single process. With
``torch.utils.data.DistributedSampler`` this removes exactly its padding: the sampler splits one
(shuffled) permutation of the dataset into disjoint shards and pads the shards with indices from
the start of that permutation so that all ranks get the same number of samples (the padded
copy always lands on another rank than the original), so a sample can appear on two ranks in
one epoch only as padding. Other padding may differ: accelerate's ``even_batches`` (the Hugging
Face Trainer's loader) also repeats samples on the rank that had them, which would be averaged
(the :class:`~labeltrace.integrations.hf.RecordingTrainer` drops those repeats before they reach
the recorder). ``dedupe=False`` averages every update of every rank instead (what
:meth:`Recorder.merge` does), for samplers that repeat samples on purpose.

Labels are checked on every rank against the labels gathered so far, so a conflict raises the
same ``ValueError`` on all ranks. With NCCL, set the current CUDA device before the first
:meth:`end_epoch` (as ``all_gather_object`` and ``gather_object`` require).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed as dist

from labeltrace.record import Dynamics, PendingUpdates, Recorder
from labeltrace.record.state import as_arrays, read_meta

__all__ = ["DistributedRecorder"]


def _keep_masks(ids: list[np.ndarray], num_samples: int) -> list[np.ndarray]:
    """Per rank, which of its updated samples count: those no lower rank updated this epoch."""
    taken = np.zeros(num_samples, dtype=bool)
    masks = []
    for i in ids:
        masks.append(~taken[i])
        taken[i] = True
    return masks


def _subset(u: PendingUpdates, keep: np.ndarray) -> PendingUpdates:
    return PendingUpdates(u.ids[keep], u.labels[keep], u.sums[:, keep], u.counts[keep], u.prob_sums[keep])


class DistributedRecorder:
    """A :class:`~labeltrace.record.Recorder` for data-parallel training (see the module docstring).

    Parameters are the Recorder's, plus ``group`` (the process group, default the world) and
    ``dedupe``. ``directory`` is used on rank 0 only. Call after ``init_process_group``.

    Attributes
    ----------
    padding : int
        The most updates an epoch's padding repeats across ranks (default ``world_size - 1``, a
        ``DistributedSampler``'s; the Hugging Face ``RecordingTrainer`` raises it to its loader's
        ``world_size × batch size``): dropping more is warned of — the loader is likely not sharded.
    """

    def __init__(
        self,
        num_samples: int,
        num_classes: int,
        *,
        mode: str = "full",
        keep_probs: int = 5,
        directory: str | os.PathLike[str] | None = None,
        max_epochs: int | None = None,
        group: Any = None,
        dedupe: bool = True,
    ) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError("DistributedRecorder needs torch.distributed initialised (init_process_group); with the "
                             "Hugging Face Trainer, build it after the TrainingArguments, which initialise it, and "
                             "with Lightning the RecorderCallback builds it under strategy=\"ddp\"")
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.dedupe = bool(dedupe)
        self.dropped = 0  # updates of samples dropped as cross-rank duplicates in the last epoch
        self.padding = self.world_size - 1
        # rank 0 records into the real recorder; the others only accumulate one epoch (its
        # O(N) history arrays are allocated but never touched, so never resident)
        self._rec = Recorder(
            num_samples, num_classes, mode=mode if self.rank == 0 else "streaming",  # type: ignore[arg-type]
            keep_probs=keep_probs, directory=directory if self.rank == 0 else None,
            max_epochs=max_epochs if self.rank == 0 else None, local=True,  # end_epoch gathers every rank's rows
        )  # fmt: skip
        self._synced_labels = self._rec.labels.copy()  # labels as of the last end_epoch, equal on all ranks

    @property
    def num_samples(self) -> int:
        return self._rec.num_samples

    @property
    def num_classes(self) -> int:
        return self._rec.num_classes

    @property
    def num_epochs(self) -> int:
        """Epochs closed so far (the same on every rank)."""
        return self._rec.num_epochs

    @property
    def is_writer(self) -> bool:
        """True on the rank that holds the dynamics and writes files (rank 0)."""
        return self.rank == 0

    @property
    def recorder(self) -> Recorder:
        """Rank 0's :class:`Recorder` (holds the dynamics)."""
        self._need_writer("recorder")
        return self._rec

    def _need_writer(self, what: str) -> None:
        if self.rank != 0:
            raise RuntimeError(f"{what} lives on rank 0 only (this is rank {self.rank})")

    def update(self, ids: Any, logits: Any, labels: Any, *, nonfinite: str = "raise") -> None:
        """Record one batch of this rank's shard (see :meth:`Recorder.update`); no communication."""
        self._rec.update(ids, logits, labels, nonfinite=nonfinite)

    def end_epoch(self) -> None:
        """Collective: gather every rank's updates of this epoch, close the epoch on rank 0.

        Every rank receives every rank's (ids, labels) — 16 bytes a sample — and checks them the
        same way, so a label conflict raises the same error on all ranks; only rank 0 receives
        the recorded quantities.
        """
        mine = self._rec.pending()
        self._rec.clear_pending()
        keys: list[Any] = [None] * self.world_size
        dist.all_gather_object(keys, (mine.ids, mine.labels), group=self.group)
        full: list[Any] | None = [None] * self.world_size if self.rank == 0 else None
        dst = 0 if self.group is None else dist.get_global_rank(self.group, 0)
        dist.gather_object(mine, full, dst=dst, group=self.group)
        ids = [np.asarray(k[0], dtype=np.int64) for k in keys]
        labels = [np.asarray(k[1], dtype=np.int64) for k in keys]
        # the same data and the same steps on every rank from here (labels checked before
        # duplicates are dropped, so a conflict across ranks is caught)
        self._rec.labels = self._synced_labels.copy()
        self._rec.check_labels(np.concatenate(ids), np.concatenate(labels))
        masks = _keep_masks(ids, self.num_samples) if self.dedupe else [np.ones(len(i), bool) for i in ids]
        self.dropped = int(sum((~m).sum() for m in masks))
        total = sum(len(i) for i in ids)
        if self.rank == 0 and self.dropped > self.padding:
            warnings.warn(
                f"{self.dropped} of the epoch's {total} updates were of samples another rank had also trained "
                f"on in this epoch, and were dropped: more than the loader's padding repeats (at most "
                f"{self.padding}, DistributedRecorder.padding). Is each rank's loader sharded "
                "(DistributedSampler)? Without it every rank trains on every sample; pass dedupe=False to "
                "average all ranks' updates",
                UserWarning, stacklevel=2,
            )
        for i, lab, m in zip(ids, labels, masks, strict=True):
            self._synced_labels[i[m]] = lab[m]
        if full is not None:  # rank 0
            for u, m in zip(full, masks, strict=True):
                self._rec.add_pending(_subset(u, m))
            self._rec.end_epoch()
        else:
            self._rec.num_epochs += 1
        self._rec.labels = self._synced_labels.copy()

    def dynamics(self) -> Dynamics:
        """Rank 0: the recorded :class:`Dynamics` (other ranks raise ``RuntimeError``)."""
        self._need_writer("dynamics()")
        return self._rec.dynamics()

    def save(self, path: str | os.PathLike[str], **kw: Any) -> Path:
        """Rank 0 writes :meth:`Recorder.save`; the other ranks write nothing. Returns the path."""
        if self.rank == 0:
            self._need_between_epochs()
            return self._rec.save(path, **kw)
        return Path(path)

    def _need_between_epochs(self) -> None:
        if self._rec.epoch_in_progress:
            raise ValueError(
                "a DistributedRecorder checkpoint needs every rank's updates, which meet only at "
                "end_epoch(): save between epochs"
            )

    def state_dict(self, *, tensors: bool = False) -> dict[str, Any]:
        """Rank 0: the recorder's state (between epochs; ``tensors`` as for
        :meth:`Recorder.state_dict`); other ranks: an empty dict."""
        if self.rank != 0:
            return {}
        self._need_between_epochs()
        return self._rec.state_dict(tensors=tensors)

    def load_state_dict(self, state: dict[str, Any], *, base: str | os.PathLike[str] | None = None) -> None:
        """Every rank, with rank 0's state (either form of :meth:`state_dict`): rank 0 restores the
        recorder, the others its labels and epoch count."""
        state = as_arrays(state)
        if self.rank == 0:
            self._rec.load_state_dict(state, base=base)
            self._synced_labels = self._rec.labels.copy()
            return
        meta = read_meta(state)
        labels = np.asarray(state["labels"], dtype=np.int64)
        if labels.shape != (self.num_samples,):
            raise ValueError(f"recorder state has labels of shape {labels.shape}, expected ({self.num_samples},)")
        self._rec.clear_pending()
        self._rec.labels = labels.copy()
        self._synced_labels = labels.copy()
        self._rec.num_epochs = int(meta["num_epochs"])

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, group: Any = None, dedupe: bool = True) -> DistributedRecorder:
        """Collective: rank 0 loads ``path`` (written by :meth:`save`) and sends the other ranks
        the settings, labels and epoch count (no shared filesystem needed)."""
        rank = dist.get_rank(group)
        msg: list[Any] = [None]
        rec = None
        if rank == 0:
            rec = Recorder.load(path, local=True)  # end_epoch gathers every rank's rows
            msg = [(rec.num_samples, rec.num_classes, rec.mode, rec.keep_probs, rec.labels, rec.num_epochs)]
        dist.broadcast_object_list(msg, src=dist.get_global_rank(group, 0) if group is not None else 0, group=group)
        N, K, mode, keep, labels, T = msg[0]
        out = cls(N, K, mode=mode, keep_probs=keep, group=group, dedupe=dedupe)
        if rec is not None:
            out._rec = rec
        else:
            out._rec.labels = np.asarray(labels, dtype=np.int64).copy()
            out._rec.num_epochs = int(T)
        out._synced_labels = out._rec.labels.copy()
        return out
