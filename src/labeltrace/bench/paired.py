"""Paired comparisons over seeds: the reference detector minus each other one, per cell.

Seeds are paired (the same seed gives every detector the same labels, folds and initialisations
where they share a recording), so the difference is taken seed by seed and summarised by its mean
and a two-sided 95 % t-interval. A difference counts as a win or a loss only when its interval
excludes zero; otherwise it is a tie. :func:`bar_lines` checks the issue's bar for the reference
detector (F1 against the cleanlab recipe and against the best detector, AUROC within 0.01).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labeltrace.evaluate.metrics import interval_text, t_interval

__all__ = ["bar_lines", "before_after", "paired", "paired_table", "tagged_rows"]

CellKey = tuple[str, str, str]


def _by_seed(rows: Sequence[dict[str, Any]], metric: str) -> dict[tuple[CellKey, str], dict[Any, float]]:
    out: dict[tuple[CellKey, str], dict[Any, float]] = defaultdict(dict)
    for r in rows:
        try:
            v = float(r.get(metric))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out[((str(r["dataset"]), str(r["labels"]), str(r["model"])), str(r["detector"]))][str(r["seed"])] = v
    return out


def paired(rows: Sequence[dict[str, Any]], metric: str, ref: str) -> list[dict[str, Any]]:
    """Per cell and other detector: seeds, mean of ``ref − other``, its 95 % interval, verdict."""
    data = _by_seed(rows, metric)
    cells = list(dict.fromkeys(c for c, _ in data))
    dets = list(dict.fromkeys(d for _, d in data))
    out = []
    for c in cells:
        if (c, ref) not in data:
            continue
        for d in dets:
            if d == ref or (c, d) not in data:
                continue
            seeds = sorted(set(data[(c, ref)]) & set(data[(c, d)]))
            if not seeds:
                continue
            m, lo, hi = t_interval([data[(c, ref)][s] - data[(c, d)][s] for s in seeds])
            verdict = "tie" if not lo <= hi or lo <= 0 <= hi else ("win" if m > 0 else "loss")
            out.append({"cell": c, "other": d, "n": len(seeds), "mean": m, "lo": lo, "hi": hi,
                        "verdict": verdict})  # fmt: skip
    return out


def tagged_rows(paths: Sequence[Path], tag: str, detectors: Sequence[str]) -> list[dict[str, str]]:
    """The bench rows of ``detectors`` in the CSV files ``paths``, each detector renamed
    ``detector@tag`` (one side of :func:`before_after`)."""
    out: list[dict[str, str]] = []
    for p in paths:
        with open(p, newline="") as fh:
            out += [r | {"detector": f"{r['detector']}@{tag}"} for r in csv.DictReader(fh)
                    if r.get("detector") in detectors]  # fmt: skip
    return out


def before_after(rows: Sequence[dict[str, Any]], metrics: Sequence[str], detectors: Sequence[str], *,
                 after: str, before: str) -> dict[tuple[CellKey, str, str], dict[Any, Any]]:  # fmt: skip
    """The same detectors run two ways, rows tagged ``detector@after`` / ``detector@before``:
    ``{(cell, detector, metric): paired(...) entry of after − before}``."""
    out = {}
    for metric in metrics:
        for det in detectors:
            for p in paired(rows, metric, f"{det}@{after}"):
                if p["other"] == f"{det}@{before}":
                    out[(p["cell"], det, metric)] = p
    return out


def paired_table(rows: Sequence[dict[str, Any]], metric: str, ref: str) -> list[str]:
    """Markdown: one row per cell, one column per other detector, ``+0.012 [+0.004, +0.020] win``."""
    res = paired(rows, metric, ref)
    if not res:
        return []
    others = list(dict.fromkeys(r["other"] for r in res))
    cells = list(dict.fromkeys(r["cell"] for r in res))
    at = {(r["cell"], r["other"]): r for r in res}
    lines = ["| dataset | labels | model | " + " | ".join(f"{ref} − {o}" for o in others) + " |",
             "|" + "---|" * (3 + len(others))]  # fmt: skip
    for c in cells:
        vals = []
        for o in others:
            r = at.get((c, o))
            if r is None:
                vals.append("–")
            elif r["n"] < 2:
                vals.append(f"{r['mean']:+.3f}")
            else:
                mark = {"win": " ✓", "loss": " ✗", "tie": ""}[r["verdict"]]
                vals.append(interval_text(r["mean"], r["lo"], r["hi"], "+.3f") + mark)
        lines.append(f"| {c[0]} | {c[1]} | {c[2]} | " + " | ".join(vals) + " |")
    return lines


def _below(ref: dict[Any, float], other: dict[Any, float], *, scale: float = 1.0, shift: float = 0.0) -> bool:
    """Whether ``ref − (scale × other − shift)``, paired over the shared seeds, has its whole 95 %
    t-interval below 0 (a shortfall beyond seed noise); never with fewer than 2 shared seeds."""
    seeds = sorted(set(ref) & set(other))
    if len(seeds) < 2:
        return False
    _, _, hi = t_interval([ref[s] - (scale * other[s] - shift) for s in seeds])
    return bool(math.isfinite(hi) and hi < 0)


def bar_lines(rows: Sequence[dict[str, Any]], ref: str, *, baseline: str = "cleanlab") -> list[str]:
    """The bar for ``ref`` over the cells: F1 ≥ ``baseline``'s in every cell, F1 ≥ 0.95 × the best
    detector's in ≥ 90 % of cells and ≥ 0.85 × everywhere, AUROC within 0.01 of the best in ≥ 90 %
    (means over seeds). For each part it missed, how many of the missed cells miss it by more than
    seed noise: the same comparison per seed (``ref − baseline``, ``ref − 0.95 × best``, ``ref −
    (best − 0.01)``, the best detector being the one of the highest mean) with its paired 95 %
    interval wholly below 0. The best is picked on the same seeds, which favours it."""
    f1, auc = _by_seed(rows, "f1"), _by_seed(rows, "auroc")

    def mean(d: dict[tuple[CellKey, str], dict[Any, float]], c: CellKey, det: str) -> float | None:
        v = d.get((c, det))
        return float(np.mean(list(v.values()))) if v else None

    def best(d: dict[tuple[CellKey, str], dict[Any, float]], c: CellKey) -> tuple[float, str]:
        """The detector of the highest mean among those with every seed ``ref`` has (a detector that
        failed on the hard seeds would otherwise be the best on the easy ones); ``ref`` on a tie."""
        seeds = set(d.get((c, ref), {}))
        pool = [(v, det == ref, det) for det in sorted({dd for cc, dd in d if cc == c})
                if seeds <= set(d[(c, det)]) and (v := mean(d, c, det)) is not None]  # fmt: skip
        v, _, det = max(pool)
        return v, det

    cells = list(dict.fromkeys(c for c, det in f1 if det == ref))
    if not cells:
        return []
    ge_base, ratios, auc_ok, n_auc = 0, [], 0, 0
    n_base = 0
    real = {"base": [0, 0], "ratio": [0, 0], "auc": [0, 0]}  # [missed, missed beyond seed noise]
    for c in cells:
        mine = mean(f1, c, ref)
        base = mean(f1, c, baseline)
        if base is not None and mine is not None:
            n_base += 1
            ok = mine >= base - 1e-12
            ge_base += ok
            if not ok:
                real["base"][0] += 1
                real["base"][1] += _below(f1[(c, ref)], f1[(c, baseline)])
        bf, bdet = best(f1, c)
        ratios.append((mine or 0.0) / bf if bf > 0 else 1.0)
        if ratios[-1] < 0.95:
            real["ratio"][0] += 1
            real["ratio"][1] += _below(f1[(c, ref)], f1[(c, bdet)], scale=0.95)
        a = mean(auc, c, ref)
        if a is not None:
            n_auc += 1
            ba, badet = best(auc, c)
            ok = a >= ba - 0.01
            auc_ok += ok
            if not ok:
                real["auc"][0] += 1
                real["auc"][1] += _below(auc[(c, ref)], auc[(c, badet)], shift=0.01)
    r = np.array(ratios)
    out = [
        f"- cells: {len(cells)}",
        f"- F1 ≥ {baseline}'s: {ge_base}/{n_base} cells",
        f"- F1 ≥ 0.95 × the best detector's: {int((r >= 0.95).sum())}/{r.size} cells "
        f"({(r >= 0.95).mean():.0%}); lowest ratio {r.min():.2f}",
        f"- AUROC within 0.01 of the best: {auc_ok}/{n_auc} cells",
    ]
    what = {"base": f"below {baseline}'s F1", "ratio": "below 0.95 × the best detector's F1",
            "auc": "more than 0.01 below the best AUROC"}  # fmt: skip
    misses = [f"{what[k]}: {m[1]} of {m[0]}" for k, m in real.items() if m[0]]
    if misses and len({str(r["seed"]) for r in rows}) < 2:  # no spread to compare with
        out.append("- missed by more than seed noise: not assessable with one seed")
    elif misses:
        out.append("- missed by more than seed noise (paired 95 % interval below 0; the best detector is "
                   "picked on the same seeds, which favours it): " + "; ".join(misses))  # fmt: skip
    return out
