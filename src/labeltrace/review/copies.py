"""A sample's exact copies, as the review page shows them beside it.

The scan finds images with identical pixels (:mod:`labeltrace.data.duplicates`) and keeps each
one's group in the samples table's ``duplicate_group`` (``-1``: no copy; the column is absent when
the data holds none). Copies filed under different labels are the strongest evidence a label is
wrong — at least one of them is, whatever the scores say — and the export warns of those whose
cleaned labels still differ; the page says so on the item itself, with the copies' ids (to go to)
and given labels, and — on a page that shows the other reviewers' decisions — the label each has
now. A blind page (:mod:`labeltrace.review.blind`) drops what it hides: the labels now (they follow
the others' votes), and under ``--blind-all`` the copies altogether (their given labels, and their
ids, which a folder dataset numbers class by class).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labeltrace.relabel.verdicts import Verdicts
from labeltrace.rundir import Run

__all__ = ["SHOWN", "ItemCopies"]

#: the copies an item lists at most (a group of blank scans may hold hundreds); it counts them all
SHOWN = 12


class ItemCopies:
    """The exact-copy groups of a run, as an item lists them (module docstring; the scan's own
    :class:`labeltrace.data.near_duplicates.Copies` holds the groups it finds)."""

    def __init__(self, run: Run) -> None:
        cols = run.samples.column_names
        self.group = run.column("duplicate_group").astype(np.int64) if "duplicate_group" in cols else None
        self.classes = run.classes
        self.given = run.column("given_label_id").astype(np.int64)

    def of(self, i: int, v: Verdicts) -> dict[str, Any] | None:
        """Sample ``i``'s copies — ``{"count", "differ", "samples"}``: how many, whether any is given
        another label than ``i``'s, and up to :data:`SHOWN` of them (those given another label first),
        each ``{"id", "given_label", "label"}`` (``label``: its label now, by ``v``; None when it is
        excluded as of no class) — or None without any."""
        if self.group is None or self.group[i] < 0:
            return None
        ids = np.flatnonzero(self.group == self.group[i])
        ids = ids[ids != i]
        other = self.given[ids] != self.given[i]
        ids = np.concatenate([ids[other], ids[~other]])
        return {
            "count": int(ids.size),
            "differ": bool(other.any()),
            "samples": [{"id": int(j), "given_label": self.classes[self.given[j]],
                         "label": None if v.excluded[j] else self.classes[int(v.final[j])]}
                        for j in ids[:SHOWN].tolist()],  # fmt: skip
        }
