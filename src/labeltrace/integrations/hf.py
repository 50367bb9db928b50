"""Record the training dynamics of a Hugging Face ``transformers.Trainer``: :class:`RecordingTrainer`.

::

    rec = Recorder(num_samples=N, num_classes=K)
    trainer = RecordingTrainer(model=model, args=args, train_dataset=ds, recorder=rec)
    trainer.train()
    dyn = rec.dynamics()

The training dataset holds the sample ids in a column (``"sample_id"`` by default). The Trainer
drops every column its model's ``forward`` does not take (``remove_unused_columns=True``, the
default): this Trainer keeps the id column through that, takes it out of each batch before the
model sees it, records the logits ``compute_loss`` gets from the model (``outputs["logits"]``, or
of a tuple the second element — the first when the Trainer took a ``labels`` column out of the
inputs, under ``label_smoothing_factor`` or a ``compute_loss_func``) with the batch's labels, and
closes the recorder's epoch at each epoch end. Evaluation and prediction are not recorded. With
``auto_find_batch_size=True`` (one process), a retry with a smaller batch after running out of
memory sets the recorder back to where ``train()`` began: the failed attempt is not recorded.

Checkpoints: the recorder's state goes into each checkpoint folder
(``labeltrace_recorder.npz``, written by the main process), and
``train(resume_from_checkpoint=...)`` restores it — also from a checkpoint taken mid-epoch,
since the Trainer then skips the batches it already trained on (not with
``ignore_data_skip=True``: those batches then train, and are recorded, a second time on top of
the restored updates). ``train(resume_from_checkpoint=True)`` with no checkpoint in
``output_dir`` raises, as the Trainer does.

Under ``torchrun`` (``args.world_size > 1``), pass a
:class:`~labeltrace.integrations.ddp.DistributedRecorder` (built after the
``TrainingArguments``, which start the process group); a plain ``Recorder`` raises, since it
would hold only this rank's shard. A DistributedRecorder's checkpoint needs every rank's updates,
which meet only at an epoch's end, so ``save_strategy`` must then be ``"epoch"`` or ``"no"`` (or
``"best"`` with ``eval_strategy="epoch"``); another raises at construction and at ``train()``.
The Trainer's data loader (accelerate, ``even_batches=True``) pads each rank's last batches with
samples from the start of the epoch, some of them this rank's own: on each rank only a sample's
first update of an epoch is recorded (the padding copies come later and are dropped, counted in
:attr:`RecordingTrainer.skipped_repeats`), and the DistributedRecorder keeps one rank's update of
a sample that two ranks trained on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labeltrace._checks import is_tensor
from labeltrace.record import Recorder
from labeltrace.record.batch import as_index_array, to_numpy

try:
    from transformers import Trainer, TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint
except ImportError as exc:  # the integration's own extra, named
    raise ImportError("labeltrace.integrations.hf needs transformers and accelerate: "
                      "pip install 'labeltrace[hf-trainer]'") from exc

__all__ = ["RECORDER_FILE", "RecordingTrainer"]

RECORDER_FILE = "labeltrace_recorder.npz"


class _EpochAndSave(TrainerCallback):
    """Closes the recorder's epoch at the epoch's last optimizer step — before a checkpoint the
    Trainer saves at that step, which a resumed Trainer counts as a finished epoch and never ends
    again — or, failing that (training stopped mid-epoch), at the epoch's end; and saves the
    recorder into each checkpoint."""

    def __init__(self, trainer: RecordingTrainer) -> None:
        self.trainer = trainer
        self._closed_at = -1  # the global step at which the recorder's epoch was last closed

    def _close(self, state: Any) -> None:
        self.trainer.recorder.end_epoch()  # collective for a DistributedRecorder: every rank is here
        self.trainer._recorded_this_epoch[:] = False
        self._closed_at = state.global_step

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.trainer._begin_attempt()
        self._closed_at = state.global_step  # not a previous train()'s step; a resumed step is closed or mid-epoch

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.epoch is not None and float(state.epoch).is_integer() and state.global_step != self._closed_at:
            self._close(state)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step != self._closed_at:
            if state.epoch is not None and not float(state.epoch).is_integer():  # max_steps, should_training_stop
                self._warn_partial(float(state.epoch))
            self._close(state)

    def _warn_partial(self, epoch: float) -> None:
        """Say how many samples the epoch the Trainer stopped in holds, as it closes (a plain
        Recorder's; a DistributedRecorder holds only this rank's part of it)."""
        rec = self.trainer.recorder
        if not isinstance(rec, Recorder):
            return
        held, n = int(rec.pending().ids.size), rec.num_samples
        warnings.warn(f"RecordingTrainer: the training stopped mid-epoch (Trainer epoch {epoch:.2f}: max_steps or "
                      f"should_training_stop), so the recorder's epoch {rec.num_epochs + 1} closes with {held:,} of "
                      f"{n:,} samples and the others' scores average one epoch fewer. Stop at an epoch's end "
                      "(num_train_epochs rather than max_steps) where that matters", UserWarning, stacklevel=2)  # fmt: skip

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if args.should_save and folder.is_dir():
            self.trainer.recorder.save(folder / RECORDER_FILE)


class RecordingTrainer(Trainer):
    """A ``transformers.Trainer`` that records per-sample training dynamics into ``recorder``.

    Parameters
    ----------
    recorder:
        A :class:`~labeltrace.record.Recorder` (or
        :class:`~labeltrace.integrations.ddp.DistributedRecorder`) sized for the training set.
    id_column:
        The training dataset's column of sample ids in ``[0, num_samples)``.
    label_column:
        The batch key holding the labels trained on (the default collator names it ``labels``).
    record_labels:
        What the recorder gets of that column, when it is not the class ids: one-hot or soft
        labels, ``record_labels=lambda y: y.argmax(-1)`` (the model still trains on the column).
    nonfinite:
        ``"skip"`` (default): a batch row of NaN or infinite logits (a half-precision overflow) is
        left out of the recording with a warning, and the training goes on; ``"raise"``: it stops
        the training (:meth:`~labeltrace.record.Recorder.update`).
    *args, **kwargs:
        Everything else goes to ``transformers.Trainer``.

    Attributes
    ----------
    skipped_repeats:
        Under ``torchrun``: updates not recorded because this rank had already recorded the
        sample in that epoch (the data loader's padding; see the module docstring).
    """

    def __init__(self, *args: Any, recorder: Any, id_column: str = "sample_id", label_column: str = "labels",
                 record_labels: Callable[[Any], Any] | None = None, nonfinite: str = "skip",
                 **kwargs: Any) -> None:  # fmt: skip
        if nonfinite not in ("skip", "raise"):
            raise ValueError(f"nonfinite must be 'skip' or 'raise', got {nonfinite!r}")
        if record_labels is not None and not callable(record_labels):
            raise ValueError(f"record_labels must be a function of the label column, got {record_labels!r}")
        self.record_labels = record_labels
        super().__init__(*args, **kwargs)
        self.nonfinite = nonfinite
        self.recorder = recorder
        self.id_column = id_column
        self.label_column = label_column
        self.skipped_repeats = 0
        self._recorded_this_epoch = np.zeros(int(recorder.num_samples), dtype=bool)  # this rank's, under DDP
        self._start: dict[str, np.ndarray] | None = None  # the recorder as train() began (auto_find_batch_size)
        self._attempts = 0  # training loops entered by this train(): more than one after running out of memory
        self._check_distributed()
        self.add_callback(_EpochAndSave(self))

    def _check_distributed(self) -> None:
        world = int(self.args.world_size)
        if world <= 1:
            return
        if self.args.auto_find_batch_size:  # a retry would need every rank's recorder set back at once
            raise ValueError(
                f"RecordingTrainer on {world} processes cannot retry with a smaller batch after running out of "
                "memory (TrainingArguments(auto_find_batch_size=True)): set per_device_train_batch_size instead"
            )
        if isinstance(self.recorder, Recorder):
            raise ValueError(
                f"RecordingTrainer runs on {world} processes (torchrun), but a plain Recorder records only "
                "this rank's shard: pass a labeltrace.integrations.ddp.DistributedRecorder, built after "
                "the TrainingArguments"
            )
        save = str(getattr(self.args.save_strategy, "value", self.args.save_strategy))
        evals = str(getattr(self.args.eval_strategy, "value", self.args.eval_strategy))
        if save not in ("epoch", "no") and not (save == "best" and evals == "epoch"):
            raise ValueError(
                f"RecordingTrainer on {world} processes can only checkpoint between epochs (a "
                "DistributedRecorder's state needs every rank's updates, which meet at the epoch's end), "
                f"but TrainingArguments(save_strategy={save!r}" + (f", eval_strategy={evals!r}" if save == "best" else "")
                + ") saves mid-epoch: set save_strategy='epoch' (or 'no')"
            )
        if hasattr(self.recorder, "padding"):  # accelerate's even_batches wraps round: up to a batch a rank
            self.recorder.padding = max(int(self.recorder.padding), world * int(self.args.per_device_train_batch_size))

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if self._signature_columns is not None and self.id_column not in self._signature_columns:
            self._signature_columns.append(self.id_column)  # survive remove_unused_columns

    def _pop_ids(self, inputs: dict[str, Any]) -> Any:
        if self.id_column not in inputs:
            raise ValueError(
                f"the training batch has no {self.id_column!r} column (it has {sorted(inputs)}); add the sample "
                f"ids to the training dataset as column {self.id_column!r}, or pass id_column="
            )
        return inputs.pop(self.id_column)

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:  # fmt: skip
        if not model.training:  # evaluation through compute_loss: nothing to record
            inputs = {k: v for k, v in inputs.items() if k != self.id_column}
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = dict(inputs)
        ids = self._pop_ids(inputs)
        if self.label_column not in inputs:
            raise ValueError(f"the training batch has no {self.label_column!r} (labels) column; pass label_column=")
        labels = inputs[self.label_column]
        recorded = labels if self.record_labels is None else self.record_labels(labels)
        # the Trainer takes "labels" out of the inputs under label smoothing or a compute_loss_func:
        # the model then returns (logits, ...), not (loss, logits, ...)
        popped = (self.label_smoother is not None or self.compute_loss_func is not None) and "labels" in inputs
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        if isinstance(outputs, dict) and "logits" in outputs:
            logits = outputs["logits"]
        elif isinstance(outputs, tuple | list) and len(outputs) > (0 if popped else 1):
            logits = outputs[0 if popped else 1]
        elif popped and is_tensor(outputs):  # a plain nn.Module's forward: the tensor is the logits
            logits = outputs
        else:
            raise ValueError("RecordingTrainer needs the model to return its logits: outputs['logits'], (loss, "
                             "logits, ...), or with label smoothing or a compute_loss_func (logits, ...) or the "
                             f"logits tensor itself; got {type(outputs).__name__}")
        if self.args.world_size > 1:  # each sample's first update of the epoch on this rank (not the padding)
            ids, logits, recorded = self._first_updates(ids, logits, recorded)
        self.recorder.update(ids, logits, recorded, nonfinite=self.nonfinite)
        return (loss, outputs) if return_outputs else loss

    def _first_updates(self, ids: Any, logits: Any, labels: Any) -> tuple[Any, Any, Any]:
        """The rows of the batch whose sample this rank has not recorded yet this epoch (each once)."""
        try:  # the Recorder's own reading of ids (whole-number floats included)
            i = as_index_array(to_numpy(ids, "ids").reshape(-1), "ids", self._recorded_this_epoch.size)
        except ValueError:
            return ids, logits, labels  # the Recorder names what is wrong with the ids
        if not i.size:
            return ids, logits, labels
        _, first = np.unique(i, return_index=True)
        rows = np.sort(first[~self._recorded_this_epoch[i[first]]])
        self.skipped_repeats += i.size - rows.size
        self._recorded_this_epoch[i[rows]] = True
        if rows.size == i.size:
            return ids, logits, labels
        keep, lab = torch.as_tensor(rows), torch.as_tensor(labels)
        return i[rows], logits.detach()[keep.to(logits.device)], lab[keep.to(lab.device)]

    def _begin_attempt(self) -> None:
        """At each entry into the training loop: a second entry within one ``train()`` is the
        Trainer retrying with a smaller batch after running out of memory
        (``auto_find_batch_size``), so the recorder is set back to where ``train()`` began — the
        failed attempt's updates and epochs are not the training's."""
        if self._attempts and self._start is not None:
            self.recorder.load_state_dict({k: np.array(v, copy=True) for k, v in self._start.items()})
            self._recorded_this_epoch[:] = False
        self._attempts += 1

    def prediction_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        inputs = {k: v for k, v in inputs.items() if k != self.id_column}
        return super().prediction_step(model, inputs, *args, **kwargs)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> Any:
        self._check_distributed()
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:  # as the Trainer: not a silent start from scratch
                raise ValueError(f"No valid checkpoint found in output directory ({self.args.output_dir})")
        self._recorded_this_epoch[:] = False
        if resume_from_checkpoint:
            path = Path(str(resume_from_checkpoint)) / RECORDER_FILE
            if not path.exists():
                raise ValueError(f"checkpoint {resume_from_checkpoint} holds no {RECORDER_FILE} (not written by a RecordingTrainer)")
            with np.load(path, allow_pickle=False) as z:
                state = {k: z[k] for k in z.files}
            self.recorder.load_state_dict(state, base=path.parent)
        self._attempts = 0
        self._start = self.recorder.state_dict() if self.args.auto_find_batch_size else None
        try:
            return super().train(resume_from_checkpoint, *args, **kwargs)
        finally:
            self._start = None

