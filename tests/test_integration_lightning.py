"""The Lightning callback with the real package on a tiny model: records what training_step
computed, for the ids of the batch; a Lightning checkpoint resumes it exactly."""

from __future__ import annotations

import logging

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
        callbacks=[cb, ModelCheckpoint(dirpath=root / "ckpt", save_last=True, save_on_train_epoch_end=False)],
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


def test_missing_logits_is_a_clear_error(tmp_path):
    class LossOnly(Tiny):
        def training_step(self, batch, batch_idx):
            return torch.nn.functional.cross_entropy(self.net(batch["x"]), batch["labels"])

    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                         callbacks=[RecorderCallback(N, K)])  # fmt: skip
    with pytest.raises(ValueError, match="logits"):
        trainer.fit(LossOnly(), loader())
