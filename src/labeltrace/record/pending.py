"""The updates of an unfinished epoch, as ranks exchange them before
:meth:`~labeltrace.record.recorder.Recorder.end_epoch` (``Recorder.pending``, ``add_pending``,
``merge``): :class:`PendingUpdates`, and the checks a recorder makes of updates before it takes
them — labels that agree with those recorded and with each other (:func:`check_labels`), and one
label, count and sum per sample (:func:`checked_pending`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeltrace._checks import describe_ids, id_list
from labeltrace.record.batch import FIELDS, as_index_array

__all__ = ["PendingUpdates", "check_labels", "checked_pending"]


@dataclass(frozen=True)
class PendingUpdates:
    """The updates of the unfinished epoch for the samples updated so far (see
    :meth:`labeltrace.record.recorder.Recorder.pending`): what ranks exchange before
    :meth:`~labeltrace.record.recorder.Recorder.end_epoch`."""

    ids: np.ndarray  # (M,) int64, sorted, unique
    labels: np.ndarray  # (M,) int64
    sums: np.ndarray  # (F, M) float64: sum of each recorded quantity over the updates
    counts: np.ndarray  # (M,) int64 >= 1: number of updates
    prob_sums: np.ndarray  # (M, K) float64 sum of the softmax over the updates ((M, 0) if none kept)


def check_labels(known_labels: np.ndarray, ids: np.ndarray, labels: np.ndarray) -> None:
    """Raise ``ValueError`` if ``labels`` (for sample ``ids``, int64 arrays) contradict the labels
    recorded so far (``known_labels``, (N,), -1 where none yet) or each other (one sample, two
    labels)."""
    known = known_labels[ids]
    changed = (known >= 0) & (known != labels)
    if changed.any():
        raise ValueError(
            "the given label of a sample changed during recording for sample ids "
            f"{id_list(ids[changed])}; start a new Recorder when labels change — or the ids are not the samples' "
            "indices in the dataset (a batch's positions, arange(b * batch_size, ...), under a shuffling loader "
            "name other samples every epoch): pass each sample's own index with its batch"
        )
    order = np.argsort(ids, kind="stable")
    si, sl = ids[order], labels[order]
    clash = (si[1:] == si[:-1]) & (sl[1:] != sl[:-1])
    if clash.any():
        raise ValueError(f"the same updates give different labels to {describe_ids(np.unique(si[1:][clash]))}")


def checked_pending(upd: PendingUpdates, num_samples: int, num_classes: int, *, keep_probs: bool) -> PendingUpdates:
    """``upd`` as arrays, checked for a recorder of ``num_samples`` samples and ``num_classes``
    classes: unique ids with one label, count >= 1 and finite sum per field each, and their softmax
    sums when the recorder keeps the softmax (``keep_probs``); ``ValueError`` otherwise."""
    ids = as_index_array(upd.ids, "ids", num_samples)
    M = ids.size
    labels = as_index_array(upd.labels, "labels", num_classes, ids=ids)
    sums, counts, psums = np.asarray(upd.sums), np.asarray(upd.counts), np.asarray(upd.prob_sums)
    if labels.shape != (M,) or sums.shape != (len(FIELDS), M) or counts.shape != (M,) or np.unique(ids).size != M:
        raise ValueError("pending updates must hold unique ids with one label, count and sum per field each")
    if keep_probs and psums.shape != (M, num_classes):
        raise ValueError(f"pending updates hold no softmax sums of shape ({M}, {num_classes})")
    if (counts < 1).any() or not np.isfinite(sums).all():
        raise ValueError("pending updates need counts >= 1 and finite sums")
    return PendingUpdates(ids=ids, labels=labels, sums=sums, counts=counts, prob_sums=psums)
