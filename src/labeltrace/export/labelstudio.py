"""Label Studio: the labeling config, one task per sample (in review order), and the results read
back into the decisions store (see :mod:`labeltrace.export` for the task fields)."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from labeltrace._checks import listing
from labeltrace._io import iter_json_items
from labeltrace.export.labelstudio_images import (
    MAX_SIDE,
    ImageMode,
    check_document_root,
    document_root_of,
    task_image,
)
from labeltrace.export.labelstudio_results import (
    LS_LABEL,
    LS_REVIEW,
    annotation_says,
    decision_of,
    iso,
    min_decision,
)
from labeltrace.relabel.order import every_sample_in_review_order
from labeltrace.relabel.runstore import run_store
from labeltrace.relabel.verdicts import run_verdicts
from labeltrace.run_claim import sharing
from labeltrace.rundir import Run, open_run

__all__ = ["LS_REVIEWER", "MAX_SIDE", "ImageMode", "import_labelstudio", "iter_labelstudio_tasks", "labelstudio_config",
           "labelstudio_tasks"]

LS_IMAGE = "image"  # to_name / data key
LS_REVIEWER = "labelstudio"
#: the fields a JSON-MIN export gives an annotated task (null, or absent, for a task nobody annotated)
_MIN_ANNOTATION_KEYS = ("annotator", "annotation_id", "updated_at", "created_at", "lead_time")


# --------------------------------------------------------------------------- Label Studio
def labelstudio_config(classes: list[str]) -> str:
    """The Label Studio labeling config (XML) matching :func:`labelstudio_tasks`."""
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in classes)
    return (
        "<View>\n"
        f'  <Image name="{LS_IMAGE}" value="${LS_IMAGE}" zoom="true"/>\n'
        '  <Header value="$info"/>\n'
        f'  <Choices name="{LS_LABEL}" toName="{LS_IMAGE}" choice="single" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        f'  <Choices name="{LS_REVIEW}" toName="{LS_IMAGE}" choice="single" showInline="true">\n'
        '    <Choice value="unsure"/>\n'
        "  </Choices>\n"
        "</View>\n"
    )


def _choice(label: str) -> list[dict[str, Any]]:
    return [
        {
            "from_name": LS_LABEL,
            "to_name": LS_IMAGE,
            "type": "choices",
            "value": {"choices": [label]},
        }
    ]


def labelstudio_tasks(
    run: Run,
    *,
    images: ImageMode = "data-uri",
    document_root: str | os.PathLike[str] | None = None,
    only_suspects: bool = False,
    image_size: int = 256,
    max_side: int | None = MAX_SIDE,
    warn: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Label Studio tasks of a run, in review-queue order (see the module docstring).

    A sample whose image cannot be exported (changed or gone since the scan, unreadable, outside
    the run's allowed roots) is still exported, with ``data.image`` empty and the reason in
    ``data.image_error``; ``warn`` (default :func:`warnings.warn`) then gets one message that
    counts and names them. When no image at all can be exported, ``ValueError``; a local-files
    export with images outside the document root is refused (:func:`check_document_root`). (The
    export writes them to its file one at a time, through :func:`iter_labelstudio_tasks`.)
    """
    problems: list[tuple[int, str]] = []
    embedded: list[int] = []
    shrunk: list[int] = []
    tasks = list(iter_labelstudio_tasks(run, problems, images=images, document_root=document_root,
                                        only_suspects=only_suspects, image_size=image_size, max_side=max_side,
                                        embedded=embedded, shrunk=shrunk))  # fmt: skip
    report_problems(problems, len(tasks), warn, embedded=embedded, shrunk=shrunk, max_side=max_side, run=run)
    return tasks


def iter_labelstudio_tasks(
    run: Run,
    problems: list[tuple[int, str]],
    *,
    images: ImageMode = "data-uri",
    document_root: str | os.PathLike[str] | None = None,
    only_suspects: bool = False,
    image_size: int = 256,
    max_side: int | None = MAX_SIDE,
    embedded: list[int] | None = None,
    shrunk: list[int] | None = None,
) -> Iterator[dict[str, Any]]:
    """The tasks of :func:`labelstudio_tasks` one at a time (a data-URI task holds its image: all
    of a large set's would not fit in memory); each sample whose image could not be exported is
    appended to ``problems`` as ``(sample id, reason)`` (:func:`report_problems` tells of them).
    With ``images="local-files"`` a file a browser does not show as it is (DICOM, TIFF, a 16-bit
    PNG) is embedded as a PNG data URI instead, display-scaled as the review page shows it (to
    about ``image_size``, larger images shrunk too), and its sample id appended to ``embedded``.
    A data-URI image larger than ``max_side`` pixels (None: no limit) is shrunk to it, its id
    appended to ``shrunk``. A local-files export is checked first (:func:`check_document_root`)."""
    if images not in ("data-uri", "local-files"):
        raise ValueError(f"images must be 'data-uri' or 'local-files', got {images!r}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be >= 1 pixel, or None for no limit; got {max_side!r}")
    order = every_sample_in_review_order(run)[0]
    if only_suspects:
        order = order[run.column("is_suspect").astype(bool)[order]]
    root = None
    if images == "local-files":
        root = document_root_of(run, document_root)
        check_document_root(run, order, root)
    classes = run.classes
    given = run.column("given_label_id").astype(np.int64)
    sugg = run.column("suggested_label_id").astype(np.int64)
    prob = run.column("suggested_prob").astype(np.float64)
    score = run.column("score").astype(np.float64)
    rank = run.column("rank").astype(np.int64)
    sus = run.column("is_suspect").astype(bool)
    ext = run.column("external_id")
    v = run_verdicts(run)  # the experts' review so far, beside the model's view
    decision, status = v.decision_text(classes), v.status_text()
    for i in order.tolist():
        review = ({"review_decision": str(decision[i]), "review_status": str(status[i])} if status[i] else {})
        try:
            image = task_image(run, i, images, root, image_size, max_side=max_side, embedded=embedded, shrunk=shrunk)
            error = None
        except (ValueError, OSError) as exc:  # DataError included: one sample, not the export
            image, error = "", str(exc)
            problems.append((i, error))
        yield (
            {
                "data": {
                    LS_IMAGE: image,
                    **({"image_error": error} if error is not None else {}),
                    "labeltrace_id": i,
                    "external_id": str(ext[i]),
                    "given_label": classes[given[i]],
                    "suggested_label": classes[sugg[i]],
                    "score": float(score[i]) if np.isfinite(score[i]) else None,
                    "rank": int(rank[i]),
                    "is_suspect": bool(sus[i]),
                    **review,
                    "info": f"given: {classes[given[i]]} · suggested: {classes[sugg[i]]} "
                    f"(p {prob[i]:.2f}) · rank {int(rank[i])} · score {score[i]:.3g}"
                    + (f" · reviewed: {review['review_decision']} ({review['review_status']})" if review else ""),
                },
                "predictions": [
                    {"model_version": "given-label", "result": _choice(classes[given[i]])},
                    {
                        "model_version": "labeltrace",
                        "score": float(prob[i]) if np.isfinite(prob[i]) else 0.0,
                        "result": _choice(classes[sugg[i]]),
                    },
                ],
            }
        )


def report_problems(
    problems: list[tuple[int, str]], total: int, warn: Callable[[str], None] | None, *,
    embedded: list[int] | None = None, shrunk: list[int] | None = None, max_side: int | None = None,
    run: Run | None = None, left_out: bool = False,
) -> None:  # fmt: skip
    """Tell ``warn`` (default :func:`warnings.warn`) which samples were exported without their
    image (``left_out``: left out of the export), which local files went in as data URIs
    (``embedded``, named by their paths in ``run``) and how many images were shrunk to
    ``max_side`` (``shrunk``); ``ValueError`` when every image failed (nothing worth writing)."""
    say = warn if warn is not None else (lambda m: warnings.warn(m, UserWarning, stacklevel=4))
    if shrunk:
        say(f"{len(shrunk)} of {total} images are larger than {max_side} px: embedded shrunk to {max_side} px on "
            "their longer side (--max-side 0 embeds them whole, a file several times their size; --images "
            "local-files links the files themselves)")  # fmt: skip
    if embedded:
        paths = run.column("path") if run is not None else None
        say(f"{len(embedded)} of {total} images are files a browser does not show as they are (DICOM, TIFF, a "
            "16-bit PNG: a blank or nearly black task): embedded as PNG data URIs instead, display-scaled to "
            "about 256 px (the file grows with each; --only-suspects keeps it small): "
            + listing(f"sample {i}" + (f" ({paths[i]})" if paths is not None else "") for i in embedded))  # fmt: skip
    if not problems:
        return
    listed = listing(f"sample {i} ({why})" for i, why in problems)
    if len(problems) == total:
        raise ValueError(f"no image could be exported ({total} samples): {listed}")
    what = "left out of the export" if left_out else "exported without image"
    say(f"{len(problems)} of {total} images could not be exported ({what}): {listed}")


@sharing
def import_labelstudio(run_dir: str | os.PathLike[str], export_json: str | os.PathLike[str], *,
                       warn: Callable[[str], None] | None = None) -> int:  # fmt: skip
    """Read a Label Studio export (JSON or JSON-MIN) into ``reviews.db``; returns rows written.

    Each task is matched by ``data.labeltrace_id`` (else ``external_id``). Of a task's
    annotations the latest one (``updated_at`` / ``created_at``, then list order) counts: a
    class choice → relabel decision, ``review: unsure`` → ``unsure`` (with a class ticked too:
    ``unsure``), a cancelled (skipped) annotation → ``skip``; a task whose latest annotation holds
    no choice is not imported, and ``warn`` names its sample. Rows are stored with reviewer and source ``"labelstudio"`` and the
    annotation's time; importing the same file twice writes nothing new. All tasks are checked
    before anything is written.

    The latest annotation counts across imports too: an annotation older than (or as old as)
    the Label Studio decision already stored for its sample is not imported — importing last
    week's export after this week's never undoes this week's decisions — and ``warn`` (default
    :func:`warnings.warn`) is told how many were left out and for which samples.

    Raises
    ------
    ValueError
        Unreadable JSON, a task that matches no sample, or an unknown class (naming the task).
    """
    run = open_run(run_dir)

    def read() -> Iterator[Any]:  # task by task: an export of hundreds of MB is never held whole
        try:
            with open(export_json, encoding="utf-8") as fh:
                head = fh.read(4096).lstrip()
            if head[:1] not in ("[", "{"):  # a list of tasks, or one task
                raise ValueError(f"{export_json}: expected a JSON list of tasks")
            yield from iter_json_items(export_json)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{export_json}: cannot read a Label Studio export: {exc}") from exc

    tasks = read()
    classes = set(run.classes)
    ext_ids = [str(e) for e in run.column("external_id")]
    by_ext = {e: i for i, e in enumerate(ext_ids)}
    rows: list[dict[str, Any]] = []
    empty: list[int] = []  # samples whose latest annotation holds no choice
    several: list[int] = []  # samples whose annotations disagree: only the latest is imported
    for t_idx, task in enumerate(tasks):
        where = f"{export_json}: task {task.get('id', t_idx) if isinstance(task, dict) else t_idx}"
        if not isinstance(task, dict):
            raise ValueError(f"{where}: not a JSON object")
        full = "data" in task or "annotations" in task or "completions" in task
        data = task.get("data", {}) if full else task
        sid = data.get("labeltrace_id")
        if sid is None and data.get("external_id") is not None:
            sid = by_ext.get(str(data["external_id"]))
        if isinstance(sid, str) and sid.strip().lstrip("-").isdigit():
            sid = int(sid)
        if not isinstance(sid, int) or isinstance(sid, bool) or not 0 <= sid < run.num_samples:
            raise ValueError(
                f"{where}: no sample matches (labeltrace_id {data.get('labeltrace_id')!r}, "
                f"external_id {data.get('external_id')!r})"
            )
        ext = data.get("external_id")
        if ext is not None and str(ext) not in by_ext:
            raise ValueError(
                f"{where}: names external_id {str(ext)!r}, which no sample of this run has (labeltrace_id {sid} "
                f"is {ext_ids[sid]!r}): an image renamed or replaced since the export, or a task file of "
                "another run?"
            )
        if ext is not None and by_ext.get(str(ext), sid) != sid:
            raise ValueError(
                f"{where}: labeltrace_id {sid} is this run's sample {ext_ids[sid]!r}, but the task names "
                f"external_id {str(ext)!r} (sample {by_ext[str(ext)]}): a task file of another run?"
            )
        if full:
            anns = [
                a
                for a in (task.get("annotations") or task.get("completions") or [])
                if isinstance(a, dict)
            ]
            if not anns:
                continue
            said = {annotation_says(a, classes, where) for a in anns if not a.get("was_cancelled")} - {None}
            if len(said) > 1:
                several.append(sid)
            last = max(
                enumerate(anns),
                key=lambda ka: (
                    iso(ka[1].get("updated_at") or ka[1].get("created_at")) or "",
                    ka[0],
                ),
            )[1]
            at = iso(last.get("updated_at") or last.get("created_at"))
            if last.get("was_cancelled"):
                dec: tuple[str, str] | None = ("skip", "skip")
            else:
                dec = decision_of(last.get("result") or [], classes, where)
        else:
            at = iso(task.get("updated_at") or task.get("created_at"))
            dec = min_decision(task, classes, where)
        if dec is None:  # an empty submission (a JSON-MIN entry without annotation fields was never annotated)
            if full or any(task.get(key) is not None for key in _MIN_ANNOTATION_KEYS):
                empty.append(sid)
            continue
        rows.append(
            {
                "sample_id": sid,
                "kind": dec[0],
                "decision": dec[1],
                "reviewer": LS_REVIEWER,
                "decided_at": at,
            }
        )
    said_by: dict[int, set[tuple[str, str]]] = {}  # JSON-MIN lists one entry per annotation: they may disagree too
    for r in rows:
        said_by.setdefault(r["sample_id"], set()).add((r["kind"], r["decision"]))
    several += [i for i, said in said_by.items() if len(said) > 1]
    # each sample's rows oldest first, so that its latest annotation is its current decision whatever
    # the file's order (a JSON-MIN export lists one entry per annotation; rows without a time, and
    # the samples among themselves, keep the file's order)
    first: dict[int, int] = {}
    for k, r in enumerate(rows):
        first.setdefault(r["sample_id"], k)
    rows.sort(key=lambda r: (first[r["sample_id"]], r["decided_at"] or ""))
    say = warn if warn is not None else (lambda m: warnings.warn(m, UserWarning, stacklevel=3))
    if empty:
        ids = sorted(set(empty))
        say(f"{export_json}: {len(empty)} task{'s' if len(empty) != 1 else ''} not imported: the latest "
            f"annotation of sample{'s' if len(ids) != 1 else ''} {listing(map(str, ids))} holds no class and no "
            "'unsure' (an empty submission); earlier annotations of those tasks are not used either — "
            "annotate them again, or decide them on the review page")  # fmt: skip
    if several:
        ids = sorted(set(several))
        say(f"{export_json}: the annotations of sample{'s' if len(ids) != 1 else ''} {listing(map(str, ids))} "
            "disagree (several annotators, or one who changed their mind); only the latest annotation of each "
            "counts, as the one reviewer 'labelstudio' — to count several annotators' votes, decide those "
            "samples on the review page under each annotator's name")  # fmt: skip
    store = run_store(run)
    before = run_verdicts(run).resolution.disputed.copy()
    stored = store.current(reviewer=LS_REVIEWER)
    stale = [r for r in rows if r["sample_id"] in stored and r["decided_at"] is not None
             and _not_newer(r, stored[r["sample_id"]])]  # fmt: skip
    # an annotation stored already (the same file imported again: its older entries) is a repeat,
    # which add_many skips, not an older export's
    # (one read of the table: one per stale sample took 27 s for 30,000 of them)
    touched = {r["sample_id"] for r in stale}
    had = {(d.sample_id, d.kind, d.decision, iso(d.decided_at)) for d in (store.history() if stale else [])
           if d.reviewer == LS_REVIEWER and d.sample_id in touched}  # fmt: skip
    stale = [r for r in stale if (r["sample_id"], r["kind"], r["decision"], iso(r["decided_at"])) not in had]
    if stale:
        ids = sorted({r["sample_id"] for r in stale})
        msg = (f"{export_json}: {len(stale)} annotation{'s' if len(stale) != 1 else ''} not imported: "
               f"no newer than the Label Studio decision already stored for sample"
               f"{'s' if len(ids) != 1 else ''} {listing(map(str, ids))} (an older export?); the stored "
               "decisions stay current")  # fmt: skip
        say(msg)
        left_out = {id(r) for r in stale}
        rows = [r for r in rows if id(r) not in left_out]
    n = store.add_many(rows, source=LS_REVIEWER)
    disputed = np.flatnonzero(run_verdicts(run).resolution.disputed & ~before)
    if disputed.size:  # the import disagrees with the review page's decisions there
        say(f"{export_json}: the import leaves sample{'s' if disputed.size != 1 else ''} "
            f"{listing(map(str, disputed.tolist()))} disputed (Label Studio's label against the review's): "
            "they keep their given labels until another vote settles them (review page: Next disputed)")
    return n


def _not_newer(row: dict[str, Any], stored: Any) -> bool:
    """Whether an imported row is no newer than the stored decision (a repeat of the stored
    decision itself is not: :meth:`ReviewStore.add_many` skips it as a duplicate)."""
    at, was = iso(row["decided_at"]), iso(stored.decided_at)
    if at is None or was is None or at > was:
        return False
    return not (at == was and (row["kind"], row["decision"]) == (stored.kind, stored.decision))
