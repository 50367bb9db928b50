"""Exports of a run to labeling tools, and Label Studio results back into the review log.

``export_run(run_dir, to, out)`` with ``to`` one of:

* ``"labelstudio"`` — a Label Studio tasks JSON (import it in a project whose labeling config
  is the ``<out stem>.config.xml`` written beside it). One task per sample, in review-queue
  order (every export lists every sample: those a queue file leaves out come last, by rank), with

  - ``data.image``: the image as a ``data:image/png;base64`` URI (a JPEG file's as
    ``data:image/jpeg``; ``images="data-uri"``,
    self-contained; tiny images enlarged by an integer factor with nearest neighbour), or a
    Label Studio local-files URL ``/data/local-files/?d=<path relative to document_root>``
    (``images="local-files"``; start Label Studio with
    ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
    ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<document_root>`` — by default the folder above the
    data root —, and add to the project a Local Files source storage whose absolute path is the
    deepest folder below the root holding the data root and every image — the data root; no Sync needed —: Label
    Studio serves a local file only under such a storage, and refuses one at the document root
    itself, so images with no common folder strictly below the root are refused; ``info`` gets
    :func:`~labeltrace.export.labelstudio_images.local_files_setup`'s text with both filled
    in). A data-URI image larger than ``max_side`` (1024 px) is embedded shrunk to it;
  - ``data.labeltrace_id`` (the sample id, used to read results back; ``--by external_id`` reads them
    back by ``external_id`` instead, into a rescan of the same images), ``external_id``,
    ``given_label``, ``suggested_label``, ``score``, ``rank``, ``is_suspect``, for a decided
    sample ``review_decision`` and ``review_status`` (as in the table export below), and ``info``
    (a one-line summary shown as the task's header);
  - two ``predictions`` (Label Studio's pre-annotations): the suggested label with its posterior
    probability as ``score`` (``model_version="labeltrace"``), then the label as it stands —
    the given one, or the review's consensus where it settled another (``exclude`` where it
    excluded the image) — (``model_version="current-label"``), last, because Label Studio
    pre-selects the last one's model version on a project's first import: a task opens with its
    current label ticked, and a Submit unchanged confirms it (the project's settings switch to the
    suggestions).

  The config has a single-choice ``label`` control with one choice per class and a
  ``review`` control with the choices ``unsure`` and ``exclude`` (the image is of no class); a
  skipped (cancelled) annotation reads back as ``skip``.
* ``"csv"`` / ``"parquet"`` — the samples table in queue order with ``queue_position`` (the queue
  file's ``rank``: 1 for its first sample; empty
  for the samples a queue file leaves out) and the
  current review (``review_decision``, ``review_status`` — ``consensus``, ``excluded``, ``no
  consensus``, ``unsure`` or ``skip``, so a class named like an action is told apart —,
  ``reviewer`` and ``reviewed_at`` — for a consensus the reviewers whose votes made it and their
  latest vote's time —, ``final_label``, empty for a sample excluded as of no class).
* ``"fiftyone"`` — a persistent FiftyOne dataset (optional extra; ``out`` is its name) with
  fields ``given``, ``suggested``, ``final`` (the label after the review; classifications; none
  for a sample excluded as of no class, tagged ``excluded``),
  ``sei``, ``score``, ``rank``, ``is_suspect``, ``labeltrace_id``, ``external_id``,
  ``review_decision`` / ``review_status`` of a decided sample (and ``ground_truth`` when known);
  a file a browser does not show (DICOM, TIFF, 16-bit PNG) is linked as a PNG written under the
  run's ``fiftyone_images``. An existing dataset of that name, an earlier export of the run
  included, is replaced only with ``overwrite``; ``update`` refreshes the review's fields of an
  earlier export in place, keeping its tags, views and evaluations.

:func:`import_labelstudio` reads a Label Studio JSON (or JSON-MIN, which leaves skips out) export
back and writes its decisions into ``reviews.db`` with reviewer ``"labelstudio"`` (each task's
latest submitted annotation, a ground-truth one first; a skip only when nobody submitted one), so
:func:`labeltrace.export.cleaned.export_labels` produces the cleaned label file from them; an
annotation no newer than the Label Studio decision already stored for its sample is left out
(and said so), so importing an older export never undoes newer decisions. A task whose
annotations disagree (only its latest is imported), and the samples the import leaves disputed,
are named in a warning; a task naming an ``external_id`` the run does not have is refused.
"""


from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from labeltrace import rundir
from labeltrace._checks import listing
from labeltrace._io import atomic_write_bytes, write_json_array
from labeltrace._spreadsheet import formula_cells
from labeltrace._warn import warn_caller
from labeltrace.export.labelstudio import (
    MAX_SIDE,
    ImageMode,
    iter_labelstudio_tasks,
    labelstudio_config,
    labelstudio_tasks,
    report_problems,
)
from labeltrace.export.labelstudio_images import local_files_setup
from labeltrace.export.labelstudio_import import import_labelstudio
from labeltrace.export.tables import review_table
from labeltrace.relabel.runstore import notices
from labeltrace.run_claim import sharing
from labeltrace.rundir import open_run, write_table

__all__ = [
    "MAX_SIDE",
    "TARGETS",
    "export_run",
    "import_labelstudio",
    "labelstudio_config",
    "labelstudio_tasks",
]

Target = Literal["labelstudio", "csv", "parquet", "fiftyone"]
#: more Label Studio tasks than this with their images embedded: a warning (a file of gigabytes)
LARGE_DATA_URI = 5000
#: a tasks file larger than this (bytes): a warning (Label Studio's default upload limit is 250 MB)
LARGE_UPLOAD = 200 * 2**20
TARGETS: tuple[str, ...] = ("labelstudio", "csv", "parquet", "fiftyone")


@sharing
def export_run(
    run_dir: str | os.PathLike[str],
    to: Target,
    out: str | os.PathLike[str] | None = None,
    *,
    images: ImageMode = "data-uri",
    document_root: str | os.PathLike[str] | None = None,
    only_suspects: bool = False,
    max_side: int | None = MAX_SIDE,
    warn: Callable[[str], None] | None = None,
    overwrite: bool = False,
    info: Callable[[str], None] | None = None,
    update: bool = False,
) -> Path | str:
    """Export a run for a labeling tool (see the module docstring for each target).

    Parameters
    ----------
    run_dir : path
        The run directory.
    to : {"labelstudio", "csv", "parquet", "fiftyone"}
        Target.
    out : path or str, optional
        Output file (defaults: ``RUN_DIR/labelstudio_tasks.json``, ``RUN_DIR/export.csv``,
        ``RUN_DIR/export.parquet``); for ``fiftyone`` the dataset name.
    images, document_root
        Label Studio only: image embedding mode and local-files document root (default the folder
        above the data root; a local-files export with an image outside it, or with no folder
        strictly below it that holds every image, is refused, naming a root that works).
    max_side
        Label Studio data URIs: an image larger than this many pixels on its longer side is
        embedded shrunk to it (default 1024; None embeds it whole), and a warning counts them.
    only_suspects
        Label Studio, csv and parquet: export the flagged samples alone.
    warn : callable, optional
        Gets a message naming the decision files a scan with ``--force`` set aside (their
        decisions are in no export), one when the images folder is not there (``labeltrace
        relocate``), and (Label Studio and FiftyOne) one naming the samples whose image could not
        be exported (unreadable, or outside the roots the scan allowed); default
        :func:`warnings.warn`. Such samples are exported without their image (Label Studio:
        ``data.image`` empty, ``data.image_error`` the reason; FiftyOne: left out) -- one bad
        sample never aborts the export.
    overwrite
        FiftyOne only: replace an existing dataset of that name (refused with ``ValueError``
        otherwise, so a dataset of the user's is never deleted by accident).
    update
        FiftyOne only: refresh the review's fields (``review_decision``, ``review_status``,
        ``final``) of an earlier export of this run in place, keeping what was added to it in
        FiftyOne (tags, views, evaluations).
    info : callable, optional
        Label Studio local files: gets what Label Studio needs to serve the linked files (the
        document root, the Local Files storage folder; the CLI prints it).

    Returns
    -------
    Path or str
        The written file (the Label Studio config is written beside it as
        ``<stem>.config.xml``), or the FiftyOne dataset name.
    """
    if to not in TARGETS:
        raise ValueError(f"unknown export target {to!r}; choose one of {TARGETS}")
    run = open_run(run_dir)
    say = warn or warn_caller  # at the caller's line
    # decisions a scan with --force set aside (in none of these exports); an images folder not there
    for text in notices(run):
        say(text)
    if update and (to != "fiftyone" or overwrite):
        raise ValueError("--update refreshes an earlier FiftyOne export's review fields (--to fiftyone, without "
                         "--overwrite)")
    if overwrite and to != "fiftyone":  # a file export replaces its file: nothing else to overwrite
        raise ValueError("--overwrite replaces an existing FiftyOne dataset (--to fiftyone); a file export "
                         "replaces its file anyway")
    if (images != "data-uri" or document_root is not None) and (to != "labelstudio" or images != "local-files"):
        raise ValueError("--images local-files and --document-root say how a Label Studio export points at the "
                         "images (--to labelstudio --images local-files [--document-root DIR]); "
                         + ("a data-URI export embeds them" if to == "labelstudio" else f"a {to} export names its "
                            "images by path"))  # fmt: skip
    if to == "fiftyone":
        if only_suspects:
            raise ValueError("--only-suspects does not apply to a FiftyOne export (every sample goes, with its "
                             "suspect field: filter on it in FiftyOne)")
        from labeltrace.export.fiftyone import to_fiftyone

        return to_fiftyone(run, None if out is None else str(out), warn=warn, overwrite=overwrite, update=update)
    if to == "labelstudio":
        path = Path(out) if out is not None else run.path / rundir.LABELSTUDIO_TASKS
        if path.suffix.lower() != ".json":  # Label Studio imports the tasks as JSON
            raise ValueError(f"{path}: a labelstudio export must end in .json")
        n_tasks = int(run.column("is_suspect").sum()) if only_suspects else run.num_samples
        if images == "data-uri" and n_tasks > LARGE_DATA_URI:
            say(f"{n_tasks:,} tasks each embed their image as a data URI (a PNG re-encoded per task: 2,000 photos "
                "of 320 px took 2 minutes and 541 MB); --images local-files --document-root DIR (Label Studio "
                "serves the files) or --only-suspects keeps the file small")  # fmt: skip
        fields = [c for c in run.classes if re.search(r"\$[\w\[\].{}]", c)]
        if fields:  # Label Studio's page reads "$name" in a choice as the task's field of that name
            say(f"class name{'s' if len(fields) != 1 else ''} {listing(map(repr, fields))}: Label Studio's labeling "
                "page reads '$' followed by a name in a choice as a task field (the way the config shows $info), "
                "so such a choice may show and submit as another text; rename the class before labeling it there")
        problems: list[tuple[int, str]] = []  # written one task at a time: a data-URI task holds its image
        embedded: list[int] = []
        shrunk: list[int] = []
        storage: list[tuple[Path, Path]] = []
        tasks = iter_labelstudio_tasks(run, problems, images=images, document_root=document_root,
                                       only_suspects=only_suspects, max_side=max_side, embedded=embedded,
                                       shrunk=shrunk, storage=storage)  # fmt: skip
        write_json_array(path, tasks, done=lambda n: report_problems(problems, n, warn, embedded=embedded,
                                                                     shrunk=shrunk, max_side=max_side, run=run))
        xml = labelstudio_config(run.classes).encode("utf-8")
        atomic_write_bytes(path.with_name(path.stem + ".config.xml"), xml)
        size = path.stat().st_size
        if size > LARGE_UPLOAD:
            say(f"{path} is {size / 2**20:,.0f} MB: Label Studio refuses an upload over 250 MB unless it is started "
                "with a larger DATA_UPLOAD_MAX_MEMORY_SIZE; --images local-files (Label Studio serves the files), "
                "--only-suspects or a smaller --max-side keeps the file small")  # fmt: skip
        if storage and info is not None:
            info(local_files_setup(*storage[0]))
        return path
    path = Path(out) if out is not None else run.path / f"{rundir.EXPORT_TABLE}.{to}"
    if path.suffix != f".{to}":
        raise ValueError(f"{path}: a {to} export must end in .{to}")
    table = review_table(run)
    if only_suspects:
        table = table.filter(table.column("is_suspect"))
    formulas = formula_cells(table) if to == "csv" else 0
    if formulas:
        say(f"{formulas:,} text cell{'s' if formulas != 1 else ''} (a path, a label, a reviewer's name ...) "
            "begin with =, +, -, @, a tab or a carriage return, which a spreadsheet runs as a formula: written "
            "with a leading ' in the CSV; --to parquet keeps every value as it is")
    return write_table(path, table)
