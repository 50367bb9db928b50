"""The summary tables of benchmarks/RESULTS.md, from the committed per-seed CSVs — one command:

    python benchmarks/summarize.py benchmarks/results/test-{breastmnist,cifar10h,cifar10h-2k,cifar10n,pneumoniamnist-cnn-low,pneumoniamnist-cnn,pneumoniamnist}.csv > benchmarks/results/test-summary.md

For every cell (dataset, labels, model): the default detector (``crossfit``) against the cleanlab
recipe and against the best detector of the cell (F1 of each one's own rule, means over seeds,
and the paired difference with its 95 % t-interval), AUROC, how many it flags against the true
count; then the bar of issue 12, the nearly clean cell, the one-training mode (``single``) against
``crossfit``, SEI against the rest, and the cost of each detector as a multiple of one plain
training (``single``).
"""

from __future__ import annotations

import csv
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from labeltrace.bench.cells import failure, warning  # noqa: E402
from labeltrace.bench.paired import bar_lines, paired  # noqa: E402
from labeltrace.evaluate.metrics import interval_text  # noqa: E402

DEFAULT, BASELINE, SINGLE = "crossfit", "cleanlab", "single"


def _f(v: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return x


def _ratio(r: float) -> str:
    """crossfit / best to two decimals, to three where two would round a miss of the bar's 0.95 up onto it."""
    return f"{r:.3f}" if 0.945 <= r < 0.95 else f"{r:.2f}"


def _px(rows: list[dict[str, str]]) -> str:
    """The feature resolutions of a cell's rows: "224", "96 ×2 / 224 ×3", "–" (images), "config"."""
    counts = Counter("config" if r.get("resolution") is None else (r["resolution"] or "–") for r in rows)
    if len(counts) == 1:
        return next(iter(counts))
    return " / ".join(f"{k} ×{v}" for k, v in sorted(counts.items()))


def _read(paths: list[str]) -> list[dict[str, str]]:
    """Every bench row of ``paths`` (not the *_sei_epochs files); a (cell, detector, seed) that two
    rows give is an error naming both files: the means would count it twice, the paired
    differences once. So is a cell whose rows were made with two settings (their ``settings``
    column; rows written before it have none and are not compared): pooled, they would pass for
    more seeds of one setting."""
    rows, seen = [], {}
    settings: dict[tuple[str, ...], tuple[str, str]] = {}
    for p in paths:
        with open(p, newline="") as fh:
            for r in csv.DictReader(fh):
                if "detector" not in r:
                    continue
                key = (r["dataset"], r["labels"], r["model"], r["detector"], r["seed"])
                if key in seen:
                    raise SystemExit(f"summarize.py: {' / '.join(key[:4])} seed {key[4]} is in {seen[key]} and in {p}; "
                                     "give each cell's rows once")  # fmt: skip
                seen[key] = p
                made = r.get("settings") or ""
                if made:
                    first = settings.setdefault(key[:3], (made, p))
                    if first[0] != made:
                        raise SystemExit(f"summarize.py: {' / '.join(key[:3])} has rows made with settings {first[0]} "
                                         f"(in {first[1]}) and {made} (in {p}): another model, dataset or bench "
                                         "setting; summarize each setting apart")  # fmt: skip
                rows.append(r)
    return rows


def main(paths: list[str]) -> None:
    rows = _read(paths)
    # a detector that failed on a seed (its row: note "failed: ...", n_flagged and n_trainings -1) is left
    # out of every mean and count, and listed at the end
    failed = [r for r in rows if failure(r) is not None]
    rows = [r for r in rows if failure(r) is None]
    by = defaultdict(list)
    for r in rows:
        by[(r["dataset"], r["labels"], r["model"], r["detector"])].append(r)
    cells = list(dict.fromkeys((r["dataset"], r["labels"], r["model"]) for r in rows))
    dets = list(dict.fromkeys(r["detector"] for r in rows))

    def mean(c: tuple[str, str, str], d: str, k: str) -> float:
        v = [_f(r[k]) for r in by[(*c, d)]]
        v = [x for x in v if math.isfinite(x)]
        return float(np.mean(v)) if v else float("nan")

    pf = {(p["cell"], p["other"]): p for p in paired(rows, "f1", DEFAULT)}
    print("## The default (crossfit) in every cell\n")
    print("F1 of each detector's own rule, mean over seeds; Δ = crossfit − other, paired over seeds, "
          "95 % t-interval (✓ / ✗: the interval excludes 0).\n")
    print("Features px: the frozen features' resolution per seed (`--resolution auto`'s probe; – for a network on "
          "images; config: rows written before the bench recorded it, at the config's fixed resolution).\n")
    print("| dataset | labels | model | seeds | features px | true | crossfit flags | crossfit F1 | cleanlab F1 "
          "| Δ vs cleanlab | best other (F1) | crossfit / best | crossfit AUROC | best AUROC |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in cells:
        if not by[(*c, DEFAULT)]:
            continue
        n_seeds = len(by[(*c, DEFAULT)])
        f_def, f_cl = mean(c, DEFAULT, "f1"), mean(c, BASELINE, "f1")
        # the best among the detectors with a row on every seed crossfit has (one that failed on the
        # hard seeds would be the best on the easy ones); crossfit itself on a tie for the best AUROC
        full = [d for d in dets if len(by[(*c, d)]) >= n_seeds]
        others = [(mean(c, d, "f1"), d) for d in full if d != DEFAULT]
        others = [o for o in others if math.isfinite(o[0])]
        bf, bd = max(others) if others else (float("nan"), "–")
        aucs = [(mean(c, d, "auroc"), d == DEFAULT, d) for d in full]
        aucs = [a for a in aucs if math.isfinite(a[0])]
        ba, _, bad = max(aucs) if aucs else (float("nan"), False, "–")
        p = pf.get((c, BASELINE))
        delta = "–" if p is None else (interval_text(p["mean"], p["lo"], p["hi"], "+.3f")
                                       + {"win": " ✓", "loss": " ✗", "tie": ""}[p["verdict"]])
        ratio = f_def / max(bf, f_def) if math.isfinite(f_def) and bf > 0 else float("nan")
        print(f"| {c[0]} | {c[1]} | {c[2]} | {n_seeds} | {_px(by[(*c, DEFAULT)])} | {mean(c, DEFAULT, 'n_noisy'):.0f} "
              f"| {mean(c, DEFAULT, 'n_flagged'):.0f} | {f_def:.3f} | {f_cl:.3f} | {delta} | {bd} ({bf:.3f}) "
              f"| {_ratio(ratio)} | {mean(c, DEFAULT, 'auroc'):.3f} | {ba:.3f} ({bad}) |")
    noisy = [r for r in rows if _f(r.get("n_noisy", "0")) > 0]
    print("\n## The bar (cells with label errors)\n")
    print("\n".join(bar_lines(noisy, DEFAULT, baseline=BASELINE)))

    near = [c for c in cells if mean(c, DEFAULT, "true_rate") < 0.02]
    if near:
        print("\n## Nearly clean cells: how many each detector accuses\n")
        print("| dataset | labels | model | true errors | detector | flagged (mean) | flagged / true | recall@200 |")
        print("|---|---|---|---|---|---|---|---|")
        for c in near:
            t = mean(c, DEFAULT, "n_noisy")
            for d in dets:
                if by[(*c, d)]:
                    fl = mean(c, d, "n_flagged")
                    print(f"| {c[0]} | {c[1]} | {c[2]} | {t:.0f} | {d} | {fl:.0f} | "
                          f"{fl / t if t else float('nan'):.1f} | {mean(c, d, 'recall_at_200'):.3f} |")

    print("\n## The one-training mode (single) against crossfit\n")
    print("| dataset | labels | model | single F1 | crossfit F1 | single / crossfit |")
    print("|---|---|---|---|---|---|")
    ok = total = 0
    for c in cells:
        if not by[(*c, SINGLE)] or not by[(*c, DEFAULT)] or c in near:
            continue
        s, d = mean(c, SINGLE, "f1"), mean(c, DEFAULT, "f1")
        r = s / d if d > 0 else float("nan")
        total += 1
        ok += r >= 0.9
        print(f"| {c[0]} | {c[1]} | {c[2]} | {s:.3f} | {d:.3f} | {r:.2f} |")
    print(f"\nsingle within 0.9 x crossfit's F1: {ok}/{total} cells")

    print("\n## Does SEI lead? SEI (two in-sample runs, auxiliary-mean cutoff) against the rest\n")
    print("| dataset | labels | model | SEI F1 | best other F1 | SEI AUROC | crossfit AUROC | best other AUROC |")
    print("|---|---|---|---|---|---|---|---|")
    for c in cells:
        if not by[(*c, "sei")] or c in near:
            continue
        of = max(((mean(c, d, "f1"), d) for d in dets if d != "sei" and by[(*c, d)]), key=lambda t: np.nan_to_num(t[0]))
        oa = max(((mean(c, d, "auroc"), d) for d in dets if d != "sei" and by[(*c, d)]),
                 key=lambda t: np.nan_to_num(t[0]))  # fmt: skip
        print(f"| {c[0]} | {c[1]} | {c[2]} | {mean(c, 'sei', 'f1'):.3f} | {of[0]:.3f} ({of[1]}) "
              f"| {mean(c, 'sei', 'auroc'):.3f} | {mean(c, DEFAULT, 'auroc'):.3f} | {oa[0]:.3f} ({oa[1]}) |")

    print("\n## Cost: trainings and wall seconds, as a multiple of one plain training (single)\n")
    print("| dataset | model | detector | trainings | wall s (mean per cell) | × one training |")
    print("|---|---|---|---|---|---|")
    groups = list(dict.fromkeys((c[0], c[2]) for c in cells))
    for ds, mo in groups:
        cs = [c for c in cells if c[0] == ds and c[2] == mo]
        base = np.nanmean([mean(c, SINGLE, "wall_seconds") for c in cs])
        for d in dets:
            w = np.nanmean([mean(c, d, "wall_seconds") for c in cs])
            n = np.nanmean([mean(c, d, "n_trainings") for c in cs])
            if math.isfinite(w):
                print(f"| {ds} | {mo} | {d} | {n:.0f} | {w:.1f} | {w / base:.1f} |")
    if failed:
        print(f"\n## Failed rows, left out of every table above: {len(failed)}\n")
        for r in failed:
            print(f"- {r['dataset']} | {r['labels']} | {r['model']} | {r['detector']} | seed {r['seed']}: {r['note']}")
    warned = [r for r in rows if warning(r) is not None]
    if warned:
        print(f"\n## Flagged sets that look like a collapsed model, kept in every table above: {len(warned)}\n")
        for r in warned:
            print(f"- {r['dataset']} | {r['labels']} | {r['model']} | {r['detector']} | seed {r['seed']}: {r['note']}")


if __name__ == "__main__":
    main(sys.argv[1:])
