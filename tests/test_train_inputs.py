"""What the recorded trainings are handed: large seeds (every generator seeded modulo 2**64, the
seeds that worked unchanged), labels checked before training, checkpoints resumed only for the
labels, folds and inputs they were written for, models that return something else than logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from labeltrace.train import TrainConfig, run_epoch, train_recorded
from labeltrace.train.checkpoint import STATE
from labeltrace.train.distributed import Dist
from labeltrace.train.loop import make_optimizer
from labeltrace.train.protocol import crossfit_recorded, crossfit_seed

torch.set_num_threads(1)
CFG = TrainConfig(epochs=2, batch_size=8, device="cpu")


def toy(n=30, d=5, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), np.arange(n) % k


def linear(d=5, k=3):
    torch.manual_seed(0)
    return nn.Linear(d, k)


# ---------------------------------------------------------------------------- seeds
@pytest.mark.parametrize("seed", [0, 7, 2**63 - 1, 2**63, 2**64 - 1, -1, -(2**63)])
def test_torch_seed_gives_the_generator_torch_gave_every_seed_it_accepted(seed):
    from labeltrace.train.seeds import torch_seed

    a, b = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(torch_seed(seed))
    assert torch.equal(a.get_state(), b.get_state())


@pytest.mark.parametrize("seed", [0, 5, crossfit_seed(291) * 1009 + 4, -3])
def test_epoch_generator_is_the_one_of_working_seeds(seed):
    from labeltrace.train.seeds import epoch_generator

    want = torch.Generator().manual_seed(seed * 1_000_003 + 3)
    assert torch.equal(epoch_generator(seed, 3).get_state(), want.get_state())


def test_a_large_scan_seed_trains_in_one_process():
    """Fold k of scan seed 2,309,000 orders its batches with a seed past 2**64: 'Overflow when
    unpacking long long' before."""
    x, y = toy()
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu", seed=crossfit_seed(2_309_000))
    rec, _ = crossfit_recorded(lambda k: linear(), x, y, num_classes=3, config=cfg, n_folds=2, progress=False)
    assert rec.dynamics().num_epochs == 1


class _TwoRanks(Dist):
    """Rank 0 of two as run_epoch sees it, without a process group (sum stays local)."""

    def sum(self, *values: float) -> tuple[float, ...]:
        return tuple(float(v) for v in values)


def test_data_parallel_crops_seed_past_2_64():
    """Under torchrun each rank seeds its crops with (seed * 7919 + 4001 + rank) * 1_000_003 +
    epoch: scan seeds >= 292 overflowed it in every cross-fitted fold."""
    x, y = toy()
    model = linear()
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu", seed=crossfit_seed(292) * 1009)
    correct, _ = run_epoch(model, make_optimizer(model, cfg), x, torch.from_numpy(y), config=cfg, epoch=0,
                           device=torch.device("cpu"), dist=_TwoRanks(rank=0, world_size=2))  # fmt: skip
    assert 0 <= correct <= len(y)


def test_data_parallel_crop_seeds_are_the_ones_recordings_were_made_with():
    """Pinned: the derivation moved into train.seeds unchanged (each rank its own stream)."""
    from labeltrace.train.seeds import augment_seed

    assert [augment_seed(5, r) for r in (0, 1)] == [5 * 7919 + 4001, 5 * 7919 + 4002]


# ---------------------------------------------------------------------------- labels
@pytest.mark.parametrize("kind", ["train", "crossfit"])
@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (1.5, r"fractional values at sample ids \[4\]"),  # truncated to 1 before
        (np.nan, r"NaN or Inf at sample ids \[4\]"),  # an IndexError naming no sample before
        (7, r"out of range \[0, 3\) for sample ids \[4\]"),
    ],
)
def test_bad_labels_are_refused_naming_the_sample(kind, bad, match):
    x, y = toy()
    y = y.astype(np.float64)
    y[4] = bad
    with pytest.raises(ValueError, match=match):
        _train(kind, x, y)


@pytest.mark.parametrize("kind", ["train", "crossfit"])
def test_string_labels_are_refused_as_such(kind):
    x, y = toy()
    with pytest.raises(ValueError, match="labels must be integers, got dtype <U"):
        _train(kind, x, y.astype(str))


@pytest.mark.parametrize("kind", ["train", "crossfit"])
def test_whole_number_float_labels_train_as_the_integers(kind):
    x, y = toy()
    a, b = _train(kind, x, y), _train(kind, x, y.astype(np.float32))
    np.testing.assert_array_equal(a.epochs("loss"), b.epochs("loss"))


def _train(kind, x, y, **kw):
    if kind == "train":
        return train_recorded(linear(), x, y, num_classes=3, config=CFG, progress=False, **kw).recorder.dynamics()
    rec, _ = crossfit_recorded(lambda k: linear(), x, y, num_classes=3, config=CFG, n_folds=3, progress=False, **kw)
    return rec.dynamics()


@pytest.mark.parametrize("as_tensor", [False, True])
def test_boolean_labels_train_as_zero_and_one(as_tensor):
    """A binary task's labels given as booleans trained before the label checks; they still do."""
    x, y = toy()
    yb = (y % 2).astype(bool)
    got = train_recorded(linear(), x, torch.from_numpy(yb) if as_tensor else yb, num_classes=3, config=CFG,
                         progress=False).recorder.dynamics()  # fmt: skip
    want = train_recorded(linear(), x, yb.astype(np.int64), num_classes=3, config=CFG, progress=False).recorder.dynamics()
    np.testing.assert_array_equal(got.labels, want.labels)
    np.testing.assert_array_equal(got.mean("p_given"), want.mean("p_given"))


# ---------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("kind", ["train", "crossfit"])
def test_a_checkpoint_for_other_labels_is_refused(tmp_path, kind):
    """The key covered the settings only: the old labels' recording came back, and crossfit
    returned folds computed from the new ones."""
    x, y = toy()
    _train(kind, x, y, checkpoint_dir=tmp_path)
    other = y.copy()
    other[[2, 5]] = (y[[2, 5]] + 1) % 3
    what = r"other labels for sample ids \[2, 5\]" + ("; other folds" if kind == "crossfit" else r"\)")
    with pytest.raises(ValueError, match=what) as e:
        _train(kind, x, other, checkpoint_dir=tmp_path)
    assert str(tmp_path) in str(e.value)
    _train(kind, x, y, checkpoint_dir=tmp_path)  # the same call still resumes


def test_a_checkpoint_for_other_inputs_is_refused_without_a_key(tmp_path):
    x, y = toy()
    train_recorded(linear(), x, y, num_classes=3, config=CFG, progress=False, checkpoint_dir=tmp_path)
    for other, what in ((x * 100, "sampled rows"), (x.double(), "torch.float64")):
        with pytest.raises(ValueError, match=f"other inputs .*{what}"):
            train_recorded(linear(), other, y, num_classes=3, config=CFG, progress=False, checkpoint_dir=tmp_path)


def test_with_a_key_the_inputs_content_is_the_callers(tmp_path):
    """A key fingerprints the data (the scan's): features recomputed on an accelerator may differ
    in their last bits, so only the labels, shape and dtype are checked then."""
    x, y = toy()
    train_recorded(linear(), x, y, num_classes=3, config=CFG, progress=False, checkpoint_dir=tmp_path, key="k")
    res = train_recorded(linear(), x + 1e-7, y, num_classes=3, config=CFG, progress=False, checkpoint_dir=tmp_path,
                         key="k")  # fmt: skip
    assert res.resumed_from == CFG.epochs


def test_a_checkpoint_from_before_identities_is_checked_against_its_recorded_labels(tmp_path):
    x, y = toy()
    train_recorded(linear(), x, y, num_classes=3, config=CFG, progress=False, checkpoint_dir=tmp_path)
    state = torch.load(tmp_path / STATE, weights_only=True)
    del state["identity"]
    torch.save(state, tmp_path / STATE)
    other = y.copy()
    other[3] = (y[3] + 1) % 3
    with pytest.raises(ValueError, match=r"other labels for sample ids \[3\] \(as its recorder"):
        train_recorded(linear(), x, other, num_classes=3, config=CFG, progress=False, checkpoint_dir=tmp_path)
    res = train_recorded(linear(), x, y, num_classes=3, config=CFG, progress=False, checkpoint_dir=tmp_path)
    assert res.resumed_from == CFG.epochs


# ---------------------------------------------------------------------------- model outputs
class _DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = linear()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.fc(x)}


def test_a_model_returning_a_dict_is_named():
    x, y = toy()
    with pytest.raises(TypeError, match="the model returned a dict, not a logits tensor"):
        train_recorded(_DictOut(), x, y, num_classes=3, config=CFG, progress=False)


def test_a_device_this_machine_lacks_is_a_clear_error_before_training(tmp_path) -> None:
    """scan --device cuda on a CPU machine died in torch's AssertionError inside the first training."""
    import pytest
    import torch

    from labeltrace.cli import main
    from labeltrace.train import check_device

    assert check_device("cpu") == "cpu" and check_device("auto") == "auto"
    with pytest.raises(ValueError, match="'gpu' is not a torch device"):
        check_device("gpu")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="--device 'cuda': torch on this machine has no CUDA GPU"):
        check_device("cuda")
    assert main(["scan", "--example", "digits", "--out", str(tmp_path / "run"), "--device", "cuda"]) == 2
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
