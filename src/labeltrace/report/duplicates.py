"""The report's section on exact copies filed under different labels (the run's
``duplicates.parquet``): each such group with its images side by side — at least one label of
each group is wrong, whatever the scores say."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow.parquet as pq

from labeltrace import rundir
from labeltrace.report.content import thumbnail
from labeltrace.report.images import png_bytes, png_data_uri
from labeltrace.rundir import Run

__all__ = ["MAX_GROUPS", "duplicates_html"]

MAX_GROUPS = 24
"""Conflicting groups drawn at most (the table lists every one)."""


def duplicates_html(run: Run, esc: Callable[[object], str], attr: Callable[[object], str], *, size: int = 96) -> str:
    """The section (``esc``, ``attr``: the page's escapes of text and of attributes), or "" when the run has no copies under different labels (or predates the
    duplicates table)."""
    path = run.path / rundir.DUPLICATES
    if not path.is_file():
        return ""
    t = pq.read_table(path).to_pydict()
    groups: dict[int, list[int]] = {}
    for g, differ, i in zip(t["duplicate_group"], t["labels_differ"], t["id"], strict=True):
        if differ:
            groups.setdefault(int(g), []).append(int(i))
    if not groups:
        return ""
    label = dict(zip(t["id"], t["given_label"], strict=True))
    where = dict(zip(t["id"], t["path"], strict=True))
    rows = []
    for g in sorted(groups)[:MAX_GROUPS]:
        cards = []
        for i in groups[g]:
            img, err = thumbnail(run, i, size)
            pic = (f'<img alt="sample {i}" src="{png_data_uri(png_bytes(img))}">' if img is not None else
                   f'<div class="missing" title="{attr(err)}">image unavailable</div>')  # fmt: skip
            cards.append(f'<div class="sus" data-id="{i}">{pic}<div class="lab"><span class="meta">id {i}</span></div>'
                         f'<div class="lab meta file" title="{attr(where[i])}">{esc(where[i])}</div>'
                         f'<div class="lab"><span class="given">{esc(label[i])}</span></div></div>')  # fmt: skip
        rows.append(f"<h3>group {g}</h3><div class='grid'>{''.join(cards)}</div>")
    more = len(groups) - MAX_GROUPS
    return (f"<section id='duplicates'><h2>Exact copies under different labels ({len(groups)} "
            f"group{'s' if len(groups) > 1 else ''})</h2>"
            "<p class='note'>Each group's images have identical pixels but not one label: at least one label of "
            f"each group is wrong, whatever the scores say. Every group of copies: {esc(rundir.DUPLICATES_CSV)}."
            + (f" The first {MAX_GROUPS} are drawn; {more} more are in the table." if more > 0 else "")
            + "</p>" + "".join(rows) + "</section>")  # fmt: skip
