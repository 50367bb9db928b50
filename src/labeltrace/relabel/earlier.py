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


def settled_before(run: Run) -> tuple[np.ndarray | None, str | None]:
    """``(settled, note)``: (N,) bool, the samples an earlier round settled on their current label
    (the manifest's latest ``review_status`` is ``consensus`` and its ``review_decision`` the
    sample's given label); None when the run's data is not a manifest with those columns. ``note``
    says why an earlier round could not be read (the manifest moved or changed), else None."""
    data = run.meta.get("data") or {}
    if data.get("kind") != "manifest" or not data.get("source"):
        return None, None
    path = Path(data["source"])
    if not path.is_file():
        return None, f"{path}, the manifest this run was scanned from, is gone: earlier review rounds not read"
    if not {DECISION, STATUS} <= set(manifest_columns(path)):
        return None, None
    key = data.get("id_column") or data.get("path_column") or "path"
    cols = read_columns(path, list(dict.fromkeys([key, DECISION, STATUS])))
    row = {v: i for i, v in enumerate(row_ids(cols[key], paths=not data.get("id_column")))}
    at = np.array([row.get(str(e), -1) for e in run.column("external_id").tolist()], dtype=np.int64)
    status = np.asarray(["" if v is None else str(v).strip() for v in cols[STATUS]] + [""], dtype=object)
    decision = np.asarray(["" if v is None else str(v).strip() for v in cols[DECISION]] + [""], dtype=object)
    given = np.asarray(run.column("given_label").tolist(), dtype=object)
    settled = (status[at] == "consensus") & (decision[at] == given)  # at -1: the appended "", no row
    missing = int((at < 0).sum())
    note = (f"{missing} sample{'s' if missing != 1 else ''} of the run no longer in {path}: read as not settled "
            "before" if missing else None)  # fmt: skip
    return settled.astype(bool), note
