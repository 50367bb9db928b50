"""What each selector spends its first relabels on (why SEI-based queues start slower than joint).

For one seed of a static campaign (the same settings as ``labeltrace simulate``), reports for the
images picked within the first ``--fraction`` of the budget: how many, the share that were
initially noisy, the share of those that are *ambiguous* (normalised vote entropy > 0.3), the
mean normalised vote entropy, relabels spent per picked image and noisy labels fixed.

Usage: ``python benchmarks/simulation/analyze_picks.py --votes V.csv --features F.npy
[--noise-rate 0.15] [--seed 0] [--fraction 0.1]``
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch

from labeltrace.relabel import votes as V
from labeltrace.relabel.arrays import normalized_entropy
from labeltrace.relabel.experiment import run_campaign
from labeltrace.relabel.head import HeadConfig, standardize, train_head
from labeltrace.relabel.io import load_features, load_votes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--votes", required=True)
    ap.add_argument("--features", required=True)
    ap.add_argument("--noise-rate", type=float, default=0.15)
    ap.add_argument("--budget-factor", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--selectors", default="random,cross_entropy,joint,sei,sei_joint,oracle")
    args = ap.parse_args()
    torch.set_num_threads(1)

    votes, _ = load_votes(args.votes)
    x = standardize(load_features(args.features, n=votes.shape[0]))
    n = votes.shape[0]
    truth = V.true_labels(votes)
    vote_h = normalized_entropy(V.vote_distribution(votes))
    amb = V.ambiguous_mask(votes)
    tau = V.temperature_for_rate(votes, args.noise_rate, seed=args.seed)
    init = V.sample_initial_labels(votes, temperature=tau, seed=args.seed)
    noisy = init.labels != truth
    head = train_head(x, init.labels, num_classes=votes.shape[1],
                      config=replace(HeadConfig(), seed=args.seed))  # fmt: skip
    budget = round(args.budget_factor * round(args.noise_rate * n))
    cut = round(args.fraction * budget)
    print(f"seed {args.seed}: {noisy.sum()} noisy of {n} ({amb[noisy].mean():.1%} of them ambiguous), "
          f"budget {budget}, first {cut} relabels")  # fmt: skip
    print("| selector | images picked | initially noisy | ambiguous among noisy picks "
          "| mean vote entropy | relabels per image | noisy fixed |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for sel in args.selectors.split(","):
        r = run_campaign(votes, init, budget=budget, selector=sel, posterior=head.posterior,
                         sei=head.sei, seed=args.seed)  # fmt: skip
        t = np.cumsum(r.draws)
        k = int(np.searchsorted(t, cut, side="right"))  # images finished within the first cut
        ids = r.picked[:k]
        nz = ids[noisy[ids]]
        print(f"| {sel} | {k} | {noisy[ids].mean():.1%} | {amb[nz].mean() if nz.size else float('nan'):.1%} "
              f"| {vote_h[ids].mean():.3f} | {r.draws[:k].mean():.2f} | {int(r.fixed[cut])} |")  # fmt: skip


if __name__ == "__main__":
    main()
