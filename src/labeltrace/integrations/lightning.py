"""Record the training dynamics of a PyTorch Lightning model: :class:`RecorderCallback`.

::

    cb = RecorderCallback(num_samples=N, num_classes=K)
    trainer = lightning.Trainer(max_epochs=T, callbacks=[cb])
    trainer.fit(model, loader)           # training_step returns {"loss": ..., "logits": ...}
    dyn = cb.dynamics()

The sample ids and labels come from the batch (a mapping with keys ``"ids"`` and ``"labels"``
by default; a tuple/list by position; or any function of the batch), the logits from what
``training_step`` returns (key ``"logits"`` by default, or a function of the output). The
callback's ``state_dict`` goes into Lightning checkpoints (torch tensors and strings only, so
``weights_only`` loading works), and ``trainer.fit(..., ckpt_path=...)`` resumes it. A
checkpoint taken mid-epoch resumes exactly only with a loader Lightning can resume (it warns
otherwise): with another, the rest of that epoch is drawn afresh, and the recorder records what
was trained — some samples twice in that epoch (averaged), some not at all.

An epoch of the recorder closes after the last training batch of a Lightning epoch — before
the validation loop and before any checkpoint of that epoch is written (a
``ModelCheckpoint(save_on_train_epoch_end=False)`` saves before ``on_train_epoch_end``) — or,
failing that, at ``on_train_epoch_end``. Under a multi-process strategy (DDP) the callback records through a
:class:`~labeltrace.integrations.ddp.DistributedRecorder` (rank 0 holds the dynamics; a
checkpoint must then be taken between epochs).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from labeltrace.record import Dynamics, Recorder

__all__ = ["RecorderCallback"]

Getter = str | int | Callable[[Any], Any]


def _get(obj: Any, key: Getter, what: str) -> Any:
    if callable(key):
        return key(obj)
    try:
        return obj[key]
    except (KeyError, IndexError, TypeError):
        keys = list(obj.keys()) if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
        raise ValueError(
            f"RecorderCallback could not find {what} under {key!r} in {keys}; pass {what.split()[0]}= "
            "a key, a position or a function"
        ) from None


class RecorderCallback(pl.Callback):
    """Records per-sample dynamics of a LightningModule's training (see the module docstring).

    Parameters
    ----------
    num_samples, num_classes, mode, keep_probs, directory, max_epochs:
        As for :class:`~labeltrace.record.Recorder`.
    ids, labels:
        Where the batch holds the sample ids and the labels: a key, a position, or a function of
        the batch.
    logits:
        Where ``training_step``'s output holds the batch's logits: a key or a function.
    """

    def __init__(
        self,
        num_samples: int,
        num_classes: int,
        *,
        ids: Getter = "ids",
        labels: Getter = "labels",
        logits: str | Callable[[Any], Any] = "logits",
        mode: str = "full",
        keep_probs: int = 5,
        directory: str | os.PathLike[str] | None = None,
        max_epochs: int | None = None,
    ) -> None:
        self._settings: dict[str, Any] = {"mode": mode, "keep_probs": keep_probs, "directory": directory,
                                          "max_epochs": max_epochs}  # fmt: skip
        self.recorder: Any = Recorder(num_samples, num_classes, **self._settings)
        self._ids, self._labels, self._logits = ids, labels, logits
        self._pending_epoch = -1  # the Lightning epoch whose updates the recorder holds open, or -1

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size > 1 and type(self.recorder) is Recorder:
            from labeltrace.integrations.ddp import DistributedRecorder

            rec = self.recorder
            self.recorder = DistributedRecorder(rec.num_samples, rec.num_classes, **self._settings)

    def dynamics(self) -> Dynamics:
        """The recorded :class:`Dynamics` (on rank 0 under DDP)."""
        return self.recorder.dynamics()

    # ------------------------------------------------------------------ hooks
    def _close(self) -> None:
        if self._pending_epoch >= 0:
            self.recorder.end_epoch()
            self._pending_epoch = -1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:  # fmt: skip
        if outputs is None or not (isinstance(outputs, Mapping) or callable(self._logits)):
            raise ValueError("RecorderCallback needs training_step to return a dict with the batch's logits")
        z = _get(outputs, self._logits, "logits in training_step's output")
        self.recorder.update(_get(batch, self._ids, "ids of the batch"), z, _get(batch, self._labels, "labels of the batch"))
        self._pending_epoch = trainer.current_epoch
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._close()  # before validation and before this epoch's checkpoints

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        st = self.recorder.state_dict()
        out: dict[str, Any] = {"pending_epoch": self._pending_epoch}
        out["recorder"] = {k: str(v) if k == "meta" else torch.from_numpy(np.ascontiguousarray(v)) for k, v in st.items()}
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        st = {k: np.array(v) if k == "meta" else v.cpu().numpy() for k, v in state_dict["recorder"].items()}
        self.recorder.load_state_dict(st)
        self._pending_epoch = int(state_dict.get("pending_epoch", -1))
