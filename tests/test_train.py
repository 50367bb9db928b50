"""The recorded training loop: learning, determinism, resume after a kill, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from labeltrace.record import FIELDS
from labeltrace.score import trajectory as scores
from labeltrace.train import TrainConfig, augment_batch, lr_at, train_recorded

torch.set_num_threads(1)


def toy(n=120, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centers = rng.normal(0, 3, (k, d))
    x = centers[y] + rng.normal(0, 1, (n, d))
    return torch.tensor(x, dtype=torch.float32), y


def mlp(d=6, k=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, k))


def test_learns_and_records_every_sample_each_epoch():
    x, y = toy()
    res = train_recorded(mlp(), x, y, num_classes=3, config=TrainConfig(epochs=8, batch_size=32, lr=0.1),
                         progress=False)  # fmt: skip
    d = res.recorder.dynamics()
    assert d.num_epochs == 8 and np.all(d.n_seen == 8)
    assert res.final_train_accuracy > 0.9
    # the loss recorded in the last epoch is lower than in the first
    assert d.at("loss", -1).mean() < d.at("loss", 0).mean()


def test_deterministic_for_a_seed():
    x, y = toy()
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.05, seed=5)
    a = train_recorded(mlp(), x, y, num_classes=3, config=cfg, progress=False).recorder.dynamics()
    b = train_recorded(mlp(), x, y, num_classes=3, config=cfg, progress=False).recorder.dynamics()
    np.testing.assert_array_equal(a.epochs("signed_entropy"), b.epochs("signed_entropy"))


class Killed(Exception):
    pass


@pytest.mark.parametrize("augment", [False, True])
def test_resume_after_kill_equals_uninterrupted(tmp_path, augment):
    n, k = 64, 3
    rng = np.random.default_rng(1)
    y = rng.integers(0, k, n)
    x = torch.tensor(rng.normal(size=(n, 1, 8, 8)), dtype=torch.float32)

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(),
                             nn.Linear(256, k))  # fmt: skip

    cfg = TrainConfig(epochs=5, batch_size=16, lr=0.05, seed=3, augment=augment)
    full = train_recorded(model(), x, y, num_classes=k, config=cfg, progress=False)

    def die(epoch, rec):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train_recorded(model(), x, y, num_classes=k, config=cfg, checkpoint_dir=tmp_path, progress=False,
                       on_epoch=die)  # fmt: skip
    seen_epochs = []
    resumed = train_recorded(model(), x, y, num_classes=k, config=cfg, checkpoint_dir=tmp_path, progress=False,
                             on_epoch=lambda e, r: seen_epochs.append(e))  # fmt: skip
    assert resumed.resumed_from == 3 and seen_epochs == [3, 4]  # nothing recomputed
    a, b = full.recorder.dynamics(), resumed.recorder.dynamics()
    for f in FIELDS:
        np.testing.assert_allclose(a.epochs(f), b.epochs(f), rtol=1e-5, atol=1e-6, err_msg=f)
    for pa_, pb in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(pa_, pb)
    np.testing.assert_allclose(scores.compute("sei", a), scores.compute("sei", b), rtol=1e-5)
    # a finished run restarted does no work, and reports the checkpoint's times and accuracy
    again = train_recorded(model(), x, y, num_classes=k, config=cfg, checkpoint_dir=tmp_path, progress=False)
    assert again.resumed_from == 5 and len(again.epoch_seconds) == 5
    assert again.final_train_accuracy == resumed.final_train_accuracy


def test_checkpoint_of_other_config_is_refused(tmp_path):
    x, y = toy(n=20)
    train_recorded(mlp(), x, y, num_classes=3, config=TrainConfig(epochs=1), checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different training configuration"):
        train_recorded(mlp(), x, y, num_classes=3, config=TrainConfig(epochs=2), checkpoint_dir=tmp_path,
                       progress=False)  # fmt: skip


def test_bad_labels_named():
    x, y = toy(n=10)
    y[4] = 7
    with pytest.raises(ValueError, match=r"sample ids \[4\]"):
        train_recorded(mlp(), x, y, num_classes=3, config=TrainConfig(epochs=1), progress=False)


def test_augment_shapes_and_content():
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    out = augment_batch(x, gen)
    assert out.shape == x.shape
    # every output pixel is either padding (0) or a pixel of the same image and channel
    for b in range(2):
        for c in range(3):
            vals = set(out[b, c].flatten().tolist()) - {0.0}
            assert vals <= set(x[b, c].flatten().tolist())


def _windows(x: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every crop of ``x`` (C, H, W) after zero padding by ``pad``: what a crop-only view can be."""
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    h, w = x.shape[1:]
    return [xp[:, i : i + h, j : j + w] for i in range(2 * pad + 1) for j in range(2 * pad + 1)]


def test_augment_crop_only_never_mirrors_and_the_flip_does():
    """``hflip=False`` gives a padded crop of each image (pad 1/8 of the side); with the flip, some
    images of a large batch come out mirrored, which no crop of the plain image is."""
    x = torch.rand(64, 1, 16, 16)
    crop = augment_batch(x, torch.Generator().manual_seed(1), hflip=False)
    assert all(any(torch.equal(crop[b], v) for v in _windows(x[b], 2)) for b in range(64))
    both = augment_batch(x, torch.Generator().manual_seed(1))
    mirrored = [b for b in range(64) if not any(torch.equal(both[b], v) for v in _windows(x[b], 2))]
    assert mirrored and all(any(torch.equal(both[b], v.flip(-1)) for v in _windows(x[b], 2)) for b in mirrored)


def test_lr_schedules():
    cfg = TrainConfig(epochs=10, lr=1.0)
    assert lr_at(cfg, 0) == pytest.approx(1.0) and lr_at(cfg, 5) == pytest.approx(0.5)
    step = TrainConfig(epochs=8, lr=1.0, schedule="step")
    assert [round(lr_at(step, e), 6) for e in (0, 3, 4, 6)] == [1.0, 1.0, 0.1, 0.01]
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)


def test_predict_logits_batches_do_not_change_the_logits():
    """Eval-mode logits are each sample's own: batches of 7, the CPU default and one batch agree,
    in the order of ``ids``, for the small CNN (BatchNorm in eval mode) at 28 px."""
    from labeltrace.models.small_cnn import SmallResNet
    from labeltrace.train.loop import eval_batch_size, predict_logits

    torch.manual_seed(0)
    net = SmallResNet(1, 3, width=8)
    net.train()
    net(torch.randn(64, 1, 28, 28))  # move BatchNorm's running statistics off their initial values
    x = torch.randn(300, 1, 28, 28)
    ids = torch.tensor(np.random.default_rng(0).permutation(300)[:257])
    cpu = torch.device("cpu")
    assert eval_batch_size(cpu) < 257  # the default splits this call into several batches
    default = predict_logits(net, x, ids, device=cpu)
    with torch.no_grad():
        net.eval()
        whole = net(x[ids])
    assert default.shape == (257, 3)
    torch.testing.assert_close(default, whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(predict_logits(net, x, ids, device=cpu, batch_size=7), whole, rtol=1e-5, atol=1e-6)


def test_data_parallel_processes_draw_their_own_augmentation():
    """Two processes of a data-parallel training crop their shards independently (with one
    generator they cropped every batch's k-th image alike); one process keeps its draws."""
    from dataclasses import dataclass

    from labeltrace.train import loop
    from labeltrace.train.distributed import Dist

    @dataclass(frozen=True)
    class _Rank(Dist):  # a rank of a 2-process group, minus the collective at the end
        def sum(self, *v):  # type: ignore[no-untyped-def]
            return tuple(float(a) for a in v)

        def wrap(self, m, d):  # type: ignore[no-untyped-def]
            return m

    n = 16
    x = torch.zeros(n, 1, 8, 8)
    x[:, :, 4, 4] = 1.0  # one bright pixel: where it lands is the crop and flip drawn
    cfg = TrainConfig(epochs=1, batch_size=8, augment=True, seed=3)
    real = loop.augment_batch

    def positions(dist):  # type: ignore[no-untyped-def]
        seen: list[list[int]] = []

        def spy(xb, gen, hflip=True):  # type: ignore[no-untyped-def]
            out = real(xb, gen, hflip=hflip)
            seen.append(out.flatten(1).argmax(1).tolist())
            return out

        loop.augment_batch = spy
        try:
            net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
            loop.run_epoch(net, torch.optim.SGD(net.parameters(), lr=0.0), x, torch.zeros(n, dtype=torch.long),
                           config=cfg, epoch=0, device=torch.device("cpu"), dist=dist)  # fmt: skip
        finally:
            loop.augment_batch = real
        return seen

    assert positions(_Rank(0, 2)) != positions(_Rank(1, 2))
    assert positions(Dist()) == positions(Dist())
