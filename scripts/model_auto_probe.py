"""What ``--model auto`` picks on the benchmark's datasets, and whether the pick is the better model.

    python scripts/model_auto_probe.py --cache /work/cache/bench > benchmarks/results/model-auto.md

For each dataset of ``benchmarks/configs/test.toml`` and label set below (seed 0, the labels as the
bench gives them — noisy), the probe of :func:`labeltrace.models.probe.choose_model` (3-fold, 600
samples: small CNN from scratch vs logistic regression on frozen EfficientNet-Lite0 features) is run
and its held-out accuracies printed. Where the committed test CSV (``benchmarks/results/test-*.csv``)
has both models for that cell, the default detector's F1 (mean over seeds) with each model is
printed beside it with their difference paired over seeds (mean [95 % t-interval]), so the pick
can be checked against the outcome. A measurement, not a tuning:
nothing here is chosen.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from labeltrace.bench.config import load_config
from labeltrace.bench.grid import load_dataset
from labeltrace.evaluate.metrics import interval_text, t_interval
from labeltrace.models.probe import choose_model

REPO = Path(__file__).resolve().parents[1]
CELLS = {"cifar10n": ["aggre", "worse"], "cifar10h": ["original"],
         "breastmnist": ["symmetric:0.2", "confusion:0.2"], "pneumoniamnist": ["symmetric:0.2", "confusion:0.2"]}


def bench_f1() -> dict[tuple[str, str, str], dict[str, float]]:
    """crossfit's F1 per cell and seed in the committed test CSVs."""
    acc: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for p in (REPO / "benchmarks" / "results").glob("test-*.csv"):
        with open(p, newline="") as fh:
            for r in csv.DictReader(fh):
                if r.get("detector") == "crossfit":
                    acc[(r["dataset"], r["labels"], r["model"])][r["seed"]] = float(r["f1"])
    return acc


def _paired(cnn: dict[str, float], eff: dict[str, float]) -> str:
    seeds = sorted(set(cnn) & set(eff))
    return interval_text(*t_interval([cnn[s] - eff[s] for s in seeds]), "+.3f") if seeds else "–"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="the bench cache (datasets extracted there)")
    a = ap.parse_args()
    cfg = load_config(REPO / "benchmarks" / "configs" / "test.toml")
    f1 = bench_f1()
    print("# `--model auto` on the benchmark's datasets\n")
    print("`python scripts/model_auto_probe.py --cache /work/cache/bench > benchmarks/results/model-auto.md`\n")
    print("| dataset | labels | N | probe: small-cnn | probe: effnet-lite0 | pick | crossfit F1, small-cnn "
          "| crossfit F1, effnet-mlp | small-cnn − effnet-mlp, paired over seeds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec in cfg.datasets:
        if spec.name not in CELLS:
            continue
        data = load_dataset(spec, Path(a.cache), log=lambda s: None)
        for labels in CELLS[spec.name]:
            ds = data.dataset().with_labels(data.given_labels(labels, 0))
            pr = choose_model(ds, seed=0, cache_dir=Path(a.cache) / "probe-cache")
            acc = pr.accuracy
            cnn, eff = f1.get((spec.name, labels, "small-cnn"), {}), f1.get((spec.name, labels, "effnet-mlp"), {})
            fc = float(np.mean(list(cnn.values()))) if cnn else float("nan")
            fe = float(np.mean(list(eff.values()))) if eff else float("nan")
            print(f"| {spec.name} | {labels} | {len(ds)} | {acc.get('small-cnn', float('nan')):.3f} "
                  f"| {acc.get('effnet-lite0', float('nan')):.3f} | {pr.model} | {fc:.3f} | {fe:.3f} | "
                  f"{_paired(cnn, eff)} |")


if __name__ == "__main__":
    main()
