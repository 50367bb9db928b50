"""Streaming data: batches decoded in DataLoader workers equal the in-memory tensor's rows, training
on them equals training on the tensor (same statistics), a streamed scan keeps no copy of the
images and shows them from the source, and frozen features are extracted chunk by chunk and
resume after a kill."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn

from labeltrace import rundir
from labeltrace.data import from_arrays, from_folder
from labeltrace.data.stream import StreamBatches, channel_stats
from labeltrace.models import features as F
from labeltrace.models.inputs import (
    STREAM_ABOVE_BYTES,
    estimated_bytes,
    prepare_inputs,
    should_stream,
)
from labeltrace.scan import ScanConfig, scan
from labeltrace.train import TrainConfig, train_recorded
from labeltrace.train.batches import TensorBatches

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """60 RGB 10 x 12 PNGs in 3 classes (a bright square whose place depends on the class)."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for i in range(60):
        k = i % 3
        img = rng.integers(0, 80, size=(10, 12, 3), dtype=np.uint8)
        img[2 * k : 2 * k + 4, 3 * k : 3 * k + 4] = 230
        (root / f"c{k}").mkdir(exist_ok=True)
        Image.fromarray(img).save(root / f"c{k}" / f"{i:03d}.png")
    return root


def _in_memory_stats(ds) -> tuple[np.ndarray, np.ndarray]:
    x = ds.materialize()
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))


@pytest.mark.parametrize("workers", [0, 1])
def test_streamed_batches_equal_the_in_memory_rows(folder, workers):
    ds = from_folder(folder)
    mem = prepare_inputs(ds, "small-cnn").tensor
    mean, std = _in_memory_stats(ds)
    src = StreamBatches(ds, mean=mean, std=std, workers=workers)
    assert src.shape == tuple(mem.shape)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(3))
    got = list(src.batches(order, 16))
    assert [len(i) for i, _ in got] == [16, 16, 16, 12]
    ids = torch.cat([i for i, _ in got])
    torch.testing.assert_close(ids, order, rtol=0, atol=0)  # the order asked for, also across worker processes
    assert torch.equal(torch.cat([x for _, x in got]), mem[order])  # bit for bit
    # the streamed statistics (float64 running sums) agree with numpy's over the whole array
    m, s = channel_stats(ds, (10, 12), 3, workers=workers, batch_size=7)
    np.testing.assert_allclose(m.ravel(), mean, rtol=1e-5)
    np.testing.assert_allclose(s.ravel(), std, rtol=1e-5)


def test_training_on_the_stream_equals_training_on_the_tensor(folder):
    ds = from_folder(folder)
    mem = prepare_inputs(ds, "small-cnn").tensor
    mean, std = _in_memory_stats(ds)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.1, augment=True, seed=5)

    def run(inputs):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 10 * 12, 3))
        return train_recorded(net, inputs, ds.labels, num_classes=3, config=cfg, progress=False).recorder.dynamics()

    a, b = run(mem), run(StreamBatches(ds, mean=mean, std=std, workers=1))
    for field in ("p_given", "margin", "loss"):
        np.testing.assert_array_equal(a.epochs(field), b.epochs(field))


def test_the_stream_rule_and_estimate(folder):
    ds = from_folder(folder)
    assert estimated_bytes(ds, "small-cnn") == 60 * 3 * 10 * 12 * 4
    assert estimated_bytes(ds, "effnet-lite0") == 60 * 1280 * 4
    assert not should_stream(ds, "small-cnn")
    big = from_arrays(np.zeros((8, 2, 2), np.uint8), np.arange(8) % 2)
    assert estimated_bytes(big, "clip") == 8 * 3 * 2 * 2 * 4  # native size, 3 channels
    n_over = STREAM_ABOVE_BYTES // (3 * 64 * 64 * 4) + 1
    assert n_over * 3 * 64 * 64 * 4 > STREAM_ABOVE_BYTES  # the rule streams a folder of that many 64 px RGB images


def test_streamed_scan_of_a_folder_keeps_no_images_and_reads_them_from_the_files(folder, tmp_path):
    ds = from_folder(folder)
    cfg = ScanConfig(model="small-cnn", epochs=2, folds=2, batch_size=16, seed=1, stream=True, workers=1,
                     noise="confusion:0.2")  # fmt: skip
    res = scan(ds, tmp_path / "run", cfg, progress=False, log=lambda s: None)
    run = rundir.open_run(res.run_dir)
    assert not (res.run_dir / rundir.IMAGES).exists()
    assert run.meta["inputs"]["streamed"] is True and run.meta["fingerprint"]["inputs"]["stream"] is True
    assert run.num_samples == 60 and np.isfinite(run.column("score")).all()
    assert run.image(4).shape == (10, 12, 3)
    # the in-memory scan of the same data is another configuration
    with pytest.raises(rundir.RunDirConflict):
        scan(ds, tmp_path / "run", ScanConfig(**{**vars(cfg), "stream": False}), progress=False, log=lambda s: None)


def test_npz_scan_reads_thumbnails_from_the_npz(tmp_path):
    d = load_digits()
    x, y = (d.images[:120] * 15).astype(np.uint8), d.target[:120]
    npz = tmp_path / "d.npz"
    np.savez(npz, train_images=x, train_labels=y)
    from labeltrace.cli import main

    out = tmp_path / "run"
    assert main(["scan", str(npz), "--out", str(out), "--model", "small-cnn", "--epochs", "1", "--folds", "2",
                 "--quiet", "--stream", "--workers", "0"]) == 0  # fmt: skip
    run = rundir.open_run(out)
    assert not (out / rundir.IMAGES).exists()
    assert run.meta["data"]["image_source"]["path"] == str(npz.resolve())
    np.testing.assert_array_equal(run.image(7)[:, :, 0], x[7])
    os.utime(npz, ns=(1, 1))  # only its time changed (a copy, a checkout): the same pixels, shown
    np.testing.assert_array_equal(rundir.open_run(out).image(7)[:, :, 0], x[7])
    x[7] = 255 - x[7]
    np.savez(npz, train_images=x, train_labels=y)  # other pixels: refused
    with pytest.raises(ValueError, match="changed since the scan"):
        rundir.open_run(out).image(7)


class Killed(Exception):
    pass


def test_feature_extraction_resumes_by_chunk(tmp_path):
    full = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    calls: list[tuple[int, int]] = []

    def rows(a, b):
        calls.append((a, b))
        if len(calls) == 3:
            raise Killed
        return full[a:b]

    path = tmp_path / "features-x.npy"
    with pytest.raises(Killed):
        F.extract_chunked(path, 10, 4, rows, chunk=3)
    assert not path.exists()
    assert json.loads((tmp_path / "features-x.partial.json").read_text())["rows"] == 6
    calls.clear()
    F.extract_chunked(path, 10, 4, lambda a, b: (calls.append((a, b)), full[a:b])[1], chunk=3)
    assert calls == [(6, 9), (9, 10)]  # the finished chunks were not extracted again
    np.testing.assert_array_equal(np.load(path), full)
    assert not (tmp_path / "features-x.partial.npy").exists()


class TinyBackbone(nn.Module):
    def extract_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1280, 1, 1) from the pixels
        return x.mean(dim=(2, 3), keepdim=True).repeat(1, 1280 // 3 + 1, 1, 1)[:, :1280] * torch.linspace(
            0.5, 2, 1280).view(1, -1, 1, 1)  # fmt: skip


def test_frozen_features_through_the_loader_in_memory_and_streamed(folder, tmp_path, monkeypatch):
    ds = from_folder(folder)
    monkeypatch.setattr(F.backbone, "load_efficientnet_lite0", lambda pretrained=True: TinyBackbone())
    monkeypatch.setattr(F, "CHUNK", 16)
    mem = F.frozen_features(ds, resolution=8, cache_dir=tmp_path, workers=1)
    entry = list(tmp_path.glob("features-*.npy"))
    assert len(entry) == 1 and mem.features.shape == (60, 1280)
    direct = F.backbone.extract_features(ds.materialize(channels=3), model=TinyBackbone(), resolution=8,
                                         progress=False)  # fmt: skip
    np.testing.assert_allclose(np.load(entry[0]), direct, rtol=1e-6)  # chunks of 16 here: other rounding
    streamed = F.frozen_features(ds, resolution=8, cache_dir=tmp_path, stream=True)  # the cache: no extraction
    assert isinstance(mem.source, TensorBatches) and streamed.features is None and streamed.streamed
    ids = torch.tensor([5, 0, 59, 17])
    (_, x), = list(streamed.source.batches(ids, 8))
    np.testing.assert_allclose(x.numpy(), mem.features[ids.numpy()], rtol=1e-4, atol=1e-4)


def test_loader_extraction_equals_the_batch_extraction_bit_for_bit(tmp_path, monkeypatch):
    """The cache entry's values do not depend on the path: the loader's batches give the very
    features ``ImageDataset.load_batch`` batches give (same windows of 256, same memory layout)."""
    pytest.importorskip("efficientnet_lite_pytorch")
    d = load_digits()
    ds = from_arrays((d.images[:300] / 16).astype(np.float32), d.target[:300])
    torch.manual_seed(0)
    net = F.backbone.load_efficientnet_lite0(pretrained=False)
    monkeypatch.setattr(F.backbone, "load_efficientnet_lite0", lambda pretrained=True: net)
    got = F.frozen_features(ds, resolution=32, cache_dir=tmp_path, workers=1)
    chunks = (ds.load_batch(np.arange(i, min(i + 256, 300)), channels=3) for i in range(0, 300, 256))
    want = F.backbone.extract_features(chunks, model=net, resolution=32, progress=False)
    np.testing.assert_array_equal(np.load(next(tmp_path.glob("features-*.npy"))), want)
    np.testing.assert_array_equal(got.features, F.standardize(want))


def test_streamed_frozen_features_give_the_same_scan(folder, tmp_path, monkeypatch):
    """Streaming changes memory use only: on a small set the default detector still mixes in the
    kNN label shares of the frozen features (read back from the cache), and the kNN columns stay."""
    import pyarrow.parquet as pq

    ds = from_folder(folder)
    monkeypatch.setattr(F.backbone, "load_efficientnet_lite0", lambda pretrained=True: TinyBackbone())
    tables = {}
    for stream in (False, True):
        cfg = ScanConfig(model="effnet-lite0", resolution=96, epochs=2, folds=2, noise="symmetric:0.3", seed=1,
                         cache_dir=str(tmp_path / "cache"), stream=stream)  # fmt: skip
        scan(ds, tmp_path / f"run{stream}", cfg, progress=False, log=lambda s: None)
        tables[stream] = pq.read_table(tmp_path / f"run{stream}" / rundir.SAMPLES)
    assert tables[True].column_names == tables[False].column_names
    assert {"knn_vote", "crossfit_knn"} <= set(tables[True].column_names)
    for col in ("score", "knn_vote"):
        np.testing.assert_allclose(tables[True].column(col).to_numpy(), tables[False].column(col).to_numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=col)  # fmt: skip
