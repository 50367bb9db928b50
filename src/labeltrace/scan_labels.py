"""The labels a scan trains on, and the labels it measures against: the given ones, the given ones
with injected noise (``--noise``: what feature-following noise reads, :func:`noise_source`), or the
given ones beside known true labels (:func:`known_truth`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from labeltrace._checks import listing
from labeltrace.data import ImageDataset
from labeltrace.evaluate import noise
from labeltrace.models.inputs import Inputs, prepare_inputs
from labeltrace.record.batch import as_index_array
from labeltrace.scan_settings import (
    ScanConfig,
    backbone_precision,
    noise_feature_source,
    noise_resolution,
)

__all__ = ["check_truth", "known_truth", "known_truth_info", "labels_trained_on", "noise_source"]


def labels_trained_on(ds: ImageDataset, config: ScanConfig, noise_features: Callable[[], np.ndarray],
            true_labels: np.ndarray | None,
            log: Callable[[str], None]) -> tuple[np.ndarray, np.ndarray, dict[str, Any] | None]:  # fmt: skip
    """(given labels trained on, true labels, noise description or None); ``noise_features``: what
    feature-following noise follows (:func:`noise_source`)."""
    given = ds.labels.copy()
    info: dict[str, Any] | None = None
    if true_labels is not None:  # checked by check_truth
        return given, true_labels, known_truth_info(given, true_labels)
    if config.noise:
        feats = noise_features() if noise.parse_spec(config.noise)[0] in ("instance", "confusion") \
            else np.zeros((len(given), 0), np.float32)  # fmt: skip
        nl = noise.inject(config.noise, given, ds.n_classes, feats, seed=config.seed, classes=ds.classes)
        counts = np.bincount(nl.labels, minlength=ds.n_classes)
        if (counts < 2).any():  # refused before any training: the scores need every class twice
            few = [f"{ds.classes[c]!r} ({counts[c]})" for c in np.flatnonzero(counts < 2)]
            raise ValueError(f"--noise {config.noise} with --seed {config.seed} leaves class {listing(few)} with fewer "
                             "than 2 labels (every class needs 2 to be scored): another --seed, or a lower rate")  # fmt: skip
        log(f"injected {config.noise} noise: {int(nl.flipped.sum())} of {len(ds)} labels flipped ({nl.rate:.1%})")
        info = {"spec": config.noise, "realised_rate": nl.rate, "n_flipped": int(nl.flipped.sum())}
        return nl.labels, given, info
    return given, given.copy(), None


def check_truth(ds: ImageDataset, config: ScanConfig, true_labels: np.ndarray | None) -> np.ndarray | None:
    """:func:`known_truth`, and not beside ``--noise``."""
    if true_labels is not None and config.noise:
        raise ValueError("give either known true labels or --noise, not both")
    return known_truth(ds, true_labels)


def known_truth(ds: ImageDataset, true_labels: Any) -> np.ndarray | None:
    """Known true labels as class ids, checked before anything is claimed or trained: one per
    sample, whole numbers in ``[0, K)`` (the error names the samples); None when none."""
    if true_labels is None:
        return None
    shape = np.shape(true_labels)
    if shape != (len(ds),):
        raise ValueError(f"true labels have shape {shape}, the dataset ({len(ds)},)")
    return as_index_array(true_labels, "true labels", ds.n_classes, ids=np.arange(len(ds)))


def known_truth_info(given: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """run.json's ``noise`` for known true labels: how many of the given ones differ from them."""
    wrong = truth != given
    return {"spec": "known true labels", "realised_rate": float(wrong.mean()), "n_flipped": int(wrong.sum())}


def _noise_features(inputs: Inputs) -> np.ndarray:
    """(N, D) features the noise models follow: the frozen features, else the inputs pooled to
    16 px a side (batch by batch when streamed)."""
    if inputs.features is not None:
        return inputs.features
    if not inputs.streamed:
        return noise.flat_features(inputs.tensor.numpy())
    n = inputs.source.shape[0]
    return np.concatenate([noise.flat_features(x.numpy()) for _, x in inputs.source.batches(torch.arange(n), 1024)])


def noise_source(ds: ImageDataset, inputs: Inputs, model: str, config: ScanConfig, asked: ScanConfig,
                  stream: bool) -> Callable[[], np.ndarray]:  # fmt: skip
    """What feature-following noise reads, so that the labels depend on the data and the seed, not on
    how the model sees them — as the bench draws them: frozen features at :func:`noise_resolution`;
    for every model on images (the small CNN at any ``--image-size``, fine-tuning, CLIP) the images
    as the small CNN sees them at its default side (the bench's ``noise_features = "pixels"``)."""
    if inputs.frozen_features and not config.finetune:
        # the noise reads float32 features (bfloat16 ones would draw other flips than the bench's)
        if noise_resolution(asked) != config.resolution or backbone_precision(model, config) != "float32":
            return noise_feature_source(asked, ds)
        return lambda: _noise_features(inputs)
    if model == "small-cnn" and config.image_size is None:  # the inputs are those images
        return lambda: _noise_features(inputs)
    return lambda: _noise_features(prepare_inputs(ds, "small-cnn", stream=stream, workers=config.workers))
