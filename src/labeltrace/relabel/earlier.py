"""Samples an earlier review round settled. ``labeltrace review --export`` writes a manifest's
cleaned labels with ``review_decision`` / ``review_status`` columns; scanned again (the next round),
that manifest says which samples experts already settled. A sample whose status there is
``consensus`` and whose label is still that consensus has been looked at and agreed on: the queue
puts it after every other sample, so that a second round spends the experts' time on the samples
nobody has settled (the model still finds many settled ones suspect: hard images stay hard)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labeltrace.data.manifest import manifest_columns, read_columns, row_ids
from labeltrace.rundir import Run

__all__ = ["DECISION", "STATUS", "settled_before"]

DECISION, STATUS = "review_decision", "review_status"  # as labeltrace.export.cleaned writes them


def _rounds(names: list[str]) -> list[tuple[str, str]]:
    """The ``(decision, status)`` column pairs of the manifest's review rounds, the latest first: the
    unnumbered pair is the latest round's, then ``_2`` before ``_1`` (each export renames the round
    before it to the first free number)."""
    pairs = [(DECISION, STATUS)] if {DECISION, STATUS} <= set(names) else []
    numbered = sorted((int(c.rsplit("_", 1)[1]) for c in names
                       if c.startswith(STATUS + "_") and c.rsplit("_", 1)[1].isdigit()), reverse=True)  # fmt: skip
    return pairs + [(f"{DECISION}_{n}", f"{STATUS}_{n}") for n in numbered if f"{DECISION}_{n}" in names]


def _texts(values: list[object]) -> np.ndarray:
    """A column's values as stripped strings ("" for missing), with one "" more at the end (row -1)."""
    return np.asarray(["" if v is None else str(v).strip() for v in values] + [""], dtype=object)


def settled_before(run: Run) -> tuple[np.ndarray | None, str | None]:
    """``(settled, note)``: (N,) bool, the samples an earlier round settled on their current label
    (the latest round that decided the sample — the manifest's ``review_status`` columns, the
    unnumbered one, then ``_2``, ``_1`` — says ``consensus``, and its ``review_decision`` is the
    sample's given label); None when the run's data is not a manifest with those columns. ``note``
    says why an earlier round could not be read (the manifest is gone) or which samples it lacks."""
    data = run.meta.get("data") or {}
    if data.get("kind") != "manifest" or not data.get("source"):
        return None, None
    path = Path(data["source"])
    if not path.is_file():
        return None, f"{path}, the manifest this run was scanned from, is gone: earlier review rounds not read"
    rounds = _rounds(manifest_columns(path))
    if not rounds:
        return None, None
    key = data.get("id_column") or data.get("path_column") or "path"
    cols = read_columns(path, list(dict.fromkeys([key, *(c for pair in rounds for c in pair)])))
    row = {v: i for i, v in enumerate(row_ids(cols[key], paths=not data.get("id_column")))}
    at = np.array([row.get(str(e), -1) for e in run.column("external_id").tolist()], dtype=np.int64)
    status = np.full(at.size, "", dtype=object)
    decision = np.full(at.size, "", dtype=object)
    for d, st in rounds:  # the latest round that decided the sample speaks for it
        s_r, d_r = _texts(cols[st])[at], _texts(cols[d])[at]  # row -1: the appended ""
        open_ = status == ""
        status[open_], decision[open_] = s_r[open_], d_r[open_]
    given = np.asarray(run.column("given_label").tolist(), dtype=object)
    settled = (status == "consensus") & (decision == given)
    missing = int((at < 0).sum())
    note = (f"{missing} sample{'s' if missing != 1 else ''} of the run no longer in {path}: read as not settled "
            "before" if missing else None)  # fmt: skip
    return settled.astype(bool), note
