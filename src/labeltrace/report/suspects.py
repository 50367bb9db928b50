"""The report's suspects section: a card per top suspect (its thumbnail, given and suggested label,
score, truth badge and review decision) and the note on the images that could not be shown."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from labeltrace._checks import listing
from labeltrace.report import stats
from labeltrace.report.content import (
    ReportData,
    escape_attr,
    escape_html,
    score_reads,
    suspects_heading,
)
from labeltrace.report.images import png_bytes, png_data_uri
from labeltrace.report.reviewed import ReviewView, review_badge

__all__ = ["suspects_html", "unavailable_text"]

_e = escape_html  # every value a user gave goes through it (in text)
_a = escape_attr  # (in an attribute)
_share = stats.share_text


def _num(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return "—"
    return f"{v:.{digits}g}"


def _suspect_card(d: ReportData, i: int, img: np.ndarray | None, err: str | None,
                  review: ReviewView | None = None) -> str:  # fmt: skip
    g, s = d.classes[d.given[i]], d.classes[d.suggested[i]]
    if img is not None:
        pic = f'<img alt="sample {i}" src="{png_data_uri(png_bytes(img))}">'
    else:
        pic = f'<div class="missing" title="{_a(err)}">image unavailable</div>'
    if g != s:
        labels = f'<span class="given">{_e(g)}</span> → <span class="sugg">{_e(s)}</span>'
    else:
        labels = f'<span class="same">{_e(g)}</span> <span class="meta">(model agrees)</span>'
    badge = ""
    if d.noisy is not None and d.noisy[i]:
        truth = _a(d.true_label[i]) if d.true_label is not None else "?"  # an attribute: no <bdi> element
        badge = f'<span class="badge noisy" title="true label: {truth}">mislabeled</span>'
    elif d.noisy is not None:
        badge = '<span class="badge clean">clean</span>'
    sei = ""
    if d.sei is not None and d.score_name.lower() != "sei":
        sei = f" · SEI {_num(d.sei[i])}"
    state = "flagged" if d.flagged[i] else "unflagged"
    ext, path = str(d.external_id[i]), str(d.path[i])
    where = _e(ext) if path == ext else f"{_e(ext)} · {_e(path)}"  # the file to look up (a manifest's id and its file)
    return (
        f'<div class="sus {state}" data-id="{i}">{pic}'
        f'<div class="lab"><span class="rk">#{int(d.rank[i])}</span> '
        f'<span class="meta">id {i}</span>{badge}{review_badge(review, i, _e)}</div>'
        f'<div class="lab meta file" title="{_a(path)}">{where}</div>'
        f'<div class="lab">{labels}</div>'
        f'<div class="meta">{_e(d.score_name)} {_num(d.score[i])}{sei} · '
        f"p {_share(d.suggested_prob[i], 2)}</div></div>"
    )


def suspects_html(
    d: ReportData, ids: np.ndarray, thumbs: list[tuple[np.ndarray | None, str | None]],
    review: ReviewView | None = None,
) -> str:
    cards = "".join(
        _suspect_card(d, int(i), img, err, review) for i, (img, err) in zip(ids, thumbs, strict=True)
    )
    nflag = int(d.flagged[ids].sum())
    missing = unavailable_text(ids, thumbs)
    return (
        f"<section><h2>{suspects_heading(len(ids), nflag)}</h2>"
        + (f'<div class="quality warn">{_e(missing)}.</div>' if missing else "")
        + 
        "<p class='note'>Ranked by the detector's score (rank 1 = most suspect); "
        f"{nflag} of them flagged (red top edge). Given label struck through, the model's "
        "suggestion in green; <i>p</i> is the suggestion's probability under the posterior behind the "
        f"suggestions, while the score that ranks and flags {score_reads(d)}, so a confident "
        "suggestion can rank below a less confident one.</p>"
        f"<div class='grid'>{cards}</div></section>"
    )


def unavailable_text(ids: np.ndarray, thumbs: list[tuple[np.ndarray | None, str | None]]) -> str | None:
    """What the report says when some of the suspects' images could not be shown, with why."""
    why = Counter(str(err) for img, err in thumbs if img is None)
    if not why:
        return None
    return (f"{why.total()} of the {len(ids)} suspects' images could not be shown (drawn as 'image unavailable'): "
            + listing((f"{n} × {w}" if n > 1 else w for w, n in why.most_common()), limit=3))
