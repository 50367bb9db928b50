"""TensorLoader determinism, batch content, augmentation; built-in examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labeltrace.data import (
    Augment,
    TensorLoader,
    augment_batch,
    available_examples,
    channel_stats,
    example,
    from_arrays,
)

torch.set_num_threads(1)
RNG = np.random.default_rng(0)
X = RNG.random((37, 3, 6, 5)).astype(np.float32)
Y = RNG.integers(0, 4, 37)


def _epochs(loader: TensorLoader, n: int) -> list[list[tuple[torch.Tensor, ...]]]:
    return [[tuple(t.clone() for t in b) for b in loader] for _ in range(n)]


def test_batches_cover_each_sample_once_and_match_data() -> None:
    loader = TensorLoader(X, Y, batch_size=8, seed=3)
    batches = list(loader)
    assert len(batches) == len(loader) == 5
    ids = torch.cat([b[0] for b in batches]).numpy()
    assert sorted(ids.tolist()) == list(range(37)) and not np.array_equal(ids, np.arange(37))
    for i, x, y in batches:
        np.testing.assert_array_equal(x.numpy(), X[i.numpy()])
        np.testing.assert_array_equal(y.numpy(), Y[i.numpy()])
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and i.dtype == torch.int64
    assert len(TensorLoader(X, Y, batch_size=8, drop_last=True)) == 4
    ordered = TensorLoader(X, Y, batch_size=10, shuffle=False)
    assert torch.cat([b[0] for b in ordered]).tolist() == list(range(37))


def test_loader_deterministic_given_seed() -> None:
    aug = Augment(pad=2, hflip=True)
    a = _epochs(TensorLoader(X, Y, batch_size=8, seed=7, augment=aug), 2)
    b = _epochs(TensorLoader(X, Y, batch_size=8, seed=7, augment=aug), 2)
    for ea, eb in zip(a, b):
        for ba, bb in zip(ea, eb):
            for ta, tb in zip(ba, bb):
                assert torch.equal(ta, tb)
    assert not torch.equal(a[0][0][0], a[1][0][0])  # epochs differ
    c = _epochs(TensorLoader(X, Y, batch_size=8, seed=8, augment=aug), 1)
    assert not torch.equal(a[0][0][0], c[0][0][0])  # seeds differ
    resumed = TensorLoader(X, Y, batch_size=8, seed=7, augment=aug)
    resumed.set_epoch(1)
    for ba, bb in zip(a[1], resumed):
        assert torch.equal(ba[0], bb[0]) and torch.equal(ba[1], bb[1])


def _is_crop_flip(out: np.ndarray, img: np.ndarray, pad: int, flip_ok: bool) -> bool:
    """Brute force: is ``out`` some window of zero-padded ``img`` (optionally flipped)?"""
    c, h, w = img.shape
    padded = np.zeros((c, h + 2 * pad, w + 2 * pad), img.dtype)
    padded[:, pad:pad + h, pad:pad + w] = img
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            win = padded[:, dy:dy + h, dx:dx + w]
            if np.array_equal(out, win) or (flip_ok and np.array_equal(out, win[..., ::-1])):
                return True
    return False


def test_augmentation_is_crop_and_flip_of_input() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.from_numpy(X[:12])
    out = augment_batch(x, Augment(pad=2, hflip=True), generator=g).numpy()
    assert out.shape == X[:12].shape
    assert all(_is_crop_flip(out[k], X[k], 2, True) for k in range(12))
    assert not np.array_equal(out, X[:12])
    same = augment_batch(x, Augment(pad=0, hflip=False), generator=g)
    assert torch.equal(same, x)
    flips = augment_batch(x, Augment(pad=0, hflip=True), generator=g).numpy()
    flipped = [np.array_equal(flips[k], X[k, ..., ::-1]) for k in range(12)]
    assert all(f or np.array_equal(flips[k], X[k]) for k, f in enumerate(flipped))
    assert 0 < sum(flipped) < 12


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.integers(2, 9), st.integers(2, 9),
       st.integers(0, 3), st.sampled_from(["constant", "replicate"]), st.integers(0, 2**31 - 1))
def test_augment_preserves_shape(
    b: int, c: int, h: int, w: int, pad: int, mode: str, seed: int,
) -> None:
    x = torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed + 1))  # the example decides it
    g = torch.Generator().manual_seed(seed)
    out = augment_batch(x, Augment(pad=pad, pad_mode=mode), generator=g)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_normalisation_and_channel_stats() -> None:
    mean, std = channel_stats(X)
    np.testing.assert_allclose(mean, X.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, X.std(axis=(0, 2, 3)), rtol=1e-6)
    loader = TensorLoader(X, Y, batch_size=37, shuffle=False, mean=mean, std=std)
    _, xb, _ = next(iter(loader))
    expected = (X - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(xb.numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        TensorLoader(X, Y, mean=[0.5], std=[0.2])


def test_uint8_storage_and_from_dataset() -> None:
    imgs = RNG.integers(0, 256, (20, 4, 4), dtype=np.uint8)
    ds = from_arrays(imgs, np.arange(20) % 2)
    f32 = TensorLoader.from_dataset(ds, batch_size=6, seed=1)
    u8 = TensorLoader.from_dataset(ds, batch_size=6, seed=1, store="uint8")
    assert u8.x.dtype == torch.uint8
    for (ia, xa, ya), (ib, xb, yb) in zip(f32, u8):
        assert torch.equal(ia, ib) and torch.equal(ya, yb)
        np.testing.assert_allclose(xa.numpy(), xb.numpy(), atol=1e-7)
        np.testing.assert_array_equal(xa.numpy()[:, 0], imgs[ia.numpy()] / np.float32(255))
    noisy = np.ones(20, np.int64)
    loader = TensorLoader.from_dataset(ds, labels=noisy, batch_size=20)
    assert next(iter(loader))[2].tolist() == [1] * 20


def test_digits_example() -> None:
    from sklearn.datasets import load_digits

    assert "digits" in available_examples()
    ds = example("digits")
    ref = load_digits()
    assert len(ds) == 1797 and ds.classes == tuple(str(k) for k in range(10))
    assert ds.image_shape == (8, 8, 1)
    np.testing.assert_array_equal(ds.labels, ref.target)
    x = ds.materialize()
    assert x.shape == (1797, 1, 8, 8) and x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x[:, 0], ref.images / 16.0, atol=1e-7)
    with pytest.raises(ValueError, match="unknown example"):
        example("mnist")


def test_labels_that_are_not_class_ids_are_refused() -> None:
    """np.int64 would truncate 1.7 to class 1 and make NaN a huge id: refused, naming the samples."""
    x = np.zeros((4, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match=r"samples \[1, 3\]"):
        TensorLoader(x, np.array([0.0, 1.7, 1.0, -1.0]))
    with pytest.raises(ValueError, match="not finite"):
        TensorLoader(x, np.array([0.0, np.nan, 1.0, 1.0]))
    with pytest.raises(ValueError, match="integer class ids"):
        TensorLoader(x, np.array(["a", "b", "a", "b"]))
    assert TensorLoader(x, torch.tensor([0.0, 1.0, 2.0, 1.0])).y.tolist() == [0, 1, 2, 1]
