"""The samples a review excluded as of no class (the ``exclude`` decision: a lateral view in a
frontal set, a blank scan, a photo of a label sheet), as the cleaned-label export leaves them out:
the list written beside the cleaned labels, ``<out stem>.excluded.csv`` (spreadsheet-safe, as the
other lists for people), and what the export says of them.

A manifest or folder run's cleaned labels drop their rows (a rescan reads the images listed); an
array run's ``.npy`` (and its CSV) keeps one entry per image, so that row ``i`` is still image
``i``: label id ``-1``, no label name, ``review_status`` ``excluded``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from labeltrace.relabel.decisions import Decision
from labeltrace.relabel.verdicts import Verdicts
from labeltrace.rundir import Run

__all__ = ["EXCLUDED_LABEL_ID", "excluded_path", "excluded_table", "excluded_text"]

#: an excluded sample's label id in an array run's cleaned ``.npy`` (and its CSV's ``label_id``)
EXCLUDED_LABEL_ID = -1


def excluded_path(out: str | os.PathLike[str]) -> Path:
    """Where the excluded samples are listed, beside the cleaned labels ``out``."""
    out = Path(out)
    return out.with_name(out.stem + ".excluded.csv")


def excluded_table(run: Run, v: Verdicts, views: list[Decision]) -> pa.Table:
    """One row per excluded sample: ``id, external_id, path`` (empty for arrays), ``given_label``,
    ``reviewers`` (those whose exclude votes settled it, first voter first) and ``excluded_at``
    (the latest of those votes)."""
    ids = np.flatnonzero(v.excluded)
    who: dict[int, list[tuple[str, str]]] = {}
    for d in views:  # each reviewer's latest row, by seq
        if d.kind == "exclude" and v.excluded[d.sample_id]:
            who.setdefault(d.sample_id, []).append((d.reviewer, d.decided_at))
    take = pa.array(ids.astype(np.int64))
    paths = (run.samples.column("path").take(take) if "path" in run.samples.column_names
             else pa.nulls(ids.size, pa.string()))  # fmt: skip
    return pa.table({
        "id": take,
        "external_id": run.samples.column("external_id").take(take),
        "path": paths,
        "given_label": pa.array([run.classes[int(g)] for g in v.given[ids]], pa.string()),
        "reviewers": pa.array([", ".join(r for r, _ in who.get(i, [])) for i in ids.tolist()], pa.string()),
        "excluded_at": pa.array([max((t for _, t in who.get(i, [])), default=None) for i in ids.tolist()],
                                pa.string()),
    })  # fmt: skip


def excluded_text(n: int, path: Path, listed: Path, *, aligned: bool) -> str:
    """What the export says of its ``n`` excluded samples: left out of ``path`` (or, ``aligned``,
    kept there as label id -1 to stay aligned with the images), listed in ``listed``."""
    s = "s" if n != 1 else ""
    where = (f"kept in {path} as label id {EXCLUDED_LABEL_ID} (no label name) so that its rows stay aligned with "
             "the images; leave them out before training" if aligned else f"left out of {path}")  # fmt: skip
    return f"{n} sample{s} excluded as of no class: {where}; listed in {listed}"
