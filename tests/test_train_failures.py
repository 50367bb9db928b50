"""The trainer under failures a small, awkward dataset meets: a class smaller than the kNN vote's
k, noise that empties a class, a diverging training, a device this torch lacks, a full disk, a
step schedule over one or two epochs, a scan stopped before it recorded anything."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import torch

from labeltrace import data, rundir
from labeltrace._io import atomic_write_bytes
from labeltrace.decide import detectors
from labeltrace.decide.evidence import Evidence
from labeltrace.scan import ScanConfig, scan
from labeltrace.train import TrainConfig
from labeltrace.train.loop import check_device, lr_at


def test_a_class_smaller_than_k_is_not_flagged_for_its_size() -> None:
    """4 classes of 5 plainly separable images: the kNN vote flagged all 20 (at most 4 of 10
    neighbours can share a label)."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 5)
    x = np.eye(4)[y] * 10 + rng.normal(0, 0.01, (20, 4))
    det = detectors.detect("knn_vote", Evidence(y, 4, features=x, knn_k=10))
    assert det.flagged.sum() == 0 and np.allclose(det.score, 1.0)
    wrong = y.copy()
    wrong[0] = 1  # one wrong label: found
    det = detectors.detect("knn_vote", Evidence(wrong, 4, features=x, knn_k=10))
    assert np.flatnonzero(det.flagged).tolist() == [0]
    big = np.repeat(np.arange(2), 30)  # classes larger than k: the vote as it was
    xb = np.eye(2)[big] + rng.normal(0, 0.3, (60, 2))
    ev = Evidence(big, 2, features=xb, knn_k=10)
    assert np.array_equal(detectors.detect("knn_vote", ev).score, ev.knn_shares()[np.arange(60), big])


def _folder(root: Path, sizes: tuple[int, ...]) -> Path:
    from PIL import Image

    rng = np.random.default_rng(1)
    for c, n in enumerate(sizes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(n):
            Image.fromarray((rng.random((8, 8)) * 60 + 60 * c).astype(np.uint8)).save(root / f"c{c}" / f"{i}.png")
    return root


def test_noise_that_empties_a_class_is_refused_before_training(tmp_path: Path) -> None:
    """Classes of 30 / 30 / 2 with --noise symmetric:0.05 --seed 874 trained fully, then failed for
    good with 'class(es) [2] of 3 never do', and the folder advised a resume that failed again."""
    ds = data.from_folder(_folder(tmp_path / "imgs", (30, 30, 2)))
    cfg = ScanConfig(epochs=1, folds=2, noise="symmetric:0.05", seed=874)
    from labeltrace.evaluate import noise

    flipped = noise.inject(cfg.noise, ds.labels, 3, np.zeros((62, 0), np.float32), seed=874).labels
    assert np.bincount(flipped, minlength=3)[2] < 2  # the draw this test is about
    with pytest.raises(ValueError, match=r"--noise symmetric:0.05 with --seed 874 leaves class 'c2' \(\d\) with "
                                         r"fewer than 2 labels"):
        scan(ds, tmp_path / "run", cfg, progress=False, log=lambda s: None)
    assert not (tmp_path / "run").exists()  # released: the corrected command is a new scan


def test_a_scan_stopped_before_recording_leaves_no_claim(tmp_path: Path) -> None:
    """The files' stamps, written when the scan claims its folder, made a diverged first try a
    'scan of another configuration' that the corrected command could not resume or replace."""
    ds = data.from_folder(_folder(tmp_path / "imgs", (20, 20)))
    with pytest.raises(ValueError, match=r"the training diverged at epoch 1 \(.* at learning rate 1e\+30\): "
                                         r"lower --lr"):
        scan(ds, tmp_path / "run", ScanConfig(epochs=2, folds=2, lr=1e30), progress=False, log=lambda s: None)
    assert not (tmp_path / "run").exists()
    out = tmp_path / "mine"
    out.mkdir()  # a folder the user made stays, emptied of the claim
    with pytest.raises(ValueError, match="diverged"):
        scan(ds, out, ScanConfig(epochs=2, folds=2, lr=1e30), progress=False, log=lambda s: None)
    assert out.is_dir() and not any(out.iterdir())
    scan(ds, out, ScanConfig(epochs=1, folds=2), progress=False, log=lambda s: None)  # the corrected command
    assert (out / rundir.RUN_JSON).is_file() and (out / rundir.IMAGE_FILES).is_file()
    with pytest.raises(ValueError, match="--lr must be a finite number > 0, got inf"):
        scan(ds, tmp_path / "x", ScanConfig(lr=float("inf")), progress=False, log=lambda s: None)
    with pytest.raises(ValueError, match="--image-size 20000 makes 400,000,000-pixel inputs, over the limit"):
        scan(ds, tmp_path / "x", ScanConfig(image_size=20000), progress=False, log=lambda s: None)


def test_a_device_this_torch_lacks_is_refused_by_name() -> None:
    for name in ("xpu", "meta"):
        if name == "xpu" and getattr(torch, "xpu", None) is not None and torch.xpu.is_available():
            continue
        with pytest.raises(ValueError, match=rf"--device '{name}': "):
            check_device(name)
    assert check_device("cpu") == "cpu"


def test_a_full_disk_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import labeltrace._io as io_mod

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io_mod.os, "fsync", full)
    with pytest.raises(OSError, match=r"No space left on device \(writing .*run\.json; [\d,]+ bytes free there: "
                                      r"is the disk full\?\)"):
        atomic_write_bytes(tmp_path / "run.json", b"{}")
    assert list(tmp_path.iterdir()) == []  # no temporary file left


def test_a_step_schedule_over_one_or_two_epochs_starts_at_the_full_rate() -> None:
    """--schedule step --epochs 1 trained at 1 % of --lr."""
    rates = {e: [lr_at(TrainConfig(epochs=e, lr=1.0, schedule="step"), t) for t in range(e)] for e in (1, 2, 3, 4, 8)}
    assert rates[1] == [1.0] and rates[2] == pytest.approx([1.0, 0.1]) and rates[3] == pytest.approx([1.0, 0.1, 0.01])
    assert rates[4] == pytest.approx([1.0, 1.0, 0.1, 0.01])  # as before from 3 epochs on
    assert rates[8] == pytest.approx([1.0] * 4 + [0.1] * 2 + [0.01] * 2)


@pytest.mark.parametrize("n", [129, 257])
def test_a_lone_last_sample_trains_with_the_batch_before_it(n: int) -> None:
    """1x1 images, n = 1 more than a multiple of the batch: the last training batch held one image
    and BatchNorm refused it ("Expected more than 1 value per channel when training")."""
    from labeltrace.models.small_cnn import SmallResNet
    from labeltrace.train import loop

    torch.manual_seed(0)
    seen: list[int] = []
    sizes: list[int] = []
    x = torch.rand(n, 1, 1, 1)
    y = np.arange(n) % 2
    real = loop.run_epoch

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        inner = kwargs["on_batch"]

        def hook(ids: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
            seen.extend(ids.tolist())
            sizes.append(len(ids))
            inner(ids, logits, labels)

        return real(*args, **{**kwargs, "on_batch": hook})

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "run_epoch", spy)
        res = loop.train_recorded(SmallResNet(1, 2, width=8), x, y, num_classes=2, progress=False,
                             config=TrainConfig(epochs=2, batch_size=128, device="cpu"))  # fmt: skip
    assert sizes == [128] * (n // 128 - 1) + [129] + [128] * (n // 128 - 1) + [129]
    assert sorted(seen) == sorted(list(range(n)) * 2)  # every sample once an epoch
    assert res.recorder.num_epochs == 2


def test_batches_of_one_stay_batches_of_one() -> None:
    from labeltrace.train.batches import as_source
    from labeltrace.train.loop import _batches

    src = as_source(torch.zeros(5, 1))
    assert [len(i) for i, _ in _batches(src, torch.arange(5), 1)] == [1] * 5
    assert [len(i) for i, _ in _batches(src, torch.arange(5), 2)] == [2, 3]
    assert [len(i) for i, _ in _batches(src, torch.arange(5), 5)] == [5]
    assert [len(i) for i, _ in _batches(src, torch.arange(1), 4)] == [1]
