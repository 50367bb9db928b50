"""Files of the relabel simulator: the feature reader (the votes': :mod:`labeltrace.relabel.votes_file`,
re-exported); curve and summary CSVs, the plot,
``simulation.json`` and the text summary. Every write goes through
:func:`labeltrace._io.atomic_write` (JSON through :func:`labeltrace.rundir.write_json`)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from labeltrace._io import atomic_write
from labeltrace.evaluate.metrics import interval_text
from labeltrace.relabel.experiment import SimulationResult, ratio_to_random
from labeltrace.relabel.features import check_features_file
from labeltrace.relabel.result import DEFAULT_FRACTIONS, CampaignResult
from labeltrace.relabel.stats import Aggregate
from labeltrace.relabel.votes_file import load_votes
from labeltrace.rundir import write_json

__all__ = [
    "format_summary",
    "load_features",
    "load_votes",
    "plot_campaigns",
    "write_curves_csv",
    "write_seeds_csv",
    "write_simulation",
    "write_summary_csv",
]

# --------------------------------------------------------------------------- readers


def load_features(path: str | os.PathLike[str], *, n: int) -> np.ndarray:
    """Read an ``(N, D)`` ``.npy`` feature matrix (float32) of the votes' ``n`` images (the checks
    of :func:`~labeltrace.relabel.features.check_features_file`)."""
    check_features_file(path, n, rows=f"one row per image of the votes ({n} images)")
    return np.asarray(np.load(Path(path), allow_pickle=False), dtype=np.float32)


# --------------------------------------------------------------------------- writers


def _write_csv(
    path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> Path:
    def write(fh: Any) -> None:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        w = csv.writer(text)
        w.writerow(header)
        w.writerows(rows)
        text.flush()
        text.detach()  # atomic_write syncs and closes the file itself

    return atomic_write(path, write)


def write_curves_csv(
    results: Iterable[CampaignResult] | Mapping[str, Sequence[CampaignResult]],
    path: str | os.PathLike[str],
    *,
    every: int = 1,
) -> Path:
    """Write campaign curves to CSV (long format), atomically.

    Columns ``selector, seed, relabels, accuracy, fixed, remaining_clear, remaining_ambiguous``;
    one row per ``every`` relabels (0, every, 2·every, …) plus the final budget. Accepts a list of
    results or :func:`~labeltrace.relabel.experiment.compare_selectors`' mapping.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if isinstance(results, Mapping):
        results = [r for rs in results.values() for r in rs]

    def rows() -> Iterable[list[Any]]:
        for res in results:
            idx = np.unique(np.r_[np.arange(0, res.budget + 1, every), res.budget])
            for j in idx.tolist():
                yield [res.selector, res.seed, j, f"{res.accuracy[j]:.6f}", int(res.fixed[j]),
                       int(res.remaining_clear[j]), int(res.remaining_ambiguous[j])]  # fmt: skip

    header = ["selector", "seed", "relabels", "accuracy", "fixed", "remaining_clear",
              "remaining_ambiguous"]  # fmt: skip
    return _write_csv(path, header, rows())


def write_seeds_csv(
    results: Mapping[str, Sequence[CampaignResult]], path: str | os.PathLike[str]
) -> Path:
    """Write one row per selector and seed: ``selector, seed, auc, gain, normalized_gain,
    final_accuracy, relabels_used, fixed_per_100@<fraction>…`` — for paired comparisons."""
    fracs = sorted({f for rs in results.values() for r in rs for f in r.fixed_per_100})

    def rows() -> Iterable[list[Any]]:
        for name, rs in results.items():
            for r in rs:
                yield [name, r.seed, f"{r.auc:.8f}", f"{r.gain:.8f}", f"{r.normalized_gain:.8f}",
                       f"{r.final_accuracy:.8f}", r.relabels_used,
                       *(f"{r.fixed_per_100.get(f, math.nan):.6f}" for f in fracs)]  # fmt: skip

    header = ["selector", "seed", "auc", "gain", "normalized_gain", "final_accuracy",
              "relabels_used", *(f"fixed_per_100@{f:g}" for f in fracs)]  # fmt: skip
    return _write_csv(path, header, rows())


def write_summary_csv(aggregates: Iterable[Aggregate], path: str | os.PathLike[str]) -> Path:
    """Write one row per selector and metric (``selector, metric, mean, low, high, n_seeds``)."""

    def rows() -> Iterable[list[Any]]:
        for a in aggregates:
            for m, (mean, lo, hi) in a.metrics.items():
                yield [a.selector, m, f"{mean:.6g}", f"{lo:.6g}", f"{hi:.6g}", a.n_seeds]

    return _write_csv(path, ["selector", "metric", "mean", "low", "high", "n_seeds"], rows())


def plot_campaigns(
    aggregates: Iterable[Aggregate],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Plot accuracy (left) and remaining noisy labels (right) vs relabels; save to ``path``.

    ``oracle`` (blue) and ``random`` (red) are drawn dashed as the upper and lower bounds; the
    shaded bands are the 95% t-intervals. Uses matplotlib's object API with the Agg canvas
    (no pyplot state, no display needed).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    aggs = list(aggregates)
    if not aggs:
        raise ValueError("nothing to plot")
    fig = Figure(figsize=(11, 4.5))
    FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(1, 2)
    palette = [
        "tab:green",
        "tab:orange",
        "tab:purple",
        "tab:brown",
        "tab:pink",
        "tab:olive",
        "tab:cyan",
        "black",
    ]
    others = iter(palette * (1 + len(aggs) // len(palette)))
    for a in aggs:
        key = a.selector.lower()
        if key == "oracle":
            color, style = "tab:blue", "--"
        elif key == "random":
            color, style = "tab:red", "--"
        else:
            color, style = next(others), "-"
        x = a.relabels
        auc = a.metrics["auc"][0]
        ng = a.metrics["normalized_gain"][0]
        label = f"{a.selector} (AUC {auc:.3f}" + (
            f", gain/oracle {ng:.2f})" if np.isfinite(ng) else ")"
        )
        ax.plot(x, 100 * a.accuracy, style, color=color, label=label, lw=1.8)
        if a.n_seeds > 1:
            ax.fill_between(
                x, 100 * a.accuracy_low, 100 * a.accuracy_high, color=color, alpha=0.2, lw=0
            )
        ax2.plot(x, a.remaining_clear, style, color=color, lw=1.8, label=f"{a.selector} clear")
        ax2.plot(
            x, a.remaining_ambiguous, ":", color=color, lw=1.8, label=f"{a.selector} ambiguous"
        )
    ax.set_xlabel("relabels spent")
    n_seeds = max(a.n_seeds for a in aggs)
    ax.set_ylabel("correct labels (%)" + (f"; band: 95 % t-interval of the mean over {n_seeds} seeds"
                                           if n_seeds > 1 else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax2.set_xlabel("relabels spent")
    ax2.set_ylabel("remaining noisy labels")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7, loc="upper right", ncol=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi))


_ACTIVE = {"head": "retrain", "propagation": "label propagation"}


def format_summary(sim: SimulationResult) -> str:
    """A plain-text table: per selector AUC, normalised gain, fixed per 100 relabels at 10/25/50 %
    of the budget and final accuracy (mean [95 % interval] over seeds)."""

    def cell(m: tuple[float, float, float], scale: float = 1.0, fmt: str = ".3f") -> str:
        mean, lo, hi = (v * scale for v in m)
        return interval_text(mean, lo, hi, fmt)

    fr = ["0.1", "0.25", "0.5"]
    head = ["selector", "AUC", "gain/oracle"] + [f"fixed/100@{f}" for f in fr] + ["final acc %"]
    rows = [head]
    for name, a in sim.aggregates.items():
        m = a.metrics
        rows.append(
            [name, cell(m["auc"]), cell(m["normalized_gain"], fmt=".2f")]
            + [cell(m.get(f"fixed_per_100@{f}", (math.nan,) * 3), fmt=".1f") for f in fr]
            + [cell(m["final_accuracy"], 100.0, ".2f")]
        )
    widths = [max(len(r[j]) for r in rows) for j in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    n = sim.results[next(iter(sim.results))][0].initial_labels.size
    info = (
        f"{n} images, {len(sim.seeds)} seed{'s' if len(sim.seeds) != 1 else ''}"
        + (" (each cell: the mean [its 95 % t-interval over the seeds]), " if len(sim.seeds) > 1 else ", ")
        + f"target noise {100 * sim.noise_rate:.3g}% "
        f"(realised {min(sim.n_noisy)}–{max(sim.n_noisy)} noisy), budget {sim.budget} relabels"
        + ((f", {_ACTIVE[sim.active_method]} every {sim.active_every}" if any(sim.updates) else
            f", --active-every {sim.active_every} unused (no selector here reads a model)") if sim.active_every
           else ", static model")
        + (f", {sim.head.folds}-fold cross-fitted head" if sim.head and sim.head.folds > 1 else "")
        + (f", {sim.head.ensemble} heads averaged" if sim.head and sim.head.ensemble > 1 else "")
        + (", head refit without the labels its first run contradicts" if sim.head and sim.head.prune else "")
    )
    acc = [a for a in sim.head_accuracy if math.isfinite(a)]
    if acc:
        info += f"; initial head agrees with the majority on {100 * np.mean(acc):.1f}%"
    used = max(r.relabels_used for runs in sim.results.values() for r in runs)
    if used < sim.budget:  # every campaign settled every sample early: the tail is flat for all
        lines.append(f"note: every campaign settled every sample within {used:,} of the {sim.budget:,} relabels; AUC "
                     "and gain average the accuracy over the whole budget, so the flat tail after that makes the "
                     f"selectors look alike (random near the oracle): --budget {used:,} compares them where they "
                     "differ")  # fmt: skip
    return info + "\n" + "\n".join(lines)


def write_simulation(
    sim: SimulationResult,
    out_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
    every: int = 1,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``curves.csv``, ``summary.csv``, ``seeds.csv``, ``campaign.png`` and
    ``simulation.json`` to ``out_dir``; return their paths by kind."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file: the simulation writes a folder (curves.csv, summary.csv, ...); give a folder")
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "curves": write_curves_csv(sim.results, out / "curves.csv", every=every),
        "summary": write_summary_csv(sim.aggregates.values(), out / "summary.csv"),
        "seeds": write_seeds_csv(sim.results, out / "seeds.csv"),
        "plot": plot_campaigns(sim.aggregates.values(), out / "campaign.png", title=title),
    }
    ratios: dict[str, dict[str, list[float]]] = {}
    if "random" in sim.results:
        for name in sim.results:
            ratios[name] = {
                f"{f:g}": list(ratio_to_random(sim, name, f)) for f in DEFAULT_FRACTIONS
            }
    info = {
        "budget": sim.budget,
        "noise_rate": sim.noise_rate,
        "budget_factor": sim.budget_factor,
        "seeds": sim.seeds,
        "active_every": sim.active_every,
        "temperatures": sim.temperatures,
        "n_noisy": sim.n_noisy,
        "head_accuracy": sim.head_accuracy,
        "head_noisy_recall": sim.head_noisy_recall,
        "trainings_per_seed": sim.retrainings,
        "active_method": sim.active_method,
        "updates_per_seed": sim.updates,
        "update_seconds_per_seed": sim.update_seconds,
        "head": asdict(sim.head) if sim.head is not None else None,
        "seconds": sim.seconds,
        "fixed_ratio_to_random": ratios,
        **(dict(meta) if meta else {}),
    }
    paths["json"] = write_json(out / "simulation.json", info)
    return paths
