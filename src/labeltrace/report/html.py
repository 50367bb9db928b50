"""``write_report``: one self-contained HTML page (or a folder of PNG figures) for a run.

What the page shows (the run's columns, the top suspects, the figures) is read and drawn by
:mod:`labeltrace.report.content`; this module lays it out as HTML (the suspects section:
:mod:`labeltrace.report.suspects`).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import warnings
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from labeltrace import rundir
from labeltrace._checks import listing
from labeltrace._io import atomic_write_bytes
from labeltrace._warn import warn_caller
from labeltrace.diagnostics import contradicted_texts
from labeltrace.relabel.runstore import notices
from labeltrace.report import plots, stats
from labeltrace.report.content import (
    ReportData,
    escape_attr,
    escape_html,
    figures,
    read_report_data,
    thumbnail,
    top_ids,
)
from labeltrace.report.duplicates import duplicates_html
from labeltrace.report.images import png_data_uri
from labeltrace.report.reviewed import aside_html, review_html, review_view
from labeltrace.report.summary import agreement_text, cut_text, estimate_note, settled_text
from labeltrace.report.suspects import suspects_html, unavailable_text
from labeltrace.run_claim import sharing
from labeltrace.run_moved import missing_root_text
from labeltrace.rundir import open_run

__all__ = ["PNG_FIGURES", "write_report"]

ReportFormat = Literal["html", "png"]
#: the most suspects a report shows (each a thumbnail drawn into the page or the PNG grid)
MAX_TOP = 1000
#: every figure ``format="png"`` may write; the ones a report does not draw are removed from its folder
PNG_FIGURES = ("score_histogram", "signed_entropy_trajectories", "precision_recall", "top_suspects")


_e = escape_html  # every value a user gave goes through it (in text)
_a = escape_attr  # (in an attribute)
_share = stats.share_text


def _pct(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{100 * x:.1f}%"


def _describe(v: Any) -> str:
    """A short plain-text rendering of a config value (str, number, dict with a name)."""
    if v is None:
        return "—"
    if isinstance(v, dict):
        name = v.get("name") or v.get("model") or v.get("backbone")
        return str(name) if name else ", ".join(f"{k}={w}" for k, w in v.items())
    return str(v)


# --------------------------------------------------------------------------- HTML
@lru_cache(maxsize=1)
def _css() -> str:
    return (resources.files("labeltrace.report") / "report.css").read_text(encoding="utf-8")


def _card(k: str, v: str, s: str = "") -> str:
    return f'<div class="card"><div class="k">{_e(k)}</div><div class="v">{_e(v)}</div>' + (
        f'<div class="s">{_e(s)}</div></div>' if s else "</div>"
    )


def _summary_html(d: ReportData) -> str:
    meta = d.run.meta
    data = meta.get("data") or {}
    cfg = meta.get("config") or {}
    det = meta.get("detector") or {}
    counts = meta.get("counts") or {}
    nflag = int(d.flagged.sum())
    est = meta.get("noise_rate_estimate", counts.get("noise_rate_estimate"))
    proto = meta.get("protocol") or {}
    epochs = cfg.get("epochs") or proto.get("epochs_planned") or (meta.get("train") or {}).get("epochs")
    if epochs is None and d.signed_entropy is not None:
        epochs = d.signed_entropy.shape[0]
    trained = proto.get("epochs_trained")  # fewer under --early-stop
    if epochs is not None and trained is not None and trained < epochs:
        epochs = f"{trained} of {epochs}"
        stop = " (early stop)"
    else:
        stop = ""
    src = data.get("source") or data.get("root") or "in-memory arrays"
    noise = meta.get("noise") or {}
    injected = cfg.get("noise")  # --noise: the given labels are the scan's own corruption of the dataset's
    known = f"known: {_pct(float(d.noisy.mean()))}" if d.noisy is not None else ""
    cards = [
        _card("Samples", f"{d.n:,}", f"{len(d.classes)} classes · {data.get('kind', '?')}"),
        _card(
            "Model",
            _describe(meta.get("model") or cfg.get("model")),
            d.run.recordings if d.run.trained == "none" else f"{_describe(epochs)} epoch{'' if epochs == 1 else 's'}{stop} × {d.run.recordings}",
        ),
        _card(
            "Noise-rate estimate",
            _pct(float(est)) if est is not None else "—",
            " · ".join(t for t in (f"{known} (injected: {injected})" if injected and known else known,
                                   estimate_note(d.run)) if t),
        ),
        _card(
            "Detector",
            _describe(det.get("name")),
            (f"flags {d.score_name}{cut_text(d.run, d.cutoff)}" if d.cutoff is not None else "no cutoff: its own mask")
            + (f" · rule {det['rule']}" if det.get("rule") else ""),
        ),
        _card(
            "Flagged", f"{nflag:,}", f"{_pct(nflag / d.n if d.n else float('nan'))} of the samples"
            + (f" · {said}" if (said := settled_text(d.run)) else "")
        ),
    ]
    out = f'<section><h2>Summary</h2><div class="cards">{"".join(cards)}</div>'
    agreed = agreement_text(d.run)  # how much the models learned: the flags' strength
    out += f'<div class="quality" id="agreement">{_e(agreed[:1].upper() + agreed[1:])}.</div>'
    if injected:
        flipped = noise.get("n_flipped")
        changed = f"{flipped:,} of {d.n:,} labels changed" if isinstance(flipped, int) else "labels changed"
        rate = noise.get("realised_rate")
        out += (
            f'<div class="quality warn" id="injected">Label noise injected on purpose (--noise {_e(injected)}: '
            f"{changed}{f', {_pct(float(rate))}' if rate is not None else ''}): the given labels in this report "
            "are the corrupted ones the scan trained on, and the true labels are the dataset's own.</div>"
        )
    if d.noisy is not None:
        m = stats.flagged_metrics(d.flagged, d.noisy)
        precision = _share(m["precision"]) if d.flagged.any() else "— (none flagged)"
        out += (
            '<div class="quality" id="quality">Against the known true labels, the flagged set has '
            f"<b>precision {precision}</b>, <b>recall {_share(m['recall'])}</b>, "
            f"<b>F1 {_share(m['f1'])}</b> ({m['tp']} of {int(d.noisy.sum())} mislabeled samples "
            f"found, {m['fp']} clean samples flagged).</div>"
        )
    for text in contradicted_texts(meta.get("contradicted_classes") or []):  # absent in runs before the check
        out += f'<div class="quality warn">{_e(text)}.</div>'
    for text in meta.get("warnings") or []:  # the scan's other warnings (a cut that accuses most samples, ...)
        out += f'<div class="quality warn">{_e(text)}.</div>'
    skipped = data.get("skipped") or []
    if skipped:  # --on-bad-image skip: not scanned, so not in any table here
        names = listing(s[0] for s in skipped)
        out += (f'<div class="quality warn">{len(skipped)} unreadable image{"s were" if len(skipped) != 1 else " was"} '
                f'skipped and not scanned: {_e(names)} (reasons in run.json, data.skipped).</div>')
    out += f'<p class="note">Data: {_e(src)}</p></section>'
    return out


def _classes_html(d: ReportData) -> str:
    rows = []
    for r in stats.class_table(d.given, d.suggested, d.flagged, d.classes):
        share = _pct(r.flagged / r.samples if r.samples else float("nan"))
        relabel = f"{_e(r.relabel_to)} ({r.relabel_count})" if r.relabel_to else "—"
        rows.append(
            f"<tr><td>{_e(r.name)}</td><td class='n'>{r.samples:,}</td>"
            f"<td class='n'>{r.flagged:,}</td><td class='n'>{share}</td><td>{relabel}</td>"
            f"<td class='n'>{r.agreed:,}</td></tr>"
        )
    head = (
        "<tr><th>given class</th><th class='n'>samples</th><th class='n'>flagged</th>"
        "<th class='n'>flagged %</th><th>most common suggested relabel (flagged)</th>"
        "<th class='n'>flagged, the model agreeing with the label</th></tr>"
    )
    return (
        "<section><h2>Per class</h2><table id='classes'>"
        f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _figures_html(d: ReportData, figs: dict[str, tuple[str, bytes]]) -> str:
    parts = "".join(
        f'<figure id="{name}"><img alt="{_a(name)}" src="{png_data_uri(png)}">'
        f"<figcaption>{_e(cap)}</figcaption></figure>"
        for name, (cap, png) in figs.items()
    )
    note = ""
    if d.traj_note:
        note = f'<p class="note">Signed-entropy trajectories unavailable: {_e(d.traj_note)}</p>'
    return (
        "<section><h2>Scores and training dynamics</h2>"
        f'<div class="figs">{parts}</div>{note}</section>'
    )


def _html(d: ReportData, figs: dict[str, tuple[str, bytes]], ids: np.ndarray,
          thumbs: list[tuple[np.ndarray | None, str | None]]) -> str:  # fmt: skip
    from labeltrace import __version__

    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"labeltrace report — {d.run.path.resolve().name}"
    review = review_view(d.run)  # experts' decisions so far, beside the scan's view
    body = (
        _summary_html(d)
        + (review_html(review, _e) if review is not None else "")
        + aside_html(d.run, _e)
        + _figures_html(d, figs)
        + _classes_html(d)
        + duplicates_html(d.run, _e, _a, review=review)
        + suspects_html(d, ids, thumbs, review)
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        # a file mailed around: nothing but its own styles and embedded images (no script, no request)
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{_a(title)}</title><style>{_css()}</style></head><body>"
        f"<header><h1>{_e(title)}</h1>"
        f"<div class='sub'>{_e(d.run.path.resolve())} · generated {_e(now)}</div></header>"
        f"<main>{body}<footer>labeltrace {_e(__version__)}</footer></main></body></html>"
    )


# --------------------------------------------------------------------------- entry point
@sharing
def write_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    format: ReportFormat = "html",  # noqa: A002 - the CLI's option name
    top: int = 48,
    thumb_size: int = 128,
    seed: int = 0,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Write the report of a finished run.

    Parameters
    ----------
    run_dir : path
        Run directory written by ``labeltrace scan``.
    out : path, optional
        ``format="html"``: the HTML file (default ``RUN_DIR/report.html``; an existing folder gets
        ``report.html`` in it).
        ``format="png"``: a folder for the figures (default ``RUN_DIR/report/``).
    format : {"html", "png"}
        One self-contained HTML page (images embedded as base64 PNG, no external files), or the
        figures alone as PNG files (``score_histogram.png``, ``signed_entropy_trajectories.png``,
        ``precision_recall.png`` when true labels are known, ``top_suspects.png``), each written
        atomically; those of :data:`PNG_FIGURES` this run does not draw are removed from the folder
        (an earlier report's there would pass for this run's).
    top : int
        Number of top suspects shown (at most :data:`MAX_TOP`, 1000).
    thumb_size : int
        Longer side of the thumbnails in pixels (small images are enlarged by an integer factor
        with nearest neighbour).
    seed : int
        Chooses the individual trajectories drawn.
    warn : callable, optional
        Gets a message naming the decision files a scan with ``--force`` set aside (their
        decisions are not in the report; the HTML page says so too), one when the images
        folder (or ``.npz``) is not there (``labeltrace relocate``), and one when some suspects'
        images cannot be shown (a file changed since the scan, unreadable), saying why; default
        :func:`warnings.warn`.

    Returns
    -------
    Path
        The HTML file or the figure folder.
    """
    if format not in ("html", "png"):
        raise ValueError(f"format must be 'html' or 'png', got {format!r}")
    if format == "html" and out is not None and not Path(out).is_dir() and Path(out).suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"{out}: an HTML report is written to a .html file (or into an existing folder); --format png "
                         "(format='png') writes the figures as PNG files, into a folder")  # fmt: skip
    if not 0 <= int(top) <= MAX_TOP:
        raise ValueError(f"top must lie in [0, {MAX_TOP}], got {top}: the report draws each of them (50,000 took 4 "
                         "minutes, 3.4 GB and a page of 121 MB); the samples table (samples.csv, or labeltrace export "
                         "RUN_DIR --to csv) lists every sample, the review page shows them one by one")  # fmt: skip
    run = open_run(run_dir)
    say = warn or warn_caller
    for text in notices(run):
        say(text)
    d = read_report_data(run)
    ids = top_ids(d, top)
    with warnings.catch_warnings():  # a decoder's warnings about one image (the tile says what is wrong)
        warnings.simplefilter("ignore", UserWarning)
        thumbs = [thumbnail(run, int(i), int(thumb_size) if format == "html" else 64) for i in ids]
    if (missing := unavailable_text(ids, thumbs)) is not None and missing_root_text(run) is None:
        say(missing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # matplotlib layout warnings on tiny data
        figs = figures(d, seed=seed)
        if format == "html":
            path = Path(out) if out is not None else run.path / rundir.REPORT_HTML
            if path.is_dir():  # a folder: the page goes into it
                path = path / rundir.REPORT_HTML
            page = _html(d, figs, ids, thumbs).encode("utf-8")
            return atomic_write_bytes(path, page)
        folder = Path(out) if out is not None else run.path / rundir.REPORT_PNG
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder} is a file: --format png writes a folder of figures; give a folder")
        folder.mkdir(parents=True, exist_ok=True)
        pngs = {name: png for name, (_, png) in figs.items()}
        if ids.size:
            imgs = [t if t is not None else np.full((64, 64, 3), 230, np.uint8) for t, _ in thumbs]
            caps = [
                f"#{int(d.rank[i])} {plots.fit(d.classes[d.given[i]])}\n→ {plots.fit(d.classes[d.suggested[i]])}"
                + ("" if t is not None else "\n(image unavailable)")
                for i, (t, _) in zip(ids, thumbs, strict=True)
            ]
            pngs["top_suspects"] = plots.figure_png(plots.suspect_grid(imgs, caps))
        for name, png in pngs.items():
            atomic_write_bytes(folder / f"{name}.png", png)
        for name in sorted(set(PNG_FIGURES) - set(pngs)):  # another run's (or this one's before) figure: not this report's
            (folder / f"{name}.png").unlink(missing_ok=True)
        return folder
