"""Samples an earlier review round settled. ``labeltrace review --export`` writes a manifest's
cleaned labels with ``review_decision`` / ``review_status`` columns (a cleaned ``.npz``, with
``{split}_review_decision`` / ``{split}_review_status`` arrays); scanned again (the next round),
that file says which samples experts already settled. A sample whose status there is
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
    sample's given label), or a cleaned ``.npz``'s ``{split}_review_*`` arrays
    (:mod:`labeltrace.export.cleaned_npz`); None when the run's data is neither with those. ``note``
    says why an earlier round could not be read (the file is gone) or which samples it lacks."""
    data = run.meta.get("data") or {}
    src = data.get("image_source") or {}
    if src.get("kind") == "npz":  # a cleaned .npz (labeltrace.export.cleaned_npz): the split's review arrays
        return _settled_in_npz(run, Path(src["path"]), str(src.get("split", "train")))
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
    return _settled(run, cols, rounds, at, f"{path}")


def _settled_in_npz(run: Run, path: Path, split: str) -> tuple[np.ndarray | None, str | None]:
    """:func:`settled_before` of a run scanned from an ``.npz``: its ``{split}_review_*`` arrays, one
    entry per image of the split (the run's samples, in order)."""
    if not path.is_file():
        return None, f"{path}, the .npz this run was scanned from, is gone: earlier review rounds not read"
    with np.load(path, allow_pickle=False) as z:
        pre = f"{split}_"
        rounds = _rounds([k.removeprefix(pre) for k in z.files if k.startswith(pre)])
        cols = {c: z[pre + c].ravel().tolist() for pair in rounds for c in pair}
    if not rounds:
        return None, None
    at = np.arange(run.num_samples, dtype=np.int64)
    if any(len(v) != at.size for v in cols.values()):
        return None, f"{path}'s review arrays do not hold one entry per image of its {split!r} split: not read"
    return _settled(run, cols, rounds, at, f"{path}")


def _settled(run: Run, cols: dict, rounds: list[tuple[str, str]], at: np.ndarray,
             where: str) -> tuple[np.ndarray, str | None]:  # fmt: skip
    """The settled samples of :func:`settled_before` from the rounds' columns ``cols`` (the run's
    sample ``i`` is their row ``at[i]``; -1: none) and the note on samples without a row."""
    status = np.full(at.size, "", dtype=object)
    decision = np.full(at.size, "", dtype=object)
    for d, st in rounds:  # the latest round that decided the sample speaks for it
        s_r, d_r = _texts(cols[st])[at], _texts(cols[d])[at]  # row -1: the appended ""
        open_ = status == ""
        status[open_], decision[open_] = s_r[open_], d_r[open_]
    given = np.asarray(run.column("given_label").tolist(), dtype=object)
    settled = (status == "consensus") & (decision == given)
    missing = int((at < 0).sum())
    note = (f"{missing} sample{'s' if missing != 1 else ''} of the run no longer in {where}: read as not settled "
            "before" if missing else None)  # fmt: skip
    return settled.astype(bool), note
