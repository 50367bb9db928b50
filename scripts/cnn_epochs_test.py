"""The BreastMNIST test cells with the small CNN as ``labeltrace scan`` ships it (20 epochs) against
the 15 epochs the test config used to train (a report: the 20 epochs were chosen on the dev cells,
``dev-cnn-size.md``; nothing is chosen here).

    python scripts/cnn_epochs_test.py > benchmarks/results/test-cnn-epochs.md

Reads ``benchmarks/results/test-breastmnist.csv`` as of ``AFTER`` (rerun with ``epochs = 20`` for
the small CNN, the same cache, so the frozen-feature rows are the cached ones) and as of ``BEFORE``
(15 epochs). The seeds' label sets are the same on both sides; the trainings are not, and a CNN's
training on this CPU also differs between sessions (RESULTS §1), so before → after mixes the
schedule with that noise. Per cell: the default's F1 and AUROC before → after, paired over seeds;
cleanlab's recipe and the best detector on each side.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from committed import Rows, rows_at  # scripts/, run as a script

from labeltrace.evaluate.metrics import interval_text, t_interval

CSV = "benchmarks/results/test-breastmnist.csv"
BEFORE = "f75a517"  # the last commit whose small-CNN test rows trained 15 epochs
AFTER = "9fae6cb"  # the rerun at 20 epochs
MODEL = "small-cnn"

def _mean(rows: Rows, labels: str, det: str, m: str) -> float:
    return float(np.mean([v[m] for v in rows[(labels, det)].values()]))


def _best(rows: Rows, labels: str) -> tuple[str, float]:
    """The detector other than crossfit with the highest mean F1 in the cell."""
    dets = [d for (lab, d) in rows if lab == labels and d != "crossfit"]
    return max(((d, _mean(rows, labels, d, "f1")) for d in dets), key=lambda t: t[1])


def _paired(rows: Rows, labels: str, a: str, b: str, m: str) -> list[float]:
    x, y = rows[(labels, a)], rows[(labels, b)]
    return [x[s][m] - y[s][m] for s in sorted(set(x) & set(y))]


def main() -> None:
    after, before = (rows_at(c, "test-breastmnist.csv", MODEL) for c in (AFTER, BEFORE))
    print("# The small CNN at 20 epochs (as the scan trains it) on the BreastMNIST test cells\n")
    print("`python scripts/cnn_epochs_test.py > benchmarks/results/test-cnn-epochs.md`; 5 seeds; before = "
          f"`git show {BEFORE}:{CSV}` (15 epochs), after = the rerun at 20. Δ after − before paired over seeds "
          "[95 % t-interval]; crossfit − cleanlab inside each run.\n")  # fmt: skip
    print("| labels | crossfit F1 15 → 20 | Δ F1 | crossfit AUROC 15 → 20 | Δ AUROC | cleanlab F1 15 → 20 | "
          "crossfit − cleanlab F1, 20 | best other F1, 15 | best other F1, 20 | crossfit / best, 15 → 20 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    pooled: dict[str, list[float]] = defaultdict(list)
    for labels in dict.fromkeys(k[0] for k in after):
        d: dict[str, list[float]] = {}
        for m in ("f1", "auroc"):
            x, y = after[(labels, "crossfit")], before[(labels, "crossfit")]
            d[m] = [x[s][m] - y[s][m] for s in sorted(set(x) & set(y))]
            pooled[m] += d[m]
        x, y = after[(labels, "cleanlab")], before[(labels, "cleanlab")]
        pooled["cleanlab f1"] += [x[s]["f1"] - y[s]["f1"] for s in sorted(set(x) & set(y))]
        vs = _paired(after, labels, "crossfit", "cleanlab", "f1")
        pooled["vs cleanlab after"] += vs
        pooled["vs cleanlab before"] += _paired(before, labels, "crossfit", "cleanlab", "f1")
        b15, b20 = _best(before, labels), _best(after, labels)
        cf15, cf20 = _mean(before, labels, "crossfit", "f1"), _mean(after, labels, "crossfit", "f1")
        print(f"| {labels} | {cf15:.3f} → {cf20:.3f} | {interval_text(*t_interval(d['f1']), '+.3f')} | "
              f"{_mean(before, labels, 'crossfit', 'auroc'):.3f} → {_mean(after, labels, 'crossfit', 'auroc'):.3f} | "
              f"{interval_text(*t_interval(d['auroc']), '+.3f')} | {_mean(before, labels, 'cleanlab', 'f1'):.3f} → "
              f"{_mean(after, labels, 'cleanlab', 'f1'):.3f} | {interval_text(*t_interval(vs), '+.3f')} | "
              f"{b15[0]} ({b15[1]:.3f}) | {b20[0]} ({b20[1]:.3f}) | {cf15 / b15[1]:.2f} → {cf20 / b20[1]:.2f} |")  # fmt: skip
    print("\nPooled over the 8 cells' seeds (40 pairs)\n\n| quantity | mean [95 % t-interval] |\n|---|---|")
    print(f"| crossfit F1, 20 − 15 epochs | {interval_text(*t_interval(pooled['f1']), '+.4f')} |")
    print(f"| crossfit AUROC, 20 − 15 epochs | {interval_text(*t_interval(pooled['auroc']), '+.4f')} |")
    print(f"| cleanlab F1, 20 − 15 epochs | {interval_text(*t_interval(pooled['cleanlab f1']), '+.4f')} |")
    print(f"| crossfit − cleanlab F1, 15 epochs | {interval_text(*t_interval(pooled['vs cleanlab before']), '+.4f')} |")
    print(f"| crossfit − cleanlab F1, 20 epochs | {interval_text(*t_interval(pooled['vs cleanlab after']), '+.4f')} |")


if __name__ == "__main__":
    main()
