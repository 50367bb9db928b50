"""What ``--resolution auto``'s probe reads on the dev cells (not a test), beside what 224 px did.

    python scripts/resolution_probe_dev.py --cache /work/cache/bench > benchmarks/results/dev-resolution-probe.md

For each dev cell with 224 px bench rows (``scripts/resolution_dev.py``) and seeds 0–2, the probe
of :func:`labeltrace.models.probe.choose_resolution` (:func:`~labeltrace.models.probe.resolution_probe`) — 3-fold logistic regression on a stratified
600-sample subset of the labels the scan trains on, once on 96 px and once on 224 px features —
is read from the bench's feature files (the subset's rows of the whole set's features: the
probe standardises within each fold, so this equals extracting the subset alone), and set beside
the change of crossfit's F1 (noisy cells) or of its flag count (clean cells) that 224 px brought.
Cells without 224 px rows (confusion noise on the medical val splits, the 50,000 CIFAR-10N
images) show the probe's reading only; the CIFAR-10N ones extract the subset at both resolutions
through the product's path. The margin ``RESOLUTION_MARGIN`` is chosen from this table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from labeltrace.bench.config import load_config
from labeltrace.bench.grid import load_dataset
from labeltrace.evaluate.metrics import interval_text, t_interval
from labeltrace.models.probe import choose_resolution, resolution_probe

REPO = Path(__file__).resolve().parents[1]
RES = REPO / "benchmarks" / "results"
SEEDS = (0, 1, 2)
#: 96 px dataset -> (its CSV, the 224 px dataset, its CSV)
PAIRED = {"cifar10n-dev-2k": ("dev-2k.csv", "cifar10n-dev-2k-224", "dev-2k-224.csv"),
          "pneumoniamnist-val": ("dev.csv", "pneumoniamnist-val-224", "dev-med-224.csv"),
          "breastmnist-val": ("dev.csv", "breastmnist-val-224", "dev-med-224.csv")}
READ_ONLY = {"pneumoniamnist-val": ("confusion:0.2", "confusion:0.4"), "breastmnist-val": ("confusion:0.2",),
             "cifar10n-dev": ("random2", "random3", "clean")}
MARGINS = (0.0, 0.01, 0.02, 0.03, 0.05)


def _fmt(v: np.ndarray, f: str = "+.3f") -> str:
    return interval_text(*t_interval(v), f)


def _outcome(d96: str, lab: str) -> tuple[str, np.ndarray]:
    fa, d224, fb = PAIRED[d96]
    a, b = pd.read_csv(RES / fa), pd.read_csv(RES / fb)
    x = a[(a.dataset == d96) & (a.model == "effnet-mlp") & (a["labels"] == lab) & (a.detector == "crossfit")]
    y = b[(b.dataset == d224) & (b["labels"] == lab) & (b.detector == "crossfit")]
    x, y = x.sort_values("seed"), y.sort_values("seed")
    if x.n_noisy.iloc[0] > 0:
        return "F1", y.f1.to_numpy() - x.f1.to_numpy()
    return "flags", y.n_flagged.to_numpy(float) - x.n_flagged.to_numpy(float)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="the bench cache (datasets and 224 px features there)")
    a = ap.parse_args()
    cache = Path(a.cache)
    cfg = load_config(REPO / "benchmarks" / "configs" / "dev.toml")
    specs = {s.name: s for s in cfg.datasets}
    print("# `--resolution auto`: the probe on the dev cells\n")
    print("`python scripts/resolution_probe_dev.py --cache /work/cache/bench > "
          "benchmarks/results/dev-resolution-probe.md`; seeds 0–2, mean [95 % t-interval].\n")
    head = " | ".join(f"224 at ≥ {m:.2f}" for m in MARGINS)
    print(f"| dataset | labels | probe 96 px | probe 224 px | 224 − 96 | {head} | crossfit with 224 px |")
    print("|---|---|---|---|---|" + "---|" * len(MARGINS) + "---|")
    for d96 in PAIRED:
        lo, hi = load_dataset(specs[d96], cache, log=lambda s: None), \
            load_dataset(specs[PAIRED[d96][1]], cache, log=lambda s: None)
        f96, f224 = lo.features()[0].numpy(), hi.features()[0].numpy()
        for lab in sorted(set(specs[PAIRED[d96][1]].labels)) + list(READ_ONLY.get(d96, ())):
            feats = {96: f96, 224: f224}
            probes = [resolution_probe(lambda r, idx: feats[r][idx], lo.given_labels(lab, s),
                                       num_classes=lo.num_classes, seed=s) for s in SEEDS]  # fmt: skip
            acc = np.array([[p.accuracy[f"{r} px"] for r in (96, 224)] for p in probes])
            _row(d96, lab, acc, _outcome(d96, lab) if lab in specs[PAIRED[d96][1]].labels else None)
    data = load_dataset(specs["cifar10n-dev"], cache, log=lambda s: None)
    for lab in READ_ONLY["cifar10n-dev"]:
        acc = np.array([[choose_resolution(data.dataset().with_labels(data.given_labels(lab, s)), seed=s,
                                           cache_dir=cache / "probe-cache").accuracy[f"{r} px"] for r in (96, 224)]
                        for s in SEEDS])  # fmt: skip
        _row("cifar10n-dev", lab, acc, None)


def _row(name: str, lab: str, acc: np.ndarray, outcome: tuple[str, np.ndarray] | None) -> None:
    diff = acc[:, 1] - acc[:, 0]
    picks = " | ".join(f"{int((diff >= m - 1e-9).sum())}/{diff.size}" for m in MARGINS)  # as the probe compares
    out = "" if outcome is None else f"{outcome[0]} {_fmt(outcome[1], '+.3f' if outcome[0] == 'F1' else '+.1f')}"
    print(f"| {name} | {lab} | {acc[:, 0].mean():.3f} | {acc[:, 1].mean():.3f} | {_fmt(diff)} | {picks} | {out} |")


if __name__ == "__main__":
    main()
