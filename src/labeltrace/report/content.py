"""What a run's report shows, whatever its format: the run's columns read once
(:class:`ReportData`, :func:`read_report_data`), the top suspects and their thumbnails
(:func:`top_ids`, :func:`thumbnail`) and the figures (:func:`figures`). The HTML page and the
PNG folder are written by :func:`labeltrace.report.html.write_report`.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass

import numpy as np

from labeltrace.report import plots, stats
from labeltrace.report.images import display_image, load_rgb
from labeltrace.report.summary import cut_text
from labeltrace.rundir import Run

__all__ = ["ReportData", "escape_attr", "escape_html", "figures", "read_report_data", "score_reads", "suspects_heading", "thumbnail", "top_ids",
           "visible_controls"]


#: a character that reorders the text around it: a bidi control (U+202E turns the rest of a line
#: around) or a right-to-left letter
_BIDI = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069"
                   "\U00010800-\U00010fff\U0001e800-\U0001efff]")


def escape_html(x: object) -> str:
    """HTML-escape any value for the page's text (class names, paths and config values come from
    users); one that holds a bidi control or a right-to-left letter is isolated in a ``<bdi>``
    element, so that it reorders none of the text beside it (a given label holding U+202E showed
    the model's suggestion before it, the arrow reversed) and a path copied from the page is the
    path (isolating characters, U+2068 ... U+2069, would have come along into a shell) — but for the
    explicit bidi controls in it, shown by their code points (:func:`visible_controls`: the page then
    shows what is there, and copies that). In an attribute, or in ``<title>``, where no element is
    read: :func:`escape_attr`."""
    text = html.escape(visible_controls(str(x)), quote=True)
    return f"<bdi>{text}</bdi>" if _BIDI.search(text) else text


def escape_attr(x: object) -> str:
    """HTML-escape a value for an attribute or ``<title>`` (no ``<bdi>`` there: it would show as text)."""
    return html.escape(visible_controls(str(x)), quote=True)


#: the explicit bidi controls: embeddings, overrides and isolates
_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def visible_controls(text: str) -> str:
    """``text`` with each explicit bidi control shown by its code point (``⟨U+202E⟩``): a name's own
    U+2069 closed the ``<bdi>`` isolation, and a U+202E after it turned the rest of the line around
    (an audit's finding). Right-to-left letters stay as they are."""
    return _CONTROLS.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)


@dataclass
class ReportData:
    """Everything the report shows, read from the run once."""

    run: Run
    classes: list[str]
    external_id: np.ndarray  # the dataset's own ids (a manifest's id column, or the relative path)
    path: np.ndarray  # the image files (relative to the data root), or "array:<i>" / "hf:<row>"
    given: np.ndarray
    suggested: np.ndarray
    suggested_prob: np.ndarray
    score: np.ndarray
    score_name: str
    sei: np.ndarray | None
    flagged: np.ndarray
    rank: np.ndarray
    cutoff: float | None
    noisy: np.ndarray | None
    true_label: np.ndarray | None
    signed_entropy: np.ndarray | None
    traj_view: str  # the recording the trajectories come from: "in-sample" or "held-out"
    traj_note: str | None
    aux_all: np.ndarray

    @property
    def n(self) -> int:
        return int(self.given.size)


def read_report_data(run: Run) -> ReportData:
    """Read what the report shows from ``run``: its columns, the detector's cutoff and the
    signed-entropy trajectories (or why they are unavailable)."""
    cols = set(run.samples.column_names)
    det = run.meta.get("detector") or {}
    score_col = det.get("score_column") or "score"
    if score_col not in cols:
        score_col = "score"
    cutoff = det.get("cutoff")
    cutoff = float(cutoff) if cutoff is not None and math.isfinite(float(cutoff)) else None
    noisy = run.column("is_noisy").astype(bool) if "is_noisy" in cols else None
    true_label = run.column("true_label") if "true_label" in cols else None
    # a run with no training recording (confident learning alone: out-of-fold probabilities) has no
    # auxiliary samples and no trajectories
    aux = np.stack([run.is_auxiliary(r) for r in range(run.num_runs)] or [np.zeros(run.num_samples, bool)])
    se: np.ndarray | None = None
    note: str | None = None
    view = "in-sample"
    try:
        if run.num_runs == 0:
            raise ValueError(f"{det.get('name', 'this detector')} records no training dynamics: out-of-fold "
                             "probabilities only")
        # the recording the groups' column (sei) comes from: a cross-fitted run's in-sample companion;
        # its held-out recording only when it kept none (and then the run has no sei column either)
        dyn = run.in_sample_dynamics(0) if run.held_out else run.dynamics(0)
        if dyn is None:
            dyn, view = run.dynamics(0, held_out=True), "held-out"
        se = dyn.epochs("signed_entropy").astype(np.float64)
        # a sample relabeled to the auxiliary class in run 0 is shown with its trajectory from
        # the first run in which it kept its label
        for r in range(1, run.num_runs):
            need = aux[:r].all(axis=0) & ~aux[r]
            if need.any():
                se_r = run.dynamics(r).epochs("signed_entropy")
                if se_r.shape != se.shape:
                    break
                se[:, need] = se_r[:, need]
    except ValueError as exc:
        se, note = None, str(exc)
    return ReportData(
        run=run,
        classes=run.classes,
        # kept as Python strings: a fixed-width copy is as wide as the longest (one 508-character path
        # made a million ids 1.9 GB), and the report reads a few dozen of them
        external_id=run.column("external_id"),
        path=run.column("path"),
        given=run.column("given_label_id").astype(np.int64),
        suggested=run.column("suggested_label_id").astype(np.int64),
        suggested_prob=run.column("suggested_prob").astype(np.float64),
        score=run.column(score_col).astype(np.float64),
        score_name=str(det.get("name") or score_col),
        sei=run.column("sei").astype(np.float64) if "sei" in cols else None,
        flagged=run.column("is_suspect").astype(bool),
        rank=run.column("rank").astype(np.int64),
        cutoff=cutoff,
        noisy=noisy,
        true_label=true_label,
        signed_entropy=se,
        traj_view=view,
        traj_note=note,
        aux_all=np.asarray(aux.all(axis=0)),
    )


def top_ids(d: ReportData, top: int) -> np.ndarray:
    """Sample ids of the ``top`` best-ranked suspects, by rank (ties: lower id first)."""
    order = np.lexsort((np.arange(d.n), d.rank))
    return order[: max(0, int(top))]


def thumbnail(run: Run, i: int, size: int) -> tuple[np.ndarray | None, str | None]:
    """``(image, None)``: sample ``i`` as a display thumbnail (:func:`display_image`), or
    ``(None, reason)`` when it cannot be loaded."""
    try:
        return display_image(load_rgb(run, i), size=size), None
    except (ValueError, OSError) as exc:
        return None, str(exc)


# --------------------------------------------------------------------------- figures
#: what each recording of the signed-entropy figure is, for its caption
_VIEWS = {
    "in-sample": "in-sample: each sample as seen by the model(s) that trained on its label (the recording "
                 "SEI is computed from)",
    "held-out": "held-out: each sample as seen by the cross-fitted model that did not train on it",
}


def figures(d: ReportData, *, seed: int) -> dict[str, tuple[str, bytes]]:
    """name -> (caption, PNG bytes)."""
    figs: dict[str, tuple[str, bytes]] = {}
    figs["score_histogram"] = (
        f"Distribution of the detector's score ({d.score_name}); "
        + ("samples left of the cutoff are flagged." if d.cutoff is not None else
           "this detector flags by its own mask, not by a cutoff on the score, so flagged and unflagged "
           "samples overlap here."),
        plots.figure_png(
            plots.score_histogram(d.score, d.cutoff, noisy=d.noisy, score_name=d.score_name,
                                  cut=cut_text(d.run, d.cutoff))
        ),
    )
    if d.signed_entropy is not None:
        sei = d.sei if d.sei is not None else d.score
        by = "SEI" if d.sei is not None else d.score_name
        groups = stats.trajectory_groups(sei, d.flagged, noisy=d.noisy, exclude=d.aux_all)
        known = d.noisy is not None
        figs["signed_entropy_trajectories"] = (
            f"Signed entropy over training, {_VIEWS[d.traj_view]} (+H(p) when the model agrees with "
            "the given label, −H(p) otherwise): mean ± one standard deviation per group and three "
            "individual samples. "
            + (
                f"Groups use the known true labels: easy / hard = top / bottom quarter of {by} "
                "among clean samples, suspect = known mislabeled."
                if known
                else f"Easy / hard = top / bottom quarter of {by} among unflagged samples, "
                "suspect = flagged."
            ),
            plots.figure_png(
                plots.trajectory_figure(
                    d.signed_entropy,
                    groups,
                    seed=seed,
                    suspect_title="mislabeled (known)" if known else "flagged",
                )
            ),
        )
    if d.noisy is not None:
        p, r = stats.precision_recall(d.score, d.noisy)
        m = stats.flagged_metrics(d.flagged, d.noisy)
        flagged = bool(d.flagged.any())  # nothing flagged: no set to draw (its precision is no point at 0)
        figs["precision_recall"] = (
            "Precision–recall of ranking by the score against the known noisy labels; "
            + ("the dot is the flagged set." if flagged else "nothing is flagged."),
            plots.figure_png(plots.pr_figure(p, r, point=(m["recall"], m["precision"]) if flagged else None)),
        )
    return figs


def _scored_as(detector: str) -> str:
    """The score a detector ranks by, from the detector table (its own name when the table has no
    such detector: a run written by other code)."""
    from labeltrace.decide import detectors

    try:
        return detectors.get(detector).column
    except ValueError:  # not in the table
        return detector


def score_reads(d: ReportData) -> str:
    """What the score that ranks reads beside that posterior, in the suspects' note."""
    if _scored_as(d.score_name) == "crossfit":  # crossfit_clcount, _rate, _cl: its score, another cut
        return ("also reads the in-sample trajectory beside the held-out one (and on small frozen-feature sets "
                "the neighbours' labels)")  # fmt: skip
    return f"is the detector's own ({html.escape(d.score_name)}), not that probability"


def suspects_heading(shown: int, flagged: int) -> str:
    """"Top 48 suspects" — or, past the flagged ones, what they are: "Top 50000 suspects" over 2,615
    flagged samples called every sample a suspect."""
    if flagged == shown:
        return f"Top {shown} suspects"
    return f"The {shown} most suspect samples, {flagged} of them flagged"
