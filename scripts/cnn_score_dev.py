"""The from-scratch CNN's ranking (issue 12 §3), on the dev cells (not a test): AUROC and F1 of
rankings read off one default scan's cross-fitted recording, no extra training.

    python scripts/cnn_score_dev.py --out /work/cache/cnn_score \\
        --pneumonia /work/shared/data/medmnist/pneumoniamnist_modified.npz \\
        --breast /work/shared/data/medmnist/breastmnist.npz > benchmarks/results/dev-cnn-score.md

Why: ``crossfit`` ranks by p(given label) under the mean of the held-out and in-sample
trajectory-averaged posteriors, a recipe found with a frozen-feature head (RESULTS §8). A CNN
trained from scratch memorises its labels late, so its in-sample *probabilities* saturate near 1
for clean and wrong labels alike, while its logit margin (AUM) keeps how hard each label was to
fit. ``results/dev-rankings.md`` (the bench's 15-epoch CNN, 10 dev cells) had in-sample AUM
above crossfit in 7 of the 10 CNN cells; this study asks it of the product's own scan.

Candidates, all from the scan's run directory (lower = more suspect):

* ``crossfit`` — the default (the run's ``crossfit`` column);
* ``held-out p`` — p(given) under the held-out posterior alone;
* ``in-sample AUM`` — AUM of the cross-fitted recording's in-sample trajectory;
* ``rank crossfit + AUM`` and ``rank held-out p + AUM`` — equal-weight rank averages.

F1 is each ranking cut at the run's own count (crossfit's, which reads only the held-out
posterior: the same number of flags for every candidate, so F1 moves with the ranking alone).

Decision rule, written before the runs: a candidate replaces crossfit's ranking for the CNN only
if, over all cells' seeds paired, its ΔAUROC's 95 % t-interval lies above 0, its mean ΔF1 is
≥ 0, and no cell's mean ΔF1 is below −0.03.

``--study window`` (added after ``--study margin``, prompted by the dev cells of 10 % noise in
``results/dev-low-rate.md``, where on PneumoniaMNIST val with confusion 0.1 the CNN's plain 5-fold
probabilities of the last epoch ranked far better than crossfit: AUROC 0.955 against 0.898): the
held-out trajectory average was chosen with a frozen-feature head (§8), good from its first epoch;
a CNN from scratch is weak in its early epochs. Candidates: ``held-out p, last epoch``; ``held-out
p, last half`` (epochs T/2..T); ``crossfit, last half`` (both sides' p(given) over the last half);
each cut at the scan's count; and ``crossfit, last 5, own count`` (both sides' p(given) over the
last 5 epochs, cut at the default's count on the held-out softmax of those 5 epochs, the most
the recording keeps). The same
decision rule, written before the window candidates were computed on any cell. Its cells: those
above and the same four sets with symmetric / confusion noise 0.1.

    python scripts/cnn_score_dev.py --study window --out /work/cache/cnn_score --pneumonia ... --breast ... \
        > benchmarks/results/dev-cnn-window.md

Dev cells (``benchmarks/SPLIT.md``): digits with symmetric / confusion noise 0.2 and 0.4;
PneumoniaMNIST val with symmetric 0.2 and confusion 0.2 / 0.3 / 0.4; BreastMNIST val with
symmetric / confusion 0.2; PneumoniaMNIST's other 1,882 training images (``cnn_folds_dev.py``'s
``pneumonia_rest``) with symmetric 0.2 and confusion 0.2 / 0.3 / 0.4. Seeds 0-2, ``labeltrace scan
--model small-cnn`` at its defaults, one scan after the other (kept in ``OUT/results.jsonl``).
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from cnn_folds_dev import pneumonia_rest
from cnn_size_dev import run_scans
from dev_cells import f1_at
from ranking_dev import _rank
from sklearn.metrics import roc_auc_score

from labeltrace.decide import count as C
from labeltrace.evaluate.metrics import interval_text, t_interval
from labeltrace.rundir import open_run
from labeltrace.score import trajectory

BASE = "default"
SEEDS = (0, 1, 2)
NAMES_BY = {"margin": ("crossfit", "held-out p", "in-sample AUM", "rank crossfit + AUM", "rank held-out p + AUM"),
            "window": ("crossfit", "held-out p, last epoch", "held-out p, last half", "crossfit, last half",
                       "crossfit, last 5, own count")}
#: candidates flagged at their own count, not the scan's
OWN_COUNT = "crossfit, last 5, own count"


def window_candidates(run_dir: Path) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, int]]:
    """``--study window``: the scores, the truth and the counts (the scan's, and the last-5 count)."""
    run = open_run(run_dir)
    labels = run.column("given_label_id").astype(np.int64)
    held, ins = run.dynamics(held_out=True), run.in_sample_dynamics()
    assert ins is not None, f"{run_dir}: no in-sample recording"
    T = held.num_epochs
    half, last5 = slice(T // 2, T), slice(T - 5, T)
    h5 = held.posterior(last=5)  # the held-out softmax of the last 5 epochs (what the recording keeps)
    scores = {"crossfit": run.column("crossfit").astype(np.float64),
              "held-out p, last epoch": held.at("p_given", -1),
              "held-out p, last half": held.mean("p_given", epochs=half),
              "crossfit, last half": (held.mean("p_given", epochs=half) + ins.mean("p_given", epochs=half)) / 2,
              OWN_COUNT: (held.mean("p_given", epochs=last5) + ins.mean("p_given", epochs=last5)) / 2}  # fmt: skip
    k = int(run.meta["counts"]["flagged"])
    # every cell is under count.LARGE: the default's count reads the held-out posterior only
    own = C.conservative_count(h5 / h5.sum(1, keepdims=True), None, labels)
    return scores, run.column("is_noisy").astype(bool), {"scan": k, OWN_COUNT: own}


def candidates(run_dir: Path) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, int]]:
    """``--study margin``: the scores, the truth (is_noisy) and the counts (the scan's)."""
    run = open_run(run_dir)
    labels = run.column("given_label_id").astype(np.int64)
    held = run.dynamics(held_out=True).mean_posterior()
    held = held / held.sum(1, keepdims=True)
    p = held[np.arange(len(labels)), labels]
    ins = run.in_sample_dynamics()
    assert ins is not None, f"{run_dir}: no in-sample recording"
    aum = trajectory.compute("aum", ins)
    cf = run.column("crossfit").astype(np.float64)
    scores = {"crossfit": cf, "held-out p": p, "in-sample AUM": aum,
              "rank crossfit + AUM": _rank(cf) + _rank(aum), "rank held-out p + AUM": _rank(p) + _rank(aum)}  # fmt: skip
    return scores, run.column("is_noisy").astype(bool), {"scan": int(run.meta["counts"]["flagged"])}


def cells(a: argparse.Namespace, out: Path) -> list[tuple[str, list[str], str]]:
    c = [("digits", ["--example", "digits"], n)
         for n in ("symmetric:0.2", "symmetric:0.4", "confusion:0.2", "confusion:0.4")]  # fmt: skip
    c += [("pneumoniamnist-val", [a.pneumonia, "--split", "val"], n)
          for n in ("symmetric:0.2", "confusion:0.2", "confusion:0.3", "confusion:0.4")]  # fmt: skip
    c += [("breastmnist-val", [a.breast, "--split", "val"], n) for n in ("symmetric:0.2", "confusion:0.2")]
    rest = str(pneumonia_rest(out))
    c += [("pneumoniamnist-train-rest", [rest], n)
          for n in ("symmetric:0.2", "confusion:0.2", "confusion:0.3", "confusion:0.4")]  # fmt: skip
    if a.study == "window":
        c += [(name, data, n) for name, data in (("digits", ["--example", "digits"]),
                                                 ("pneumoniamnist-val", [a.pneumonia, "--split", "val"]),
                                                 ("breastmnist-val", [a.breast, "--split", "val"]),
                                                 ("pneumoniamnist-train-rest", [rest]))
              for n in ("symmetric:0.1", "confusion:0.1")]  # fmt: skip
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", choices=sorted(NAMES_BY), default="margin")
    ap.add_argument("--out", required=True)
    ap.add_argument("--pneumonia", required=True)
    ap.add_argument("--breast", required=True)
    a = ap.parse_args()
    out = Path(a.out)
    cell_list = cells(a, out)
    run_scans({BASE: lambda _cell: []}, cell_list, out, env=dict(os.environ), seeds=SEEDS)
    auc: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    f1: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for name, _, noise in cell_list:
        for seed in SEEDS:
            run_dir = out / "runs" / f"_{name}_{noise.replace(':', '')}_s{seed}"
            scores, truth, ks = (window_candidates if a.study == "window" else candidates)(run_dir)
            for n, s in scores.items():
                auc[(name, noise)][n].append(float(roc_auc_score(truth, -s)))
                f1[(name, noise)][n].append(f1_at(s, truth, ks.get(n, ks["scan"])))
    names = NAMES_BY[a.study]
    title = {"margin": "ranking", "window": "ranking over the epochs"}[a.study]
    print(f"# The from-scratch CNN's {title}, on the dev cells\n")
    print(f"`python scripts/cnn_score_dev.py{'' if a.study == 'margin' else ' --study ' + a.study} --out /work/cache/cnn_score "
          "--pneumonia .../pneumoniamnist_modified.npz --breast .../breastmnist.npz` (3 seeds; `labeltrace scan "
          "--model small-cnn` at its defaults; each ranking read off the same scan's recording; F1 cut at the scan's "
          f"own count{', the last candidate at its own' if a.study == 'window' else ''}; mean over seeds)\n")  # fmt: skip
    print("| cell | noise | " + " | ".join(f"AUROC {n}" for n in names) + " | " + " | ".join(f"F1 {n}" for n in names) + " |")
    print("|---|---|" + "---|" * (2 * len(names)))
    for key in auc:
        print(f"| {key[0]} | {key[1]} | " + " | ".join(f"{np.mean(auc[key][n]):.3f}" for n in names) + " | "
              + " | ".join(f"{np.mean(f1[key][n]):.3f}" for n in names) + " |")  # fmt: skip
    print("\nPaired against crossfit over all cells' seeds (mean, 95 % t-interval; worst cell: the lowest per-cell mean ΔF1)\n")
    print("| candidate | ΔAUROC | ΔF1 | worst cell ΔF1 | adopt (rule above) |")
    print("|---|---|---|---|---|")
    for n in names[1:]:
        da = [x - b for key in auc for x, b in zip(auc[key][n], auc[key]["crossfit"], strict=True)]
        df = [x - b for key in f1 for x, b in zip(f1[key][n], f1[key]["crossfit"], strict=True)]
        worst = min(float(np.mean(np.subtract(f1[key][n], f1[key]["crossfit"]))) for key in f1)
        lo_a = t_interval(da)[1]
        adopt = lo_a > 0 and float(np.mean(df)) >= 0 and worst >= -0.03
        print(f"| {n} | {interval_text(*t_interval(da), '+.4f')} | {interval_text(*t_interval(df), '+.4f')} "
              f"| {worst:+.4f} | {'yes' if adopt else 'no'} |")


if __name__ == "__main__":
    main()
