"""The samples table in review order with the current review, for CSV / Parquet exports."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from labeltrace.relabel.order import every_sample_in_review_order
from labeltrace.relabel.runstore import open_store
from labeltrace.relabel.verdicts import run_verdicts
from labeltrace.rundir import Run

__all__ = ["review_table"]


def review_table(run: Run) -> pa.Table:
    """Every sample in queue order (those a queue file leaves out last, ``queue_position`` empty),
    with the queue position (1 for the first, as the queue file's ``rank``) and the current review:
    ``review_decision`` and ``review_status`` (as in the cleaned labels,
    :mod:`labeltrace.export.cleaned`), ``reviewer`` and ``reviewed_at`` — for a consensus the
    reviewers whose votes made it (comma-separated, first voter first) and the latest of those
    votes, else the sample's latest decision — and ``final_label`` (empty for a sample excluded as
    of no class: ``review_status`` ``excluded``)."""
    order, queued = every_sample_in_review_order(run)
    v = run_verdicts(run)
    final, decision, status = v.final, v.decision_text(run.classes), v.status_text()
    reviewer = np.full(run.num_samples, None, dtype=object)
    at = np.full(run.num_samples, None, dtype=object)
    store = open_store(run)
    if store is not None:
        for d in store.current().values():
            reviewer[d.sample_id], at[d.sample_id] = d.reviewer, d.decided_at
        r = v.resolution
        made: dict[int, list[tuple[str, str]]] = {}
        for d in store.views():  # each reviewer's latest row, by seq: first voter first
            i = d.sample_id
            if (d.kind == "exclude" and r.excluded[i]) or (
                    d.kind == "label" and r.resolved[i] and not r.excluded[i] and d.decision == run.classes[r.label[i]]):
                made.setdefault(i, []).append((d.reviewer, d.decided_at))
        for i, votes in made.items():
            reviewer[i] = ", ".join(who for who, _ in votes)
            at[i] = max(when for _, when in votes)
    t = run.samples.take(pa.array(order))
    dec = np.where(decision == "", None, decision)  # type: ignore[call-overload]
    stat = np.where(status == "", None, status)  # type: ignore[call-overload]
    return (
        t.append_column("queue_position", pa.array(np.arange(1, order.size + 1, dtype=np.int64),
                                                   mask=np.arange(order.size) >= queued))
        .append_column("review_decision", pa.array(dec[order].tolist(), pa.string()))
        .append_column("review_status", pa.array(stat[order].tolist(), pa.string()))
        .append_column("reviewer", pa.array(reviewer[order].tolist(), pa.string()))
        .append_column("reviewed_at", pa.array(at[order].tolist(), pa.string()))
        .append_column(
            "final_label",
            pa.array(np.asarray([*run.classes, None], dtype=object)[final[order]].tolist(), pa.string()),  # -1: None
        )
    )
