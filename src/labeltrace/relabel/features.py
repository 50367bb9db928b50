"""A run's features, wherever the scan left them: for neighbours on the review page and for the
live queue's refreshes.

:func:`run_features` looks, in order, at

1. a file the caller names (``labeltrace review --features FILE.npy``, rows = sample ids);
2. the embedding the recording kept (``dynamics/embedding.npy``: CNN runs; a cross-fitted one's
   is its fold models' embeddings side by side, :mod:`labeltrace.train.embedding`);
3. the frozen-feature cache a ``--model effnet-lite0`` scan read its features from (found by the
   same key: the data files' fingerprint, N, the model and the resolution; an entry written under
   other package or decoding versions — a scan from before an upgrade — is found by its sidecar's
   key parts, the newest such entry);
4. the images themselves, shrunk to 16 x 16 pixels (always there, weakest).

The result is standardised (every column mean 0, std 1) and says where it came from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeltrace._checks import real_numbers
from labeltrace.relabel.head import standardize
from labeltrace.rundir import Run, recording_dir

__all__ = ["RunFeatures", "check_features_file", "run_features", "thumbnail_features"]

THUMB = 16


@dataclass(frozen=True, eq=False)
class RunFeatures:
    """Standardised (N, D) float32 ``values`` and their ``source`` (a sentence)."""

    values: np.ndarray
    source: str


class _Miss(Exception):
    """The feature cache has no entry for this run."""


def check_features_file(path: str | os.PathLike[str], n: int, *, rows: str | None = None) -> tuple[int, ...]:
    """Check that ``path`` is an (N, D) real-valued ``.npy`` for ``n`` samples without reading
    its data (memory-mapped header); returns its shape. ``rows`` says what a row is for (default:
    a sample of the run).

    Raises
    ------
    ValueError
        Missing, not a ``.npy``, unreadable, not real numbers (complex ones too), or another shape
        — naming the file, its shape and the expected ``(n, D)``.
    """
    rows = rows or f"one row per sample of the run (sample ids 0..{n - 1})"
    p = Path(path)
    if not p.is_file() or p.suffix.lower() != ".npy":
        raise ValueError(f"features file {p} must be an existing (N, D) .npy file")
    try:
        x = np.load(p, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"features file {p} cannot be read as a .npy array: {exc}") from exc
    if x.ndim != 2 or x.shape[0] != n or x.shape[1] < 1:
        raise ValueError(f"features file {p} has shape {x.shape}; expected ({n}, D): {rows}, D >= 1 features")
    if not real_numbers(x.dtype):
        raise ValueError(f"features file {p} holds {x.dtype} values; expected real numbers")
    return tuple(x.shape)


def _from_file(path: str | os.PathLike[str], n: int) -> np.ndarray:
    check_features_file(path, n)
    return np.load(Path(path), allow_pickle=False)


def _from_cache(run: Run) -> np.ndarray | None:
    """The frozen effnet features the scan used, when its cache still holds them."""
    inputs = run.meta.get("inputs") or {}
    root = run.data_root
    if inputs.get("kind") != "features" or root is None or not inputs.get("cache_dir"):
        return None
    from labeltrace.models import backbone

    paths = [str(root / str(s)) for s in run.column("path")]
    try:
        fp = backbone.fingerprint_files(paths)
    except ValueError:  # files moved since the scan
        return None

    def miss() -> np.ndarray:
        raise _Miss

    key = inputs.get("cache_key") or {"data": fp, "n": run.num_samples, "model": "efficientnet-lite0",
                                      "resolution": int(inputs.get("resolution", 96))}  # runs before cache_key
    if key.get("data") != fp:  # the files changed since the scan: its features are not theirs
        return None
    try:
        return backbone.cached_features(key, miss, cache_dir=inputs["cache_dir"])
    except _Miss:
        return _entry_by_parts(Path(inputs["cache_dir"]), key, run.num_samples)


def _entry_by_parts(cache_dir: Path, key: dict, n: int) -> np.ndarray | None:
    """The newest cache entry whose sidecar names ``key`` as its parts, whatever the package and
    pipeline versions it was written under (the features the scan read, kept since), or None."""
    import json

    found = []
    for side in cache_dir.glob("features-*.json"):
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError):
            continue
        npy = side.with_suffix(".npy")
        if isinstance(meta, dict) and meta.get("parts") == key and npy.is_file():
            found.append((npy.stat().st_mtime, npy))
    for _, npy in sorted(found, reverse=True):
        try:
            arr = np.load(npy, allow_pickle=False)
        except (OSError, ValueError):
            continue
        if arr.ndim == 2 and arr.shape[0] == n:
            return arr
    return None


def thumbnail_features(run: Run, size: int = THUMB) -> np.ndarray:
    """(N, size * size * 3) float32: every image resized to ``size`` x ``size`` RGB."""
    from PIL import Image

    out = np.zeros((run.num_samples, size * size * 3), dtype=np.float32)
    for i in range(run.num_samples):
        img = run.image(i)
        if img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        small = Image.fromarray(np.ascontiguousarray(img[:, :, :3])).resize(
            (size, size), Image.Resampling.BILINEAR
        )
        out[i] = np.asarray(small, dtype=np.float32).reshape(-1) / 255.0
    return out


def run_features(run: Run, features: str | os.PathLike[str] | None = None) -> RunFeatures:
    """The run's features, standardised, from the first source that has them (module doc)."""
    n = run.num_samples
    if features is not None:
        return RunFeatures(standardize(_from_file(features, n)), f"the features file {features}")
    rec = recording_dir(run.path)
    meta = rec.meta() if rec.finished else {}
    name = meta.get("embedding")
    if name and (rec.path / name).is_file():
        x = np.load(rec.path / name, allow_pickle=False)
        if x.ndim == 2 and x.shape[0] == n:
            return RunFeatures(standardize(x), "the embeddings of the scan's fold models, side by side"
                               if meta.get("kind") == "crossfit" else "the features given with your training's "
                               "recording" if run.own_training else "the embedding of the scan's network")
    cached = _from_cache(run)
    if cached is not None and cached.ndim == 2 and cached.shape[0] == n:
        return RunFeatures(standardize(cached), "the scan's frozen EfficientNet-Lite0 features")
    return RunFeatures(standardize(thumbnail_features(run)),
                       f"the images shrunk to {THUMB} x {THUMB} pixels")  # fmt: skip
