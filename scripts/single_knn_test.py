"""What the one-training count's kNN rule (``count.one_run_count``, chosen on the dev cells:
``dev-single-knn.md``) changed on the small test cells (a report; nothing is chosen from it).

    python scripts/single_knn_test.py --cache /work/cache/bench_test > benchmarks/results/test-single-knn.md

BreastMNIST and PneumoniaMNIST (N < ``count.LARGE``; the large cells' rule is unchanged), 5 seeds,
from the bench cache of their rerun (``labeltrace bench --config benchmarks/configs/test.toml --only
DATASET --out benchmarks/results --name test-DATASET --cache-dir CACHE``): the `single` ranking of each
recorded run cut at the contradicted count (before) and at the rule (after), paired over seeds
(mean [95 % t-interval]), and `single`'s F1 as a multiple of `crossfit`'s in the same cell.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from dev_cells import bench_cells, f1_at  # scripts/, run as a script

from labeltrace.decide import count as C
from labeltrace.decide import detectors
from labeltrace.evaluate.metrics import detection_report, interval_text, t_interval

TEST = Path(__file__).resolve().parents[1] / "benchmarks" / "configs" / "test.toml"
SMALL = ("breastmnist", "pneumoniamnist")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="the bench cache of the rerun")
    a = ap.parse_args()
    rows: dict[tuple[str, str, str], list[tuple[float, ...]]] = {}
    for cell, runner in bench_cells(str(TEST), a.cache, SMALL, name="test"):
        ev = runner.evidence(embedding_from="in_sample" if cell.model.on_features else "single")
        s = detectors.get("single").score(ev)
        agree = ev.single.dynamics.mean("correct")
        before = C.contradicted_count(agree)
        after, _ = C.one_run_count(agree, ev.knn_shares(), ev.labels)
        truth = runner.truth
        xf_f1 = detection_report(truth, detectors.detect("crossfit", ev).flagged)["f1"]
        rows.setdefault((cell.dataset.name, cell.labels, cell.model.name), []).append(
            (int(truth.sum()), before, after, f1_at(s, truth, before), f1_at(s, truth, after), xf_f1))
    print("# The one-training count's kNN rule on the small test cells\n")
    print("`python scripts/single_knn_test.py --cache /work/cache/bench_test > benchmarks/results/test-single-knn.md`; "
          "the same recorded runs cut at the contradicted count (before) and at `count.one_run_count` (after); "
          "Δ paired over the 5 seeds [95 % t-interval]. A report: the rule was chosen on the dev cells "
          "(`dev-single-knn.md`).\n")  # fmt: skip
    print("| dataset | labels | model | true | flagged before → after | single F1 before → after | Δ F1 | "
          "crossfit F1 | single / crossfit before → after |")
    print("|---|---|---|---|---|---|---|---|---|")
    ok_before = ok_after = 0
    for (ds, labels, model), v in rows.items():
        t = np.array(v, dtype=np.float64)
        d = t_interval(t[:, 4] - t[:, 3])
        rb, ra = t[:, 3].mean() / t[:, 5].mean(), t[:, 4].mean() / t[:, 5].mean()
        ok_before, ok_after = ok_before + (rb >= 0.9), ok_after + (ra >= 0.9)
        print(f"| {ds} | {labels} | {model} | {t[:, 0].mean():.0f} | {t[:, 1].mean():.0f} → {t[:, 2].mean():.0f} | "
              f"{t[:, 3].mean():.3f} → {t[:, 4].mean():.3f} | {interval_text(*d, '+.3f')} | {t[:, 5].mean():.3f} | "
              f"{rb:.2f} → {ra:.2f} |")  # fmt: skip
    print(f"\n`single` within 0.9 × `crossfit`'s F1 on these {len(rows)} cells: {ok_before} before, {ok_after} after.")


if __name__ == "__main__":
    main()
