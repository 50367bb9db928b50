"""The report's sections on copies filed under different labels: exact copies (the run's
``duplicates.parquet``) — at least one label of each group is wrong, whatever the scores say —
and likely copies (``near_duplicates.parquet``: re-encoded, resized, brighter or darker), to be
checked by eye; each group with its images side by side."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow.parquet as pq

from labeltrace import rundir
from labeltrace.report.content import thumbnail
from labeltrace.report.images import png_bytes, png_data_uri
from labeltrace.report.reviewed import ReviewView, review_badge
from labeltrace.rundir import Run

__all__ = ["MAX_GROUPS", "duplicates_html"]

MAX_GROUPS = 24
"""Conflicting groups drawn at most per section (the tables list every one)."""


def _section(run: Run, esc: Callable[[object], str], attr: Callable[[object], str], size: int, *, near: bool,
             review: ReviewView | None) -> str:  # fmt: skip
    path = run.path / (rundir.NEAR_DUPLICATES if near else rundir.DUPLICATES)
    if not path.is_file():
        return ""
    t = pq.read_table(path).to_pydict()
    groups: dict[int, list[int]] = {}
    for g, differ, i in zip(t["near_group" if near else "duplicate_group"], t["labels_differ"], t["id"], strict=True):
        if differ:
            groups.setdefault(int(g), []).append(int(i))
    if not groups:
        return ""
    label = dict(zip(t["id"], t["given_label"], strict=True))
    where = dict(zip(t["id"], t["path"], strict=True))
    close = dict(zip(t["id"], t["closest"], strict=True)) if near else {}
    rows = []
    for g in sorted(groups)[:MAX_GROUPS]:
        cards = []
        for i in groups[g]:
            img, err = thumbnail(run, i, size)
            pic = (f'<img alt="sample {i}" src="{png_data_uri(png_bytes(img))}">' if img is not None else
                   f'<div class="missing" title="{attr(err)}">image unavailable</div>')  # fmt: skip
            sim = f" · r {close[i]:.3f}" if near else ""
            # the given label plain: struck through (the suspects' "given" style) it read as the wrong one,
            # every copy's at once; the review's decision beside it, as on the suspects' cards
            cards.append(f'<div class="sus" data-id="{i}">{pic}<div class="lab"><span class="meta">id {i}{sim}</span>'
                         f'{review_badge(review, i, esc)}</div>'
                         f'<div class="lab meta file" title="{attr(where[i])}">{esc(where[i])}</div>'
                         f'<div class="lab"><span class="meta">given</span> <b>{esc(label[i])}</b></div></div>')  # fmt: skip
        rows.append(f"<h3>{'near-copy group' if near else 'group'} {g}</h3><div class='grid'>{''.join(cards)}</div>")
    more = len(groups) - MAX_GROUPS
    n = f"{len(groups)} group{'s' if len(groups) > 1 else ''}"
    if near:
        head = (f"<section id='near-duplicates'><h2>Likely copies under different labels ({n})</h2>"
                "<p class='note'>Each group's images are near-copies — their thumbnails correlate at "
                f"{esc(format(float(run.meta.get('near_duplicates', {}).get('threshold', 0.98)), 'g'))} or more "
                "(re-encoded, resized, brighter or darker; r: each image's closest in its group) — but not one label. "
                "Look at them: if they are one image, a label is wrong; a likely copy is not a sure one. Every group: "
                f"{esc(rundir.NEAR_DUPLICATES_CSV)}.")  # fmt: skip
    else:
        head = (f"<section id='duplicates'><h2>Exact copies under different labels ({n})</h2>"
                "<p class='note'>Each group's images have identical pixels but not one label: at least one label of "
                f"each group is wrong, whatever the scores say. Every group of copies: {esc(rundir.DUPLICATES_CSV)}.")
    return (head + (f" The first {MAX_GROUPS} are drawn; {more} more are in the table." if more > 0 else "")
            + "</p>" + "".join(rows) + "</section>")  # fmt: skip


def duplicates_html(run: Run, esc: Callable[[object], str], attr: Callable[[object], str], *, size: int = 96,
                    review: ReviewView | None = None) -> str:  # fmt: skip
    """The sections (``esc``, ``attr``: the page's escapes of text and of attributes): exact copies
    under different labels, then likely copies under different labels, each image with its given
    label and the review's decision (``review``, when a review has begun); "" for a run with neither
    (or one that predates the tables)."""
    return (_section(run, esc, attr, size, near=False, review=review)
            + _section(run, esc, attr, size, near=True, review=review))  # fmt: skip
