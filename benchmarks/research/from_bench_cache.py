"""Re-score CIFAR-10N bench cells from the bench cache (no training): held-out vs in-sample signals,
their combination, and alternative cutoffs.

Reads ``<cache>/crossfit/*/`` (cross-fitted recordings) and ``<cache>/runs/*/`` (the two in-sample
auxiliary runs) written by ``labeltrace bench``; truth = given label != CIFAR-10N ``clean``.
Run: PYTHONPATH=src python benchmarks/research/from_bench_cache.py /work/cache/bench
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from labeltrace.decide import detectors as detect
from labeltrace.score import probs
from labeltrace.decide import cutoffs as threshold
from labeltrace.record import Recorder

LABELS = Path("/work/cache/cifar10n/labels.csv")


def f1(truth: np.ndarray, flagged: np.ndarray) -> float:
    tp = float((truth & flagged).sum())
    return 2 * tp / max(truth.sum() + flagged.sum(), 1)


def main() -> None:
    cache = Path(sys.argv[1])
    rows = list(csv.DictReader(open(LABELS)))
    lab = {k: np.array([int(r[k]) for r in rows]) for k in ("clean", "aggre", "random1", "worse")}
    cf = {json.loads((d / "meta.json").read_text())["cell"]: d for d in (cache / "crossfit").glob("*")
          if (d / "meta.json").is_file()}
    ins: dict[str, list[Path]] = defaultdict(list)
    for d in sorted((cache / "runs").glob("*")):
        if (d / "meta.json").is_file():
            m = json.loads((d / "meta.json").read_text())
            ins[m["cell"]].append(d)
    for cell in sorted(cf):
        if not cell.startswith("cifar10n") or len(ins.get(cell, [])) != 2:
            continue
        set_name = cell.split(" | ")[1]
        y = lab[set_name]
        truth = y != lab["clean"]
        held = Recorder.load(cf[cell] / "dynamics.npz").dynamics()
        post_h = held.mean_posterior()
        post_h /= post_h.sum(1, keepdims=True)
        # the two in-sample runs, in seed order (run 0, run 1); auxiliary = label K in that run
        runs = []
        for d in sorted(ins[cell], key=lambda d: json.loads((d / "meta.json").read_text())["seed"]):
            dyn = Recorder.load(d / "dynamics.npz").dynamics()
            runs.append(detect.RecordedRun(dyn, dyn.labels == 10, 10))
        post_i = detect.posterior(runs, last=None)
        pg_h = post_h[np.arange(len(y)), y]
        pg_i = post_i[np.arange(len(y)), y]
        n_h = probs.num_label_issues(post_h, y)
        n_i = probs.num_label_issues(post_i, y)
        combo = (post_h + post_i) / 2
        n_c = probs.num_label_issues(combo, y)
        pg_c = combo[np.arange(len(y)), y]
        out = {
            "held-out p_given, n_hat(held)": (pg_h, n_h),
            "in-sample p_given, n_hat(in)": (pg_i, n_i),
            "in-sample p_given, n_hat(held)": (pg_i, n_h),
            "mean posterior, n_hat(mean)": (pg_c, n_c),
            "mean posterior, n_hat(held)": (pg_c, n_h),
        }
        for name, (s, n) in out.items():
            flagged = threshold.flag(s, threshold.top_fraction(s, n / len(s)))
            print(f"{cell:40s} {name:34s} F1 {f1(truth, flagged):.3f} AUROC {roc_auc_score(truth, -s):.3f} "
                  f"n {n} (true {int(truth.sum())}) F1@true {f1(truth, threshold.flag(s, threshold.top_fraction(s, truth.mean()))):.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
