"""Feature and probe cache keys: they name the decoding pipeline's version and Pillow's, so
features decoded by older code (or another Pillow) are not reused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from labeltrace.data import from_arrays
from labeltrace.models import feature_cache as fc
from labeltrace.models import probe as probe_mod


def test_package_versions_name_pillow_and_numpy() -> None:
    v = fc.package_versions()
    assert {"pillow", "numpy", "torch"} <= set(v) and v["pillow"] != "absent"


def test_an_entry_of_another_pipeline_version_is_not_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.full((2, 3), float(len(calls)), np.float32)

    key = {"data": "x", "n": 2, "model": "efficientnet-lite0", "resolution": 96}
    assert fc.cached_features(key, compute, cache_dir=tmp_path)[0, 0] == 1
    assert fc.cached_features(key, compute, cache_dir=tmp_path)[0, 0] == 1 and len(calls) == 1  # a hit
    monkeypatch.setattr(fc, "PIPELINE_VERSION", fc.PIPELINE_VERSION + 1)
    assert fc.cached_features(key, compute, cache_dir=tmp_path)[0, 0] == 2  # decoding changed: recomputed
    side = json.loads(fc.cache_entry(key, tmp_path).with_suffix(".json").read_text())
    assert side["pipeline"] == fc.PIPELINE_VERSION


def test_an_entry_written_before_the_pipeline_version_is_not_reused(tmp_path: Path) -> None:
    """Keys had no pipeline field (and did not name Pillow) up to the tRNS decoding fix."""
    key = {"data": "x", "n": 2, "model": "efficientnet-lite0", "resolution": 96}
    old_versions = {k: v for k, v in fc.package_versions().items() if k != "pillow"}
    old = hashlib.sha256(json.dumps({"parts": key, "versions": old_versions}, sort_keys=True).encode()).hexdigest()
    np.save(tmp_path / f"features-{old[:32]}.npy", np.zeros((2, 3), np.float32))
    assert fc.cache_entry(key, tmp_path).name != f"features-{old[:32]}.npy"
    got = fc.cached_features(key, lambda: np.ones((2, 3), np.float32), cache_dir=tmp_path)
    assert (got == 1).all()


@pytest.mark.parametrize("which", ["model", "resolution"])
def test_probe_cache_keys_name_the_pipeline_and_pillow(which: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    seen: list[dict] = []

    def cached(ds, cache, parts, compute):  # noqa: ANN001, ANN202
        seen.append(parts)
        return probe_mod.Probe("small-cnn", {}, 0, "test")

    monkeypatch.setattr(probe_mod, "_cached", cached)
    monkeypatch.setattr(probe_mod, "_effnet_available", lambda: True)
    ds = from_arrays(np.zeros((6, 4, 4), np.uint8), np.arange(6) % 2)
    if which == "model":
        probe_mod.choose_model(ds, cache_dir=tmp_path)
    else:
        probe_mod.choose_resolution(ds, cache_dir=tmp_path)
    assert seen[0]["pipeline"] == fc.PIPELINE_VERSION and "pillow" in seen[0]["versions"]
