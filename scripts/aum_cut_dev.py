"""AUM's cut: the 99th percentile of the auxiliary scores interpolated (``linear``, until this
study) or as the order statistic the AUM reference code cuts at (``inverted_cdf``, since): a sample
is flagged there when more than 1 % of the auxiliary samples score strictly higher. A report on
dev cells; the rule is chosen for fidelity to the reference, not from these numbers.

    labeltrace bench --config digits --detectors aum --cache-dir CACHE --out /tmp/aum   # trains, once
    python scripts/aum_cut_dev.py --cache CACHE > benchmarks/results/dev-aum-cut.md

The packaged digits grid (sklearn's digits, symmetric / confusion noise 0.2 and clean, 3 seeds,
the small CNN's two in-sample runs with disjoint auxiliary sets, pooled auxiliary scores).
"""

from __future__ import annotations

import argparse

import numpy as np
from dev_cells import bench_cells  # scripts/, run as a script

from labeltrace.bench import PACKAGED
from labeltrace.decide import auxiliary, cutoffs
from labeltrace.decide.evidence import auxiliary_scores, combined_score
from labeltrace.evaluate import metrics as M


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="the bench cache of the digits grid's trainings")
    a = ap.parse_args()
    print("# AUM's cut: the interpolated 99th percentile against the reference's order statistic\n")
    print("`python scripts/aum_cut_dev.py --cache CACHE > benchmarks/results/dev-aum-cut.md` (the packaged "
          "digits grid, dev data; after `labeltrace bench --config digits --detectors aum --cache-dir CACHE`). "
          "Each entry: flagged (F1).\n")
    print("| labels | seed | N | true | auxiliary scores | linear | reference (inverted_cdf) |")
    print("|---|---|---|---|---|---|---|")
    diffs: dict[str, list[float]] = {"flagged": [], "f1": []}
    for cell, runner in bench_cells(str(PACKAGED / "digits.toml"), a.cache, name="digits"):
        runs = runner.evidence().in_sample
        s = combined_score("aum", runs)
        pooled = auxiliary_scores("aum", runs)
        out = []
        for method in ("linear", "inverted_cdf"):
            cut = auxiliary.auxiliary_cutoff(pooled, np.ones(pooled.size, bool), rule="percentile", method=method)
            flagged = cutoffs.flag(s, cut)
            f1 = M.detection_report(runner.truth, flagged, s, nan_policy="omit")["f1"]
            out.append((int(flagged.sum()), f1))
        diffs["flagged"].append(out[1][0] - out[0][0])
        if runner.truth.any():
            diffs["f1"].append(out[1][1] - out[0][1])
        print(f"| {cell.labels} | {cell.seed} | {runner.truth.size} | {int(runner.truth.sum())} | {pooled.size} | "
              + " | ".join(f"{n} ({f:.3f})" for n, f in out) + " |")
    for what, d in diffs.items():
        x = np.asarray(d, dtype=float)
        print(f"\nReference minus linear, {what} ({len(x)} seed-cells): mean "
              f"{M.interval_text(*M.t_interval(x), fmt='+.4f')}, range {x.min():+.4g} to {x.max():+.4g}")


if __name__ == "__main__":
    main()
