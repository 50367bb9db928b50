"""Exports of a run to labeling tools, and Label Studio results back into the review log.

``export_run(run_dir, to, out)`` with ``to`` one of:

* ``"labelstudio"`` — a Label Studio tasks JSON (import it in a project whose labeling config
  is the ``<out stem>.config.xml`` written beside it). One task per sample, in review-queue
  order, with

  - ``data.image``: the image as a ``data:image/png;base64`` URI (``images="data-uri"``,
    self-contained; tiny images enlarged by an integer factor with nearest neighbour), or a
    Label Studio local-files URL ``/data/local-files/?d=<path relative to document_root>``
    (``images="local-files"``; start Label Studio with
    ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
    ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<document_root>``);
  - ``data.labeltrace_id`` (the sample id, used to read results back), ``external_id``,
    ``given_label``, ``suggested_label``, ``score``, ``rank``, ``is_suspect`` and ``info`` (a
    one-line summary shown as the task's header);
  - two ``predictions`` (Label Studio's pre-annotations): the given label
    (``model_version="given-label"``) first, then the suggested label with its posterior
    probability as ``score`` (``model_version="labeltrace"``).

  The config has a single-choice ``label`` control with one choice per class and a
  ``review`` control with the choice ``unsure``; a skipped (cancelled) annotation reads back
  as ``skip``.
* ``"csv"`` / ``"parquet"`` — the samples table in queue order with ``queue_position`` and the
  current review (``review_decision``, ``reviewer``, ``reviewed_at``, ``final_label``).
* ``"fiftyone"`` — a persistent FiftyOne dataset (optional extra; ``out`` is its name) with
  fields ``given``, ``suggested`` (classifications), ``sei``, ``score``, ``rank``,
  ``is_suspect`` (and ``ground_truth`` when known).

:func:`import_labelstudio` reads a Label Studio JSON (or JSON-MIN) export back and writes its
decisions into ``reviews.db`` with reviewer ``"labelstudio"``, so
:func:`labeltrace.review.export_labels` produces the cleaned label file from them.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np
import pyarrow as pa

from labeltrace.report.images import display_image, load_rgb, png_bytes, png_data_uri
from labeltrace.review.labels import final_labels
from labeltrace.review.order import review_order
from labeltrace.review.store import ReviewStore
from labeltrace.rundir import REVIEWS_DB, Run, atomic_write, open_run, write_json, write_table

__all__ = [
    "TARGETS",
    "export_run",
    "import_labelstudio",
    "labelstudio_config",
    "labelstudio_tasks",
]

Target = Literal["labelstudio", "csv", "parquet", "fiftyone"]
TARGETS: tuple[str, ...] = ("labelstudio", "csv", "parquet", "fiftyone")
ImageMode = Literal["data-uri", "local-files"]
LS_LABEL = "label"  # from_name of the class choice
LS_REVIEW = "review"  # from_name of the "unsure" choice
LS_IMAGE = "image"  # to_name / data key
LS_REVIEWER = "labelstudio"


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


def _ls_image(run: Run, i: int, images: ImageMode, document_root: Path | None, size: int) -> str:
    if images == "data-uri":
        img = load_rgb(run, i)
        if max(img.shape[:2]) < size:
            img = display_image(img, size=size)
        return png_data_uri(png_bytes(img))
    f = run.image_file(i)
    if f is None:
        raise ValueError(
            f"sample {i} has no image file (array dataset); "
            "export Label Studio tasks with images='data-uri'"
        )
    root = (document_root or run.data_root or f.parent).resolve()
    if not f.is_relative_to(root):
        raise ValueError(
            f"sample {i}: image {f} lies outside the Label Studio document root {root}"
        )
    return "/data/local-files/?d=" + quote(f.relative_to(root).as_posix())


def labelstudio_tasks(
    run: Run,
    *,
    images: ImageMode = "data-uri",
    document_root: str | os.PathLike[str] | None = None,
    only_suspects: bool = False,
    image_size: int = 256,
) -> list[dict[str, Any]]:
    """Label Studio tasks of a run, in review-queue order (see the module docstring)."""
    if images not in ("data-uri", "local-files"):
        raise ValueError(f"images must be 'data-uri' or 'local-files', got {images!r}")
    root = Path(document_root) if document_root is not None else None
    order = review_order(run)
    if only_suspects:
        order = order[run.column("is_suspect").astype(bool)[order]]
    classes = run.classes
    given = run.column("given_label_id").astype(np.int64)
    sugg = run.column("suggested_label_id").astype(np.int64)
    prob = run.column("suggested_prob").astype(np.float64)
    score = run.column("score").astype(np.float64)
    rank = run.column("rank").astype(np.int64)
    sus = run.column("is_suspect").astype(bool)
    ext = run.column("external_id")
    tasks = []
    for i in order.tolist():
        tasks.append(
            {
                "data": {
                    LS_IMAGE: _ls_image(run, i, images, root, image_size),
                    "labeltrace_id": i,
                    "external_id": str(ext[i]),
                    "given_label": classes[given[i]],
                    "suggested_label": classes[sugg[i]],
                    "score": float(score[i]) if np.isfinite(score[i]) else None,
                    "rank": int(rank[i]),
                    "is_suspect": bool(sus[i]),
                    "info": f"given: {classes[given[i]]} · suggested: {classes[sugg[i]]} "
                    f"(p {prob[i]:.2f}) · rank {int(rank[i])} · score {score[i]:.3g}",
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
    return tasks


def _iso(ts: Any) -> str | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        t = _dt.datetime.fromisoformat(ts)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    return t.astimezone(_dt.UTC).isoformat(timespec="milliseconds")


def _decision_of(
    results: list[dict[str, Any]], classes: set[str], where: str
) -> tuple[str, str] | None:
    """(kind, decision) from an annotation's result list, or None when it holds no choice."""
    label: str | None = None
    unsure = False
    for r in results:
        if r.get("type") != "choices":
            continue
        vals = (r.get("value") or {}).get("choices") or []
        if r.get("from_name") == LS_REVIEW:
            unsure |= "unsure" in vals
        elif r.get("from_name") == LS_LABEL or (vals and set(vals) <= classes):
            if len(vals) != 1:
                raise ValueError(f"{where}: expected one class choice, got {vals}")
            label = str(vals[0])
    if label is not None:
        if label not in classes:
            raise ValueError(f"{where}: unknown class {label!r}; classes are {sorted(classes)}")
        return "label", label
    return ("unsure", "unsure") if unsure else None


def _min_decision(task: dict[str, Any], classes: set[str], where: str) -> tuple[str, str] | None:
    """JSON-MIN export: the control values are top-level keys of the task."""
    v = task.get(LS_LABEL)
    if isinstance(v, dict):
        v = v.get("choices")
    if isinstance(v, list):
        if len(v) != 1:
            raise ValueError(f"{where}: expected one class choice, got {v}")
        v = v[0]
    if v is not None:
        if v not in classes:
            raise ValueError(f"{where}: unknown class {v!r}; classes are {sorted(classes)}")
        return "label", str(v)
    r = task.get(LS_REVIEW)
    if r == "unsure" or (
        isinstance(r, (list, dict))
        and "unsure" in (r if isinstance(r, list) else r.get("choices", []))
    ):
        return "unsure", "unsure"
    return None


def import_labelstudio(run_dir: str | os.PathLike[str], export_json: str | os.PathLike[str]) -> int:
    """Read a Label Studio export (JSON or JSON-MIN) into ``reviews.db``; returns rows written.

    Each task is matched by ``data.labeltrace_id`` (else ``external_id``). Of a task's
    annotations the latest one (``updated_at`` / ``created_at``, then list order) counts: a
    class choice → relabel decision, ``review: unsure`` → ``unsure``, a cancelled (skipped)
    annotation → ``skip``. Rows are stored with reviewer and source ``"labelstudio"`` and the
    annotation's time; importing the same file twice writes nothing new. All tasks are checked
    before anything is written.

    Raises
    ------
    ValueError
        Unreadable JSON, a task that matches no sample, or an unknown class (naming the task).
    """
    run = open_run(run_dir)
    try:
        tasks = json.loads(Path(export_json).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{export_json}: cannot read a Label Studio export: {exc}") from exc
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise ValueError(f"{export_json}: expected a JSON list of tasks")
    classes = set(run.classes)
    by_ext = {str(e): i for i, e in enumerate(run.column("external_id"))}
    rows: list[dict[str, Any]] = []
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
        if full:
            anns = [
                a
                for a in (task.get("annotations") or task.get("completions") or [])
                if isinstance(a, dict)
            ]
            if not anns:
                continue
            last = max(
                enumerate(anns),
                key=lambda ka: (
                    _iso(ka[1].get("updated_at") or ka[1].get("created_at")) or "",
                    ka[0],
                ),
            )[1]
            at = _iso(last.get("updated_at") or last.get("created_at"))
            if last.get("was_cancelled"):
                dec: tuple[str, str] | None = ("skip", "skip")
            else:
                dec = _decision_of(last.get("result") or [], classes, where)
        else:
            at = _iso(task.get("updated_at") or task.get("created_at"))
            dec = _min_decision(task, classes, where)
        if dec is None:
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
    store = ReviewStore(run.path / REVIEWS_DB, classes=run.classes, num_samples=run.num_samples)
    return store.add_many(rows, source=LS_REVIEWER)


# --------------------------------------------------------------------------- tables
def _review_table(run: Run) -> pa.Table:
    """The samples table in queue order with the queue position and the current review."""
    order = review_order(run)
    final, decision = final_labels(run)
    reviewer = np.full(run.num_samples, None, dtype=object)
    at = np.full(run.num_samples, None, dtype=object)
    if (run.path / REVIEWS_DB).exists():
        store = ReviewStore(run.path / REVIEWS_DB, classes=run.classes, num_samples=run.num_samples)
        cur = store.current()
        if cur:
            ids = np.fromiter(cur.keys(), dtype=np.int64, count=len(cur))
            reviewer[ids] = [d.reviewer for d in cur.values()]
            at[ids] = [d.decided_at for d in cur.values()]
    t = run.samples.take(pa.array(order))
    dec = np.where(decision == "", None, decision)
    return (
        t.append_column("queue_position", pa.array(np.arange(order.size, dtype=np.int64)))
        .append_column("review_decision", pa.array(dec[order].tolist(), pa.string()))
        .append_column("reviewer", pa.array(reviewer[order].tolist(), pa.string()))
        .append_column("reviewed_at", pa.array(at[order].tolist(), pa.string()))
        .append_column(
            "final_label",
            pa.array(np.asarray(run.classes, dtype=object)[final[order]].tolist(), pa.string()),
        )
    )


# --------------------------------------------------------------------------- FiftyOne
def _fiftyone(run: Run, name: str | None) -> str:
    try:
        import fiftyone as fo
    except ImportError as exc:
        from labeltrace.data.base import MissingDependencyError

        raise MissingDependencyError(
            "export --to fiftyone needs FiftyOne, an optional extra: "
            "pip install 'labeltrace[fiftyone]' (or pip install fiftyone)"
        ) from exc
    classes = run.classes
    given = run.column("given_label_id").astype(np.int64)
    sugg = run.column("suggested_label_id").astype(np.int64)
    prob = run.column("suggested_prob").astype(np.float64)
    score = run.column("score").astype(np.float64)
    sei = run.column("sei").astype(np.float64) if "sei" in run.samples.column_names else score
    rank = run.column("rank").astype(np.int64)
    sus = run.column("is_suspect").astype(bool)
    truth = (
        run.column("true_label_id").astype(np.int64)
        if "true_label_id" in run.samples.column_names
        else None
    )
    img_dir = run.path / "fiftyone_images"
    samples = []
    for i in review_order(run).tolist():
        f = run.image_file(i)
        if f is None:
            f = img_dir / f"{i:07d}.png"
            if not f.exists():
                png = png_bytes(load_rgb(run, i))
                atomic_write(f, lambda fh, b=png: fh.write(b))
        s = fo.Sample(
            filepath=str(f),
            labeltrace_id=i,
            given=fo.Classification(label=classes[given[i]]),
            suggested=fo.Classification(label=classes[sugg[i]], confidence=float(prob[i])),
            sei=float(sei[i]),
            score=float(score[i]),
            rank=int(rank[i]),
            is_suspect=bool(sus[i]),
        )
        if truth is not None:
            s["ground_truth"] = fo.Classification(label=classes[truth[i]])
        samples.append(s)
    ds = fo.Dataset(name or f"labeltrace-{run.path.resolve().name}", overwrite=True)
    ds.persistent = True
    ds.add_samples(samples)
    return str(ds.name)


# --------------------------------------------------------------------------- entry point
def export_run(
    run_dir: str | os.PathLike[str],
    to: Target,
    out: str | os.PathLike[str] | None = None,
    *,
    images: ImageMode = "data-uri",
    document_root: str | os.PathLike[str] | None = None,
    only_suspects: bool = False,
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
    images, document_root, only_suspects
        Label Studio only: image embedding mode, local-files document root (default the data
        root), and whether to export the flagged samples alone.

    Returns
    -------
    Path or str
        The written file (the Label Studio config is written beside it as
        ``<stem>.config.xml``), or the FiftyOne dataset name.
    """
    if to not in TARGETS:
        raise ValueError(f"unknown export target {to!r}; choose one of {TARGETS}")
    run = open_run(run_dir)
    if to == "fiftyone":
        return _fiftyone(run, None if out is None else str(out))
    if to == "labelstudio":
        path = Path(out) if out is not None else run.path / "labelstudio_tasks.json"
        tasks = labelstudio_tasks(
            run, images=images, document_root=document_root, only_suspects=only_suspects
        )
        write_json(path, tasks)
        xml = labelstudio_config(run.classes).encode("utf-8")
        atomic_write(path.with_name(path.stem + ".config.xml"), lambda fh: fh.write(xml))
        return path
    path = Path(out) if out is not None else run.path / f"export.{to}"
    if path.suffix != f".{to}":
        raise ValueError(f"{path}: a {to} export must end in .{to}")
    return write_table(path, _review_table(run))
