"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no pyplot state)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = [
    "COLORS",
    "figure_png",
    "pr_figure",
    "score_histogram",
    "suspect_grid",
    "trajectory_figure",
]

#: Group colours used throughout the report (and its HTML legend).
COLORS = {
    "easy": "#2b7bba",
    "hard": "#e08a1e",
    "suspect": "#c8384a",
    "clean": "#7f9fb8",
    "cutoff": "#333333",
}
_GROUP_TITLES = {"easy": "easy", "hard": "hard but clean", "suspect": "suspect"}


def _figure(w: float, h: float, *, layout: Literal["constrained"] | None = "constrained") -> Figure:
    fig = Figure(figsize=(w, h), dpi=110, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _style(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#e6e6e6", linewidth=0.6)
    ax.set_axisbelow(True)


def figure_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return buf.getvalue()


def score_histogram(
    score: np.ndarray,
    cutoff: float | None,
    *,
    noisy: np.ndarray | None = None,
    score_name: str = "score",
    cut: str | None = None,
    bins: int = 40,
) -> Figure:
    """Histogram of a score with the detector's cutoff; split by known noise when given.

    ``cut`` words the cut in the legend (:func:`labeltrace.report.summary.cut_text`, e.g. " ≤ -7"
    when the cutoff sits just above a tie group of flagged scores); default " < cutoff".
    """
    s = np.asarray(score, dtype=np.float64)
    ok = np.isfinite(s)
    fig = _figure(6.0, 3.4)
    ax = fig.add_subplot()
    _style(ax)
    edges = np.histogram_bin_edges(s[ok], bins=bins) if ok.any() else np.linspace(0, 1, bins + 1)
    if noisy is not None:
        y = np.asarray(noisy, dtype=bool)
        ax.hist(
            [s[ok & ~y], s[ok & y]],
            bins=edges,  # type: ignore[arg-type]  # an array of edges, as matplotlib takes
            stacked=True,
            color=[COLORS["clean"], COLORS["suspect"]],
            label=["clean (known)", "mislabeled (known)"],
            edgecolor="white",
            linewidth=0.4,
        )
    else:
        ax.hist(
            s[ok],
            bins=edges,  # type: ignore[arg-type]  # an array of edges, as matplotlib takes
            color=COLORS["clean"],
            edgecolor="white",
            linewidth=0.4,
            label="samples",
        )
    if cutoff is not None and np.isfinite(cutoff):
        n_flag = int(np.sum(s[ok] < cutoff))
        ax.axvline(
            cutoff,
            color=COLORS["cutoff"],
            linestyle="--",
            linewidth=1.2,
            label=f"{score_name}{cut if cut else f' < {cutoff:.4g}'} ({n_flag} flagged)",
        )
    ax.set_xlabel(f"{score_name}  (lower = more suspect)", fontsize=9)
    ax.set_ylabel("samples", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    return fig


def trajectory_figure(
    signed_entropy: np.ndarray,
    groups: dict[str, np.ndarray],
    *,
    lines: int = 3,
    seed: int = 0,
    suspect_title: str = "suspect",
) -> Figure:
    """Signed entropy per epoch: mean ± one standard deviation per group, plus a few samples.

    ``signed_entropy`` is ``(T, N)`` with NaN where a sample was not seen; ``groups`` maps
    ``"easy" | "hard" | "suspect"`` to sample ids.
    """
    se = np.asarray(signed_entropy, dtype=np.float64)
    rng = np.random.default_rng(seed)
    T = se.shape[0]
    x = np.arange(1, T + 1)
    fig = _figure(6.0, 3.4)
    ax = fig.add_subplot()
    _style(ax)
    ax.axhline(0.0, color="#999999", linewidth=0.8)
    for name in ("easy", "hard", "suspect"):
        ids = np.asarray(groups.get(name, []), dtype=np.int64)
        if ids.size == 0:
            continue
        v = se[:, ids]
        with warnings.catch_warnings():  # all-NaN epochs: 'mean of empty slice'
            warnings.simplefilter("ignore", RuntimeWarning)
            mu = np.nanmean(v, axis=1)
            sd = np.nanstd(v, axis=1)
        c = COLORS[name]
        title = suspect_title if name == "suspect" else _GROUP_TITLES[name]
        ax.fill_between(x, mu - sd, mu + sd, color=c, alpha=0.15, linewidth=0)
        ax.plot(x, mu, color=c, linewidth=2.2, label=f"{title} (n={ids.size})")
        for i in rng.choice(ids, size=min(lines, ids.size), replace=False):
            ax.plot(x, se[:, i], color=c, linewidth=0.7, alpha=0.55)
    ax.set_xlabel("epoch", fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel("signed entropy  ±H(p)", fontsize=9)
    ax.set_xlim(1, max(T, 2))
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    return fig


def pr_figure(
    precision: np.ndarray, recall: np.ndarray, *, point: tuple[float, float] | None = None
) -> Figure:
    """Precision–recall curve of the ranking; ``point`` = (recall, precision) of the flagged set."""
    fig = _figure(6.0, 3.4)
    ax = fig.add_subplot()
    _style(ax)
    ax.plot(
        np.r_[0.0, recall],
        np.r_[precision[:1] if len(precision) else [1.0], precision],
        color=COLORS["suspect"],
        linewidth=1.8,
        label="ranking by score",
    )
    if point is not None and np.all(np.isfinite(point)):
        ax.plot(
            [point[0]], [point[1]], "o", color=COLORS["cutoff"], markersize=6, label="flagged set"
        )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall", fontsize=9)
    ax.set_ylabel("precision", fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    return fig


def fit(name: str, width: int = 16) -> str:
    """``name`` cut to ``width`` characters (the last one an ellipsis) to fit a grid caption's line."""
    return name if len(name) <= width else name[: width - 1] + "…"


def suspect_grid(images: Sequence[np.ndarray], captions: Sequence[str], *, cols: int = 8) -> Figure:
    """A grid of images with short captions of up to three lines (the top suspects, for ``format="png"``)."""
    n = max(len(images), 1)
    cols = min(cols, n)
    rows = -(-n // cols)
    fig = _figure(1.3 * cols, 1.8 * rows, layout=None)  # constrained layout is slow for many axes
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=0.01, top=1 - 0.45 / (1.8 * rows), wspace=0.08, hspace=0.5
    )
    for j, (img, cap) in enumerate(zip(images, captions, strict=True)):
        ax = fig.add_subplot(rows, cols, j + 1)
        ax.imshow(img, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(cap, fontsize=6.5, parse_math=False)  # class names are text: "$5 bill" is no formula
    return fig
