"""Injected feature-following noise does not depend on the small CNN's ``--image-size``: a scan at
another side trains on the very labels a native-side scan (and the bench) draws."""

from __future__ import annotations

import numpy as np
import pytest

from labeltrace.data import from_npz
from labeltrace.scan import ScanConfig, scan


def _blobs(tmp_path, side: int = 28, n: int = 150, k: int = 4):
    """Images whose class sets a faintly brighter quadrant, so logistic regression on pixels
    confuses many of them (and differently at 14 px than at 28 px)."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % k
    x = rng.normal(90, 40, (n, side, side))
    for c in range(k):
        x[y == c, (c // 2) * side // 2:(c // 2 + 1) * side // 2, (c % 2) * side // 2:(c % 2 + 1) * side // 2] += 8
    path = tmp_path / "blobs.npz"
    np.savez(path, train_images=np.clip(x, 0, 255).astype(np.uint8), train_labels=y[:, None])
    return path


def test_confusion_noise_does_not_depend_on_the_image_size(tmp_path) -> None:
    from labeltrace.bench import parse_config
    from labeltrace.bench.cells import CellRunner
    from labeltrace.bench.grid import expand, load_dataset

    path = _blobs(tmp_path)
    ds = from_npz(path)
    # float32 as the bench trains (a benchmark names its precision; the scan's auto may take bfloat16)
    cfg = dict(model="small-cnn", epochs=2, noise="confusion:0.3", seed=1, detector="single", precision="float32")
    native = scan(ds, tmp_path / "n", ScanConfig(**cfg), progress=False, log=lambda s: None)
    small = scan(ds, tmp_path / "s", ScanConfig(**cfg, image_size=14), progress=False, log=lambda s: None)
    given = native.table.column("given_label_id").to_numpy()
    assert (given != ds.labels).sum() > 0
    np.testing.assert_array_equal(small.table.column("given_label_id").to_numpy(), given)
    assert not np.allclose(small.detection.score, native.detection.score)  # it did train at 14 px

    bcfg = parse_config({
        "name": "side", "seeds": [1], "detectors": ["single"], "cache_dir": str(tmp_path / "cache"), "sei_curve": False,
        "models": {"cnn": {"kind": "small-cnn", "epochs": 2, "image_size": 14}},
        "datasets": [{"name": "b", "source": "npz", "path": str(path), "labels": ["confusion:0.3"], "models": ["cnn"]}],
    })  # fmt: skip
    cell = expand(bcfg)[0]
    runner = CellRunner(cell, load_dataset(cell.dataset, bcfg.cache_path, log=lambda s: None), bcfg, log=lambda s: None)
    np.testing.assert_array_equal(runner.given, given)
    np.testing.assert_allclose(runner.detector("single")["score"], small.detection.score, rtol=0, atol=1e-12)


def test_fine_tuning_draws_the_pixel_noise_the_bench_draws(tmp_path) -> None:
    """A model on images other than the small CNN (here EfficientNet-Lite0 fine-tuned) draws the
    confusion noise from the same pixels: the labels the small CNN's scan (and the bench's
    ``noise_features = "pixels"``) trains on."""
    pytest.importorskip("efficientnet_lite_pytorch")
    path = _blobs(tmp_path)
    ds = from_npz(path)
    noise = dict(noise="confusion:0.3", seed=1, epochs=1)
    cnn = scan(ds, tmp_path / "c", ScanConfig(model="small-cnn", detector="single", **noise), progress=False,
               log=lambda s: None)  # fmt: skip
    tuned = scan(ds, tmp_path / "f", ScanConfig(model="effnet-lite0", finetune=True, folds=2, batch_size=32,
                                                resolution=32, **noise), progress=False, log=lambda s: None)  # fmt: skip
    assert tuned.meta["inputs"]["kind"] == "images"
    np.testing.assert_array_equal(tuned.table.column("given_label_id").to_numpy(),
                                  cnn.table.column("given_label_id").to_numpy())  # fmt: skip
