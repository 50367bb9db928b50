"""Re-score CIFAR-10N bench cells from the bench cache (no training): held-out vs in-sample signals,
their combination, and alternative cutoffs.

Reads ``<cache>/crossfit/*/`` (cross-fitted recordings) and ``<cache>/runs/*/`` (the two in-sample
auxiliary runs) written by ``labeltrace bench`` (RecordingDir folders, whose fingerprints name their
labels); truth = given label != CIFAR-10N ``clean``.
Run: PYTHONPATH=src python benchmarks/research/from_bench_cache.py /work/cache/bench
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from labeltrace._io import digest
from labeltrace.decide import cutoffs as threshold
from labeltrace.decide.evidence import posterior
from labeltrace.record.recording import RecordingDir
from labeltrace.score import probs

LABELS = Path("/work/cache/cifar10n/labels.csv")


def f1(truth: np.ndarray, flagged: np.ndarray) -> float:
    tp = float((truth & flagged).sum())
    return 2 * tp / max(truth.sum() + flagged.sum(), 1)


def main() -> None:
    cache = Path(sys.argv[1])
    rows = list(csv.DictReader(open(LABELS)))
    lab = {k: np.array([int(r[k]) for r in rows]) for k in ("clean", "aggre", "random1", "worse")}
    by_labels = {digest(v.astype(np.int64)): k for k, v in lab.items() if k != "clean"}
    found: dict[tuple[str, str], list] = defaultdict(list)
    for kind in ("crossfit", "runs"):
        for d in sorted((cache / kind).glob("*")):
            store = RecordingDir(d)
            if store.finished and store.meta()["fingerprint"]["labels"] in by_labels:
                name = by_labels[store.meta()["fingerprint"]["labels"]]
                found[(name, kind)].append((store.meta()["fingerprint"]["seed"], store))
    for set_name in ("aggre", "random1", "worse"):
        for (seed, cf), (_, ins) in zip(sorted(found[(set_name, "crossfit")], key=lambda p: p[0]),
                                        sorted(found[(set_name, "runs")], key=lambda p: p[0]), strict=False):
            cell = f"cifar10n | {set_name} | seed {seed}"
            y = lab[set_name]
            truth = y != lab["clean"]
            post_h = cf.load().runs[0].dynamics.mean_posterior()
            post_h /= post_h.sum(1, keepdims=True)
            post_i = posterior(ins.load().runs, last=None)
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
