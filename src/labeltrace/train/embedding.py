"""The penultimate embeddings a recording keeps for the kNN detectors (``knn_vote``,
``crossfit_knn``, the one-training count, live re-ranking).

* :func:`network_embedding`: one network's embedding of every input (its ``features`` module), the
  in-sample runs' first network's.
* :func:`common_embedding`: the cross-fitted fold models' embeddings, each L2-normalised per
  sample, side by side. A single fold model's embedding places four fifths of the samples by labels
  it trained on and one fifth by labels it never saw; in the common space every sample stands the
  same way to the models (in sample for all but one), and Euclidean distances order the neighbours
  by the sum of the models' cosine similarities. Chosen on the dev cells
  (``scripts/cnn_allfolds_dev.py`` → ``benchmarks/results/dev-cnn-allfolds.md``: the kNN vote's
  AUROC +0.024 [+0.014, +0.034] over the first fold model's embedding, 22 CNN cells x 3 seeds).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from labeltrace.train.batches import BatchSource, as_source
from labeltrace.train.loop import eval_batch_size

__all__ = ["common_embedding", "network_embedding"]


def network_embedding(net: nn.Module, inputs: torch.Tensor | BatchSource) -> np.ndarray | None:
    """(N, D) float32: the network's penultimate embedding of every input, or None when the
    network has no ``features`` module."""
    features = getattr(net, "features", None)
    if features is None:
        return None
    net.eval()
    dev = next(net.parameters()).device
    source, chunk = as_source(inputs), eval_batch_size(dev)
    with torch.inference_mode():
        out = [features(x.to(dev)).float().cpu() for _, x in source.batches(torch.arange(source.shape[0]), chunk)]
    return torch.cat(out).numpy()


def common_embedding(nets: Sequence[nn.Module], inputs: torch.Tensor | BatchSource) -> np.ndarray | None:
    """(N, len(nets) x D) float32: each network's embedding, L2-normalised per sample (a zero row
    stays zero), side by side; None when any network has no ``features`` module."""
    blocks = [network_embedding(m, inputs) for m in nets]
    kept = [b for b in blocks if b is not None]
    if not kept or len(kept) < len(blocks):
        return None
    unit = [b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), np.float32(1e-12)) for b in kept]
    return np.concatenate(unit, axis=1).astype(np.float32, copy=False)
