"""Ranks from scores (1 = most suspect), and a run's samples ranked by any trajectory score."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from labeltrace._checks import check_scores
from labeltrace.decide.evidence import combined_score

if TYPE_CHECKING:
    from labeltrace.rundir import Run

__all__ = ["rank_of", "score_table"]


def rank_of(score: np.ndarray) -> np.ndarray:
    """(N,) int64 rank, 1 = most suspect: ascending score, ties by id. An unscored (NaN) sample
    ranks before every scored one — it needs a look — never as clean."""
    s = check_scores(score, "score")
    nan = np.isnan(s)  # first, before -inf too: a separate key, not -inf in the score's place
    order = np.lexsort((np.arange(s.size), np.where(nan, 0.0, s), ~nan))
    rank = np.empty(s.size, dtype=np.int64)
    rank[order] = np.arange(1, s.size + 1)
    return rank


def score_table(run: Run, method: str, *, held_out: bool = False, **kw: Any) -> pa.Table:
    """The run's samples ranked by trajectory score ``method`` recomputed from its saved
    recording (no training): columns ``id, external_id, <method>, rank`` in rank order. A
    cross-fitted run is scored on its in-sample dynamics, or on the held-out ones with ``held_out``."""
    rec = run.recording()
    if held_out and not rec.held_out:
        raise ValueError(f"{run.path} is an in-sample run: it has no held-out dynamics")
    runs = rec.runs if held_out else rec.in_sample_runs()
    s = combined_score(method, runs, **kw)
    order = np.argsort(rank_of(s), kind="stable")
    return pa.table({"id": order, "external_id": run.samples.column("external_id").take(pa.array(order)),
                     method: s[order], "rank": np.arange(1, s.size + 1)})  # fmt: skip
