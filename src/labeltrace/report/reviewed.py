"""The review so far, as the report shows it: the scan's flags and ranks are the model's view,
and a report made after experts decided samples says what they decided (counts, and a badge on
each decided suspect), so that it never reads as if nobody had looked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from labeltrace.relabel.runstore import open_store, set_aside_text
from labeltrace.relabel.verdicts import verdicts
from labeltrace.rundir import Run

__all__ = ["ReviewView", "aside_html", "review_badge", "review_html", "review_view"]


@dataclass(frozen=True)
class ReviewView:
    """Per sample: the review's decision and status (as in the cleaned labels,
    :meth:`~labeltrace.relabel.verdicts.Verdicts.status_text`), whether the consensus changed the
    label, whether the votes disagree, whether it is reviewed and skipped as the review page counts
    them (:attr:`~labeltrace.relabel.verdicts.Verdicts.reviewed`, ``skipped``); the consensus rule
    and the latest decision's time."""

    decision: np.ndarray
    status: np.ndarray
    changed: np.ndarray
    disputed: np.ndarray
    rule: str
    latest: str
    reviewed: np.ndarray
    skipped: np.ndarray


def review_view(run: Run) -> ReviewView | None:
    """The run's review, or None when nobody has decided a sample yet."""
    store = open_store(run)
    if store is None:
        return None
    current = store.current()
    if not current:
        return None
    v = verdicts(store, run.column("given_label_id"), len(run.classes))  # the store opened above, not again
    latest = max(d.decided_at for d in current.values())
    return ReviewView(v.decision_text(run.classes), v.status_text(), v.changed, v.resolution.disputed.copy(),
                      v.rule.describe(), latest, v.reviewed, v.skipped)  # fmt: skip


def review_html(r: ReviewView, esc: Callable[[object], str]) -> str:
    """The report's Review section: its first count is the review page's ("5 / 120 reviewed ·
    4 labels changed · 1 skipped"), over every sample; a skip is no review."""
    st = r.status
    reviewed, n = int(r.reviewed.sum()), st.size
    parts = [f"<b>{reviewed:,}</b> of {n:,} sample{'s' if n != 1 else ''} reviewed (latest decision "
             f"{esc(r.latest.replace('T', ' ')[:19])} UTC; {esc(r.rule)})",
             f"<b>{int(r.changed.sum()):,}</b> label{'s' if int(r.changed.sum()) != 1 else ''} changed by consensus",
             f"{int(np.isin(st, ['consensus', 'excluded']).sum()):,} settled", f"{int(r.disputed.sum()):,} disputed",
             f"{int((st == 'no consensus').sum()) - int(r.disputed.sum()):,} short of votes",
             f"{int((st == 'unsure').sum()):,} unsure", f"{int(r.skipped.sum()):,} skipped"]  # fmt: skip
    excluded = int((st == "excluded").sum())  # settled as of no class: the cleaned labels leave them out
    if excluded:
        parts.insert(2, f"<b>{excluded:,}</b> excluded as of no class (left out of the cleaned labels)")
    return (
        "<section id='review'><h2>Review</h2><p>" + " · ".join(parts) + ".</p>"
        "<p class='note'>Reviewed, as the review page counts without a reviewer's name: settled by the votes under "
        "the rule or, where one vote settles a sample, given a label, excluded or marked unsure; a skipped sample is "
        "still to review (a named reviewer's page counts that reviewer's own decisions too). "
        "The flags, ranks and suggestions in this report are the run's (the model's view); "
        "a suspect an expert decided carries the review's decision. The cleaned labels: "
        "<code>labeltrace review RUN_DIR --export FILE</code>.</p></section>"
    )


def aside_html(run: Run, esc: Callable[[object], str]) -> str:
    """A warning paragraph when a scan with ``--force`` set decision files aside ("" when none):
    their decisions are in neither the report nor the exports."""
    aside = set_aside_text(run)
    return "" if aside is None else f"<section id='set-aside'><p class='warn'>⚠ {esc(aside)}.</p></section>"


def review_badge(r: ReviewView | None, i: int, esc: Callable[[object], str]) -> str:
    """A suspect card's badge: the review's decision of sample ``i`` ("" when undecided)."""
    if r is None or not r.status[i]:
        return ""
    status = str(r.status[i])
    text = f"reviewed: {r.decision[i]}" if status == "consensus" else f"reviewed: {status}"
    return f'<span class="badge reviewed {esc(status.replace(" ", "-"))}">{esc(text)}</span>'
