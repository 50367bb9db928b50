"""Two processes extracting the same frozen features: the second waits on the entry's lock and
reads the first's entry; an entry finished by another process at the rename is accepted."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from labeltrace.data import from_arrays
from labeltrace.models import backbone, features
from labeltrace.models.inputs import pixels_fingerprint


def test_a_second_extraction_waits_for_the_first_and_reads_its_entry(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    loads: list[int] = []
    monkeypatch.setattr(backbone, "load_efficientnet_lite0", lambda pretrained=True: loads.append(1))
    ds = from_arrays(np.random.default_rng(0).integers(0, 256, (6, 8, 8), dtype=np.uint8), np.arange(6) % 2)
    key = {"data": pixels_fingerprint(ds), "n": 6, "model": "efficientnet-lite0", "resolution": 96}
    entry = backbone.cache_entry(key, tmp_path)
    fd = os.open(entry.with_suffix(".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # "the first scan" is extracting
    real, asked = fcntl.flock, threading.Event()

    def flock(f: int, op: int) -> None:  # the second extraction asks for the lock (no timing guess)
        asked.set()
        real(f, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    got: list[object] = []
    second = threading.Thread(target=lambda: got.append(features.frozen_features(ds, cache_dir=tmp_path, workers=0)))
    second.start()
    assert asked.wait(30)
    assert second.is_alive() and not loads  # waits on the lock (held here), extracts nothing
    np.save(entry, np.arange(6 * backbone.FEATURE_DIM, dtype=np.float32).reshape(6, -1))  # the first one's entry
    os.close(fd)  # lock released
    second.join(30)
    assert not second.is_alive() and not loads and got[0].features.shape == (6, backbone.FEATURE_DIM)


def test_an_entry_finished_by_another_process_at_the_rename_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "features-x.npy"

    def rows(a: int, b: int) -> np.ndarray:
        if b == 4:  # the other process renames the shared partial file into place first
            os.replace(tmp_path / "features-x.partial.npy", path)
        return np.full((b - a, 3), a, np.float32)

    assert features.extract_chunked(path, 4, 3, rows, chunk=2) == path
    assert path.is_file() and not (tmp_path / "features-x.partial.json").exists()  # no stale state left


def test_a_truncated_entry_is_extracted_again_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cut-short entry (a full disk, a copy interrupted) failed every later scan with numpy's
    "Failed to read all data", naming no file, and was never extracted again."""
    made: list[Path] = []

    def extract(ds: object, path: Path, key: dict, **kw: object) -> None:
        made.append(path)
        np.save(path, np.ones((6, backbone.FEATURE_DIM), np.float32))

    monkeypatch.setattr(features, "_extract", extract)
    ds = from_arrays(np.random.default_rng(0).integers(0, 256, (6, 8, 8), dtype=np.uint8), np.arange(6) % 2)
    key = {"data": pixels_fingerprint(ds), "n": 6, "model": "efficientnet-lite0", "resolution": 96}
    entry = backbone.cache_entry(key, tmp_path)
    np.save(entry, np.zeros((6, backbone.FEATURE_DIM), np.float32))
    entry.write_bytes(entry.read_bytes()[: 1000])
    with pytest.warns(UserWarning, match=f"unreadable feature cache entry {entry}"):
        got = features.frozen_features(ds, cache_dir=tmp_path, workers=0)
    assert made == [entry] and got.features.shape == (6, backbone.FEATURE_DIM)
    features.frozen_features(ds, cache_dir=tmp_path, workers=0)  # whole now: read, not extracted
    assert made == [entry]
