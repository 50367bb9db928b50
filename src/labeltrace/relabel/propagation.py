"""The cheap live update: propagate corrected labels to each sample's nearest neighbours.

Retraining the head after every few decisions (:class:`~labeltrace.relabel.head.HeadRetrainer`)
costs a full training each time. :class:`LabelPropagation` is the cheap alternative: it keeps the
model's posterior ``p₀`` — trained on the labels ``y₀`` the campaign started from — and shifts each
sample's posterior by how the labels of its ``k`` nearest neighbours have changed since::

    q(y)_i = (1/k) Σ_{j ∈ kNN(i)} onehot(y_j)
    p(y)_i ∝ max(p₀_i + λ · (q(y)_i − q(y₀)_i), 0)

With no label changed it returns ``p₀`` exactly, so a live campaign starts where the static one
does. When an expert turns a ``cat`` into a ``dog``, the ``cat``-labelled neighbours of that
image lose ``λ/k`` of ``p(cat)`` and gain it on ``dog``: their label looks less likely, and they
move up a cross-entropy queue. An update is ``O(N k K)`` array work (milliseconds for
N = 10,000) against a head refit's seconds to minutes; the neighbour graph is computed once
(:func:`labeltrace.score.knn.knn_indices`, exact cosine neighbours).
"""

from __future__ import annotations

import numpy as np

from labeltrace.relabel.arrays import check_label_vector, check_posterior
from labeltrace.score.knn import label_shares

__all__ = ["LabelPropagation", "neighbour_graph"]


def neighbour_graph(features: np.ndarray, *, k: int = 10) -> np.ndarray:
    """(N, k) int64 ids of each sample's ``k`` nearest neighbours (cosine, itself excluded)."""
    from labeltrace.score.knn import knn_indices

    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be an (N, D) array with N >= 2, got shape {x.shape}")
    return knn_indices(x, k=min(int(k), x.shape[0] - 1), metric="cosine")


class LabelPropagation:
    """``update_posterior`` for a live campaign: ``labels (N,) -> posterior (N, K)`` (module doc).

    Parameters
    ----------
    neighbours : (N, k) neighbour ids (:func:`neighbour_graph`).
    posterior : (N, K) the model's posterior ``p₀``, trained on ``labels``.
    labels : (N,) the labels ``y₀`` that model was trained on.
    strength : ``λ``, how far a neighbour's changed label moves a posterior (1 = one full
        neighbour's share ``1/k`` of probability mass per changed neighbour).
    sei : (N,) SEI of the same model, returned unchanged with every posterior (for the
        priorities that read it); None returns the posterior alone.

    Attributes
    ----------
    calls : number of updates computed.
    """

    def __init__(
        self,
        neighbours: np.ndarray,
        posterior: np.ndarray,
        labels: np.ndarray,
        *,
        strength: float = 1.0,
        sei: np.ndarray | None = None,
    ) -> None:
        p = check_posterior(posterior)
        n, k = p.shape
        nb = np.asarray(neighbours)
        if nb.ndim != 2 or nb.shape[0] != n or not np.issubdtype(nb.dtype, np.integer):
            raise ValueError(f"neighbours must be an integer ({n}, k) array, got {nb.dtype} "
                             f"{nb.shape}")  # fmt: skip
        if nb.size and (nb.min() < 0 or nb.max() >= n):
            raise ValueError(f"neighbour ids must lie in 0..{n - 1}")
        if not (np.isfinite(strength) and strength >= 0):
            raise ValueError(f"strength must be a finite number >= 0, got {strength}")
        self.neighbours = nb.astype(np.int64)
        self.posterior = p
        self.num_classes = k
        self.strength = float(strength)
        self.sei = None if sei is None else np.asarray(sei, dtype=np.float64).copy()
        self._y0 = check_label_vector(labels, n, k, "labels")
        self._q0 = self._neighbour_labels(self._y0)
        self.calls = 0

    def _neighbour_labels(self, labels: np.ndarray) -> np.ndarray:
        """(N, K) share of each class among each sample's neighbours' labels."""
        return label_shares(self.neighbours, labels, self.num_classes)

    def posterior_for(self, labels: np.ndarray) -> np.ndarray:
        """(N, K) the propagated posterior for the current ``labels``; -1 (a sample excluded as of
        no class) keeps the label it started with: it shifts no neighbour."""
        n = self.posterior.shape[0]
        lab = np.asarray(labels)
        if lab.shape == (n,) and np.issubdtype(lab.dtype, np.integer) and (lab == -1).any():
            lab = np.where(lab == -1, self._y0, lab)
        lab = check_label_vector(lab, n, self.num_classes, "labels")
        shifted = self.posterior + self.strength * (self._neighbour_labels(lab) - self._q0)
        shifted = np.maximum(shifted, 0.0)
        total = shifted.sum(axis=1, keepdims=True)
        out = np.where(total > 0, shifted / np.where(total > 0, total, 1.0), self.posterior)
        self.calls += 1
        return out

    def __call__(self, labels: np.ndarray) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        post = self.posterior_for(labels)
        return post if self.sei is None else (post, self.sei.copy())
