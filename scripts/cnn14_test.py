"""The small CNN at 14 px instead of BreastMNIST's own 28 px, on the test cells: the gate a
dev-chosen candidate failed (a report; nothing is chosen from it).

    python scripts/cnn14_test.py > benchmarks/results/test-cnn14.md

Reads the CNN rows of ``benchmarks/results/test-breastmnist.csv`` (28 px, the default) and
``benchmarks/results/test-cnn14/test-breastmnist.csv`` (``configs/test-cnn14.toml``: the same
cells with ``image_size = 14``). Both draw the same labels (the confusion noise reads the
backbone's features), so each pair differs by the image side alone. Prints, per detector, the
change of F1 and AUROC pooled over the 8 cells × 5 seeds (mean, 95 % t-interval), and per cell the
default's (crossfit) change with its mean training + scoring seconds. Both files as of ``ROWS``,
the commit of this report: the 28 px rows were rerun since (the common embedding, 20 epochs).
"""

from __future__ import annotations

import sys

import numpy as np
from committed import pooled_lines, results_at  # scripts/, run as a script

from labeltrace.bench.paired import before_after, tagged_rows
from labeltrace.evaluate.metrics import interval_text

ROWS = "d69a9e8"  # the commit this report was written from
DETECTORS = ("crossfit", "crossfit_knn", "crossfit_cl", "sei", "aum", "single", "single_sei", "knn_vote",
             "cl", "cleanlab")  # fmt: skip


def main() -> None:
    res = results_at(ROWS)
    base, small = res / "test-breastmnist.csv", res / "test-cnn14" / "test-breastmnist.csv"
    rows = [r for r in tagged_rows([small], "14", DETECTORS) + tagged_rows([base], "28", DETECTORS)
            if r["model"] == "small-cnn"]  # fmt: skip
    by = {(r["detector"], r["labels"], r["seed"]): r for r in rows}
    print("# The small CNN at 14 px instead of 28 px on the BreastMNIST test cells\n")
    print("`python scripts/cnn14_test.py > benchmarks/results/test-cnn14.md`: `results/test-cnn14/` "
          "(`configs/test-cnn14.toml`) against `results/test-breastmnist.csv`, the small CNN's rows; change = "
          "14 px − 28 px, paired over seeds [95 % t-interval]. A report on a candidate chosen on the dev "
          "cells (`dev-cnn-image-size.md`); not adopted.\n")  # fmt: skip
    print("\n".join(pooled_lines(rows, DETECTORS, after="14", before="28")))
    means = before_after(rows, ["f1", "auroc"], ["crossfit"], after="14", before="28")
    print("\n| labels | crossfit F1 28 px | ΔF1 | ΔAUROC | wall s 28 px | wall s 14 px |")
    print("|---|---|---|---|---|---|")
    for labels in dict.fromkeys(r["labels"] for r in rows):
        c = ("breastmnist", labels, "small-cnn")
        f1 = np.mean([float(r["f1"]) for k, r in by.items() if k[0] == "crossfit@28" and k[1] == labels])
        wall = {t: np.mean([float(r["wall_seconds"]) for k, r in by.items() if k[0] == f"crossfit@{t}" and k[1] == labels])
                for t in ("28", "14")}  # fmt: skip
        cells = [interval_text(p["mean"], p["lo"], p["hi"], "+.3f") for p in (means[(c, "crossfit", m)] for m in ("f1", "auroc"))]
        print(f"| {labels} | {f1:.3f} | {cells[0]} | {cells[1]} | {wall['28']:.1f} | {wall['14']:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):  # no options: the docstring says what it reads
        print(__doc__)
    else:
        main()
