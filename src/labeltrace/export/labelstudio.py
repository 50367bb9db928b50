"""Label Studio: the labeling config and one task per sample, in review order (see
:mod:`labeltrace.export` for the task fields; :mod:`labeltrace.export.labelstudio_import` reads the
results back)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from labeltrace._checks import listing
from labeltrace._warn import warn_caller
from labeltrace.export.labelstudio_images import (
    MAX_SIDE,
    ImageMode,
    check_document_root,
    document_root_of,
    task_image,
)
from labeltrace.export.labelstudio_results import LS_LABEL, LS_REVIEW
from labeltrace.relabel.order import every_sample_in_review_order
from labeltrace.relabel.verdicts import run_verdicts
from labeltrace.rundir import Run

__all__ = ["MAX_SIDE", "ImageMode", "iter_labelstudio_tasks", "labelstudio_config", "labelstudio_tasks",
           "report_problems"]

LS_IMAGE = "image"  # to_name / data key


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
        '    <Choice value="exclude" hint="the image is of no class (a wrong view, a blank scan)"/>\n'
        "  </Choices>\n"
        "</View>\n"
    )


#: the pre-annotation a task opens with: its label as it stands (the given one, or the review's consensus)
CURRENT_LABEL = "current-label"


def _choice(label: str, control: str = LS_LABEL) -> list[dict[str, Any]]:
    return [
        {
            "from_name": control,
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
    storage: list[tuple[Path, Path]] | None = None,
) -> list[dict[str, Any]]:
    """Label Studio tasks of a run, in review-queue order (see the module docstring).

    A sample whose image cannot be exported (changed or gone since the scan, unreadable, outside
    the run's allowed roots) is still exported, with ``data.image`` empty and the reason in
    ``data.image_error``; ``warn`` (default :func:`warnings.warn`) then gets one message that
    counts and names them. When no image at all can be exported, ``ValueError``; a local-files
    export with images outside the document root is refused (:func:`check_document_root`), and
    ``(document root, Local Files storage folder)`` appended to ``storage`` when a task links a file
    (:func:`~labeltrace.export.labelstudio_images.local_files_setup` says what Label Studio needs).
    (The export writes them to its file one at a time, through :func:`iter_labelstudio_tasks`.)
    """
    problems: list[tuple[int, str]] = []
    embedded: list[int] = []
    shrunk: list[int] = []
    tasks = list(iter_labelstudio_tasks(run, problems, images=images, document_root=document_root,
                                        only_suspects=only_suspects, image_size=image_size, max_side=max_side,
                                        embedded=embedded, shrunk=shrunk, storage=storage))  # fmt: skip
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
    storage: list[tuple[Path, Path]] | None = None,
) -> Iterator[dict[str, Any]]:
    """The tasks of :func:`labelstudio_tasks` one at a time (a data-URI task holds its image: all
    of a large set's would not fit in memory); each sample whose image could not be exported is
    appended to ``problems`` as ``(sample id, reason)`` (:func:`report_problems` tells of them).
    With ``images="local-files"`` a file a browser does not show as it is (DICOM, TIFF, a 16-bit
    PNG) is embedded as a PNG data URI instead, display-scaled as the review page shows it (to
    about ``image_size``, larger images shrunk too), and its sample id appended to ``embedded``.
    A data-URI image larger than ``max_side`` pixels (None: no limit) is shrunk to it, its id
    appended to ``shrunk``. A local-files export is checked first (:func:`check_document_root`), and
    ``(document root, Local Files storage folder)`` appended to ``storage`` when a task links a file
    (:func:`~labeltrace.export.labelstudio_images.local_files_setup` says what Label Studio needs)."""
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
        folder = check_document_root(run, order, root)
        if folder is not None and storage is not None:
            storage.append((root, folder))
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
    now = v.final  # the label as it stands: the consensus where settled (-1: excluded), else the given one
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
                # the current label last: Label Studio pre-selects the last prediction's model version
                # on a project's first import, and Submit unchanged must keep the label as it stands —
                # a relabel the review settled too (ticking the given one, a second round's click-through
                # took back every relabel of the first), not take the model's suggestion
                "predictions": [
                    {
                        "model_version": "labeltrace",
                        "score": float(prob[i]) if np.isfinite(prob[i]) else 0.0,
                        "result": _choice(classes[sugg[i]]),
                    },
                    {"model_version": CURRENT_LABEL,
                     "result": _choice(classes[now[i]]) if now[i] >= 0 else _choice("exclude", LS_REVIEW)},
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
    say = warn or warn_caller
    if shrunk:
        say(f"{len(shrunk)} of {total} images {'is' if len(shrunk) == 1 else 'are'} larger than {max_side} px: "
            f"embedded shrunk to {max_side} px on their longer side (--max-side 0 embeds them whole, a file several "
            "times their size; --images local-files links the files themselves)")  # fmt: skip
    if embedded:
        paths = run.column("path") if run is not None else None
        say(f"{len(embedded)} of {total} images {'is a file' if len(embedded) == 1 else 'are files'} a browser does "
            "not show as they are (DICOM, TIFF, a 16-bit PNG: a blank or nearly black task): embedded as PNG data URIs "
            "instead, display-scaled to about 256 px (the file grows with each; --only-suspects keeps it small): "
            + listing(f"sample {i}" + (f" ({paths[i]})" if paths is not None else "") for i in embedded))  # fmt: skip
    if not problems:
        return
    # a reason that names its sample already ("sample 7: its image file ...") is not prefixed twice
    listed = listing(f"sample {i} ({why.removeprefix(f'sample {i}: ')})" for i, why in problems)
    if len(problems) == total:
        raise ValueError(f"no image could be exported ({total} samples): {listed}")
    what = "left out of the export" if left_out else "exported without image"
    say(f"{len(problems)} of {total} images could not be exported ({what}): {listed}")
