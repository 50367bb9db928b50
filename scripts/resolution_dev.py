"""The frozen EfficientNet-Lite0 features at 224 px against 96 px on the dev cells (not a test):
paired over seeds (the same noisy labels, folds and seeds), from the committed bench rows.

    python scripts/resolution_dev.py > benchmarks/results/dev-resolution.md

Reads ``benchmarks/results/dev.csv`` and ``dev-2k.csv`` (96 px) and ``dev-2k-224.csv`` /
``dev-med-224.csv`` (224 px; ``labeltrace bench --config benchmarks/configs/dev.toml --only
cifar10n-dev-2k-224 --name dev-2k-224`` and ``--only pneumoniamnist-val-224,breastmnist-val-224
--name dev-med-224``). Only symmetric and human noise is compared: confusion noise is drawn from
the backbone's features, so its flips differ between the two resolutions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from labeltrace.evaluate.metrics import interval_text, t_interval

RES = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
#: (96 px file, its dataset name) -> (224 px file, its dataset name)
PAIRS = (
    (("dev-2k.csv", "cifar10n-dev-2k"), ("dev-2k-224.csv", "cifar10n-dev-2k-224")),
    (("dev.csv", "pneumoniamnist-val"), ("dev-med-224.csv", "pneumoniamnist-val-224")),
    (("dev.csv", "breastmnist-val"), ("dev-med-224.csv", "breastmnist-val-224")),
)
DETECTORS = ("crossfit", "cleanlab", "single")


def _diff(x: np.ndarray, y: np.ndarray, fmt: str) -> str:
    m, lo, hi = t_interval(y - x)
    return f"{x.mean():{fmt}} → {y.mean():{fmt}} ({interval_text(m, lo, hi, '+' + fmt)})"


def main() -> None:
    print("# Frozen features at 224 px against 96 px (dev cells)\n")
    print("`python scripts/resolution_dev.py > benchmarks/results/dev-resolution.md`; 96 px → 224 px, "
          "paired over seeds: mean change [95 % t-interval].\n")  # fmt: skip
    print("| dataset | labels | detector | F1 | AUROC | flagged (clean cells) |")
    print("|---|---|---|---|---|---|")
    for (fa, da), (fb, db) in PAIRS:
        a, b = pd.read_csv(RES / fa), pd.read_csv(RES / fb)
        a, b = a[(a.dataset == da) & (a.model == "effnet-mlp")], b[b.dataset == db]
        for lab in sorted(set(b["labels"])):
            for det in DETECTORS:
                x = a[(a["labels"] == lab) & (a.detector == det)].sort_values("seed")
                y = b[(b["labels"] == lab) & (b.detector == det)].sort_values("seed")
                if not np.array_equal(x.seed.to_numpy(), y.seed.to_numpy()) or \
                        not np.array_equal(x.n_noisy.to_numpy(), y.n_noisy.to_numpy()):  # fmt: skip
                    raise SystemExit(f"{da} {lab} {det}: the two runs do not pair (seeds or noisy counts differ)")
                if x.n_noisy.iloc[0] > 0:
                    cells = [_diff(x.f1.to_numpy(), y.f1.to_numpy(), ".3f"),
                             _diff(x.auroc.to_numpy(), y.auroc.to_numpy(), ".3f"), ""]  # fmt: skip
                else:
                    cells = ["", "", _diff(x.n_flagged.to_numpy(float), y.n_flagged.to_numpy(float), ".1f")]
                print(f"| {da} | {lab} | {det} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
