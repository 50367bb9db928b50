"""The order in which samples are reviewed."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from labeltrace._checks import id_list
from labeltrace.rundir import QUEUE, Run

__all__ = ["every_sample_in_review_order", "review_order"]


def review_order(run: Run) -> np.ndarray:
    """Sample ids in review order, int64.

    ``RUN_DIR/queue.parquet`` (columns ``id, priority, rank``) when present, ordered by its
    ``rank`` (ties by id) — it may hold a subset of the samples; else every sample ordered by
    the samples table's ``rank`` column (ties by id).

    Raises
    ------
    ValueError
        A queue file with missing columns, ids outside ``[0, N)`` or repeated ids.
    """
    qp = run.path / QUEUE
    if qp.exists():
        t = pq.read_table(qp)
        missing = {"id", "priority", "rank"} - set(t.column_names)
        if missing:
            raise ValueError(
                f"{qp}: missing columns {sorted(missing)}; columns are {t.column_names}"
            )
        ids = t.column("id").to_numpy(zero_copy_only=False).astype(np.int64)
        rank = t.column("rank").to_numpy(zero_copy_only=False).astype(np.float64)
        bad = ids[(ids < 0) | (ids >= run.num_samples)]
        if bad.size:
            raise ValueError(f"{qp}: sample ids outside [0, {run.num_samples}): {id_list(bad)}")
        u, c = np.unique(ids, return_counts=True)
        if (c > 1).any():
            raise ValueError(f"{qp}: repeated sample ids {id_list(u[c > 1])}")
        return ids[np.lexsort((ids, rank))]
    rank = run.column("rank").astype(np.float64)
    ids = np.arange(run.num_samples, dtype=np.int64)
    return ids[np.lexsort((ids, rank))]


def every_sample_in_review_order(run: Run) -> tuple[np.ndarray, int]:
    """Every sample id, int64: :func:`review_order` first, then the samples a queue file leaves out
    by the samples table's ``rank`` (ties by id); and how many the queue holds (the exports list
    every sample, the queued ones first)."""
    queued = review_order(run)
    left = np.ones(run.num_samples, dtype=bool)
    left[queued] = False
    rest = np.flatnonzero(left)
    rank = run.column("rank").astype(np.float64)[rest]
    return np.concatenate([queued, rest[np.lexsort((rest, rank))]]), int(queued.size)
