"""Images of several sizes held in memory (a Hugging Face dataset's usual case) and in folders:
fingerprints, frozen features and the run directory's kept pixels work image by image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from labeltrace.data import from_folder, from_hf
from labeltrace.models import backbone, features
from labeltrace.models.inputs import data_identity
from labeltrace.rundir import open_run
from labeltrace.scan import ScanConfig, scan

SIZES = [(40, 30), (32, 32), (50, 60), (40, 40)]


class _FakeHF:
    """The map-style surface :func:`from_hf` reads (the ``datasets`` package is optional)."""

    def __init__(self, imgs: list[np.ndarray], labels: list[int]) -> None:
        self.imgs, self.labels = imgs, labels
        self.column_names = ["image", "label"]
        self.features: dict[str, object] = {}

    def __len__(self) -> int:
        return len(self.imgs)

    def __getitem__(self, key: object) -> object:
        if key == "label":
            return list(self.labels)
        if key == "image":
            return list(self.imgs)
        return {"image": self.imgs[key], "label": self.labels[key]}  # type: ignore[index]


def _images(n_rep: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in SIZES * n_rep]


def test_identity_of_mixed_size_arrays_follows_their_pixels() -> None:
    imgs = _images(1)
    ds = from_hf(_FakeHF(imgs, [0, 1, 0, 1]), workers=1)
    assert ds.image_shape is None
    a = data_identity(ds)
    assert a == data_identity(from_hf(_FakeHF([i.copy() for i in imgs], [0, 1, 0, 1]), workers=1))
    changed = [i.copy() for i in imgs]
    changed[2][0, 0, 0] ^= 1
    assert data_identity(from_hf(_FakeHF(changed, [0, 1, 0, 1]), workers=1)) != a


def test_scan_keeps_mixed_size_arrays_at_their_own_size(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    imgs = _images(3)
    ds = from_hf(_FakeHF(imgs, [0, 1] * 6), workers=1)
    cfg = ScanConfig(model="small-cnn", epochs=1, folds=2, batch_size=4, device="cpu")
    scan(ds, tmp_path / "run", cfg)
    run = open_run(tmp_path / "run")
    for i in (0, 2, 11):
        np.testing.assert_array_equal(run.image(i), imgs[i])


@pytest.mark.parametrize("resolution", [96, 224])
def test_frozen_features_of_mixed_sizes_reach_the_backbone_at_its_resolution(
    tmp_path: Path, backbone_spy: list, resolution: int
) -> None:
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i, (h, w) in enumerate([(300, 400), (320, 320), (256, 300)]):
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / "d" / c / f"{i}.png")
    ds = from_folder(tmp_path / "d", workers=1)
    assert ds.image_shape is None
    features.frozen_features(ds, resolution=resolution, cache_dir=tmp_path / "cache", workers=0)
    assert backbone_spy and all(s[-2:] == (resolution, resolution) for s in backbone_spy)  # not 32 px thumbnails


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_review_features_of_a_mixed_size_folder_are_the_scans_frozen_features(
        tmp_path: Path, monkeypatch, precision: str) -> None:  # fmt: skip
    """The review page finds the scan's feature-cache entry again (run.json keeps its key, the
    precision of bfloat16 features included), also for images of several sizes, whose key says how
    they were decoded."""
    from labeltrace.relabel.features import run_features

    proj = torch.randn(3, backbone.FEATURE_DIM, generator=torch.Generator().manual_seed(0))

    class _Backbone(torch.nn.Module):  # a matrix product: under autocast, in bfloat16
        def extract_features(self, x: torch.Tensor) -> torch.Tensor:
            return (x.mean(dim=(2, 3)) @ proj)[:, :, None, None]

    monkeypatch.setattr(backbone, "load_efficientnet_lite0", lambda pretrained=True: _Backbone())
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i, (h, w) in enumerate([(30, 40), (32, 32), (26, 30), (40, 40), (36, 20), (28, 28)]):
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / "d" / c / f"{i}.png")
    ds = from_folder(tmp_path / "d", workers=1)
    assert ds.image_shape is None and ds.shapes is not None
    cfg = ScanConfig(model="effnet-lite0", resolution=96, epochs=1, folds=2, detector="crossfit_cl",
                     cache_dir=str(tmp_path / "cache"), backbone_precision=precision)  # fmt: skip
    scan(ds, tmp_path / "run", cfg, progress=False, log=lambda s: None)
    run = open_run(tmp_path / "run")
    assert run.meta["inputs"]["cache_key"].get("precision", "float32") == precision
    feats = run_features(run)
    assert feats.source == "the scan's frozen EfficientNet-Lite0 features"
    kept = features.frozen_features(ds, resolution=96, cache_dir=tmp_path / "cache", workers=0,
                                    precision=precision).features  # the scan's entry (standardised)
    other = features.frozen_features(ds, resolution=96, cache_dir=tmp_path / "other", workers=0,
                                     precision="bfloat16" if precision == "float32" else "float32").features  # fmt: skip
    assert kept is not None and other is not None
    assert np.abs(kept - other).max() > 1e-2  # the two precisions' features differ: the entry found is this one's
    np.testing.assert_allclose(feats.values, kept, atol=1e-3)


def test_grayscale_and_rgb_of_one_size_train_at_their_own_size(tmp_path: Path) -> None:
    """Mixed colour modes are one image size: the small CNN reads them at 28 px (converted to RGB),
    not resized to 64 px as images of several sizes are."""
    from labeltrace.models.inputs import prepare_inputs

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(4):
            mode = "RGB" if i == 0 else "L"
            shape = (28, 28, 3) if mode == "RGB" else (28, 28)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(tmp_path / c / f"{i}.png")
    ds = from_folder(tmp_path, workers=1)
    assert ds.image_shape is None and ds.image_size == (28, 28)
    assert tuple(prepare_inputs(ds, "small-cnn").tensor.shape[1:]) == (3, 28, 28)
