"""A relative or ``~`` feature cache directory is recorded absolute (run.json's inputs.cache_dir),
so reading it back from another working directory finds the same entries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from labeltrace.data import from_arrays
from labeltrace.models import backbone, features
from labeltrace.models.feature_cache import features_dir


class _Backbone(torch.nn.Module):
    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(1, keepdim=True).expand(-1, backbone.FEATURE_DIM, -1, -1)


def test_relative_and_home_cache_dirs_are_recorded_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path = tmp_path.resolve()
    monkeypatch.setattr(backbone, "load_efficientnet_lite0", lambda pretrained=True: _Backbone())
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    ds = from_arrays(np.random.default_rng(0).integers(0, 256, (4, 8, 8), dtype=np.uint8), np.arange(4) % 2)
    got = features.frozen_features(ds, resolution=16, cache_dir="rel/cache", workers=0)
    assert got.description["cache_dir"] == str(tmp_path / "work" / "rel" / "cache")
    assert list((tmp_path / "work" / "rel" / "cache").glob("features-*.npy"))
    got = features.frozen_features(ds, resolution=16, cache_dir="~/feats", workers=0)
    assert got.description["cache_dir"] == str(tmp_path / "home" / "feats")
    assert not (tmp_path / "work" / "~").exists()  # not a folder named '~' in the working directory
    assert features_dir(None) == tmp_path / "home" / ".cache" / "labeltrace" / "features"
