"""Exploratory, dev cells only (no decision): the CNN's kNN vote in the fold models' common
embedding (free in a default scan) against the kNN vote in the embedding of its own in-sample
training (``labeltrace scan --detector knn_vote``, what the bench's ``knn_vote`` row measures:
two more runs, the first one's embedding).

    python scripts/cnn_knn_run_dev.py --out /work/cache/cnn_knn_run --base /work/cache/cnn_knn \\
        --pneumonia /work/shared/data/medmnist/pneumoniamnist_modified.npz \\
        --breast /work/shared/data/medmnist/breastmnist.npz > benchmarks/results/dev-cnn-knn-run.md

Why: on the BreastMNIST test cells with confusion noise 10-20 % the separate run's kNN vote is
the best detector (RESULTS §1), and the default scan's ``knn_vote`` column now reads the common
embedding instead (RESULTS §6). ``--base`` holds ``cnn_allfolds_dev.py``'s scans (the same cells
and seeds, the common embedding); ``--out`` gets one ``--detector knn_vote`` scan per cell and seed
(the same labels: checked). AUROC and F1 (vote < 0.5) per cell, and the paired differences.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from cnn_allfolds_dev import cells, parse_args, scanned

from labeltrace.evaluate.metrics import interval_text, t_interval
from labeltrace.rundir import open_run


def main() -> None:
    a = parse_args(__doc__)
    r: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    noisy = [c for c in cells(a) if c[2] != "clean"]
    for name, noise, tag, run_dir in scanned(a.out, noisy, ["--detector", "knn_vote"]):
        base = Path(a.base) / "runs" / tag
        assert np.array_equal(open_run(run_dir).column("given_label_id"), open_run(base).column("given_label_id"))
        for side, d in (("own run", run_dir), ("common", base)):
            m = json.loads((d / "run.json").read_text())["noise"]["per_detector"]["knn_vote"]
            r[(name, noise)][f"auroc {side}"].append(m["auroc"])
            r[(name, noise)][f"f1 {side}"].append(m["f1"])
    print("# The CNN's kNN vote: its own in-sample run's embedding against the fold models' common one (dev, exploratory)\n")
    print("`python scripts/cnn_knn_run_dev.py --out /work/cache/cnn_knn_run --base /work/cache/cnn_knn --pneumonia "
          ".../pneumoniamnist_modified.npz --breast .../breastmnist.npz` (3 seeds; `labeltrace scan --model small-cnn "
          "--detector knn_vote` against the default scan's `knn_vote` column; mean over seeds; F1 at vote < 0.5)\n")  # fmt: skip
    print("| cell | noise | AUROC own run | AUROC common | F1 own run | F1 common |\n|---|---|---|---|---|---|")
    for k, v in r.items():
        print(f"| {k[0]} | {k[1]} | {np.mean(v['auroc own run']):.3f} | {np.mean(v['auroc common']):.3f} | "
              f"{np.mean(v['f1 own run']):.3f} | {np.mean(v['f1 common']):.3f} |")
    print("\nPaired over all cells' seeds: common − own run (mean, 95 % t-interval)\n\n| ΔAUROC | ΔF1 |\n|---|---|")
    d = {w: [c - o for v in r.values() for c, o in zip(v[f"{w} common"], v[f"{w} own run"], strict=True)]
         for w in ("auroc", "f1")}  # fmt: skip
    print(f"| {interval_text(*t_interval(d['auroc']), '+.4f')} | {interval_text(*t_interval(d['f1']), '+.4f')} |")


if __name__ == "__main__":
    main()
