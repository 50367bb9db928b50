"""A second cross-fitting round without the samples the first one flags, on the dev cells with
frozen features (not a test; exploration of issue 12 §2-3, kept because it failed).

    python scripts/crossfit_prune_dev.py --cache /work/cache/bench > benchmarks/results/dev-crossfit-prune.md

Round 1 is the default ``crossfit`` detector from the bench cache. Round 2 trains the same five
fold heads (same folds, recipe and epochs; seeds offset by 7) on their training folds *minus*
round 1's flagged samples, and reads each sample's held-out softmax (evaluation mode, after every
epoch, averaged over the epochs) from the head of its own fold. Its score is p(given label) under
that posterior, cut at ``count.conservative_count`` on it (no in-sample posterior: the small-set
rule). The idea: with the suspects out of training, the fold heads learn a cleaner boundary and
stop agreeing with confusion-like flips. Trains 5 heads per cell (seconds each).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from dev_cells import dev_cells, f1_at, parse_args  # scripts/, run as a script
from sklearn.metrics import roc_auc_score

from labeltrace.bench.cells import CellRunner
from labeltrace.decide import count, detectors
from labeltrace.score import probs
from labeltrace.train import train_recorded
from labeltrace.train.loop import predict_logits
from labeltrace.train.protocol import crossfit_seed, stratified_folds

DATASETS = ("pneumoniamnist-val", "breastmnist-val", "cifar10n-dev-2k")


def round_two(runner: CellRunner, flagged: np.ndarray, n_folds: int) -> np.ndarray:
    """(N, K) held-out posterior of fold heads trained without the ``flagged`` samples."""
    m, x, given, k = runner.cell.model, runner.x, runner.given, runner.k
    spec, tc = m.network(), m.train_config("cpu")
    folds = stratified_folds(given, n_folds, seed=runner.cell.seed)
    held = np.zeros((len(given), k))
    for f in range(n_folds):
        train = np.flatnonzero((folds != f) & ~flagged)
        test = np.flatnonzero(folds == f)
        seed = crossfit_seed(runner.cell.seed) + 101 * f + 7
        torch.manual_seed(seed)
        net = spec.build(x, k)
        ids = torch.as_tensor(test)
        acc = np.zeros((test.size, k))

        def on_epoch(_epoch: int, _rec: object, net: torch.nn.Module = net, ids: torch.Tensor = ids,
                     acc: np.ndarray = acc) -> None:  # fmt: skip
            acc[:] += torch.softmax(predict_logits(net, x, ids, device=torch.device("cpu")), 1).numpy()

        train_recorded(net, x[torch.as_tensor(train)], given[train].astype(np.int64), num_classes=k,
                       config=replace(tc, seed=seed), recorder_mode="streaming", keep_probs=1, progress=False,
                       on_epoch=on_epoch)  # fmt: skip
        held[test] = acc / tc.epochs
    return held / held.sum(axis=1, keepdims=True)


def main() -> None:
    args = parse_args(__doc__ or "")
    torch.set_num_threads(2)
    print("# A second cross-fitting round without round 1's flags (dev cells, frozen features)\n")
    print("`python scripts/crossfit_prune_dev.py --cache /work/cache/bench > "
          "benchmarks/results/dev-crossfit-prune.md` (round 1 from the bench cache of `configs/dev.toml`).\n")  # fmt: skip
    print("| cell | seed | true | round 1 flagged | round 1 F1 | round 1 AUROC | round 2 flagged | round 2 F1 "
          "| round 2 AUROC |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for cell, runner in dev_cells(args.config, args.cache, DATASETS):
        if not cell.model.on_features:
            continue
        ev = runner.evidence()
        det = detectors.detect("crossfit", ev)
        flagged = np.asarray(det.flagged, dtype=bool)
        held = round_two(runner, flagged, runner.cfg.n_folds)
        s2 = probs.self_confidence(held, runner.given)
        n2 = count.conservative_count(held, None, runner.given)
        truth = runner.truth
        noisy = bool(truth.any())
        f1 = (f1_at(det.score, truth, int(flagged.sum())), f1_at(s2, truth, n2))
        au = (roc_auc_score(truth, -det.score), roc_auc_score(truth, -s2)) if noisy else (np.nan, np.nan)
        rows.append((noisy, flagged.sum(), n2, *f1, *au))
        print(f"| {cell.dataset.name} {cell.labels} | {cell.seed} | {int(truth.sum())} | {int(flagged.sum())} | "
              f"{f1[0]:.3f} | {au[0]:.3f} | {n2} | {f1[1]:.3f} | {au[1]:.3f} |", flush=True)  # fmt: skip
    a = np.array([r for r in rows if r[0]], dtype=float)
    c = np.array([r for r in rows if not r[0]], dtype=float)
    print(f"\nNoisy rows ({len(a)}): mean F1 {a[:, 3].mean():.4f} → {a[:, 4].mean():.4f}, mean AUROC "
          f"{a[:, 5].mean():.4f} → {a[:, 6].mean():.4f}; round 2 higher F1 in {int((a[:, 4] > a[:, 3]).sum())}, "
          f"higher AUROC in {int((a[:, 6] > a[:, 5]).sum())}. Clean rows ({len(c)}): flagged "
          f"{c[:, 1].mean():.1f} → {c[:, 2].mean():.1f} on average.")  # fmt: skip


if __name__ == "__main__":
    main()
