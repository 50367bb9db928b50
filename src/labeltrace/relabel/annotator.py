"""Who answers a campaign's questions: the annotator protocol and the simulated annotator.

A campaign (:class:`labeltrace.relabel.campaign.Campaign`) asks an :class:`Annotator` for one
vote per requested sample id. Two implementations ship:

* :class:`SimulatedAnnotator` draws each vote from a per-sample label distribution — the real
  vote distributions of CIFAR-10H-style data in the simulator, or a model's posterior standing
  in for the annotators (a pre-flight estimate on a user's own run);
* :class:`FunctionAnnotator` wraps ``f(sample_id) -> label`` (scripted answers in tests).

A human reviewer (the review app's expert) does not answer synchronously: the app takes the
sample to show from :meth:`Campaign.next_sample` and pushes each decision with
:meth:`Campaign.record`, which is what :meth:`Campaign.step` does with an annotator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from labeltrace._checks import describe_ids
from labeltrace.relabel.arrays import normalize_counts
from labeltrace.relabel.votes import ANNOTATOR_STREAM, stream_rng

__all__ = ["Annotator", "FunctionAnnotator", "SimulatedAnnotator"]


@runtime_checkable
class Annotator(Protocol):
    """Anything that labels samples: ``annotate(ids) -> labels``.

    ``ids`` is an (M,) int64 array of sample ids (an id may repeat: one vote each); the result
    is (M,) integer labels in ``0..K-1``, one vote per id, in order. The campaign checks the
    labels and names the sample id of any label out of range.
    """

    def annotate(self, ids: np.ndarray) -> np.ndarray: ...


class SimulatedAnnotator:
    """Votes drawn from per-sample label distributions, reproducibly.

    Parameters
    ----------
    distribution : (N, K) non-negative vote counts or probabilities; each row is normalised.
        Classes with zero mass are never drawn.
    seed : votes come from :data:`labeltrace.relabel.votes.ANNOTATOR_STREAM` of ``seed``: the
        ``t``-th vote asked of this annotator (whatever its sample) inverts the ``t``-th uniform
        of that stream through the sample's cumulative distribution. So a campaign's votes
        depend only on the seed and on which sample each relabel goes to.
    """

    _BLOCK = 4096

    def __init__(self, distribution: np.ndarray, *, seed: int = 0) -> None:
        dist = normalize_counts(distribution, "distribution")
        self.num_samples, self.num_classes = dist.shape
        self.seed = int(seed)
        self._cdf = np.cumsum(dist, axis=1)
        # rounding can leave cdf[-1] a hair below u: take the last class with mass
        self._last = self.num_classes - 1 - np.argmax((dist > 0)[:, ::-1], axis=1)
        self._rng = stream_rng(self.seed, ANNOTATOR_STREAM)
        self._u = np.zeros(0)
        self._pos = 0
        self.votes_drawn = 0

    def _uniforms(self, m: int) -> np.ndarray:
        if self._pos + m > self._u.size:  # draws in blocks: the same numbers as one long draw
            rest = self._u[self._pos :]
            fresh = self._rng.random(max(self._BLOCK, m - rest.size))
            self._u, self._pos = np.concatenate([rest, fresh]), 0
        out = self._u[self._pos : self._pos + m]
        self._pos += m
        return out

    def annotate(self, ids: np.ndarray) -> np.ndarray:
        """(M,) int64 votes for the (M,) sample ids, drawn in order."""
        idx = np.asarray(ids, dtype=np.int64).reshape(-1)
        if idx.size == 1 and 0 <= (i := int(idx[0])) < self.num_samples:
            # the campaign's case: one vote at a time, without (M, K) temporaries
            lab = int(np.searchsorted(self._cdf[i], self._uniforms(1)[0], side="right"))
            self.votes_drawn += 1
            return np.array([lab if lab < self.num_classes else self._last[i]], dtype=np.int64)
        bad = idx[(idx < 0) | (idx >= self.num_samples)]
        if bad.size:
            raise ValueError(f"{describe_ids(bad)} are outside 0..{self.num_samples - 1}")
        u = self._uniforms(idx.size)
        lab = (self._cdf[idx] <= u[:, None]).sum(axis=1)
        self.votes_drawn += idx.size
        return np.where(lab < self.num_classes, lab, self._last[idx]).astype(np.int64)


class FunctionAnnotator:
    """An :class:`Annotator` from ``f(sample_id) -> label``, called once per vote, in order."""

    def __init__(self, fn: Callable[[int], int]) -> None:
        self.fn = fn

    def annotate(self, ids: np.ndarray) -> np.ndarray:
        """``[f(i) for i in ids]`` as an array (labels are checked by the campaign)."""
        return np.asarray([self.fn(int(i)) for i in np.asarray(ids).reshape(-1)])
