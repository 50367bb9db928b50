"""A manifest's cleaned labels (:func:`labeltrace.export.cleaned.export_labels` of a run scanned
from a CSV / TSV or Parquet manifest): the manifest again, every row and column as they were, the
label column changed where a class was decided, an excluded sample's row left out, and the review
round's ``review_decision, review_status`` columns added."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from labeltrace import rundir
from labeltrace._checks import listing
from labeltrace._io import atomic_write_bytes
from labeltrace.relabel.earlier import DECISION, STATUS
from labeltrace.rundir import Run, atomic_write

__all__ = ["DECISION_COLUMN", "STATUS_COLUMN", "check_out", "kept_rounds", "manifest_labels"]

DECISION_COLUMN, STATUS_COLUMN = DECISION, STATUS  # what the next round reads (relabel.earlier)
_ADDED = (DECISION_COLUMN, STATUS_COLUMN)


def check_out(out: Path, allowed: tuple[str, ...], what: str) -> None:
    if out.suffix.lower() not in allowed:
        raise ValueError(
            f"{out}: the cleaned labels of {what} are written as {' or '.join(allowed)}"
        )


def manifest_labels(run: Run, out: Path | None, final: np.ndarray, decision: np.ndarray,
                    status: np.ndarray) -> Path:  # fmt: skip
    """The manifest again at ``out`` (default ``RUN_DIR/cleaned<its suffix>``): every row and
    column as they were, the label column changed to ``final`` where ``decision`` is set (in the
    row's own representation: a class name or id), an excluded sample's row (``final`` -1) left
    out, and the ``review_decision, review_status`` columns added (an earlier round's renamed:
    :func:`kept_rounds`). Refused when a relabelled sample has no row, or a row's label is not the
    given label the scan read."""
    data = run.meta["data"]
    src = Path(data["source"])
    label_col = data.get("label_column", "label")
    path_col = data.get("path_column", "path")
    id_col = data.get("id_column")
    suffix = src.suffix.lower()
    out = out if out is not None else run.path / f"{rundir.CLEANED}{src.suffix}"
    check_out(out, (suffix,), f"a {suffix} manifest")
    if out.resolve() == src.resolve():
        raise ValueError(f"{out} is the original manifest; write the cleaned labels elsewhere")
    if not src.is_file():
        raise ValueError(f"the run's manifest {src} is missing")
    ext = [str(v) for v in run.column("external_id")]
    sample_of = {e: i for i, e in enumerate(ext)}
    classes = run.classes
    given = run.column("given_label_id").astype(np.int64)

    def key(row_id: object, row_path: object) -> str:
        return str(row_id).strip() if id_col else Path(str(row_path).strip()).as_posix()

    matched = np.zeros(len(ext), dtype=bool)

    def check_all_matched() -> None:
        """Refuse when a relabelled sample has no row left: its new label would be lost (an excluded
        one's row is left out anyway)."""
        lost = np.flatnonzero((final != given) & (final >= 0) & ~matched)
        if lost.size:
            names = listing(f"{i} ({ext[i]})" for i in lost.tolist())
            raise ValueError(
                f"{src}: no row for the relabelled sample(s) {names}; the manifest changed since "
                "the scan (rows removed, or paths / ids renamed), and their new labels would be lost"
            )

    def relabel(k: int, value: object, i: int) -> object:
        """The new label of manifest row ``k`` (sample ``i``) in that row's own representation."""
        v = value.strip() if isinstance(value, str) else value
        if isinstance(v, str) and v == classes[given[i]]:
            return classes[final[i]]
        try:
            as_id = int(v)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            as_id = None
        if as_id is not None and as_id == given[i]:
            return int(final[i]) if not isinstance(value, str) else str(int(final[i]))
        raise ValueError(
            f"{src}: row {k + 1} label {value!r} does not match sample {i}'s given label "
            f"{classes[given[i]]!r} (id {given[i]}); the manifest changed since the scan"
        )

    if suffix in (".parquet", ".pq"):
        t = pq.read_table(src)
        t = t.rename_columns(kept_rounds(t.column_names))
        labels = t.column(label_col).to_pylist()
        ids = t.column(id_col).to_pylist() if id_col else [None] * t.num_rows
        paths = t.column(path_col).to_pylist()
        dec: list[str | None] = [None] * t.num_rows
        stat: list[str | None] = [None] * t.num_rows
        kept = np.ones(t.num_rows, dtype=bool)
        for k in range(t.num_rows):
            i = sample_of.get(key(ids[k], paths[k]))
            if i is not None:
                matched[i] = True
            if i is not None and final[i] < 0:  # excluded as of no class: its row is left out
                kept[k] = False
            elif i is not None and decision[i]:
                labels[k] = relabel(k, labels[k], i)
                dec[k], stat[k] = str(decision[i]), str(status[i])
        check_all_matched()
        col = pa.array(labels, type=t.schema.field(label_col).type)
        t = t.set_column(t.column_names.index(label_col), t.schema.field(label_col), col)
        t = t.append_column(DECISION_COLUMN, pa.array(dec, pa.string()))
        t = t.append_column(STATUS_COLUMN, pa.array(stat, pa.string())).filter(pa.array(kept))
        return atomic_write(out, lambda fh: pq.write_table(t, fh))

    raw = src.read_bytes()
    bom = raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    delim = "\t" if suffix == ".tsv" else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    rows = list(reader)
    if not rows:
        raise ValueError(f"{src} is empty")
    header = kept_rounds(rows[0])
    for c in (label_col, path_col) + ((id_col,) if id_col else ()):
        if c not in header:
            raise ValueError(f"{src}: missing column {c!r}; columns are {header}")
    li, pi = header.index(label_col), header.index(path_col)
    ii = header.index(id_col) if id_col else None
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=delim, lineterminator="\r\n" if "\r\n" in text else "\n")
    w.writerow(header + list(_ADDED))
    for k, row in enumerate(rows[1:]):
        if not any(cell.strip() for cell in row):
            w.writerow(row)
            continue
        row = row + [""] * (len(header) - len(row))
        i = sample_of.get(key(row[ii] if ii is not None else None, row[pi]))
        d = st = ""
        if i is not None:
            matched[i] = True
        if i is not None and final[i] < 0:  # excluded as of no class: its row is left out
            continue
        if i is not None and decision[i]:
            row[li] = str(relabel(k, row[li], i))
            d, st = str(decision[i]), str(status[i])
        w.writerow(row + [d, st])
    check_all_matched()
    payload = (b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode("utf-8")
    return atomic_write_bytes(out, payload)


def kept_rounds(columns: list[str]) -> list[str]:
    """The manifest's columns with an earlier review round's ``review_decision`` / ``review_status``
    (a cleaned manifest scanned and reviewed again) renamed ``review_decision_1``, ``_2``, ... (the
    first free number), so that the new round's columns are added and that round's kept."""
    taken = [c for c in _ADDED if c in columns]
    if not taken:
        return columns
    n = 1
    while any(f"{c}_{n}" in columns for c in _ADDED):
        n += 1
    return [f"{c}_{n}" if c in _ADDED else c for c in columns]
