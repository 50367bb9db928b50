"""crossfit's posterior mixed with the kNN label shares on the large dev cells (N ≥ ``count.LARGE``;
dev cells only, ``benchmarks/SPLIT.md``; a study, the companion of ``knn_mix_dev.py``).

    python scripts/knn_mix_large_dev.py --cache /work/cache/bench > benchmarks/results/dev-knn-mix-large.md

(``--only cifar10n-dev`` for the 96 px cells alone.)

The 50,000 CIFAR-10N training images with the frozen-feature head: ``cifar10n-dev`` (96 px) and
``cifar10n-dev-auto`` (``--resolution auto``), labels ``random2`` / ``random3`` / the original
(nearly clean) ones, 3 seeds. For each weight ``w`` the held-out and in-sample posteriors become
``(1 - w) * posterior + w * shares`` (the label shares of each sample's ``knn_k`` nearest
neighbours in the frozen features); the ranking is p(given label) under their mean and the count
is crossfit's large-set rule (``count.conservative_count``) on the mixed posteriors. ``w = 0`` is
crossfit. Prints per cell and seed the count and F1 of the flagged set (AUROC beside), then per
weight the mean F1 and AUROC over the noisy rows and the mean count on the original labels. The
neighbours are searched once per feature matrix (they do not depend on the labels).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np
from dev_cells import dev_cells, f1_at, parse_args  # scripts/, run as a script
from sklearn.metrics import roc_auc_score

from labeltrace.decide import count as C
from labeltrace.decide import detectors
from labeltrace.score.knn import knn_indices, label_shares

LARGE_DEV = ("cifar10n-dev", "cifar10n-dev-auto")
WEIGHTS = (0.0, 0.1, 0.25)


def main() -> None:
    a = parse_args(__doc__)
    neighbours: dict[str, np.ndarray] = {}
    f1s: dict[float, list[float]] = defaultdict(list)
    aucs: dict[float, list[float]] = defaultdict(list)
    clean: dict[float, list[int]] = defaultdict(list)
    print("# crossfit's posterior mixed with the kNN label shares on the large dev cells\n")
    only = f" --only {a.only}" if a.only else ""
    print(f"`python scripts/knn_mix_large_dev.py --cache /work/cache/bench{only} > "
          "benchmarks/results/dev-knn-mix-large.md` (from the bench cache of `configs/dev.toml`; each "
          "entry: flagged (F1) / AUROC).\n")  # fmt: skip
    print("| cell | seed | N | true | " + " | ".join(f"w = {w}" for w in WEIGHTS) + " |")
    print("|---|---|---|---|" + "---|" * len(WEIGHTS))
    for cell, runner in dev_cells(a.config, a.cache, tuple(a.only.split(",")) if a.only else LARGE_DEV):
        ev = runner.evidence()
        x, y, truth = ev.features, ev.labels, runner.truth
        key = hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest()
        if key not in neighbours:
            neighbours[key] = knn_indices(x, k=ev.knn_k)
        nbrs = neighbours[key]
        shares = label_shares(nbrs, y, ev.num_classes)
        held, ins = detectors._held_posteriors(ev)
        assert ins is not None, "the large-set rule reads the in-sample posterior"
        outs = []
        for w in WEIGHTS:
            h, i = C.knn_mixed(held, ins, shares, w)
            s = ((h + i) / 2)[np.arange(y.size), y]
            n_hat = C.conservative_count(h, i, y)
            if truth.any():
                f1 = f1_at(s, truth, n_hat)
                auc = float(roc_auc_score(truth, -s))
                f1s[w].append(f1)
                aucs[w].append(auc)
                outs.append(f"{n_hat} ({f1:.3f}) / {auc:.3f}")
            else:
                clean[w].append(n_hat)
                outs.append(f"{n_hat}")
        label = f"{cell.dataset.name} {cell.labels}"
        print(f"| {label} | {cell.seed} | {y.size} | {int(truth.sum())} | " + " | ".join(outs) + " |", flush=True)
    print("\n| w | mean F1 (noisy rows) | mean AUROC | rows where F1 ≥ w = 0's | flagged on the original labels (mean) |")
    print("|---|---|---|---|---|")
    for w in WEIGHTS:
        ge = int(np.sum(np.array(f1s[w]) >= np.array(f1s[0.0]) - 1e-12))
        print(f"| {w} | {np.mean(f1s[w]):.4f} (n={len(f1s[w])}) | {np.mean(aucs[w]):.4f} | {ge} | "
              f"{np.mean(clean[w]):.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
