"""Model inputs from a dataset, and the data's identity for caches and fingerprints.

* ``small-cnn``: the images, normalised per channel;
* ``clip`` and fine-tuned ``effnet-lite0``: the images in [0, 1] (the network resizes, crops and
  normalises them);
* ``effnet-lite0`` (frozen): EfficientNet-Lite0 features, extracted once, chunk by chunk, through
  the streaming loader and cached on disk keyed by the data, the model and the resolution
  (a killed extraction resumes at its last chunk), standardised per dimension.

In memory (``stream=False``) the inputs are one tensor; streamed (``stream=True``) the images are
decoded batch by batch in DataLoader workers (:class:`labeltrace.data.stream.StreamBatches`) and
frozen features are read from their cache file batch by batch, so nothing holds all images.
:func:`should_stream` is the rule ``labeltrace scan`` applies when not told.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labeltrace.data import ImageDataset
from labeltrace.train.batches import BatchSource, TensorBatches

__all__ = ["STREAM_ABOVE_BYTES", "Inputs", "data_identity", "estimated_bytes", "prepare_inputs", "should_stream",
           "standardize"]

#: ``labeltrace scan`` streams when the in-memory inputs would take more than this (float32 bytes)
STREAM_ABOVE_BYTES = 2 * 2**30


@dataclass(frozen=True)
class Inputs:
    """What the network trains on (a batch source: one CPU tensor, or streamed), a description
    for run.json, and the frozen features (standardised, numpy) when the inputs are features in
    memory."""

    source: BatchSource
    description: dict[str, Any]
    features: np.ndarray | None = None

    @property
    def streamed(self) -> bool:
        return not isinstance(self.source, TensorBatches)

    @property
    def tensor(self) -> torch.Tensor:
        """The inputs as one tensor (in-memory inputs only)."""
        if isinstance(self.source, TensorBatches):
            return self.source.tensor
        raise ValueError("the inputs are streamed, not held in memory; this step needs them in memory "
                         "(scan with --no-stream)")

    @property
    def frozen_features(self) -> bool:
        return self.description.get("kind") == "features"


def standardize(f: np.ndarray) -> np.ndarray:
    """Per-dimension standardisation (float32) of features."""
    return ((f - f.mean(0)) / (f.std(0) + 1e-6)).astype(np.float32)


def _quantized_images(ds: ImageDataset, hw: tuple[int, int], c: int, dtype: type,
                      chunk: int = 256) -> Iterator[np.ndarray]:  # fmt: skip
    """Each image as ``ds.materialize(dtype=dtype)`` would hold it (``(c, *hw)``, uint8 ``round(255 x)``
    or uint16 ``round(65535 x)``), in order, decoded ``chunk`` at a time on the loader's threads."""
    from labeltrace.data.sources import parallel_map

    top = float(np.iinfo(dtype).max)

    def one(i: int) -> np.ndarray:
        return np.round(ds.load_fixed(i, hw, c) * top).astype(dtype)

    for a in range(0, len(ds), chunk):
        yield from parallel_map(one, range(a, min(a + chunk, len(ds))), None)


def pixels_fingerprint(ds: ImageDataset) -> str:
    """A fingerprint of the dataset's pixels: the files' names, sizes and modification times; for
    in-memory images of one size, a strided hash of them all (``fingerprint_array`` of
    ``ds.materialize(dtype=np.uint8)``, or of ``dtype=np.uint16`` for a ``uint16`` array, whose 12-bit
    data would keep 17 levels in 8 bits; computed image by image, so they are never held all at
    once); for in-memory images of several sizes (e.g. a Hugging Face dataset), each image's shape
    and strided hash in turn, at its own size (no image is resized)."""
    import hashlib

    from labeltrace.data.transforms import to_uint8, to_uint16
    from labeltrace.models import backbone
    from labeltrace.models.feature_cache import fingerprint_rows

    if ds.root is not None:
        return backbone.fingerprint_files([str(ds.root / s) for s in ds.sources])
    from labeltrace.run_source import source_bits

    wide = source_bits(ds) == 16
    if ds.shapes is None or ds.image_size is not None:  # one size (or not known to differ): as before
        hw, c = ds.output_shape()  # materialize's shape: the known one, else the first image's
        dtype = np.uint16 if wide else np.uint8
        return fingerprint_rows((len(ds), c, *hw), dtype, _quantized_images(ds, hw, c, dtype))
    h = hashlib.sha256(b"per-image")
    for i in range(len(ds)):
        img = (to_uint16 if wide else to_uint8)(ds.load(i))
        h.update(backbone.fingerprint_array(img, max_elements=4096).encode())
    return h.hexdigest()


def data_identity(ds: ImageDataset) -> str:
    """A fingerprint of the dataset's pixels' identity (:func:`pixels_fingerprint`) and its sample ids."""
    from labeltrace._io import digest

    return digest({"pixels": pixels_fingerprint(ds), "ids": digest(list(ds.ids)), "n": len(ds)})


def _image_size(ds: ImageDataset, model: str, image_size: int | None, finetune: bool) -> int | None:
    hw = ds.image_size  # one size (grayscale and RGB images of one size are one size: channels convert)
    if model == "small-cnn":
        return image_size or (None if hw is not None and max(hw) <= 64 else 64)
    if model == "clip" or (model == "effnet-lite0" and finetune):
        return image_size or (None if hw is not None else 224)
    return None


def estimated_bytes(ds: ImageDataset, model: str, *, image_size: int | None = None, finetune: bool = False) -> int:
    """Bytes the in-memory inputs of ``model`` would take (float32): the images at their training
    size, or the frozen features; unknown image shapes count as 3 channels."""
    if model == "effnet-lite0" and not finetune:
        from labeltrace.models.backbone import FEATURE_DIM

        return len(ds) * FEATURE_DIM * 4
    size = _image_size(ds, model, image_size, finetune)
    shape = ds.image_shape
    if size is not None:
        h = w = size
    elif shape is not None:
        h, w = shape[:2]
    else:
        h = w = 224
    c = 3 if model != "small-cnn" or ds.shapes is None else int(ds.shapes[:, 2].max())
    return len(ds) * c * h * w * 4


def should_stream(ds: ImageDataset, model: str, *, image_size: int | None = None, finetune: bool = False) -> bool:
    """The default of ``labeltrace scan``: stream when :func:`estimated_bytes` exceeds
    :data:`STREAM_ABOVE_BYTES` (2 GiB)."""
    return estimated_bytes(ds, model, image_size=image_size, finetune=finetune) > STREAM_ABOVE_BYTES


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
    stream: bool = False,
    workers: int | None = None,
    precision: str = "float32",
) -> Inputs:
    """The inputs of ``model`` (small-cnn | effnet-lite0 | clip) for ``ds``.

    ``image_size``: the image side for image models (default: native when <= 64 px for the small
    CNN, else 64; native for CLIP / fine-tuning); ``resolution``: the EfficientNet feature
    resolution; ``cache_dir``: the feature cache (default ``~/.cache/labeltrace/features``);
    ``stream``: decode images batch by batch in ``workers`` DataLoader processes instead of
    holding them in one tensor (normalisation statistics from a streaming pass), and read frozen
    features from their cache file batch by batch; ``precision``: the arithmetic of the frozen
    backbone's forward passes (``float32`` or ``bfloat16``, its own cache entry).
    """
    size = _image_size(ds, model, image_size, finetune)
    if model in ("small-cnn", "clip") or (model == "effnet-lite0" and finetune):
        normalize, channels = model == "small-cnn", (None if model == "small-cnn" else 3)
        if stream:
            from labeltrace.data.stream import StreamBatches

            src = StreamBatches(ds, size=size, channels=channels, normalize=normalize, workers=workers)
            return Inputs(src, {"kind": "images", "shape": list(src.shape[1:]), **src.describe()})
        x = ds.materialize(size=size, channels=channels)  # clip / finetune: the network resizes and normalises
        if normalize:
            mean = x.mean(axis=(0, 2, 3), keepdims=True)
            std = x.std(axis=(0, 2, 3), keepdims=True) + 1e-6
            x = ((x - mean) / std).astype(np.float32)
        return Inputs(TensorBatches(torch.from_numpy(x)), {"kind": "images", "shape": list(x.shape[1:])})
    if model == "effnet-lite0":
        from labeltrace.models.features import frozen_features

        return frozen_features(ds, resolution=resolution, cache_dir=cache_dir, device=device, progress=progress,
                               stream=stream, workers=workers, precision=precision)  # fmt: skip
    raise ValueError(f"model {model!r} is not supported; choose small-cnn, effnet-lite0 or clip")
