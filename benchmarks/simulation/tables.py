"""Markdown tables from simulation outputs (``labeltrace simulate --out DIR``).

Usage: ``python benchmarks/simulation/tables.py RESULTS_DIR [NAME ...]`` — one table per
sub-folder holding ``summary.csv`` and ``simulation.json`` (all of them, or those named), then
"which queue wins where": per run and metric, the best selector other than the oracle and its
lead over the runner-up; and ``cross_entropy − joint`` paired over seeds (runs with
``seeds.csv``). Cells are ``mean [95 % t-interval]`` over seeds.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

from labeltrace.evaluate.metrics import interval_text, t_interval

FRACTIONS = ("0.1", "0.25", "0.5")


def _fmt(m: tuple[float, float, float], fmt: str, scale: float = 1.0) -> str:
    mean, lo, hi = (v * scale for v in m)
    return interval_text(mean, lo, hi, fmt)


def _num(s: str | None) -> float:
    return float("nan") if s in (None, "", "nan", "None") else float(s)


def _summary(folder: Path) -> dict[str, dict[str, tuple[float, float, float]]]:
    summ: dict[str, dict[str, tuple[float, float, float]]] = {}
    with open(folder / "summary.csv") as fh:
        for r in csv.DictReader(fh):
            summ.setdefault(r["selector"], {})[r["metric"]] = (
                _num(r["mean"]),
                _num(r["low"]),
                _num(r["high"]),
            )
    return summ


def _setting(info: dict) -> str:
    head = info.get("head") or {}
    folds = int(head.get("folds") or 1)
    model = f"{folds}-fold cross-fitted head" if folds > 1 else "in-sample head"
    if not info["active_every"]:
        return f"{model}, static"
    method = info.get("active_method", "head")
    what = "retrained" if method == "head" else "label propagation"
    secs = info.get("update_seconds_per_seed") or []
    calls = info.get("updates_per_seed") or []
    cost = ""
    if secs and calls and sum(calls):
        each = sum(secs) / sum(calls)
        unit = f"{each:.1f} s" if each >= 1 else f"{each * 1000:.1f} ms"
        cost = (f", {sum(calls) / len(calls):.0f} refreshes per seed (every model-based selector), "
                f"{sum(secs) / len(secs):.1f} s in all, {unit} each")
    return f"{model}, {what} every {info['active_every']} relabels{cost}"


def table(folder: Path) -> str:
    info = json.loads((folder / "simulation.json").read_text())
    summ = _summary(folder)
    ratios = info.get("fixed_ratio_to_random") or {}
    head = info.get("head") or {}
    acc = [a for a in info["head_accuracy"] if a is not None]
    rec = [a for a in info["head_noisy_recall"] if a is not None]
    lines = [
        f"**{folder.name}** — budget {info['budget']} relabels "
        f"({info['budget_factor']:g} × {round(info['noise_rate'] * 100)} % noisy; realised noisy "
        f"{min(info['n_noisy'])}–{max(info['n_noisy'])}), {len(info['seeds'])} seeds, "
        + _setting(info)
        + (
            f"; head {head.get('model')} lr {head.get('lr')} posterior {head.get('posterior')}"
            + (f", {head['ensemble']} heads averaged" if head.get("ensemble", 1) > 1 else "")
            + (", retrained without the samples it contradicts (prune)" if head.get("prune") else "")
            + ": "
            f"agrees with the vote majority on {100 * sum(acc) / len(acc):.1f} %, disagrees with "
            f"{100 * sum(rec) / len(rec):.1f} % of the noisy labels"
            if acc
            else ""
        )
        + f"; {info['seconds'] / 60:.1f} min.",
        "",
        (
            "| selector | AUC | gain / oracle | fixed per 100 relabels @10 % | @25 % | @50 % "
            "| × random @10 % | × random @25 % | × random @50 % | final acc. % |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sel, m in summ.items():
        cells = [
            sel,
            _fmt(m["auc"], ".4f"),
            _fmt(m["normalized_gain"], ".2f"),
            *(_fmt(m.get(f"fixed_per_100@{f}", (math.nan,) * 3), ".1f") for f in FRACTIONS),
            *(
                _fmt(tuple(_num(str(v)) for v in ratios.get(sel, {}).get(f, [None] * 3)), ".2f")
                for f in FRACTIONS
            ),
            _fmt(m["final_accuracy"], ".2f", 100.0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


METRICS = (("auc", "AUC", ".4f", 1.0), ("normalized_gain", "gain / oracle", ".2f", 1.0),
           ("fixed_per_100@0.1", "fixed / 100 @10 %", ".1f", 1.0),
           ("fixed_per_100@0.5", "fixed / 100 @50 %", ".1f", 1.0),
           ("final_accuracy", "final acc. %", ".2f", 100.0))  # fmt: skip


def winners(root: Path, names: list[str]) -> str:
    """Per run and metric: the best selector but the oracle, and its lead over the runner-up."""
    lines = [
        "**Which queue wins where** — per run and metric, the best selector other than the oracle "
        "(mean over seeds) and its lead over the runner-up in brackets.",
        "",
        "| run | " + " | ".join(m[1] for m in METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for n in names:
        summ = {s: m for s, m in _summary(root / n).items() if s != "oracle"}
        cells = []
        for key, _, fmt, scale in METRICS:
            ranked = sorted(((m[key][0], s) for s, m in summ.items() if key in m
                             and math.isfinite(m[key][0])), reverse=True)  # fmt: skip
            if len(ranked) < 2:
                cells.append("n/a")
                continue
            (v1, s1), (v2, _) = ranked[0], ranked[1]
            cells.append(f"{s1} {v1 * scale:{fmt}} (+{(v1 - v2) * scale:{fmt}})")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


PAIRED = (("auc", "AUC", ".4f", 1.0), ("normalized_gain", "gain / oracle", ".3f", 1.0),
          ("fixed_per_100@0.1", "fixed / 100 @10 %", ".1f", 1.0),
          ("final_accuracy", "final acc. (points)", ".2f", 100.0))  # fmt: skip


def _seeds(folder: Path) -> dict[tuple[str, int], dict[str, str]] | None:
    f = folder / "seeds.csv"
    if not f.exists():
        return None
    with open(f) as fh:
        return {(r["selector"], int(r["seed"])): r for r in csv.DictReader(fh)}


def _diff_cell(d: list[float], fmt: str) -> str:
    """Mean [95 % t-interval] of paired differences; **bold** when the interval excludes 0."""
    m, lo, hi = t_interval(d)
    cell = interval_text(m, lo, hi, f"+{fmt}")
    return f"**{cell}**" if (lo > 0 or hi < 0) else cell


#: (changed run, its baseline): the same seeds, initial labels and (for live runs) initial model
VERSUS = (
    ("cifar10h_n15_crossfit", "cifar10h_n15"), ("cifar10h_n30_crossfit", "cifar10h_n30"),
    ("cifar10n_n15_crossfit", "cifar10n_n15"),
    ("cifar10h_n15_propagation", "cifar10h_n15"), ("cifar10h_n15_active", "cifar10h_n15"),
    ("cifar10h_n15_crossfit_propagation", "cifar10h_n15_crossfit"),
    ("cifar10h_n15_crossfit_active", "cifar10h_n15_crossfit"),
    ("cifar10h_n30_crossfit_propagation", "cifar10h_n30_crossfit"),
    ("cifar10h_n30_active", "cifar10h_n30"),
    ("cifar10n_n15_crossfit_propagation", "cifar10n_n15_crossfit"),
    ("cifar10n_n15_active", "cifar10n_n15"),
    ("cifar10h_n15_active_224_ens3", "cifar10h_n15_active_224"),
    ("cifar10h_n15_active_224tta_ens3", "cifar10h_n15_active_224_ens3"),
    # the dev study of the head (results/dev_head)
    *((f"cifar10n_n15_{v}", "cifar10n_n15_224_s20") for v in (
        "224_s20_lr0005", "224_s20_ens3", "224_s20_ens3_lr0005", "cat_s20", "cat_s20_lr0005",
        "224_s20_crossfit", "224_s20_crossfit_lr0005", "cat_s20_crossfit", "224_s10_active", "lite2_s20",
        "224tta_s20")),
    ("cifar10n_n15_lite2_s20_crossfit", "cifar10n_n15_224_s20_crossfit"),
    ("cifar10n_n15_224_s20_crossfit_lr0005", "cifar10n_n15_224_s20_crossfit"),
    ("cifar10n_n15_cat_s20_crossfit", "cifar10n_n15_224_s20_crossfit"),
    ("cifar10n_n15_224tta_s20_prune", "cifar10n_n15_224tta_s20"),
    ("cifar10n_n15_224tta_s20_ens3_lr0005", "cifar10n_n15_224tta_s20"),
    ("cifar10n_n15_224tta_s20_ens3_lr0005_prune", "cifar10n_n15_224tta_s20_ens3_lr0005"),
    ("cifar10n_n15_lite2_s20_ens3_lr0005", "cifar10n_n15_224tta_s20_ens3_lr0005"),
    # results/dev_views: heads on 224, 160 and 96 px views vs the 224 px head, both on the
    # re-extracted features of that study (a fresh paired baseline)
    ("cifar10n_n15_views_s20_ens3_lr0005", "cifar10n_n15_224tta_s20_ens3_lr0005"),
)  # fmt: skip


def versus(root: Path, selectors: tuple[str, ...] = ("cross_entropy", "joint")) -> str:
    """Each changed run minus its baseline, per seed, for ``selectors``."""
    lines = [
        "**What a change buys, paired over seeds** (changed run − its baseline, the same seeds "
        "and initial labels; mean [95 % t-interval]; **bold**: the interval excludes 0).",
        "",
        "| run − baseline | selector | " + " | ".join(m[1] for m in PAIRED) + " |",
        "|---|---|" + "---|" * len(PAIRED),
    ]
    for new, old in VERSUS:
        a, b = _seeds(root / new), _seeds(root / old)
        if a is None or b is None:
            continue
        for sel in selectors:
            seeds = sorted(s for (x, s) in a if x == sel and (sel, s) in b)
            if len(seeds) < 2:
                continue
            cells = [
                _diff_cell([scale * (float(a[(sel, s)][key]) - float(b[(sel, s)][key]))
                            for s in seeds], fmt)
                for key, _, fmt, scale in PAIRED
            ]  # fmt: skip
            lines.append(f"| {new} − {old} | {sel} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired(root: Path, names: list[str], a: str = "cross_entropy", b: str = "joint") -> str:
    """``a − b`` per seed (same initial labels, same model), mean [95 % t-interval]; a bold cell
    is an interval that excludes 0."""
    lines = [
        f"**{a} − {b}, paired over seeds** (the same initial labels and model in each seed; "
        "mean [95 % t-interval]; **bold**: the interval excludes 0).",
        "",
        "| run | " + " | ".join(m[1] for m in PAIRED) + " |",
        "|---|" + "---|" * len(PAIRED),
    ]
    for n in names:
        f = root / n / "seeds.csv"
        if not f.exists():
            continue
        with open(f) as fh:
            rows = list(csv.DictReader(fh))
        by = {(r["selector"], int(r["seed"])): r for r in rows}
        seeds = sorted(s for (sel, s) in by if sel == a and (b, s) in by)
        if len(seeds) < 2:
            continue
        cells = []
        for key, _, fmt, scale in PAIRED:
            d = [scale * (float(by[(a, s)][key]) - float(by[(b, s)][key])) for s in seeds]
            cells.append(_diff_cell(d, fmt))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    root = Path(sys.argv[1])
    names = sys.argv[2:] or sorted(p.name for p in root.iterdir() if (p / "summary.csv").exists())
    print("\n".join(table(root / n) for n in names))
    print(winners(root, names))
    print(paired(root, names))
    print(versus(root))


if __name__ == "__main__":
    main()
