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
otherwise): with another — a plain ``DataLoader``, shuffled or not — the rest of that epoch is
drawn afresh from the loader's start, and the recorder records what was trained — some samples
twice in that epoch (averaged), some not at all; when that epoch ends, a warning says how many
samples it holds.

An epoch of the recorder closes after the last training batch of a Lightning epoch — before
the validation loop and before any checkpoint of that epoch is written (a
``ModelCheckpoint(save_on_train_epoch_end=False)`` saves before ``on_train_epoch_end``) — or,
failing that, at ``on_train_epoch_end`` once the epoch's batches are all done. An epoch that
Lightning stops early (``max_steps`` mid-epoch, ``trainer.should_stop``) stays open in the
checkpoints written at that stop, so a resume that continues the epoch continues the recorder's
epoch too; it closes when Lightning starts its next epoch (Lightning 2.6 does so, instead of
continuing it, for a fit resumed with ``max_epochs``), or at the end of ``fit`` (so
:meth:`RecorderCallback.dynamics` holds the partial epoch); either way a warning says how many
samples the partial epoch holds (with a plain recorder; under DDP each rank holds only its part of
it, and no warning is given). A batch that ``training_step`` skips
(returns ``None``, under automatic optimization) is not recorded.

Under a multi-process strategy that runs this script on every rank (``strategy="ddp"`` under a
script or ``torchrun``) the callback records through a
:class:`~labeltrace.integrations.ddp.DistributedRecorder` (rank 0 holds the dynamics). Its
checkpoints must be taken between epochs, so a fit that would write one mid-epoch
(``ModelCheckpoint(every_n_train_steps=...)`` or ``train_time_interval``, saving after a
validation run mid-epoch (``val_check_interval`` < 1), or a ``max_steps`` that ends mid-epoch
with checkpointing on) raises ``ValueError`` at ``on_train_start``. The strategies that start
their workers themselves (``"ddp_spawn"``, ``"ddp_fork"``, ``"ddp_notebook"``) record in those
workers, whose state never comes back to this process: they raise ``ValueError`` at setup.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from labeltrace.record import Dynamics, Recorder

try:
    import lightning.pytorch as pl
except ImportError as exc:  # the integration's own extra, named
    raise ImportError("labeltrace.integrations.lightning needs Lightning: pip install 'labeltrace[lightning]'") from exc

__all__ = ["RecorderCallback"]

Getter = str | int | Callable[[Any], Any]


def _get(obj: Any, key: Getter, what: str) -> Any:
    if callable(key):
        return key(obj)
    try:
        return obj[key]
    except (KeyError, IndexError, TypeError):
        keys = list(obj.keys()) if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
        how = ("a key or a function" if isinstance(obj, Mapping) else "a position or a function"
               if isinstance(obj, tuple | list) else "a key, a position or a function")
        raise ValueError(f"RecorderCallback could not find {what} under {key!r} in {keys}; pass "
                         f"{what.split()[0]}= {how}") from None


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
    name:
        Tells apart several RecorderCallbacks in one Trainer (e.g. one per head; without names
        Lightning refuses a second one, "more than one stateful callback"): each one's checkpoint
        state is stored under its name. Keep it when resuming.
    dedupe:
        Under DDP, as for :class:`~labeltrace.integrations.ddp.DistributedRecorder`.
    nonfinite:
        ``"skip"`` (default): a batch row of NaN or infinite logits (a half-precision overflow) is
        left out of the recording with a warning, and the training goes on; ``"raise"``: it stops
        the training (:meth:`~labeltrace.record.Recorder.update`).
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
        name: str | None = None,
        dedupe: bool = True,
        nonfinite: str = "skip",
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if nonfinite not in ("skip", "raise"):
            raise ValueError(f"nonfinite must be 'skip' or 'raise', got {nonfinite!r}")
        self._nonfinite = nonfinite
        self._name = name
        self._dedupe = bool(dedupe)
        self._settings: dict[str, Any] = {"mode": mode, "keep_probs": keep_probs, "directory": directory,
                                          "max_epochs": max_epochs}  # fmt: skip
        self.recorder: Any = Recorder(num_samples, num_classes, **self._settings)
        self._ids, self._labels, self._logits = ids, labels, logits
        self._pending_epoch = -1  # the Lightning epoch whose updates the recorder holds open, or -1
        self._resumed_open = False  # resumed into an epoch stopped mid-way: said if it ends with samples missing

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher

        if isinstance(getattr(trainer.strategy, "launcher", None), _MultiProcessingLauncher):
            raise ValueError(
                f"RecorderCallback cannot record under a strategy that starts its own worker processes "
                f"({type(trainer.strategy).__name__} with a spawn/fork launcher, e.g. strategy='ddp_spawn', "
                "'ddp_fork' or 'ddp_notebook'): the recording would stay in those workers and this "
                "process's callback would hold nothing. Use strategy='ddp' from a script (or torchrun)"
            )
        if trainer.world_size > 1 and type(self.recorder) is Recorder:
            from labeltrace.integrations.ddp import DistributedRecorder

            rec = self.recorder
            self.recorder = DistributedRecorder(rec.num_samples, rec.num_classes, dedupe=self._dedupe, **self._settings)

    @property
    def state_key(self) -> str:
        """Where a checkpoint keeps this callback's state: the class name (as before names
        existed), or the class and ``name`` when given."""
        return super().state_key if self._name is None else self._generate_state_key(name=self._name)

    def dynamics(self) -> Dynamics:
        """The recorded :class:`Dynamics` (on rank 0 under DDP)."""
        return self.recorder.dynamics()

    # ------------------------------------------------------------------ hooks
    def _close(self, finished: bool = False) -> None:
        if self._pending_epoch >= 0:
            if finished and self._resumed_open:
                self._warn_redrawn()
            self.recorder.end_epoch()  # collective for a DistributedRecorder: every rank is here
            self._pending_epoch = -1
        self._resumed_open = False

    def _warn_redrawn(self) -> None:
        """An epoch resumed mid-way ran to its end with samples trained twice in it: the loader drew
        the rest of it afresh (Lightning resumes the batch count, not a plain DataLoader's order),
        silently. (A loader Lightning resumes exactly repeats none, whatever it leaves out.)"""
        if not isinstance(self.recorder, Recorder):
            return
        pending = self.recorder.pending()
        held, n = int(pending.ids.size), self.recorder.num_samples
        if pending.counts.size and int(pending.counts.max()) > 1:  # a sample twice in one epoch: drawn again
            warnings.warn(f"RecorderCallback: Lightning epoch {self._pending_epoch}, resumed mid-way, ran to its end "
                          f"but the recorder's epoch {self.recorder.num_epochs + 1} (Lightning counts from 0) holds "
                          f"{held:,} of {n:,} samples: the loader drew the rest of that epoch afresh (a DataLoader "
                          "Lightning cannot resume starts its order again, shuffled or not), so some samples were "
                          "trained twice in it (averaged) and the others' scores average one epoch fewer. Resume from "
                          "a checkpoint taken between epochs where that matters",
                          UserWarning, stacklevel=3)  # fmt: skip

    def _close_if_moved_on(self, trainer: pl.Trainer) -> None:
        """Close an epoch left open by a stop mid-epoch once Lightning runs another epoch."""
        if 0 <= self._pending_epoch != trainer.current_epoch:
            self._warn_partial(f"the fit went on with Lightning epoch {trainer.current_epoch} (a resume from a stop "
                               "mid-epoch that did not continue it)")  # fmt: skip
            self._close()

    def _warn_partial(self, why: str) -> None:
        """Say how many samples an epoch Lightning did not finish holds, as it closes (a plain
        Recorder's; a DistributedRecorder holds only this rank's part of it)."""
        if not isinstance(self.recorder, Recorder):
            return
        held, n = int(self.recorder.pending().ids.size), self.recorder.num_samples
        warnings.warn(f"RecorderCallback: Lightning epoch {self._pending_epoch} stopped mid-way and {why}: the "
                      f"recorder's epoch {self.recorder.num_epochs + 1} (Lightning counts from 0) closes with "
                      f"{held:,} of {n:,} samples, so the others' scores average one epoch fewer. Resume from a "
                      "checkpoint taken between epochs, or record that epoch again in a new Recorder, where that "
                      "matters", UserWarning, stacklevel=3)  # fmt: skip

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not isinstance(self.recorder, Recorder):  # a DistributedRecorder: checkpoints between epochs only
            reason = _mid_epoch_checkpoints(trainer)
            if reason is not None:
                raise ValueError(
                    f"RecorderCallback under DDP can only be checkpointed between epochs (every rank's "
                    f"updates meet at the epoch's end), but this fit would write a checkpoint mid-epoch: "
                    f"{reason}"
                )

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close_if_moved_on(trainer)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:  # fmt: skip
        self._close_if_moved_on(trainer)
        skipped = isinstance(outputs, Mapping) and not outputs and pl_module.automatic_optimization
        if not skipped:  # training_step returned None: Lightning skipped the batch, nothing to record
            if outputs is None or not (isinstance(outputs, Mapping) or callable(self._logits)):
                raise ValueError("RecorderCallback needs training_step to return a dict with the batch's logits")
            z = _get(outputs, self._logits, "logits in training_step's output")
            ids, labels = _get(batch, self._ids, "ids of the batch"), _get(batch, self._labels, "labels of the batch")
            self.recorder.update(ids, z, labels, nonfinite=self._nonfinite)
        self._pending_epoch = trainer.current_epoch  # also when skipped: every rank closes alike
        if _epoch_batches_done(trainer):
            self._close(finished=True)  # before validation and before this epoch's checkpoints

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if _epoch_batches_done(trainer):
            self._close(finished=True)
        # else Lightning stopped mid-epoch: the epoch stays open in this stop's checkpoints, so a
        # resume that continues it continues the recorder's epoch

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending_epoch >= 0:  # an epoch stopped mid-way, after the last checkpoint: into the dynamics
            self._warn_partial("the fit ended there (max_steps, should_stop); dynamics() holds that part as an epoch "
                               "(a resume from this stop's checkpoint continues it, if Lightning continues the epoch)")  # fmt: skip
        self._close()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        if not isinstance(self.recorder, Recorder) and self._pending_epoch >= 0 and self.recorder.is_writer:
            raise ValueError(
                "RecorderCallback under DDP is being checkpointed mid-epoch (Lightning epoch "
                f"{self._pending_epoch} is open), which a DistributedRecorder cannot hold: checkpoint between "
                "epochs only (see the RecorderCallback docstring)"
            )
        return {"pending_epoch": self._pending_epoch, "recorder": self.recorder.state_dict(tensors=True)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.recorder.load_state_dict(state_dict["recorder"])
        self._pending_epoch = int(state_dict.get("pending_epoch", -1))
        self._resumed_open = self._pending_epoch >= 0  # a resume into an epoch stopped mid-way


def _epoch_batches_done(trainer: pl.Trainer) -> bool:
    """Whether the running Lightning epoch went through all its batches (not stopped early)."""
    progress = trainer.fit_loop.epoch_loop.batch_progress
    return bool(progress.is_last_batch or progress.current.ready >= trainer.num_training_batches)


def _mid_epoch_checkpoints(trainer: pl.Trainer) -> str | None:
    """Why this fit may write a checkpoint mid-epoch (called at ``on_train_start``), or None."""
    nb = trainer.num_training_batches
    steps = math.ceil(nb / trainer.accumulate_grad_batches) if nb != float("inf") else None
    val_batches = trainer.num_val_batches
    has_val = (sum(val_batches) if isinstance(val_batches, list) else val_batches) != 0
    vb = trainer.val_check_batch
    if vb is None:
        val_mid_epoch = True  # time-based validation
    elif trainer.check_val_every_n_epoch is None:
        val_mid_epoch = steps is None or vb % nb != 0
    else:
        val_mid_epoch = vb < nb
    for mc in trainer.checkpoint_callbacks:
        n = int(getattr(mc, "_every_n_train_steps", 0) or 0)
        if n >= 1 and (steps is None or n % steps != 0):
            return (f"ModelCheckpoint(every_n_train_steps={n}) with {steps} steps an epoch; use "
                    "every_n_epochs, or a multiple of the epoch's steps")  # fmt: skip
        if getattr(mc, "_train_time_interval", None) is not None:
            return "ModelCheckpoint(train_time_interval=...); use every_n_epochs"
        on_epoch_end = getattr(mc, "_should_save_on_train_epoch_end", lambda t: True)(trainer)
        if not on_epoch_end and has_val and val_mid_epoch:
            return (f"validation runs mid-epoch (val_check_interval={trainer.val_check_interval!r}) and "
                    "ModelCheckpoint saves after it; validate once an epoch (val_check_interval=1.0) or pass "
                    "ModelCheckpoint(save_on_train_epoch_end=True)")  # fmt: skip
    if trainer.checkpoint_callbacks and trainer.max_steps > 0 and (steps is None or trainer.max_steps % steps != 0):
        return (f"max_steps={trainer.max_steps} stops mid-epoch ({steps} steps an epoch) and the checkpoint "
                "written at that stop would hold the open epoch; use max_epochs, a multiple of the epoch's "
                "steps, or enable_checkpointing=False")  # fmt: skip
    return None
