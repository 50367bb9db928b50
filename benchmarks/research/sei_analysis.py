"""The paper's claims, from the bench CSVs: does SEI lead, does its lead grow under confusion-calibrated
noise, does the ablation order SEI > EI, SE@last hold, and how early can SEI integration stop.

Run: python benchmarks/research/sei_analysis.py benchmarks/results/*.csv   (prints markdown)
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def main() -> None:
    rows, curves = [], []
    for f in sys.argv[1:]:
        p = Path(f)
        if p.name.endswith("_sei_epochs.csv"):
            curves += list(csv.DictReader(open(p)))
        elif p.suffix == ".csv":
            rows += list(csv.DictReader(open(p)))
    cell = defaultdict(lambda: defaultdict(list))  # (dataset, labels, model) -> detector -> [f1 ...]
    auc = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["note"]:
            continue
        k = (r["dataset"], r["labels"], r["model"])
        cell[k][r["detector"]].append(float(r["f1"]))
        auc[k][r["detector"]].append(float(r["auroc"]))
    print("| dataset | labels | model | SEI F1 | best other (F1) | SEI − best | SEI vs EI (F1) | SEI vs SE@last (F1) | SEI vs EI (AUROC) | SEI vs SE@last (AUROC) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    by_kind = defaultdict(list)
    order = defaultdict(lambda: [0, 0, 0, 0, 0])
    for k in sorted(cell):
        d = {name: float(np.mean(v)) for name, v in cell[k].items()}
        a = {name: float(np.mean(v)) for name, v in auc[k].items()}
        if "sei" not in d:
            continue
        best = max((v, n) for n, v in d.items() if n != "sei")
        kind = k[1].split(":")[0] if ":" in k[1] else "real"
        by_kind[(kind, k[2])].append(d["sei"] - best[0])
        o = order[(kind, k[2])]
        o[0] += 1
        o[1] += d["sei"] > d.get("ei", -1)
        o[2] += d["sei"] > d.get("se_last", -1)
        o[3] += a["sei"] > a.get("ei", -1)
        o[4] += a["sei"] > a.get("se_last", -1)
        print(f"| {k[0]} | {k[1]} | {k[2]} | {d['sei']:.3f} | {best[1]} ({best[0]:.3f}) | {d['sei'] - best[0]:+.3f} | "
              f"{d['sei'] - d.get('ei', np.nan):+.3f} | {d['sei'] - d.get('se_last', np.nan):+.3f} | "
              f"{a['sei'] - a.get('ei', np.nan):+.3f} | {a['sei'] - a.get('se_last', np.nan):+.3f} |")
    print()
    print("| noise | model | cells | mean SEI − best other (F1) | SEI > EI (F1 / AUROC) | SEI > SE@last (F1 / AUROC) |")
    print("|---|---|---|---|---|---|")
    for kind, model in sorted(by_kind):
        v = by_kind[(kind, model)]
        o = order[(kind, model)]
        print(f"| {kind} | {model} | {len(v)} | {np.mean(v):+.3f} | {o[1]}/{o[0]} / {o[3]}/{o[0]} | "
              f"{o[2]}/{o[0]} / {o[4]}/{o[0]} |")
    if curves:
        print()
        print("| dataset | labels | model | epochs T | SEI F1 at T | first t with F1 ≥ F1(T) − 0.01 | best F1 over t (at t) |")
        print("|---|---|---|---|---|---|---|")
        cur = defaultdict(lambda: defaultdict(list))
        for r in curves:
            cur[(r["dataset"], r["labels"], r["model"])][int(r["epochs"])].append(float(r["f1"]))
        for k in sorted(cur):
            ts = sorted(cur[k])
            f = np.array([np.mean(cur[k][t]) for t in ts])
            T = ts[-1]
            first = next(t for t, v in zip(ts, f) if v >= f[-1] - 0.01)
            print(f"| {k[0]} | {k[1]} | {k[2]} | {T} | {f[-1]:.3f} | {first} | {f.max():.3f} ({ts[int(f.argmax())]}) |")


if __name__ == "__main__":
    main()
