"""A persistent FiftyOne dataset of a run (optional extra)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from labeltrace._io import atomic_write_bytes
from labeltrace.export.labelstudio import report_problems
from labeltrace.relabel.order import every_sample_in_review_order
from labeltrace.relabel.verdicts import run_verdicts
from labeltrace.report.images import load_rgb, png_bytes
from labeltrace.rundir import FIFTYONE_IMAGES, Run

__all__ = ["to_fiftyone"]


def to_fiftyone(run: Run, name: str | None, *, warn: Callable[[str], None] | None = None,
                overwrite: bool = False) -> str:  # fmt: skip
    """A persistent FiftyOne dataset of ``run``; samples whose image cannot be exported are left
    out and named in one ``warn`` message (see :func:`labeltrace.export.export_run`). Each sample
    holds the model's view (``given``, ``suggested``, ``score``, ``rank``, ``is_suspect``, ``sei``),
    the review so far (``review_decision`` / ``review_status`` of a decided sample, as in the cleaned
    labels) and ``final``, its label after the review. An existing dataset of that name — an earlier
    export of this run included: the tags and edits made in FiftyOne would be lost — is replaced only
    with ``overwrite`` (``ValueError`` otherwise), checked before any image is written."""
    try:
        import fiftyone as fo
    except ImportError as exc:
        from labeltrace.data.errors import MissingDependencyError

        raise MissingDependencyError(
            "export --to fiftyone needs FiftyOne, an optional extra: "
            "pip install 'labeltrace[fiftyone]' (or pip install fiftyone)"
        ) from exc
    name = name or f"labeltrace-{run.path.resolve().name}"
    owner = str(run.path.resolve())  # recorded in the dataset's info, for the message below
    if not overwrite and fo.dataset_exists(name):
        mine = (getattr(fo.load_dataset(name), "info", None) or {}).get("labeltrace_run") == owner
        raise ValueError(f"a FiftyOne dataset named {name!r} already exists ("
                         + ("an earlier export of this run" if mine else "not an export of this run")
                         + "); pass --overwrite (overwrite=True) to replace it — the tags, labels and views "
                         "added to it in FiftyOne are lost — or choose another name with --out")  # fmt: skip
    classes = run.classes
    given = run.column("given_label_id").astype(np.int64)
    sugg = run.column("suggested_label_id").astype(np.int64)
    prob = run.column("suggested_prob").astype(np.float64)
    score = run.column("score").astype(np.float64)
    sei = run.column("sei").astype(np.float64) if "sei" in run.samples.column_names else None
    rank = run.column("rank").astype(np.int64)
    v = run_verdicts(run)  # the experts' review so far: the export carries it beside the model's view
    decision, status = v.decision_text(classes), v.status_text()
    sus = run.column("is_suspect").astype(bool)
    truth = (
        run.column("true_label_id").astype(np.int64)
        if "true_label_id" in run.samples.column_names
        else None
    )
    img_dir = run.path / FIFTYONE_IMAGES  # a new scan (--force) removes it: never another scan's images
    samples = []
    order = every_sample_in_review_order(run)[0].tolist()
    problems: list[tuple[int, str]] = []
    for i in order:
        try:
            f = run.scanned_image_file(i)  # a file changed or gone since the scan is not linked
            if f is None:
                f = img_dir / f"{i:07d}.png"
                if not f.exists():
                    png = png_bytes(load_rgb(run, i))
                    atomic_write_bytes(f, png)
        except (ValueError, OSError) as exc:  # one sample, not the export
            problems.append((i, str(exc)))
            continue
        s = fo.Sample(
            filepath=str(f),
            labeltrace_id=i,
            given=fo.Classification(label=classes[given[i]]),
            suggested=fo.Classification(label=classes[sugg[i]], confidence=float(prob[i])),
            score=float(score[i]),
            rank=int(rank[i]),
            is_suspect=bool(sus[i]),
        )
        if sei is not None:  # a run without SEI has none: its score is another detector's
            s["sei"] = float(sei[i])
        if truth is not None:
            s["ground_truth"] = fo.Classification(label=classes[truth[i]])
        if status[i]:  # decided: the review's decision and status, as in the cleaned labels
            s["review_decision"], s["review_status"] = str(decision[i]), str(status[i])
        s["final"] = fo.Classification(label=classes[v.final[i]])
        samples.append(s)
    report_problems(problems, len(order), warn, left_out=True)
    ds = fo.Dataset(name, overwrite=overwrite)
    ds.persistent = True
    ds.info["labeltrace_run"] = owner
    ds.save()
    ds.add_samples(samples)
    return str(ds.name)
