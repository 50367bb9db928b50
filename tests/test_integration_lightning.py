"""The Lightning callback with the real package on a tiny model: records what training_step
computed, for the ids of the batch; a Lightning checkpoint resumes it exactly."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from labeltrace import Recorder
from labeltrace.integrations.lightning import RecorderCallback
from labeltrace.record import FIELDS

N, K, D = 24, 3, 5
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*LeafSpec.*", "ignore:Checkpoint directory.*exists", "ignore:You defined a `validation_step`"
)
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


class Data(torch.utils.data.Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(N, D, generator=g)
        self.y = torch.randint(0, K, (N,), generator=g)

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> dict:
        return {"ids": i, "x": self.x[i], "labels": self.y[i]}


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(D, K)
        self.seen_logits: list[tuple[np.ndarray, np.ndarray]] = []  # what training_step computed

    def training_step(self, batch, batch_idx):
        logits = self.net(batch["x"])
        self.seen_logits.append((batch["ids"].numpy().copy(), logits.detach().numpy().copy()))
        return {"loss": torch.nn.functional.cross_entropy(logits, batch["labels"]), "logits": logits}

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", torch.nn.functional.cross_entropy(self.net(batch["x"]), batch["labels"]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def loader():
    return torch.utils.data.DataLoader(Data(), batch_size=7, shuffle=False)


def fit(epochs, root, cb, ckpt_path=None):
    from lightning.pytorch.callbacks import ModelCheckpoint

    model = Tiny()
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=root, deterministic=True,
        # saved at the end of validation, which runs before on_train_epoch_end
        callbacks=[*(cb if isinstance(cb, list) else [cb]),
                   ModelCheckpoint(dirpath=root / "ckpt", save_last=True, save_on_train_epoch_end=False)],
    )  # fmt: skip
    trainer.fit(model, loader(), loader(), ckpt_path=ckpt_path)  # with a validation loop
    return model


def test_records_training_step_logits_for_the_batch_ids(tmp_path):
    cb = RecorderCallback(N, K)
    model = fit(3, tmp_path, cb)
    ref = Recorder(N, K)
    y = Data().y.numpy()
    per_epoch = len(model.seen_logits) // 3
    for e in range(3):
        for ids, z in model.seen_logits[e * per_epoch : (e + 1) * per_epoch]:
            ref.update(ids, z, y[ids])
        ref.end_epoch()
    got, want = cb.dynamics(), ref.dynamics()
    assert got.num_epochs == 3
    np.testing.assert_array_equal(got.n_seen, np.full(N, 3))
    np.testing.assert_array_equal(got.labels, y)
    for f in FIELDS:
        np.testing.assert_array_equal(got.epochs(f), want.epochs(f))


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    # in memory, the whole history in the checkpoint (the files path resumes in the HF test)
    full = RecorderCallback(N, K)
    fit(4, tmp_path / "a", full)
    first = RecorderCallback(N, K)
    fit(2, tmp_path / "b", first)
    ckpt = tmp_path / "b" / "ckpt" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)  # tensors and strings only
    (cb_state,) = [v for k, v in state["callbacks"].items() if "RecorderCallback" in k]
    # written after validation, before on_train_epoch_end: the recorder's epoch is closed already
    assert '"num_epochs": 2' in cb_state["recorder"]["meta"] and cb_state["recorder"]["pending_ids"].numel() == 0
    resumed = RecorderCallback(N, K)
    fit(4, tmp_path / "b", resumed, ckpt_path=ckpt)
    a, b = full.dynamics(), resumed.dynamics()
    assert a.num_epochs == b.num_epochs == 4
    for f in FIELDS:
        np.testing.assert_array_equal(a.epochs(f), b.epochs(f))
    np.testing.assert_array_equal(a.posterior(), b.posterior())


def test_two_named_recorders_checkpoint_and_resume_apart(tmp_path):
    """Two RecorderCallbacks in one Trainer (e.g. one per head) had one checkpoint key: Lightning
    refused the second. Named, each resumes its own state."""
    full = RecorderCallback(N, K)
    fit(3, tmp_path / "a", full)
    first = [RecorderCallback(N, K, name="a"), RecorderCallback(N, K, name="b", keep_probs=1)]
    fit(2, tmp_path / "b", first)
    resumed = [RecorderCallback(N, K, name="a"), RecorderCallback(N, K, name="b", keep_probs=1)]
    fit(3, tmp_path / "b", resumed, ckpt_path=tmp_path / "b" / "ckpt" / "last.ckpt")
    for cb in resumed:  # the "b" state loaded into "a" would have kept 1 softmax, not 3
        assert cb.dynamics().num_epochs == 3
        np.testing.assert_array_equal(cb.dynamics().epochs("loss"), full.dynamics().epochs("loss"))
    assert len(resumed[0].recorder._probs) == 3 and len(resumed[1].recorder._probs) == 1
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        RecorderCallback(N, K, name="")


def test_missing_logits_is_a_clear_error(tmp_path):
    class LossOnly(Tiny):
        def training_step(self, batch, batch_idx):
            return torch.nn.functional.cross_entropy(self.net(batch["x"]), batch["labels"])

    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                         callbacks=[RecorderCallback(N, K)])  # fmt: skip
    with pytest.raises(ValueError, match="logits"):
        trainer.fit(LossOnly(), loader())


def test_a_getter_that_finds_nothing_says_what_this_output_takes():
    """A dict is read by key, a tuple by position: logits=0 on a training_step's dict was told to
    pass 'a key, a position or a function' (an audit's finding)."""
    from labeltrace.integrations.lightning import _get

    with pytest.raises(ValueError, match=r"under 0 in \['loss', 'out'\]; pass logits= a key or a function$"):
        _get({"loss": 1, "out": 2}, 0, "logits in training_step's output")
    with pytest.raises(ValueError, match=r"under 'ids' in a tuple; pass ids= a position or a function$"):
        _get((1, 2), "ids", "ids of the batch")
    assert _get((1, 2), 1, "ids of the batch") == 2 and _get({"out": 2}, lambda o: o["out"], "logits") == 2


class EpochLogged(Tiny):
    """Logs (Lightning epoch, ids, logits) of every training_step; skips the batches in ``skip``."""

    def __init__(self, skip=()) -> None:
        super().__init__()
        self.skip = set(skip)
        self.log_: list[tuple[int, np.ndarray, np.ndarray]] = []

    def training_step(self, batch, batch_idx):
        if batch_idx in self.skip:
            return None  # Lightning's documented way to skip a batch
        out = super().training_step(batch, batch_idx)
        self.log_.append((self.current_epoch, *self.seen_logits[-1]))
        return out


def recorded_as_lightning_ran(*logs):
    """A Recorder fed the logged batches, one epoch per Lightning epoch."""
    ref, y, cur = Recorder(N, K), Data().y.numpy(), None
    for e, ids, z in [x for log in logs for x in log]:
        if cur is not None and e != cur:
            ref.end_epoch()
        cur = e
        ref.update(ids, z, y[ids])
    ref.end_epoch()
    return ref.dynamics()


def plain_trainer(root, cb, **kw):
    from lightning.pytorch.callbacks import ModelCheckpoint

    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=root, deterministic=True, **kw,
                      callbacks=[cb, ModelCheckpoint(dirpath=root / "ckpt", save_last=True)])  # fmt: skip


def assert_same(got, want):
    assert got.num_epochs == want.num_epochs
    for f in FIELDS:
        np.testing.assert_array_equal(got.epochs(f), want.epochs(f))


@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before the epoch ended")
def test_a_stop_mid_epoch_resumes_into_the_same_recorder_epoch(tmp_path):
    # 4 batches an epoch: max_steps=10 stops in epoch 2 after 2 batches; last.ckpt is written at
    # that stop and Lightning resumes epoch 2 from it (the recorder had closed it: 6 epochs for 5)
    first, m1 = RecorderCallback(N, K), EpochLogged()
    plain_trainer(tmp_path, first, max_steps=10, max_epochs=-1).fit(m1, loader())
    assert_same(first.dynamics(), recorded_as_lightning_ran(m1.log_))  # the partial epoch is in the dynamics
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    (cb_state,) = [v for k, v in state["callbacks"].items() if "RecorderCallback" in k]
    assert cb_state["pending_epoch"] == 2 and cb_state["recorder"]["pending_ids"].numel() == 14  # still open
    resumed, m2 = RecorderCallback(N, K), EpochLogged()
    plain_trainer(tmp_path, resumed, max_steps=20, max_epochs=-1).fit(m2, loader(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert {e for e, *_ in m2.log_} == {2, 3, 4}
    assert_same(resumed.dynamics(), recorded_as_lightning_ran(m1.log_, m2.log_))  # 5 epochs, as Lightning's


def test_a_batch_skipped_by_training_step_is_not_recorded(tmp_path):
    cb, model = RecorderCallback(N, K), EpochLogged(skip={1})
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                         callbacks=[cb])  # fmt: skip
    trainer.fit(model, loader())
    got = cb.dynamics()
    assert_same(got, recorded_as_lightning_ran(model.log_))
    np.testing.assert_array_equal(got.n_seen, np.where((np.arange(N) >= 7) & (np.arange(N) < 14), 0, 2))


def test_a_strategy_that_spawns_its_workers_is_a_clear_error(tmp_path):
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, strategy="ddp_fork", logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         default_root_dir=tmp_path, callbacks=[RecorderCallback(N, K)])  # fmt: skip
    with pytest.raises(Exception, match="strategy='ddp' from a script"):  # raised in the worker, re-raised here
        trainer.fit(Tiny(), loader())


@pytest.fixture
def as_if_two_ranks(tmp_path, monkeypatch):
    """One process in a gloo group that the Trainer takes for rank 0 of 2: the callback records
    through a DistributedRecorder and checks the fit's checkpoints at on_train_start."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/rendezvous", rank=0, world_size=1)
    monkeypatch.setattr(pl.Trainer, "world_size", property(lambda self: 2))
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize(
    ("trainer_kw", "checkpoint_kw", "match"),
    [
        ({"val_check_interval": 0.5}, {}, "validation runs mid-epoch"),
        ({}, {"every_n_train_steps": 3}, "every_n_train_steps=3"),
        ({"max_steps": 6}, {}, "max_steps=6 stops mid-epoch"),
    ],
)
def test_ddp_refuses_a_fit_that_checkpoints_mid_epoch(tmp_path, as_if_two_ranks, trainer_kw, checkpoint_kw, match):
    from lightning.pytorch.callbacks import ModelCheckpoint

    cb = RecorderCallback(N, K)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, **trainer_kw,
                         callbacks=[cb, ModelCheckpoint(dirpath=tmp_path / "ckpt", **checkpoint_kw)])  # fmt: skip
    with pytest.raises(ValueError, match=f"between epochs.*{match}"):
        trainer.fit(Tiny(), loader(), loader())
    assert type(cb.recorder).__name__ == "DistributedRecorder"


def test_ddp_checkpoints_between_epochs_go_through(tmp_path, as_if_two_ranks):
    cb = RecorderCallback(N, K)
    fit(2, tmp_path, cb)  # validation once an epoch, saved after it: between epochs
    assert type(cb.recorder).__name__ == "DistributedRecorder" and cb.dynamics().num_epochs == 2
    assert (tmp_path / "ckpt" / "last.ckpt").exists()


@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before the epoch ended")
def test_an_epoch_lightning_did_not_finish_says_how_many_samples_it_holds(tmp_path):
    """A stop mid-epoch, resumed with max_epochs: Lightning went on with the next epoch and the
    recorder's epoch closed with 14 of 24 samples, silently (a review's run: 333 of 1,500)."""
    first, m1 = RecorderCallback(N, K), EpochLogged()
    with pytest.warns(UserWarning, match=r"Lightning epoch 2 stopped mid-way and the fit ended there .*: the recorder's "
                                         r"epoch 3 \(Lightning counts from 0\) closes with 14 of 24 samples"):  # fmt: skip
        plain_trainer(tmp_path, first, max_steps=10, max_epochs=-1).fit(m1, loader())
    resumed, m2 = RecorderCallback(N, K), EpochLogged()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        plain_trainer(tmp_path, resumed, max_epochs=5).fit(m2, loader(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    partial = [str(w.message) for w in seen if "stopped mid-way" in str(w.message)]
    assert {e for e, *_ in m2.log_} == {3, 4}  # Lightning 2.6 went on with epoch 3 (with max_steps it continues 2)
    assert len(partial) == 1 and "the fit went on with Lightning epoch 3" in partial[0] and "14 of 24" in partial[0]
    assert sorted(set(np.asarray(resumed.dynamics().n_seen).tolist())) == [4, 5]
    assert_same(resumed.dynamics(), recorded_as_lightning_ran(m1.log_, m2.log_))


@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before the epoch ended")
def test_a_resumed_epoch_a_shuffling_loader_drew_afresh_says_how_many_samples_it_holds(tmp_path):
    """A stop mid-epoch with shuffle=True, resumed with max_steps: Lightning continued the epoch in a
    new order, and the recorder's epoch closed with 165 of 200 samples without a word."""

    def shuffled():
        return torch.utils.data.DataLoader(Data(), batch_size=7, shuffle=True, generator=torch.Generator().manual_seed(3))

    first = RecorderCallback(N, K)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        plain_trainer(tmp_path, first, max_steps=10, max_epochs=-1).fit(EpochLogged(), shuffled())
    resumed, m2 = RecorderCallback(N, K), EpochLogged()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        plain_trainer(tmp_path, resumed, max_steps=20, max_epochs=-1).fit(m2, shuffled(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert {e for e, *_ in m2.log_} == {2, 3, 4}  # Lightning continued epoch 2
    redrawn = [str(w.message) for w in seen if "drew the rest of that epoch afresh" in str(w.message)]
    assert len(redrawn) == 1 and "Lightning epoch 2, resumed mid-way" in redrawn[0]
    assert f"holds {N - int((np.asarray(resumed.dynamics().n_seen) < 5).sum())} of {N} samples" in redrawn[0]


@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before the epoch ended")
def test_a_resumed_epoch_whose_loader_started_again_is_said_and_a_resume_between_epochs_is_not(tmp_path):
    """Lightning resumes the batch count, not a plain DataLoader's order: the resumed epoch 2 ran
    its last two batches from the loader's start, samples 0-13 again, and 14-23 never."""
    first = RecorderCallback(N, K)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        plain_trainer(tmp_path, first, max_steps=10, max_epochs=-1).fit(EpochLogged(), loader())
    m2 = EpochLogged()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        plain_trainer(tmp_path, RecorderCallback(N, K), max_steps=20, max_epochs=-1).fit(
            m2, loader(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert np.concatenate([ids for e, ids, _ in m2.log_ if e == 2]).tolist() == list(range(14))
    redrawn = [str(w.message) for w in seen if "drew the rest of that epoch afresh" in str(w.message)]
    assert len(redrawn) == 1 and "holds 14 of 24 samples" in redrawn[0]
    between = tmp_path / "between"
    plain_trainer(between, RecorderCallback(N, K), max_epochs=2).fit(EpochLogged(), loader())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        plain_trainer(between, RecorderCallback(N, K), max_epochs=4).fit(
            EpochLogged(), loader(), ckpt_path=between / "ckpt" / "last.ckpt")
    assert not [w for w in seen if "afresh" in str(w.message) or "mid-way" in str(w.message)]


def test_a_resumed_epoch_whose_loader_leaves_samples_out_but_repeats_none_says_nothing():
    """drop_last, a Subset, a loader Lightning resumes exactly: samples missing from the epoch, none
    trained twice in it — no redraw, so no warning of one."""
    cb = RecorderCallback(num_samples=24, num_classes=3)
    cb.recorder.update(torch.arange(20), torch.zeros(20, 3), torch.zeros(20, dtype=torch.long))
    cb._pending_epoch, cb._resumed_open = 2, True  # as load_state_dict leaves a mid-epoch checkpoint
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cb._close(finished=True)
    assert not seen and cb.recorder.num_epochs == 1


class Overflowing(Tiny):
    """One training step's logits hold an Inf in one row (a half-precision overflow); the loss is finite."""

    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        if self.current_epoch == 1 and batch_idx == 0:
            z = out["logits"].detach().clone()
            z[0, 0] = float("inf")
            out = {**out, "logits": z}
        return out


def test_a_row_of_inf_logits_is_left_out_with_a_warning_not_the_end_of_the_training(tmp_path):
    """One Inf logit (a float16 overflow) raised inside the callback and ended trainer.fit; by default
    the row is left out of the epoch, and the warning names its sample; nonfinite="raise" stops."""
    cb = RecorderCallback(N, K)
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, callbacks=[cb])  # fmt: skip
    with pytest.warns(UserWarning, match=r"NaN or Inf logits for sample ids \[0\]: left out of epoch 2"):
        trainer.fit(Overflowing(), loader())
    dyn = cb.recorder.dynamics()
    assert dyn.num_epochs == 3 and cb.recorder.nonfinite_skipped == 1
    assert dyn.n_seen.tolist() == [2] + [3] * (N - 1)  # sample 0 misses epoch 2 alone
    with pytest.raises(ValueError, match="nonfinite must be 'skip' or 'raise'"):
        RecorderCallback(N, K, nonfinite="ignore")
    cb = RecorderCallback(N, K, nonfinite="raise")
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path / "b", callbacks=[cb])  # fmt: skip
    with pytest.raises(ValueError, match=r"NaN or Inf logits for sample ids \[0\]"):
        trainer.fit(Overflowing(), loader())
