"""Model inputs from a dataset, and the data's identity for caches and fingerprints.

* ``small-cnn``: the images as one tensor, normalised per channel;
* ``clip`` and fine-tuned ``effnet-lite0``: the images in [0, 1] (the network resizes, crops and
  normalises them);
* ``effnet-lite0`` (frozen): EfficientNet-Lite0 features, extracted once and cached on disk keyed
  by the data, the model and the resolution, standardised per dimension.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labeltrace.data import ImageDataset

__all__ = ["Inputs", "data_identity", "prepare_inputs", "standardize"]


@dataclass(frozen=True)
class Inputs:
    """What the network trains on (one CPU tensor), a description for run.json, and the frozen
    features (standardised, numpy) when the inputs are features."""

    tensor: torch.Tensor
    description: dict[str, Any]
    features: np.ndarray | None = None


def standardize(f: np.ndarray) -> np.ndarray:
    """Per-dimension standardisation (float32) of features."""
    return ((f - f.mean(0)) / (f.std(0) + 1e-6)).astype(np.float32)


def data_identity(ds: ImageDataset) -> str:
    """A fingerprint of the dataset's pixels' identity: the files' names, sizes and modification
    times (or, for in-memory arrays, a strided hash of the pixels), and the sample ids."""
    from labeltrace._io import digest
    from labeltrace.models import backbone

    if ds.root is not None:
        pixels = backbone.fingerprint_files([str(ds.root / s) for s in ds.sources])
    else:
        pixels = backbone.fingerprint_array(ds.materialize(dtype=np.uint8))
    return digest({"pixels": pixels, "ids": digest(list(ds.ids)), "n": len(ds)})


def prepare_inputs(
    ds: ImageDataset,
    model: str,
    *,
    image_size: int | None = None,
    resolution: int = 96,
    finetune: bool = False,
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> Inputs:
    """The inputs of ``model`` (small-cnn | effnet-lite0 | clip) for ``ds``.

    ``image_size``: the image side for image models (default: native when <= 64 px for the small
    CNN, else 64; native for CLIP / fine-tuning); ``resolution``: the EfficientNet feature
    resolution; ``cache_dir``: the feature cache (default ``~/.cache/labeltrace/features``).
    """
    shape = ds.image_shape
    if model == "small-cnn":
        size = image_size or (None if shape is not None and max(shape[:2]) <= 64 else 64)
        x = ds.materialize(size=size, channels=None)
        mean = x.mean(axis=(0, 2, 3), keepdims=True)
        std = x.std(axis=(0, 2, 3), keepdims=True) + 1e-6
        xt = torch.from_numpy(((x - mean) / std).astype(np.float32))
        return Inputs(xt, {"kind": "images", "shape": list(x.shape[1:])})
    if model == "clip" or (model == "effnet-lite0" and finetune):
        size = image_size or (None if shape is not None else 224)
        x = ds.materialize(size=size, channels=3)  # the classifier resizes, crops and normalises
        return Inputs(torch.from_numpy(x), {"kind": "images", "shape": list(x.shape[1:])})
    if model == "effnet-lite0":
        from labeltrace.models import backbone

        def compute() -> np.ndarray:
            batch = 256
            chunks = (
                ds.load_batch(np.arange(i, min(i + batch, len(ds))), size=32 if shape is None else None, channels=3)
                for i in range(0, len(ds), batch)
            )
            return backbone.extract_features(chunks, resolution=resolution, progress=progress, device=device)

        fp = backbone.fingerprint_files([str(ds.root / s) if ds.root else s for s in ds.sources]) \
            if ds.root is not None else backbone.fingerprint_array(ds.materialize(dtype=np.uint8))
        cache = Path(cache_dir or Path.home() / ".cache" / "labeltrace" / "features")
        feats = backbone.cached_features(
            {"data": fp, "n": len(ds), "model": "efficientnet-lite0", "resolution": resolution}, compute,
            cache_dir=cache,
        )
        f = standardize(feats)
        return Inputs(torch.from_numpy(f), {"kind": "features", "dim": int(f.shape[1]), "resolution": resolution,
                                            "cache_dir": str(cache)}, f)  # fmt: skip
    raise ValueError(f"model {model!r} is not supported; choose small-cnn, effnet-lite0 or clip")
