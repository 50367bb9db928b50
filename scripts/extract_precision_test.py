"""The test gate of bfloat16 extraction: the frozen-feature test cells, float32 against bfloat16
features, before ``--precision auto`` may take bfloat16 for the backbone (benchmarks/SPLIT.md).

    python scripts/extract_precision_test.py --cache /work/cache/bench-test > benchmarks/results/test-extract-precision.md
    python scripts/extract_precision_test.py --cache /work/cache/bench-test --only cifar10n,breastmnist,pneumoniamnist,cifar10h \
        --detectors crossfit > benchmarks/results/test-extract-precision-crossfit.md

As ``scripts/extract_precision_dev.py`` (which made it a candidate on the dev cells, its rule in its
docstring), on ``configs/test.toml``'s cells with the head on frozen features, 5 seeds, the
resolution ``auto``'s probe picks on the float32 features in both arms. The gate, written before
the run: ``crossfit``'s paired ΔF1 over the noisy test cells' seeds has a 95 % t-interval whose
lower end is at or above −0.005, its ΔAUROC's at or above −0.003, no cell's mean ΔF1 is below
−0.02 and the clean (nearly clean) cells are flagged at most 5 % more often. Nothing else is chosen
from these rows. The first command ran the gate without the CIFAR-10N cells (50,000 photos at
224 px); the second, a later session's, runs every frozen-feature test cell, CIFAR-10N's included,
scoring ``crossfit`` alone — the detector the gate reads (the other three cost as much again and
decide nothing) — the rule unchanged.
"""

from __future__ import annotations

from pathlib import Path

from extract_precision_dev import DETECTORS, paired_rows, parse, report

TEST = Path(__file__).resolve().parents[1] / "benchmarks" / "configs" / "test.toml"
DATASETS = ("breastmnist", "pneumoniamnist", "cifar10h")


def main() -> None:
    cache, only, dets = parse(__doc__, DATASETS)
    rows, _ = paired_rows(TEST, "test", cache, only, timing=False, detectors=dets)
    scored, name = ("", "") if dets == DETECTORS else (f" --detectors {','.join(dets)}", "-" + "-".join(dets))
    print("# The test gate: the frozen backbone in bfloat16 against float32 (frozen-feature test cells)\n")
    print(f"`python scripts/extract_precision_test.py --cache /work/cache/bench-test --only {','.join(only)}{scored} > "
          f"benchmarks/results/test-extract-precision{name}.md` (5 seeds; the same noisy labels, folds and resolution in both "
          "arms; Δ = bfloat16 − float32, paired over seeds; the gate is in the script's docstring, the dev study "
          "and its timings in `dev-extract-precision.md`)\n")  # fmt: skip
    report(rows, {}, only)


if __name__ == "__main__":
    main()
