"""What a :class:`~labeltrace.relabel.campaign.Campaign` reports: one recorded vote
(:class:`Step`) and a snapshot of the whole campaign (:class:`CampaignLog`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CampaignLog", "Step"]


@dataclass(frozen=True)
class Step:
    """One recorded vote.

    Attributes
    ----------
    sample_id, label : the sample and the vote it got.
    relabels_used : relabels spent so far, this one included.
    settled_label : the majority label when this vote settled the sample, else -1.
    updated : whether the posterior was refreshed (and the samples re-ranked) right after it.
    """

    sample_id: int
    label: int
    relabels_used: int
    settled_label: int
    updated: bool


@dataclass(frozen=True, eq=False)
class CampaignLog:
    """What a campaign did so far (copies; see :meth:`Campaign.log`).

    Attributes
    ----------
    priority, seed, budget : what ran (``budget`` None = unlimited).
    relabels_used : relabels spent.
    initial_labels, labels : (N,) int64 labels before and now.
    label_counts : (N, K) int64 — one vote for the initial label plus every relabel.
    settled : (N,) bool — relabelled to a strict majority.
    picked : (P,) int64 samples in the order they were started; ``draws`` (P,) votes each got.
    in_progress : the sample still short of a majority, or -1.
    n_updates : posteriors installed after the start (callback calls and ``set_posterior``).
    settled_at, settled_ids, settled_labels : one entry per settlement: relabels spent when it
        happened, the sample, its new label.
    """

    priority: str
    seed: int
    budget: int | None
    relabels_used: int
    initial_labels: np.ndarray
    labels: np.ndarray
    label_counts: np.ndarray
    settled: np.ndarray
    picked: np.ndarray
    draws: np.ndarray
    in_progress: int
    n_updates: int
    settled_at: np.ndarray
    settled_ids: np.ndarray
    settled_labels: np.ndarray
