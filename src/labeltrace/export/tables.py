"""The samples table in review order with the current review, for CSV / Parquet exports."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from labeltrace.relabel.decisions import open_store
from labeltrace.relabel.order import review_order
from labeltrace.relabel.verdicts import final_labels
from labeltrace.rundir import Run

__all__ = ["review_table"]


def review_table(run: Run) -> pa.Table:
    """The samples table in queue order with the queue position and the current review."""
    order = review_order(run)
    final, decision = final_labels(run)
    reviewer = np.full(run.num_samples, None, dtype=object)
    at = np.full(run.num_samples, None, dtype=object)
    store = open_store(run)
    if store is not None:
        cur = store.current()
        if cur:
            ids = np.fromiter(cur.keys(), dtype=np.int64, count=len(cur))
            reviewer[ids] = [d.reviewer for d in cur.values()]
            at[ids] = [d.decided_at for d in cur.values()]
    t = run.samples.take(pa.array(order))
    dec = np.where(decision == "", None, decision)
    return (
        t.append_column("queue_position", pa.array(np.arange(order.size, dtype=np.int64)))
        .append_column("review_decision", pa.array(dec[order].tolist(), pa.string()))
        .append_column("reviewer", pa.array(reviewer[order].tolist(), pa.string()))
        .append_column("reviewed_at", pa.array(at[order].tolist(), pa.string()))
        .append_column(
            "final_label",
            pa.array(np.asarray(run.classes, dtype=object)[final[order]].tolist(), pa.string()),
        )
    )
