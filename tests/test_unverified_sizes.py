"""Images whose sizes were not verified (``verify=False``) are decoded at the first image's size; an
image of another size is refused, naming it, not squashed to that size (materialize, frozen features)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeltrace.data import DataError, from_folder
from labeltrace.models import features


def _folder(root: Path, sizes: list[tuple[int, int]]) -> Path:
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_materialize_refuses_an_image_of_another_size_than_the_first(tmp_path: Path) -> None:
    ds = from_folder(_folder(tmp_path / "d", [(8, 8), (8, 12)]), verify=False, workers=1)
    assert ds.shapes is None
    with pytest.raises(DataError, match=r"a/1\.png: 8x12 px, not 8x8 like the first image"):
        ds.materialize()
    assert ds.materialize(size=6).shape == (4, 3, 6, 6)  # asked for: resized


def test_frozen_features_refuse_an_unverified_image_of_another_size(tmp_path: Path, backbone_spy: list) -> None:
    ds = from_folder(_folder(tmp_path / "d", [(16, 16), (16, 24)]), verify=False, workers=1)
    with pytest.raises(DataError, match=r"a/1\.png: 16x24 px, not 16x16 like the first image.*verify=True"):
        features.frozen_features(ds, resolution=32, cache_dir=tmp_path / "cache", workers=0)
    verified = from_folder(tmp_path / "d", workers=1)  # sizes known: resized straight to the resolution
    features.frozen_features(verified, resolution=32, cache_dir=tmp_path / "cache", workers=0)
    assert backbone_spy and all(s[-2:] == (32, 32) for s in backbone_spy)


def test_unverified_images_of_one_size_keep_their_features(tmp_path: Path, backbone_spy: list) -> None:
    root = _folder(tmp_path / "d", [(16, 16), (16, 16), (16, 16)])
    unverified = features.frozen_features(from_folder(root, verify=False, workers=1), resolution=32,
                                          cache_dir=tmp_path / "c1", workers=0)  # fmt: skip
    assert backbone_spy and all(s[-2:] == (16, 16) for s in backbone_spy)  # their own size; the backbone resizes
    verified = features.frozen_features(from_folder(root, workers=1), resolution=32, cache_dir=tmp_path / "c2",
                                        workers=0)  # fmt: skip
    np.testing.assert_array_equal(unverified.features, verified.features)


def test_the_streamed_read_refuses_what_materialize_refuses(tmp_path: Path) -> None:
    """StreamBatches at the native size resized an image of another size to the first's."""
    import torch

    from labeltrace.data.stream import StreamBatches

    ds = from_folder(_folder(tmp_path / "d", [(8, 8), (8, 12)]), verify=False, workers=1)
    sb = StreamBatches(ds, normalize=False, workers=0)
    with pytest.raises(DataError, match=r"a/1\.png: 8x12 px, not 8x8 like the first image"):
        list(sb.batches(torch.arange(len(ds)), 4))
    asked = StreamBatches(ds, size=6, normalize=False, workers=0)  # asked for: resized, as materialize
    (ids, x), = list(asked.batches(torch.arange(len(ds)), 4))
    np.testing.assert_allclose(x.numpy(), ds.materialize(size=6), atol=1e-6)


def test_unverified_colour_images_are_not_turned_gray_after_a_gray_first_image(tmp_path: Path) -> None:
    """The first image's channel count was every image's: a red RGB image became its gray luma."""
    import torch

    from labeltrace.data.stream import StreamBatches

    (tmp_path / "d" / "a").mkdir(parents=True)
    (tmp_path / "d" / "b").mkdir()
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    for k in range(2):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "d" / "a" / f"{k}.png")
        Image.fromarray(red).save(tmp_path / "d" / "b" / f"{k}.png")
    ds = from_folder(tmp_path / "d", verify=False, workers=1)
    with pytest.raises(DataError, match=r"b/0\.png: shape \(8, 8, 3\) differs from \(8, 8, 1\)"):
        ds.materialize()
    with pytest.raises(DataError, match=r"b/0\.png: shape \(8, 8, 3\) differs"):
        list(StreamBatches(ds, normalize=False, workers=0).batches(torch.arange(4), 4))
    assert ds.materialize(channels=3)[2, 0].max() == 1.0  # asked for: converted, as with verify=True
    # a gray image after a colour first one is made colour (nothing lost), as with verify=True
    for k in range(2):
        Image.fromarray(red).save(tmp_path / "d" / "a" / f"{k}.png")
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(tmp_path / "d" / "b" / "1.png")
    ds = from_folder(tmp_path / "d", verify=False, workers=1)
    m = ds.materialize()
    assert m.shape == (4, 3, 8, 8) and np.all(m[3] == np.float32(200) / 255)
    (_, x), = list(StreamBatches(ds, normalize=False, workers=0).batches(torch.arange(4), 4))
    np.testing.assert_array_equal(x.numpy(), m)
