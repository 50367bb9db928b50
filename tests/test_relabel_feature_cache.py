"""The review page finds the frozen features a scan read even when the cache's key has moved on
(a package upgrade, a new decoding version): by the key parts its sidecar names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from labeltrace.relabel.features import _entry_by_parts


def _entry(d: Path, name: str, parts: dict, arr: np.ndarray, mtime: float) -> None:
    np.save(d / f"features-{name}.npy", arr)
    (d / f"features-{name}.json").write_text(json.dumps({"parts": parts, "versions": {"torch": "old"}, "shape": list(arr.shape)}))
    os.utime(d / f"features-{name}.npy", (mtime, mtime))


def test_an_entry_written_under_other_versions_is_found_by_its_key_parts(tmp_path: Path) -> None:
    key = {"data": "fp1", "n": 4, "model": "efficientnet-lite0", "resolution": 96}
    old, newer = np.ones((4, 3), np.float32), np.full((4, 3), 2.0, np.float32)
    _entry(tmp_path, "aaa", key, old, 1_000)
    _entry(tmp_path, "bbb", key, newer, 2_000)  # the same parts, written later: the one taken
    _entry(tmp_path, "ccc", key | {"data": "fp2"}, np.zeros((4, 3), np.float32), 3_000)  # other files
    np.testing.assert_array_equal(_entry_by_parts(tmp_path, key, 4), newer)
    assert _entry_by_parts(tmp_path, key | {"resolution": 224}, 4) is None
    assert _entry_by_parts(tmp_path, key, 5) is None  # not this run's number of samples
    (tmp_path / "features-zzz.json").write_text("{not json")  # a broken sidecar is passed over
    np.testing.assert_array_equal(_entry_by_parts(tmp_path, key, 4), newer)
