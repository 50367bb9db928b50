"""Validate ``labeltrace queue --budget``'s pre-flight estimate against real annotator votes.

For each seed: noisy initial labels drawn from the vote table at ``--noise-rate`` (as
``labeltrace simulate``), a head trained on the features and those labels (cross-fitted with
``--folds``), and the queue of ``--priority`` on its posterior. For each budget B:

* **estimate** — :func:`labeltrace.relabel.preflight.preflight`: the review campaign simulated
  with the model's posterior standing in for the annotators (what ``labeltrace queue --budget``
  prints; nothing from the votes is used);
* **real** — the same campaign (same queue, same single-expert rule: one review settles a sample)
  answered by the image's real annotator votes, truth = vote majority, fixed = initially noisy
  labels made right.

Beside it, an alternative tried on the dev cell (CIFAR-10N's 10,000 images, RESULTS.md §7.4):
**expected wrong** — each of the B labels reached wrong with probability ``1 − p(given)`` under
the posterior, summed, with a 95 % interval as a sum of independent draws — against the wrong
labels the campaign reached (what reviewers who never err would fix) and the real count fixed.

Writes ``validation.csv`` (one row per seed x budget) and ``validation.md`` (per budget: the mean
estimate and real count over seeds, the relative error, and whether the real count lies within
20 % of the estimate in every seed; the same for the alternative) to ``--out``.

Usage::

    python benchmarks/simulation/preflight_validation.py --votes V.csv --features F.npy \\
        --noise-rate 0.15 --folds 5 --out benchmarks/simulation/results/preflight_cifar10h_n15
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from labeltrace.relabel import io as rio
from labeltrace.relabel.experiment import run_campaign
from labeltrace.relabel.head import HeadConfig, standardize, train_head
from labeltrace.relabel.preflight import preflight
from labeltrace.relabel.votes import sample_initial_labels, temperature_for_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--votes", required=True)
    ap.add_argument("--features", required=True)
    ap.add_argument("--noise-rate", type=float, default=0.15)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--priority", default="cross_entropy")
    ap.add_argument("--budgets", default="100,250,500,1000,1500,3000")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    votes, _ = rio.load_votes(args.votes)
    x = standardize(rio.load_features(args.features, n=votes.shape[0]))
    budgets = [int(b) for b in args.budgets.split(",")]
    head = HeadConfig(folds=args.folds)
    rows = []
    t0 = time.perf_counter()
    for s in range(args.seeds):
        tau = temperature_for_rate(votes, args.noise_rate, seed=s)
        init = sample_initial_labels(votes, temperature=tau, seed=s).labels
        out = train_head(x, init, num_classes=votes.shape[1], config=replace(head, seed=s))
        for b in budgets:
            est = preflight(out.posterior, init, budget=b, priority=args.priority, sei=out.sei,
                            repeats=args.repeats, seed=1000 * s)  # fmt: skip
            real = run_campaign(votes, init, budget=b, selector=args.priority,
                                posterior=out.posterior, sei=out.sei, seed=s,
                                count_initial_label=False)  # fmt: skip
            fixed = int(real.fixed[-1])
            truth = votes.argmax(1)
            picked = np.asarray(real.picked)
            wrong_reached = int((init[picked] != truth[picked]).sum())  # what reviewers who never err fix
            # the alternative tried on the dev cell: each reached label wrong with probability 1 − p(given),
            # summed (a Poisson-binomial count; 95 % interval by the normal approximation)
            q = 1.0 - out.posterior[picked, init[picked]]
            ew, spread = float(q.sum()), 1.96 * float(np.sqrt((q * (1.0 - q)).sum()))
            broken = int(((init == truth) & (real.final_labels != truth)).sum())
            rows.append({"seed": s, "budget": b, "estimate": round(est.fixed, 2),
                         "estimate_low": est.fixed_low, "estimate_high": est.fixed_high,
                         "expected_wrong": round(ew, 2), "expected_wrong_low": round(max(0.0, ew - spread), 2),
                         "expected_wrong_high": round(min(float(picked.size), ew + spread), 2),
                         "real_fixed": fixed, "estimate_broken": round(est.broken, 2),
                         "real_broken": broken, "real_wrong_reached": wrong_reached, "model_calls_wrong": est.wrong,
                         "relative_error": round((est.fixed - fixed) / max(fixed, 1),
                                                 4)})  # fmt: skip
        print(f"seed {s} done, {time.perf_counter() - t0:.0f}s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "validation.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        f"Pre-flight estimate vs real votes: {Path(args.votes).name}, noise {args.noise_rate:.0%}, "
        f"{args.seeds} seeds, queue {args.priority} on a "
        + (f"{args.folds}-fold cross-fitted" if args.folds > 1 else "in-sample")
        + f" MLP head, single-expert review, {args.repeats} simulated campaigns per estimate.",
        "",
        "| budget | estimate (mean) | real fixed (mean) | relative error (mean) "
        "| seeds within 20 % | real in the 95 % interval | est. broken | real broken "
        "| expected wrong (mean) | real wrong reached (mean) | its error | its seeds within 20 % "
        "| real wrong reached in its 95 % interval | real fixed in it |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in budgets:
        rb = [r for r in rows if r["budget"] == b]
        est = np.mean([r["estimate"] for r in rb])
        real = np.mean([r["real_fixed"] for r in rb])
        rel = np.mean([r["relative_error"] for r in rb])
        within = sum(abs(r["relative_error"]) <= 0.20 for r in rb)
        cover = sum(r["estimate_low"] <= r["real_fixed"] <= r["estimate_high"] for r in rb)
        ew = np.mean([r["expected_wrong"] for r in rb])
        wr = np.mean([r["real_wrong_reached"] for r in rb])
        ew_rel = np.mean([(r["expected_wrong"] - r["real_wrong_reached"]) / max(r["real_wrong_reached"], 1) for r in rb])
        ew_within = sum(abs(r["expected_wrong"] - r["real_wrong_reached"]) <= 0.2 * max(r["real_wrong_reached"], 1)
                        for r in rb)  # fmt: skip
        ew_cover = sum(r["expected_wrong_low"] <= r["real_wrong_reached"] <= r["expected_wrong_high"] for r in rb)
        ew_fixed = sum(r["expected_wrong_low"] <= r["real_fixed"] <= r["expected_wrong_high"] for r in rb)
        lines.append(f"| {b} | {est:.0f} | {real:.0f} | {rel:+.1%} | {within}/{len(rb)} "
                     f"| {cover}/{len(rb)} | {np.mean([r['estimate_broken'] for r in rb]):.0f} "
                     f"| {np.mean([r['real_broken'] for r in rb]):.0f} | {ew:.0f} | {wr:.0f} | {ew_rel:+.1%} "
                     f"| {ew_within}/{len(rb)} | {ew_cover}/{len(rb)} | {ew_fixed}/{len(rb)} |")  # fmt: skip
    (args.out / "validation.md").write_text("\n".join(lines) + "\n")
    (args.out / "validation.json").write_text(json.dumps(vars(args), default=str, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
