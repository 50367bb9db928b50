"""How the tie rule of F1@true and recall@200 moves the committed test rows (a report; nothing is
chosen from it).

    python scripts/tie_metrics_test.py --cache /work/cache/bench_test > benchmarks/results/test-tie-metrics.md

Until 855587b the bench broke a tie at the cut by sample id (``metrics.flag_top_k``); since then a
group tied at the cut counts by its average over the ways of breaking the tie
(``metrics.expected_hits``). Only scores with ties move: the kNN vote (shares of 10 neighbours)
and the forgetting count. The test cells whose trainings are in ``CACHE`` (CIFAR-10H and
BreastMNIST here; ``labeltrace bench --config benchmarks/configs/test.toml --only DATASET
--cache-dir CACHE``), 5 seeds: each detector's F1@true and recall@200 by sample id (the rule of
the committed CSVs) and by the average, on the same scores of the cached recordings, mean over the
seeds and the mean of the per-seed differences with its 95 % t-interval. The by-id columns equal
the committed rows where those came from the same recordings (the kNN vote with the frozen
features); the committed forgetting rows and the small CNN's came from earlier recordings of the
same cells (RESULTS §1: the two-run auxiliary draw, the CNN's 20 epochs), so they differ there.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from dev_cells import bench_cells  # scripts/, run as a script

from labeltrace.evaluate import metrics as M

TEST = Path(__file__).resolve().parents[1] / "benchmarks" / "configs" / "test.toml"
DETECTORS = ("knn_vote", "forgetting")


def by_id(truth: np.ndarray, score: np.ndarray, k: int) -> float:
    """True positives among the k lowest scores, ties broken by sample id (the old rule)."""
    return float((M.flag_top_k(score, k, nan_policy="omit") & truth).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="the bench cache of the test cells")
    ap.add_argument("--only", default="cifar10h,breastmnist")
    a = ap.parse_args()
    rows: dict[tuple[str, str, str, str], list[tuple[float, float, float, float]]] = {}
    for cell, runner in bench_cells(str(TEST), a.cache, tuple(a.only.split(",")), name="test"):
        truth = runner.truth
        if not truth.any():
            continue
        for name in DETECTORS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = runner.detector(name)["score"]
            n = int(truth.sum())
            k, top = min(n, int((~np.isnan(s)).sum())), min(200, int((~np.isnan(s)).sum()))
            f1 = (2 * by_id(truth, s, k) / (k + n), 2 * M.expected_hits(truth, s, k, nan_policy="omit") / (k + n))
            r200 = (by_id(truth, s, top) / n, M.expected_hits(truth, s, top, nan_policy="omit") / n)
            key = (cell.dataset.name, str(cell.labels), cell.model.name, name)
            rows.setdefault(key, []).append((*f1, *r200))
    print("# F1@true and recall@200: ties by sample id (committed) and by their average (since 855587b)\n")
    print("`python scripts/tie_metrics_test.py --cache /work/cache/bench_test > "
          "benchmarks/results/test-tie-metrics.md` (test cells; a report, nothing chosen from it). Both "
          "rules on the same scores of the cached recordings; the by-id columns equal the committed CSVs' "
          "where those came from the same recordings (the kNN vote with the frozen features), not for the "
          "forgetting rows and the small CNN's, recorded again since (RESULTS §1).\n")
    print("| dataset | labels | model | detector | seeds | F1@true by id | by average | Δ | recall@200 by id "
          "| by average | Δ |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    deltas: dict[str, list[float]] = {"f1": [], "r200": []}
    for (ds, lab, model, name), v in rows.items():
        x = np.asarray(v)
        df, dr = x[:, 1] - x[:, 0], x[:, 3] - x[:, 2]
        deltas["f1"] += df.tolist()
        deltas["r200"] += dr.tolist()
        print(f"| {ds} | {lab} | {model} | {name} | {len(x)} | {x[:, 0].mean():.3f} | {x[:, 1].mean():.3f} | "
              f"{M.interval_text(*M.t_interval(df), fmt='+.3f')} | {x[:, 2].mean():.3f} | {x[:, 3].mean():.3f} | "
              f"{M.interval_text(*M.t_interval(dr), fmt='+.3f')} |")
    for what, d in deltas.items():
        d_ = np.asarray(d)
        print(f"\nAll {len(d_)} seed-cells, {what}: mean Δ {M.interval_text(*M.t_interval(d_), fmt='+.4f')}, "
              f"largest |Δ| {np.abs(d_).max():.3f}")


if __name__ == "__main__":
    main()
