"""Markdown tables from simulation outputs (``labeltrace simulate --out DIR``).

Usage: ``python benchmarks/simulation/tables.py RESULTS_DIR [NAME ...]`` — one table per
sub-folder holding ``summary.csv`` and ``simulation.json`` (all of them, or those named).
Cells are ``mean [95 % t-interval]`` over seeds.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

FRACTIONS = ("0.1", "0.25", "0.5")


def _fmt(m: tuple[float, float, float], fmt: str, scale: float = 1.0) -> str:
    mean, lo, hi = (v * scale for v in m)
    if not math.isfinite(mean):
        return "n/a"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def _num(s: str | None) -> float:
    return float("nan") if s in (None, "", "nan", "None") else float(s)


def table(folder: Path) -> str:
    info = json.loads((folder / "simulation.json").read_text())
    summ: dict[str, dict[str, tuple[float, float, float]]] = {}
    with open(folder / "summary.csv") as fh:
        for r in csv.DictReader(fh):
            summ.setdefault(r["selector"], {})[r["metric"]] = (
                _num(r["mean"]),
                _num(r["low"]),
                _num(r["high"]),
            )
    ratios = info.get("fixed_ratio_to_random") or {}
    head = info.get("head") or {}
    acc = [a for a in info["head_accuracy"] if a is not None]
    rec = [a for a in info["head_noisy_recall"] if a is not None]
    lines = [
        f"**{folder.name}** — budget {info['budget']} relabels "
        f"({info['budget_factor']:g} × {round(info['noise_rate'] * 100)} % noisy; realised noisy "
        f"{min(info['n_noisy'])}–{max(info['n_noisy'])}), {len(info['seeds'])} seeds, "
        + (
            f"head retrained every {info['active_every']} relabels"
            if info["active_every"]
            else "static head"
        )
        + (
            f"; head {head.get('model')} lr {head.get('lr')} posterior {head.get('posterior')}: "
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


def main() -> None:
    root = Path(sys.argv[1])
    names = sys.argv[2:] or sorted(p.name for p in root.iterdir() if (p / "summary.csv").exists())
    print("\n".join(table(root / n) for n in names))


if __name__ == "__main__":
    main()
