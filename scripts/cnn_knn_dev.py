"""Exploratory, dev cells only: the kNN vote of the from-scratch CNN in a common space built from
all five cross-fitting fold models' embeddings, against the first fold model's embedding that
``labeltrace scan`` uses now. No extra training: the same scans, the embedding read at the end.

    python scripts/cnn_knn_dev.py --out /work/cache/cnn_knn --base /work/cache/cnn_score \\
        --pneumonia /work/shared/data/medmnist/pneumoniamnist_modified.npz \\
        --breast /work/shared/data/medmnist/breastmnist.npz > benchmarks/results/dev-cnn-knn.md

Why: the kNN vote in the embedding of a CNN trained on all the data is the best ranking on some
CNN cells (``results/dev-low-rate-summary.md``: PneumoniaMNIST val, confusion 0.1, AUROC 0.964
against crossfit's 0.898), but that run costs one more training; the first fold model's embedding,
which the cross-fitted recording has for free, mixes held-out and in-sample samples and lost
(RESULTS §6, ``crossfit_knn``). Here each sample is placed by the concatenation of the five fold
models' L2-normalised embeddings (each model trained on it or not in the same way for every
sample: four in sample, one held out). The scans ran in this process with two patches
(``NetworkSpec.build`` kept every network built, the recording's embedding became that
concatenation; ``git show 25027dd:scripts/cnn_knn_dev.py``). The cross-fitted trainings are the same as in ``--base`` (``cnn_score_dev.py``'s
scans; checked: crossfit's AUROC must match). Prints per cell the AUROC and own-rule F1 of
``knn_vote`` and ``crossfit_knn`` for both embeddings, and the paired differences.
A first look, not a decision; the planned study is ``cnn_allfolds_dev.py``, after which the scan
keeps this common embedding itself (``labeltrace.train.embedding.common_embedding``, the same
computation), so the patches are gone and a plain scan gives the same recording; ``--base`` must
hold scans made before that (b6341e4 or earlier) for its "fold 0" columns to mean the first fold
model's embedding.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from cnn_allfolds_dev import parse_args, scanned

from labeltrace.evaluate.metrics import interval_text, t_interval


def cells(a: argparse.Namespace) -> list[tuple[str, list[str], str]]:
    low = ("symmetric:0.1", "symmetric:0.2", "confusion:0.1", "confusion:0.2")
    c = [("digits", ["--example", "digits"], n) for n in (*low, "confusion:0.4")]
    c += [("pneumoniamnist-val", [a.pneumonia, "--split", "val"], n) for n in (*low, "confusion:0.3", "confusion:0.4")]
    c += [("breastmnist-val", [a.breast, "--split", "val"], n) for n in low]
    return c


def main() -> None:
    a = parse_args(__doc__)
    rows: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for name, noise, tag, run_dir in scanned(a.out, cells(a)):
        new = json.loads((run_dir / "run.json").read_text())["noise"]["per_detector"]
        old = json.loads((Path(a.base) / "runs" / tag / "run.json").read_text())["noise"]["per_detector"]
        assert abs(new["crossfit"]["auroc"] - old["crossfit"]["auroc"]) < 1e-9, f"{tag}: not the same training"
        r = rows[(name, noise)]
        for det in ("knn_vote", "crossfit_knn"):
            for what in ("auroc", "f1"):
                r[f"{det} {what} fold 0"].append(old[det][what])
                r[f"{det} {what} all folds"].append(new[det][what])
        r["crossfit auroc"].append(old["crossfit"]["auroc"])
        r["crossfit f1"].append(old["crossfit"]["f1"])
    cols = ["crossfit auroc", "knn_vote auroc fold 0", "knn_vote auroc all folds", "crossfit_knn auroc fold 0",
            "crossfit_knn auroc all folds", "crossfit f1", "knn_vote f1 fold 0", "knn_vote f1 all folds",
            "crossfit_knn f1 fold 0", "crossfit_knn f1 all folds"]  # fmt: skip
    print("# The CNN's kNN vote in all five fold models' embeddings, on the dev cells (exploratory)\n")
    print("`python scripts/cnn_knn_dev.py --out /work/cache/cnn_knn --base /work/cache/cnn_score --pneumonia "
          ".../pneumoniamnist_modified.npz --breast .../breastmnist.npz` (3 seeds; `labeltrace scan --model "
          "small-cnn`; mean over seeds; F1 by each detector's own rule)\n")  # fmt: skip
    print("| cell | noise | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for key, r in rows.items():
        print(f"| {key[0]} | {key[1]} | " + " | ".join(f"{np.mean(r[c]):.3f}" for c in cols) + " |")
    print("\nPaired over all cells' seeds (mean, 95 % t-interval)\n")
    print("| comparison | ΔAUROC | ΔF1 |")
    print("|---|---|---|")
    for label, x, y in (("knn_vote: all folds − fold 0", "knn_vote {} all folds", "knn_vote {} fold 0"),
                        ("crossfit_knn: all folds − fold 0", "crossfit_knn {} all folds", "crossfit_knn {} fold 0"),
                        ("knn_vote all folds − crossfit", "knn_vote {} all folds", "crossfit {}"),
                        ("crossfit_knn all folds − crossfit", "crossfit_knn {} all folds", "crossfit {}")):  # fmt: skip
        d = {w: [u - v for r in rows.values() for u, v in zip(r[x.format(w)], r[y.format(w)], strict=True)]
             for w in ("auroc", "f1")}  # fmt: skip
        print(f"| {label} | {interval_text(*t_interval(d['auroc']), '+.4f')} | {interval_text(*t_interval(d['f1']), '+.4f')} |")


if __name__ == "__main__":
    main()
