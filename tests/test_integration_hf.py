"""The HF Trainer integration with the real package on a tiny model: the id column survives
remove_unused_columns, the recorded logits are those of the batch's samples, checkpoints resume."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")
pytest.importorskip("accelerate")

from labeltrace import Recorder
from labeltrace.integrations.hf import RECORDER_FILE, RecordingTrainer
from labeltrace.record import FIELDS

N, K, D = 20, 3, 4
transformers.logging.set_verbosity_error()
logging.getLogger("datasets").setLevel(logging.ERROR)


def dataset():
    g = np.random.default_rng(0)
    x = g.normal(size=(N, D)).astype(np.float32)
    y = g.integers(0, K, N)
    ds = datasets.Dataset.from_dict({"x": x.tolist(), "labels": y.tolist(), "sample_id": list(range(N)),
                                     "note": [f"row {i}" for i in range(N)]})  # fmt: skip
    return ds.with_format("torch", columns=["x", "labels", "sample_id"], output_all_columns=True), x, y


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(D, K)
        self.trace: list[tuple[np.ndarray, np.ndarray]] = []  # (inputs, logits) of training forwards

    def forward(self, x, labels=None):
        logits = self.net(x)
        if self.training:
            self.trace.append((x.detach().numpy().copy(), logits.detach().numpy().copy()))
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


class StopAfter(transformers.TrainerCallback):
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, args, state, control, **kw):
        if state.epoch >= self.epochs:
            control.should_training_stop = True


def trainer(root, rec, model=None, callbacks=(), save_steps=None, **extra):
    saving = {"save_strategy": "epoch"} if save_steps is None else {"save_strategy": "steps", "save_steps": save_steps}
    args = transformers.TrainingArguments(
        output_dir=str(root), num_train_epochs=4, per_device_train_batch_size=6, learning_rate=0.3, optim="sgd",
        lr_scheduler_type="constant", **saving, logging_strategy="no", report_to="none",
        disable_tqdm=True, use_cpu=True, seed=0, dataloader_num_workers=0, **extra,
    )  # fmt: skip
    ds, _, _ = dataset()
    return RecordingTrainer(model=model or Tiny(), args=args, train_dataset=ds, recorder=rec, callbacks=list(callbacks))


def assert_records_the_trace(rec, model, epochs):
    """``rec`` holds what the model computed in training: rebuilt from the model's own trace, each
    logits row matched to its sample by its inputs."""
    _, x, y = dataset()
    ref = Recorder(N, K)
    per_epoch = len(model.trace) // epochs
    for e in range(epochs):
        for xb, zb in model.trace[e * per_epoch : (e + 1) * per_epoch]:
            ids = np.array([int(np.flatnonzero((x == row).all(1))[0]) for row in xb])
            ref.update(ids, zb, y[ids])
        ref.end_epoch()
    got, want = rec.dynamics(), ref.dynamics()
    np.testing.assert_array_equal(got.n_seen, np.full(N, epochs))
    np.testing.assert_array_equal(got.labels, y)
    for f in FIELDS:
        np.testing.assert_array_equal(got.epochs(f), want.epochs(f))


def test_records_the_logits_of_each_batch_sample(tmp_path):
    rec = Recorder(N, K)
    model = Tiny()
    t = trainer(tmp_path, rec, model)
    assert t.args.remove_unused_columns  # the default, which would drop "sample_id"
    t.train()
    assert_records_the_trace(rec, model, 4)


class OutOfMemoryOnce(Tiny):
    """Runs out of memory at its third training forward (epoch 0), once; the trace then holds only
    the forwards of the Trainer's retry."""

    calls = 0

    def forward(self, x, labels=None):
        if self.training:
            self.calls += 1
            if self.calls == 3:
                self.trace.clear()
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return super().forward(x, labels)


def test_a_retry_after_running_out_of_memory_records_only_the_retry(tmp_path):
    """auto_find_batch_size restarts the training loop with a smaller batch: the failed attempt's
    updates were averaged into epoch 0 (96 of 100 samples twice in a review's run)."""
    rec, model = Recorder(N, K), OutOfMemoryOnce()
    t = trainer(tmp_path, rec, model, auto_find_batch_size=True)
    t.args.num_train_epochs = 2
    t.train()
    assert model.calls > 3 and t._train_batch_size < 6  # it did retry, with a smaller batch
    assert rec.num_epochs == 2
    assert_records_the_trace(rec, model, 2)


class TupleOut(Tiny):
    """Returns ``(loss, logits)`` given labels, else ``(logits,)`` (``return_dict=False``)."""

    def __init__(self) -> None:
        super().__init__()
        from types import SimpleNamespace

        self.config = SimpleNamespace(problem_type="single_label_classification")  # read under label smoothing

    def forward(self, x, labels=None):
        out = super().forward(x, labels if labels is not None else torch.zeros(len(x), dtype=torch.long))
        return (out["logits"],) if labels is None else (out["loss"], out["logits"])


@pytest.mark.parametrize("extra", [{}, {"label_smoothing_factor": 0.1}])
def test_a_model_returning_a_tuple_is_recorded(tmp_path, extra):
    """Under label smoothing the Trainer takes the labels out of the inputs, so the model returns
    (logits,): RecordingTrainer said the model returned no logits."""
    rec, model = Recorder(N, K), TupleOut()
    t = trainer(tmp_path, rec, model, **extra)
    t.args.num_train_epochs = 2
    t.train()
    assert_records_the_trace(rec, model, 2)


class Bare(Tiny):
    """A plain module: its forward returns the logits tensor, the loss is the Trainer's."""

    def forward(self, x, labels=None):
        return super().forward(x, torch.zeros(len(x), dtype=torch.long))["logits"]


def bare_ce(outputs, labels, num_items_in_batch=None):
    return torch.nn.functional.cross_entropy(outputs, labels)


def test_a_model_returning_its_logits_tensor_is_recorded_beside_a_compute_loss_func(tmp_path):
    """The Trainer takes the labels out for a compute_loss_func, so a bare tensor is the logits: it
    was refused as 'needs the model to return its logits' (an audit's finding); without one the
    Trainer would read the tensor's first row as the loss, and the refusal says what is accepted."""
    rec, model = Recorder(N, K), Bare()
    t = trainer(tmp_path, rec, model)
    t.compute_loss_func = bare_ce
    t.args.num_train_epochs = 2
    t.train()
    assert_records_the_trace(rec, model, 2)
    t2 = trainer(tmp_path / "plain", Recorder(N, K), Bare())
    with pytest.raises(ValueError, match=r"outputs\['logits'\], \(loss, logits, \.\.\.\).*; got Tensor"):
        t2.train()


class TupleOutLabel(TupleOut):
    """Takes its labels as ``label``: the Trainer leaves them in the inputs under label smoothing
    (it pops only ``labels``), so the model returns ``(loss, logits)`` there too."""

    def forward(self, x, label=None):
        return super().forward(x, label)


def test_a_tuple_model_with_another_label_column_keeps_its_logits_under_label_smoothing(tmp_path):
    """A first fix read (loss, logits)[0] as the logits whenever label smoothing was on."""
    ds, _, _ = dataset()
    ds = ds.rename_column("labels", "label")
    rec, model = Recorder(N, K), TupleOutLabel()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=2, per_device_train_batch_size=6, learning_rate=0.3, optim="sgd",
        lr_scheduler_type="constant", save_strategy="no", logging_strategy="no", report_to="none",
        disable_tqdm=True, use_cpu=True, seed=0, label_names=["label"], label_smoothing_factor=0.1,
    )  # fmt: skip
    def collate(rows):  # the default collator would rename "label" to "labels"
        return {c: torch.stack([torch.as_tensor(r[c]) for r in rows]) for c in ("x", "label", "sample_id")}

    RecordingTrainer(model=model, args=args, train_dataset=ds, recorder=rec, label_column="label",
                     data_collator=collate).train()  # fmt: skip
    assert_records_the_trace(rec, model, 2)


def test_under_torchrun_whole_number_float_ids_drop_the_padding_too(tmp_path):
    """Float ids (a dataset column of floats) skipped the per-rank first-update filter: the
    loader's padding copies were averaged in."""
    t = trainer(tmp_path, Recorder(N, K))
    ids = torch.tensor([0.0, 1.0, 0.0, 2.0])
    got_ids, logits, labels = t._first_updates(ids, torch.arange(8.0).reshape(4, 2), torch.tensor([0, 1, 0, 2]))
    assert np.asarray(got_ids).tolist() == [0, 1, 2] and t.skipped_repeats == 1
    assert logits[:, 0].tolist() == [0.0, 2.0, 6.0] and labels.tolist() == [0, 1, 2]


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path):
    # the recorded arrays in files (the in-memory path resumes in the Lightning test)
    full = Recorder(N, K)
    trainer(tmp_path / "a", full).train()
    part = Recorder(N, K, directory=tmp_path / "dyn_b")
    trainer(tmp_path / "b", part, callbacks=[StopAfter(2)]).train()  # as if killed after epoch 2
    assert part.num_epochs == 2
    ckpts = sorted((tmp_path / "b").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert (ckpts[-1] / RECORDER_FILE).exists()
    resumed = Recorder(N, K, directory=tmp_path / "dyn_b")
    trainer(tmp_path / "b", resumed).train(resume_from_checkpoint=True)
    a, b = full.dynamics(), resumed.dynamics()
    assert a.num_epochs == b.num_epochs == 4
    for f in FIELDS:
        np.testing.assert_array_equal(a.epochs(f), b.epochs(f))


def test_a_dataset_without_ids_is_a_clear_error(tmp_path):
    t = trainer(tmp_path, Recorder(N, K))
    t.train_dataset = t.train_dataset.remove_columns("sample_id")
    with pytest.raises(ValueError, match="no 'sample_id' column"):
        t.train()


class Killed(Exception):
    pass


class KillAfterStep(transformers.TrainerCallback):
    """Checkpoint after ``step``, then die before the next step (as a kill would)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.step:
            control.should_save = True

    def on_step_begin(self, args, state, control, **kw):
        if state.global_step == self.step:
            raise Killed


def test_resume_from_a_mid_epoch_checkpoint(tmp_path):
    full = Recorder(N, K)
    trainer(tmp_path / "a", full).train()
    part = Recorder(N, K)
    with pytest.raises(Killed):
        trainer(tmp_path / "b", part, callbacks=[KillAfterStep(6)]).train()  # 4 steps an epoch: 6 is mid-epoch
    assert part.num_epochs == 1 and part.epoch_in_progress
    resumed = Recorder(N, K)
    trainer(tmp_path / "b", resumed).train(resume_from_checkpoint=str(tmp_path / "b" / "checkpoint-6"))
    a, b = full.dynamics(), resumed.dynamics()
    assert b.num_epochs == 4
    np.testing.assert_array_equal(b.n_seen, np.full(N, 4))
    for f in FIELDS:
        np.testing.assert_array_equal(a.epochs(f), b.epochs(f))


def test_resume_from_a_checkpoint_saved_at_an_epochs_last_step(tmp_path):
    """Saving every 4 steps (4 steps an epoch) saves at each epoch's last step, inside the step
    loop: the recorder's epoch is closed there, since a Trainer resumed from that checkpoint
    counts the epoch as done and never ends it (epochs 2 and 3 were averaged into one)."""
    full = Recorder(N, K)
    trainer(tmp_path / "a", full).train()
    part = Recorder(N, K)
    with pytest.raises(Killed):
        trainer(tmp_path / "b", part, callbacks=[KillAfterStep(9)], save_steps=4).train()
    saved = Recorder.load(tmp_path / "b" / "checkpoint-8" / RECORDER_FILE)
    assert saved.num_epochs == 2 and not saved.epoch_in_progress
    resumed = Recorder(N, K)
    trainer(tmp_path / "b", resumed, save_steps=4).train(resume_from_checkpoint=str(tmp_path / "b" / "checkpoint-8"))
    a, b = full.dynamics(), resumed.dynamics()
    assert b.num_epochs == 4
    for f in FIELDS:
        np.testing.assert_array_equal(a.epochs(f), b.epochs(f))


def test_training_twice_closes_every_epoch(tmp_path):
    rec = Recorder(N, K)
    t = trainer(tmp_path, rec)
    t.args.num_train_epochs = 1
    t.train()
    t.train()  # its epoch ends at the first run's last step (4): it was left open
    assert rec.num_epochs == 2 and not rec.epoch_in_progress
    np.testing.assert_array_equal(rec.dynamics().n_seen, np.full(N, 2))


def test_resume_true_without_a_checkpoint_raises_as_the_trainer_does(tmp_path):
    rec = Recorder(N, K)
    with pytest.raises(ValueError, match="No valid checkpoint found in output directory"):
        trainer(tmp_path, rec).train(resume_from_checkpoint=True)  # was: trained from scratch
    assert rec.num_epochs == 0


@pytest.fixture
def as_if_two_ranks(tmp_path, monkeypatch):
    """One process in a gloo group whose TrainingArguments say 2 processes (the setting checks
    only; the real torchrun run is in test_integration_hf_ddp.py)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/rendezvous", rank=0, world_size=1)
    monkeypatch.setattr(transformers.TrainingArguments, "world_size", property(lambda self: 2))
    yield
    dist.destroy_process_group()


def test_torchrun_with_a_plain_recorder_raises(tmp_path, as_if_two_ranks):
    with pytest.raises(ValueError, match="plain Recorder records only this rank's shard.*DistributedRecorder"):
        trainer(tmp_path, Recorder(N, K))


def test_torchrun_allows_the_loaders_wrap_round_padding(tmp_path, as_if_two_ranks):
    """accelerate pads the last batches with up to a batch a rank: a DistributedRecorder warned of
    that as if the loader were not sharded."""
    from labeltrace.integrations.ddp import DistributedRecorder

    rec = DistributedRecorder(N, K)
    assert rec.padding == 0  # this one-process group's DistributedSampler pads nothing
    trainer(tmp_path, rec)
    assert rec.padding == 2 * 6  # 2 ranks (as the arguments say) x 6 a batch


def test_torchrun_refuses_checkpoints_mid_epoch(tmp_path, as_if_two_ranks):
    from labeltrace.integrations.ddp import DistributedRecorder

    with pytest.raises(ValueError, match="save_strategy='steps'.*set save_strategy='epoch'"):
        trainer(tmp_path, DistributedRecorder(N, K), save_steps=500)  # the HF default: mid-epoch saves
    t = trainer(tmp_path, DistributedRecorder(N, K))  # save_strategy="epoch": fine
    t.args.save_strategy = transformers.trainer_utils.SaveStrategy.STEPS  # changed after construction
    with pytest.raises(ValueError, match="save_strategy='steps'"):
        t.train()


def test_a_training_stopped_mid_epoch_says_what_its_last_epoch_holds(tmp_path):
    """max_steps ending inside an epoch closed the recorder's epoch with part of the samples, silently
    (the Lightning callback said it; an audit's finding): now a warning with the count, and a
    training ending at an epoch's end says nothing."""
    rec = Recorder(N, K)
    t = trainer(tmp_path, rec, Tiny(), max_steps=5)  # 4 steps an epoch (batches of 6 of 20)
    with pytest.warns(UserWarning, match=r"stopped mid-epoch \(Trainer epoch 1\.25.* recorder's epoch 2 closes with "
                                         r"6 of 20 samples"):
        t.train()
    assert rec.num_epochs == 2 and sorted(np.bincount(rec.dynamics().n_seen)) == [0, 6, 14]
    whole = Recorder(N, K)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer(tmp_path / "whole", whole, Tiny(), max_steps=8).train()  # two whole epochs
    assert whole.num_epochs == 2


class Overflowing(Tiny):
    """The second training forward's logits hold an Inf in one row (a half-precision overflow)."""

    def forward(self, x, labels=None):
        out = super().forward(x, labels)
        if self.training and len(self.trace) == 2:
            z = out["logits"].detach().clone()
            z[0, 0] = float("inf")
            out = {**out, "logits": z}
        return out


def test_a_row_of_inf_logits_is_left_out_with_a_warning_not_the_end_of_the_training(tmp_path):
    """One Inf logit raised inside compute_loss and ended trainer.train(); by default the row is left
    out of the epoch with a warning, and nonfinite="raise" keeps the old stop."""
    rec = Recorder(N, K)
    with pytest.warns(UserWarning, match=r"NaN or Inf logits for sample ids \[\d+\]: left out of epoch 1"):
        trainer(tmp_path, rec, model=Overflowing(), save_steps=1000).train()
    assert rec.num_epochs == 4 and rec.nonfinite_skipped == 1 and sorted(set(rec.dynamics().n_seen)) == [3, 4]
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "b"), num_train_epochs=1, per_device_train_batch_size=6,
                                          save_strategy="no", logging_strategy="no", report_to="none",
                                          disable_tqdm=True, use_cpu=True)  # fmt: skip
    with pytest.raises(ValueError, match="nonfinite must be 'skip' or 'raise'"):
        RecordingTrainer(model=Tiny(), args=args, train_dataset=dataset()[0], recorder=Recorder(N, K), nonfinite="drop")
    rt = RecordingTrainer(model=Overflowing(), args=args, train_dataset=dataset()[0], recorder=Recorder(N, K),
                          nonfinite="raise")  # fmt: skip
    with pytest.raises(ValueError, match=r"NaN or Inf logits"):
        rt.train()


class SoftTargets(Tiny):
    """Trains on one-hot float labels (cross_entropy takes class probabilities too)."""

    def forward(self, x, labels=None):
        logits = self.net(x)
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


def test_a_one_hot_label_column_is_recorded_as_class_ids_through_record_labels(tmp_path):
    """A one-hot labels column was refused at the first step ('labels must be 1-D'), with no way to
    tell the trainer what to record (Lightning's callback takes a function)."""
    ds, _, y = dataset()
    hot = ds.map(lambda r: {"labels": np.eye(K, dtype=np.float32)[int(r["labels"])].tolist()})
    hot = hot.with_format("torch", columns=["x", "labels", "sample_id"], output_all_columns=True)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), num_train_epochs=2, per_device_train_batch_size=6,
                                          save_strategy="no", logging_strategy="no", report_to="none",
                                          disable_tqdm=True, use_cpu=True, seed=0)  # fmt: skip
    with pytest.raises(ValueError, match=r"one-hot or soft labels .*argmax"):
        RecordingTrainer(model=SoftTargets(), args=args, train_dataset=hot, recorder=Recorder(N, K)).train()
    rec = Recorder(N, K)
    RecordingTrainer(model=SoftTargets(), args=args, train_dataset=hot, recorder=rec,
                     record_labels=lambda t: t.argmax(-1)).train()  # fmt: skip
    assert rec.num_epochs == 2 and rec.labels.tolist() == y.tolist()
    with pytest.raises(ValueError, match="record_labels must be a function"):
        RecordingTrainer(model=Tiny(), args=args, train_dataset=hot, recorder=Recorder(N, K), record_labels="argmax")
