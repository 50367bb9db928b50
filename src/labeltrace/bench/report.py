"""Benchmark outputs: the per-seed CSV, a markdown summary (mean ± sample std over seeds, best per cell in
bold, cost, machine), a plain-text table for the terminal, and plots."""

from __future__ import annotations

import csv
import io
import math
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labeltrace._checks import finite_or_none
from labeltrace._io import atomic_write_bytes
from labeltrace.bench.cells import CSV_COLUMNS, CURVE_COLUMNS, failure, warning

__all__ = [
    "machine_info",
    "markdown_report",
    "plot_f1_vs_rate",
    "plot_sei_epochs",
    "summarize",
    "text_table",
    "write_csv",
]

CellKey = tuple[str, str, str]  # dataset, labels, model
CURVE_CSV_COLUMNS = CURVE_COLUMNS


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] = CSV_COLUMNS) -> None:
    """Write ``rows`` with exactly ``columns`` (floats with 6 significant digits, NaN as "nan")."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    data = buf.getvalue().encode()
    atomic_write_bytes(path, data)


def machine_info() -> dict[str, str]:
    """Platform, CPU count, torch threads and library versions (for the report header)."""
    import torch
    from threadpoolctl import threadpool_info

    from labeltrace import __version__

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        # numpy's / scikit-learn's maths libraries (bench --threads limits them too)
        "blas_threads": ", ".join(sorted({str(p["num_threads"]) for p in threadpool_info()})) or "-",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "labeltrace": __version__,
    }
    try:
        from importlib.metadata import version

        info["cleanlab"] = version("cleanlab")
    except Exception:  # noqa: BLE001 - optional package
        info["cleanlab"] = "absent"
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def summarize(rows: Sequence[dict[str, Any]], metric: str) -> tuple[list[CellKey], list[str], dict]:
    """Mean and std over seeds of ``metric`` per (cell, detector).

    Returns the cells (in first-seen order), the detectors (in first-seen order), and a dict
    ``(cell, detector) -> (mean, std, n_seeds)``; NaN values (failed detectors, undefined
    metrics) are left out of the mean, and a (cell, detector) with none is absent.
    """
    cells: list[CellKey] = []
    dets: list[str] = []
    vals: dict[tuple[CellKey, str], list[float]] = defaultdict(list)
    for r in rows:
        c = (str(r["dataset"]), str(r["labels"]), str(r["model"]))
        if c not in cells:
            cells.append(c)
        if r["detector"] not in dets:
            dets.append(str(r["detector"]))
        f = finite_or_none(r.get(metric))
        if f is not None:
            vals[(c, str(r["detector"]))].append(f)
    # the sample standard deviation (ddof 1) over the seeds; one seed shows no spread
    out = {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v)) for k, v in vals.items() if v}
    return cells, dets, out


def _fmt(m: float, s: float, n: int) -> str:
    return f"{m:.3f} ± {s:.3f}" if n > 1 else f"{m:.3f}"


def _flags(r: dict[str, Any]) -> float:
    """A row's number flagged (NaN for a failed detector's -1)."""
    n = finite_or_none(r.get("n_flagged"))
    return n if n is not None and n >= 0 else float("nan")


def _full_and_best(stats: dict[tuple[CellKey, str], tuple[float, float, int]], c: CellKey,
                   dets: Sequence[str]) -> tuple[int, float | None]:  # fmt: skip
    """A cell's number of seeds (the most any detector has) and the best mean among the detectors
    with all of them: one that failed on some seeds shows its n, and is not 'best' on fewer."""
    have = [stats[(c, d)] for d in dets if (c, d) in stats]
    full = max((n for _, _, n in have), default=0)
    means = [m for m, _, n in have if n == full]
    return full, (max(means) if means else None)


def _metric_table(rows: Sequence[dict[str, Any]], metric: str, *, bold: bool = True) -> list[str]:
    cells, dets, stats = summarize(rows, metric)
    head = "| dataset | labels | model | " + " | ".join(dets) + " |"
    lines = [head, "|" + "---|" * (3 + len(dets))]
    for c in cells:
        full, best = _full_and_best(stats, c, dets)
        out = []
        for d in dets:
            if (c, d) not in stats:
                out.append("–")
                continue
            m, s, n = stats[(c, d)]
            txt = _fmt(m, s, n) + (f" ({n}/{full} seeds)" if n < full else "")
            out.append(f"**{txt}**" if bold and best is not None and n == full and m >= best - 1e-12 else txt)
        lines.append(f"| {c[0]} | {c[1]} | {c[2]} | " + " | ".join(out) + " |")
    return lines


def _cost_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    acc: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        w, n = finite_or_none(r.get("wall_seconds")), finite_or_none(r.get("n_trainings"))
        if w is not None and n is not None and n >= 0:
            acc[(str(r["dataset"]), str(r["model"]), str(r["detector"]))].append((w, n))
    lines = ["| dataset | model | detector | trainings | wall seconds (mean per cell) |", "|---|---|---|---|---|"]
    for (ds, mo, de), v in acc.items():
        a = np.array(v)
        lines.append(f"| {ds} | {mo} | {de} | {a[:, 1].mean():.0f} | {a[:, 0].mean():.1f} |")
    return lines


def _sei_minus_best(rows: Sequence[dict[str, Any]], metric: str) -> list[str]:
    cells, dets, stats = summarize(rows, metric)
    if "sei" not in dets:
        return []
    lines = [f"| dataset | labels | model | SEI {metric} | best other | its {metric} | SEI − best other |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in cells:
        full, _ = _full_and_best(stats, c, dets)
        if (c, "sei") not in stats or stats[(c, "sei")][2] < full:  # SEI failed on a seed: no comparison
            continue
        others = [(stats[(c, d)][0], d) for d in dets if d != "sei" and (c, d) in stats and stats[(c, d)][2] == full]
        if not others:
            continue
        bm, bd = max(others)
        s = stats[(c, "sei")][0]
        lines.append(f"| {c[0]} | {c[1]} | {c[2]} | {s:.3f} | {bd} | {bm:.3f} | {s - bm:+.3f} |")
    return lines


def markdown_report(
    rows: Sequence[dict[str, Any]],
    *,
    name: str,
    command: str,
    seeds: Sequence[int],
    elapsed: float | None = None,
    plots: Sequence[str] = (),
    failures: Sequence[str] = (),
    reference: str = "crossfit",
) -> str:
    """The ``<name>.md`` summary; ``reference`` (the default detector) is compared with every
    other detector, paired over seeds."""
    from labeltrace.bench.paired import bar_lines, paired_table

    info = machine_info()
    out = [
        f"# labeltrace bench: {name}",
        "",
        f"- written: {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
        f"- command: `{command}`",
        f"- seeds: {', '.join(map(str, seeds))} (cells show mean ± sample standard deviation over seeds)",
        (
            f"- machine: {info['platform']}, {info['processor']}, {info['cpu_count']} cores "
            f"({info['torch_threads']} torch threads, {info['blas_threads']} maths-library threads)"
            + (f", GPU {info['gpu']}" if "gpu" in info else "")
        ),
        (
            f"- versions: python {info['python']}, torch {info['torch']}, numpy {info['numpy']}, "
            f"labeltrace {info['labeltrace']}, cleanlab {info['cleanlab']}"
        ),
    ]
    if elapsed is not None:
        out.append(f"- wall time of this invocation: {elapsed / 60:.1f} min (cached work is not recomputed)")
    out += [
        "",
        (
            "Truth: a sample is mislabeled when its given label differs from the clean one. F1 uses "
            "each detector's own decision rule; *F1 at true rate* flags exactly as many samples as "
            "are truly mislabeled (threshold-free ranking quality). Best per row in **bold**."
        ),
        "",
        "## F1 (own decision rule)",
        "",
        *_metric_table(rows, "f1"),
        "",
        "## F1 at the true noise rate",
        "",
        *_metric_table(rows, "f1_at_true_rate"),
        "",
        "## AUROC",
        "",
        *_metric_table(rows, "auroc"),
        "",
        "## Precision (own rule)",
        "",
        *_metric_table(rows, "precision", bold=False),
        "",
        "## Recall (own rule)",
        "",
        *_metric_table(rows, "recall", bold=False),
        "",
    ]
    clean = [r for r in rows if finite_or_none(r.get("n_noisy")) == 0]
    if clean:  # no error to find: precision, recall and F1 say nothing there; the false accusations do
        out += ["## Flagged on cells without label errors (every flag a false accusation; fewer is better)", "",
                *_metric_table([r | {"n_flagged": _flags(r)} for r in clean], "n_flagged", bold=False), ""]
    for metric in ("f1", "auroc"):
        table = paired_table(rows, metric, reference)
        if table:
            out += [f"## {reference} minus each detector, {metric.upper()} (paired over seeds, 95 % t-interval)", "",
                    "✓ / ✗: the interval excludes zero (a win / a loss); otherwise a tie.", "", *table, ""]
    bar = bar_lines(rows, reference)
    if bar:
        out += [f"## The bar for {reference} (means over seeds)", "", *bar, ""]
    sei = _sei_minus_best(rows, "f1")
    if sei:
        out += ["## SEI minus the best other detector (F1, own rule)", "", *sei, ""]
    cost_note = (
        "Trainings = model fits the detector needs; wall seconds = those fits' measured time plus "
        "the detector's own time (feature extraction excluded)."
    )
    out += ["## Cost", "", cost_note, "", *_cost_table(rows), ""]
    failed_rows = [f"{r['dataset']} {r['labels']} {r['model']} seed {r['seed']} / {r['detector']}: {why}"
                   for r in rows if (why := failure(r)) is not None]  # fmt: skip
    if failures or failed_rows:  # whole cells, and single detectors of a cell (their rows read "–")
        out += ["## Failures", "", *[f"- {f}" for f in [*failures, *failed_rows]], ""]
    warned = [f"- {r['dataset']} {r['labels']} {r['model']} seed {r['seed']} / {r['detector']}: {why}"
              for r in rows if (why := warning(r)) is not None]  # fmt: skip
    if warned:  # kept in every table above: the numbers are what the detector did
        out += ["## Warnings (flagged sets that look like a collapsed model; in the tables above)", "", *warned, ""]
    if plots:
        out += ["## Plots", "", *[f"![{p}]({p})" for p in plots], ""]
    return "\n".join(out)


def text_table(rows: Sequence[dict[str, Any]], metric: str = "f1") -> str:
    """Mean ``metric`` per cell (rows) and detector (columns), best marked with ``*``."""
    cells, dets, stats = summarize(rows, metric)
    lab = [f"{c[0]} {c[1]} {c[2]}" for c in cells]
    w0 = max([len("cell")] + [len(s) for s in lab])
    wd = [max(6, len(d)) for d in dets]
    lines = [f"{metric} (mean over seeds; * = best; ? = failed on some seeds, mean of the rest)",
             "cell".ljust(w0) + "  " + "  ".join(d.rjust(w) for d, w in zip(dets, wd, strict=True))]  # fmt: skip
    for c, name in zip(cells, lab, strict=True):
        full, best = _full_and_best(stats, c, dets)
        vals = []
        for d, w in zip(dets, wd, strict=True):
            if (c, d) not in stats:
                vals.append("-".rjust(w))
                continue
            m, _, n = stats[(c, d)]
            star = "*" if best is not None and n == full and m >= best - 1e-12 else ("?" if n < full else " ")
            vals.append(f"{m:.3f}{star}".rjust(w))
        lines.append(name.ljust(w0) + "  " + "  ".join(vals))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots
def plot_f1_vs_rate(rows: Sequence[dict[str, Any]], path: Path, *, metric: str = "f1") -> bool:
    """One panel per (dataset, noise kind, model): mean ``metric`` vs noise rate, one line per
    detector. Returns False (and writes nothing) when no dataset has more than one rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, str, str], dict[str, dict[float, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for r in rows:
        rate, v = finite_or_none(r.get("rate")), finite_or_none(r.get(metric))
        if rate is None or v is None:
            continue
        groups[(str(r["dataset"]), str(r["noise"]), str(r["model"]))][str(r["detector"])][rate].append(v)
    panels = {k: g for k, g in groups.items() if len({x for d in g.values() for x in d}) > 1}
    if not panels:
        return False
    n = len(panels)
    cols = min(3, n)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.6 * nrows), squeeze=False)
    for ax, ((ds, kind, model), g) in zip(axes.ravel(), sorted(panels.items()), strict=False):
        for det, by_rate in g.items():
            xs = sorted(by_rate)
            ax.plot(xs, [np.mean(by_rate[x]) for x in xs], marker="o", lw=2.2 if det == "sei" else 1.0,
                    label=det)  # fmt: skip
        ax.set_title(f"{ds}, {kind} noise, {model}", fontsize=9)
        ax.set_xlabel("noise rate")
        ax.set_ylabel(metric)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(7, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_sei_epochs(curve: Sequence[dict[str, Any]], path: Path) -> bool:
    """SEI F1 (own auxiliary cutoff, solid) and F1 at the true rate (dashed) vs the number of
    epochs integrated, one panel per dataset, one colour per (labels, model), mean over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curve:
        return False
    by: dict[str, dict[str, dict[int, list[tuple[float, float]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for r in curve:
        f1, at = finite_or_none(r.get("f1")), finite_or_none(r.get("f1_at_true_rate"))
        by[str(r["dataset"])][f"{r['labels']} {r['model']}"][int(r["epochs"])].append(
            (f1 if f1 is not None else np.nan, at if at is not None else np.nan)
        )
    n = len(by)
    cols = min(3, n)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.6 * nrows), squeeze=False)
    for ax, (ds, series) in zip(axes.ravel(), sorted(by.items()), strict=False):
        for i, (lab, pts) in enumerate(sorted(series.items())):
            ts = sorted(pts)
            arr = np.array([np.nanmean(np.array(pts[t]), axis=0) for t in ts])
            color = f"C{i % 10}"
            ax.plot(ts, arr[:, 0], color=color, label=lab)
            ax.plot(ts, arr[:, 1], color=color, ls="--", lw=0.8)
        ax.set_title(f"{ds}: SEI over epochs [0, t)", fontsize=9)
        ax.set_xlabel("epochs integrated t")
        ax.set_ylabel("F1 (solid: aux cutoff, dashed: at true rate)", fontsize=8)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True

