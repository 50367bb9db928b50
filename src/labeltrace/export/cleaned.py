"""The cleaned label file: the dataset's labels with the expert's accepted relabels.

Written in the format the dataset came in:

* **manifest** (``run.json`` ``data.kind == "manifest"``): the manifest again (CSV/TSV or
  Parquet), every row and column as they were, with the label column changed where a class was
  decided (written as a class name or a class id, whichever that row used) and two new columns
  ``review_decision, review_status`` (a manifest cleaned and reviewed before keeps that round's
  as ``review_decision_1, review_status_1``, the next round's as ``_2`` ...). A relabelled
  sample whose row is gone (removed, or its path or id renamed) is refused, naming it
  (:mod:`labeltrace.export.cleaned_manifest`);
* **folder**: a CSV with columns ``path, label, review_decision, review_status`` (paths relative
  to the data root, labels as class names);
* anything else (arrays): a ``.npy`` of int64 label ids plus a CSV beside it with
  ``id, label_id, label, review_decision, review_status`` (or that CSV alone when ``out`` ends in
  ``.csv``); for a run scanned from an ``.npz``, ``out`` ending in ``.npz`` writes that file again
  with the cleaned labels, the file the next scan reads (:mod:`labeltrace.export.cleaned_npz`), and
  the same CSV beside it.

A sample the review *excluded* as of no class (the ``exclude`` decision, settled by the rule of a
relabel) is left out of a manifest's, a folder's or a cleaned ``.npz``'s labels; an array run's
``.npy`` (and CSV) keeps one entry per image, so row ``i`` stays image ``i``: label id ``-1``, no
label name, ``review_status`` ``excluded``. Every excluded sample is listed in
``<out stem>.excluded.csv`` (written whenever the run has decisions:
:mod:`labeltrace.export.excluded`), and the export says how many.

``review_decision`` is the consensus label (:mod:`labeltrace.relabel.verdicts`: every
reviewer's latest label or exclude decision is one vote, resolved by the rule stored with the decisions),
``no consensus`` (votes that do not settle the sample yet), ``unsure`` / ``skip`` (the latest
decision, when nobody voted a label) or empty; ``review_status`` says which of these it is
(``consensus``, ``no consensus``, ``unsure``, ``skip`` or empty), so a class named ``unsure``
or ``skip`` is never taken for the action. Every sample without a consensus keeps its
original label. The samples with a decision but without a consensus — votes that do not settle
them, or only *unsure* / *skip* — are listed in ``<out stem>.unresolved.csv`` (``id,
external_id, given_label, status, votes, n_votes, needs``), written beside the labels whenever
the run has decisions (the header alone when every decided sample has a consensus: the export then
names no such list).

A run scanned with ``--noise`` is refused, whatever the dataset's format: its given labels are
the injected ones, not the dataset's, so no cleaned label file of the dataset can be written from
it (the manifest, a folder's layout and the arrays hold the original labels). Such a run is a
demo; ``labeltrace export RUN --to csv`` lists its decisions beside the given and true labels.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from labeltrace import rundir
from labeltrace._checks import listing
from labeltrace._io import (
    atomic_batch,
    atomic_remove,
    atomic_save_array,
    atomic_write_bytes,
    write_table,
)
from labeltrace._warn import warn_caller
from labeltrace.data.duplicates import group_members
from labeltrace.data.validate import is_missing, marker_set
from labeltrace.export.cleaned_manifest import (
    DECISION_COLUMN,
    STATUS_COLUMN,
    check_out,
    manifest_labels,
)
from labeltrace.export.cleaned_npz import npz_source, write_cleaned_npz
from labeltrace.export.excluded import excluded_path, excluded_table, excluded_text
from labeltrace.relabel.decisions import Decision
from labeltrace.relabel.runstore import open_store, set_aside_text
from labeltrace.relabel.verdicts import Verdicts, run_verdicts, unresolved_table
from labeltrace.run_claim import sharing
from labeltrace.rundir import REVIEWS_DB, Run, atomic_write, open_run

__all__ = ["DECISION_COLUMN", "STATUS_COLUMN", "classes_path", "export_labels", "missing_like_labels",
           "unresolved_path"]

def _csv_table(table: pa.Table, out: Path) -> Path:
    import pyarrow.csv as pacsv

    return atomic_write(out, lambda fh: pacsv.write_csv(table, fh))


def _refuse_injected_noise(run: Run) -> None:
    """Refuse a run whose given labels were injected by ``--noise`` (module docstring)."""
    noise = run.meta.get("noise")
    recorded = noise.get("spec") if isinstance(noise, dict) else None
    # --truth-column records its known true labels there too ("known true labels"): its given
    # labels are the dataset's own, and its decisions can be written back
    spec = (run.meta.get("config") or {}).get("noise") or (recorded if recorded != "known true labels" else None)
    if spec:
        raise ValueError(
            f"{run.path} was scanned with --noise {spec}: its given labels are the injected ones, "
            "not the dataset's, so its decisions cannot be written back as the dataset's cleaned "
            "labels (a noise-injected run is a demo); `labeltrace export "
            f"{run.path} --to csv` lists every decision beside the given and true labels"
        )


def missing_like_labels(run: Run, v: Verdicts | None = None) -> list[str]:
    """The class names of a folder or manifest run's cleaned labels that the manifest reader
    (:func:`labeltrace.data.from_manifest`, :data:`~labeltrace.data.validate.MISSING_VALUES`)
    reads as missing values — ``none``, ``NA``, ``null``, ``-`` ...; an array run's labels are
    ids, so none."""
    if not _image_files(run):
        return []
    final = (run_verdicts(run) if v is None else v).final
    markers = marker_set()
    return [run.classes[j] for j in np.unique(final[final >= 0]).tolist() if is_missing(run.classes[j], markers)]


def classes_path(out: str | os.PathLike[str]) -> Path:
    """Where the class list of a cleaned label table is written, beside it (one name per line)."""
    out = Path(out)
    return out.with_name(out.stem + ".classes.txt")


def _class_list(run: Run, final: np.ndarray) -> list[str] | None:
    """The classes a rescan of the cleaned labels reads, in the scan's id order: every class, or, when
    the review emptied some (a scan refuses a class without samples), those left — only where the
    labels are written as names (a folder run's); None where no list can be written (a manifest's
    integer labels would shift, or a name a class file cannot hold). ``final`` -1 (excluded): no class."""
    if not all("\n" not in c and c == c.strip() and c for c in run.classes):
        return None
    kept = np.zeros(len(run.classes), bool)
    kept[final[final >= 0]] = True
    if kept.all():
        return list(run.classes)
    if run.meta["data"].get("kind") == "manifest":
        return None
    return [c for c, k in zip(run.classes, kept, strict=True) if k]


def _image_files(run: Run) -> bool:
    """Whether the run's samples are image files under a data root (not arrays handed over in memory)."""
    return run.data_root is not None and bool(run.allowed_roots)  # not the path's spelling: a folder may be 'array:x'


def _rescannable(run: Run, out: Path) -> bool:
    """Whether the cleaned labels ``out`` are a file a scan can read again: a table of image paths,
    or the scanned ``.npz`` with the cleaned labels (:mod:`labeltrace.export.cleaned_npz`)."""
    if out.suffix.lower() == ".npz":
        return npz_source(run) is not None
    return _image_files(run) and out.suffix.lower() in (".csv", ".tsv", ".parquet")


def unresolved_path(out: str | os.PathLike[str]) -> Path:
    """Where the samples without a consensus are listed, beside the cleaned labels ``out``."""
    out = Path(out)
    return out.with_name(out.stem + ".unresolved.csv")


@sharing
def export_labels(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    report: Callable[[str], None] | None = None,
) -> Path:
    """Write the cleaned label file of a reviewed run; returns its path.

    Parameters
    ----------
    run_dir : path
        The run directory (its ``reviews.db`` holds the decisions; none means no change).
    out : path, optional
        Output file (default ``RUN_DIR/labels_cleaned.<ext>``, ``<ext>`` as described in the
        module docstring). The original manifest is never overwritten.
    report : callable, optional
        Told how many samples have no consensus yet, how many were excluded, and where they are
        listed, and (lines starting ``warning:``) which written class names a manifest reader takes
        for missing values (:func:`missing_like_labels`), which classes the review left with no
        sample or one, which exact copies still carry different labels, and which decision files a
        scan with ``--force`` set aside (:func:`~labeltrace.relabel.runstore.set_aside_text`);
        default :func:`warnings.warn`, each message a ``UserWarning`` (without its ``warning:``).

    Raises
    ------
    ValueError
        The run was scanned with ``--noise`` (module docstring), the output's format does not
        match the dataset's, or the manifest changed since the scan.
    """
    run = open_run(run_dir)
    _refuse_injected_noise(run)
    say = report or (lambda m: warn_caller(m.removeprefix("warning: ")))  # at the caller's line
    aside = set_aside_text(run)
    if aside is not None:
        say(f"warning: {aside}")
    store = open_store(run)
    views = store.views() if store is not None else []  # one read: the labels and the unresolved list agree
    v = run_verdicts(run, views=views)
    with atomic_batch():  # the label file and its companions, renamed together: one export's, never a mix
        return _write_all(run, out, v, views, say)


def _write_all(run: Run, out: str | os.PathLike[str] | None, v: Verdicts, views: list[Decision],
               report: Callable[[str], None]) -> Path:  # fmt: skip
    """The label file of :func:`export_labels` and its companions (class list, unresolved samples)."""
    path = _export(run, Path(out) if out is not None else None, v)
    odd = missing_like_labels(run, v)
    if odd:
        report(f"warning: {path} writes the class name{'s' if len(odd) > 1 else ''} "
               f"{', '.join(map(repr, odd))}, which a manifest reader takes for a missing label "
               "(labeltrace.data.MISSING_VALUES): scan it with --no-missing-markers (in Python "
               "labeltrace.data.from_manifest(..., missing_values=())), or those rows are refused")  # fmt: skip
    final = v.final[~v.excluded]  # the labels written: an excluded sample has none
    class_list = _class_list(run, final)
    if _rescannable(run, path) and class_list is not None:
        # the class list in id order, so that the rescan reads the labels as this run did (numeric class
        # folders such as 1..5 or 3 / 5, and the same class ids)
        names = "".join(f"{c}\n" for c in class_list).encode()
        atomic_write_bytes(classes_path(path), names)
    else:  # never leave an older export's list beside these labels
        atomic_remove(classes_path(path))
        empty = sorted(set(run.classes) - {run.classes[j] for j in np.unique(final)})
        if empty and _rescannable(run, path):
            report(f"warning: the review left no sample in class{'es' if len(empty) > 1 else ''} "
                   f"{', '.join(map(repr, empty))}; a manifest's integer labels are positions in the scan's class "
                   "list, so renumber them before scanning these labels again")  # fmt: skip
    alone = np.flatnonzero(~v.excluded & np.isin(v.final, np.flatnonzero(np.bincount(final, minlength=len(run.classes)) == 1)))
    if alone.size and _rescannable(run, path):  # the one sample of each such class
        paths = run.column("path")
        report(f"warning: the review left one sample in class{'es' if alone.size > 1 else ''} "
               + listing(f"{run.classes[int(v.final[i])]!r} ({paths[int(i)]})" for i in alone.tolist())
               + "; a scan refuses a class with fewer than 2 samples: add images to it, or relabel that sample "
               "too, before scanning these labels again")  # fmt: skip
    split = copies_apart(run, v)
    if split:
        report(f"warning: {len(split)} group{'s' if len(split) != 1 else ''} of exact copies (identical pixels) "
               f"still carr{'ies' if len(split) == 1 else 'y'} different labels in {path}: at least one label of each "
               "is wrong; decide the copies on the review page: "
               + listing(" = ".join(f"{paths} ({lab})" for paths, lab in grp) for grp in split))  # fmt: skip
    if (run.path / REVIEWS_DB).exists():
        gone = write_table(excluded_path(path), excluded_table(run, v, views))  # for people: spreadsheet-safe
        n_out = int(v.excluded.sum())
        if n_out:
            report(excluded_text(n_out, path, gone, aligned=_arrays(run) and path.suffix.lower() != ".npz"))
        table = unresolved_table(run, v, views=views)
        listed = write_table(unresolved_path(path), table)  # a list for people: safe in a spreadsheet
        if table.num_rows:  # none: the header alone, as the excluded list, unnamed
            n, rule = table.num_rows, v.rule.describe()
            status = table.column("status").to_pylist()
            only = sum(st in ("unsure", "skip") for st in status)
            report(f"{n} sample{'s' if n != 1 else ''} without a consensus ({rule}) keep their given label"
                   + (f" ({only} of them only marked unsure or skipped)" if only else "")
                   + f"; listed in {listed}")  # fmt: skip
    return path


def copies_apart(run: Run, v: Verdicts) -> list[list[tuple[str, str]]]:
    """The groups of exact copies (the scan's ``duplicate_group``) whose cleaned labels still differ,
    each as ``(path, label)`` of its copies; an excluded copy has no label and is left out."""
    if "duplicate_group" not in run.samples.column_names:
        return []
    final = v.final
    g = np.where(v.excluded, -1, run.column("duplicate_group").astype(np.int64))
    paths = run.column("path") if "path" in run.samples.column_names else run.column("external_id")
    return [[(str(paths[i]), run.classes[int(final[i])]) for i in m.tolist()]
            for m in group_members(g) if np.unique(final[m]).size > 1]  # fmt: skip


def _arrays(run: Run) -> bool:
    """Whether the cleaned labels are an array run's (a ``.npy`` and its CSV, a row per image)."""
    kind = run.meta["data"].get("kind")
    return not (kind == "manifest" and run.meta["data"].get("source")) and not (kind == "folder" or _image_files(run))


def _export(run: Run, outp: Path | None, v: Verdicts) -> Path:
    final, decision, status = v.final, v.decision_text(run.classes), v.status_text()
    kind = run.meta["data"].get("kind")
    if kind == "manifest" and run.meta["data"].get("source"):
        return manifest_labels(run, outp, final, decision, status)
    names = np.asarray([*run.classes, None], dtype=object)[final]  # -1 (excluded): no name
    dec_col = pa.array(decision.tolist(), pa.string())
    stat_col = pa.array(status.tolist(), pa.string())
    if kind == "folder" or _image_files(run):
        outp = outp or run.path / f"{rundir.CLEANED}.csv"
        check_out(outp, (".csv",), "a folder dataset")
        cols = {"path": run.samples.column("path"), "label": pa.array(names.tolist(), pa.string())}
        if "group" in run.samples.column_names:  # --group-by-folder: the rescan reads them as --group-column group
            cols["group"] = run.samples.column("group")
        t = pa.table({**cols, DECISION_COLUMN: dec_col, STATUS_COLUMN: stat_col})
        return _csv_table(t.filter(pa.array(~v.excluded)), outp)  # an excluded sample's row left out
    outp = outp or run.path / f"{rundir.CLEANED}.npy"
    check_out(outp, (".npy", ".npz", ".csv"), "an array dataset")
    t = pa.table(
        {
            "id": pa.array(np.arange(run.num_samples, dtype=np.int64)),
            "label_id": pa.array(final.astype(np.int64)),
            "label": pa.array(names.tolist(), pa.string()),
            DECISION_COLUMN: dec_col,
            STATUS_COLUMN: stat_col,
        }
    )
    if outp.suffix.lower() == ".csv":
        return _csv_table(t, outp)
    if outp.suffix.lower() == ".npz":  # the scanned .npz again: images and cleaned labels, for the next scan
        written = write_cleaned_npz(run, outp, final, _class_list(run, final[final >= 0]), decision=decision,
                                    status=status)
    else:
        written = atomic_save_array(outp, final.astype(np.int64))
    _csv_table(t, outp.with_suffix(".csv"))  # beside either: ids, names, review columns
    return written
