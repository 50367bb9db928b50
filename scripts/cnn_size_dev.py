"""A cheaper from-scratch CNN for the default scan, on the dev cells (not a test): F1 and training
time of ``labeltrace scan --model small-cnn`` at the previous default size (width 32 on images over
16 px, 20 epochs) against smaller ones; it chose the current default (width 16 up to 32 px, 20 epochs).

    python scripts/cnn_size_dev.py --out /work/cache/cnn_size \\
        --pneumonia /work/shared/data/medmnist/pneumoniamnist_modified.npz > benchmarks/results/dev-cnn-size.md

Dev cells (``benchmarks/SPLIT.md``): digits with symmetric / confusion noise 0.2 and 0.4, and with
``--pneumonia`` PneumoniaMNIST ``val`` with symmetric / confusion 0.2; seeds 0-2; the default
detector (crossfit), one torch thread, one scan after the other. Finished scans are kept in
``OUT/results.jsonl`` (a rerun skips them). Prints, per configuration, F1 and training seconds per
cell (mean over seeds) and the paired F1 difference against the previous default.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

#: a cell's noise when its labels are real (its data arguments pass the manifest's --truth-column)
REAL = "real"
BASE = "previous default (width 32, 20 epochs)"
NOISES = ("symmetric:0.2", "symmetric:0.4", "confusion:0.2", "confusion:0.4")
# the first is the baseline: the default before this study (width 32 on images over 16 px; digits, 8 px, had 16)
CONFIGS = {BASE: ["--width", "32", "--epochs", "20"],
           "width 16, 10 epochs": ["--width", "16", "--epochs", "10"],
           "width 16, 15 epochs": ["--width", "16", "--epochs", "15"],
           "width 16, 20 epochs": ["--width", "16", "--epochs", "20"]}


def cells(pneumonia: str | None) -> list[tuple[str, list[str], str]]:
    out = [("digits", ["--example", "digits"], n) for n in NOISES]
    if pneumonia:
        out += [("pneumoniamnist-val", [pneumonia, "--split", "val"], n) for n in ("symmetric:0.2", "confusion:0.2")]
    return out


def run_scans(configs: Mapping[str, Callable[[str], list[str]]], cell_list: Sequence[tuple[str, list[str], str]],
              out: Path, *, env: Mapping[str, str], seeds: Sequence[int] = (0, 1, 2)) -> dict[tuple, dict]:  # fmt: skip
    """Run ``labeltrace scan --model small-cnn`` for every configuration, cell and seed, one after the
    other; ``configs[name](cell)`` gives the configuration's extra arguments on that cell. Finished
    scans are kept in ``OUT/results.jsonl`` (a rerun skips them). Returns the rows by (config, cell,
    noise, seed): F1, AUROC, flagged count, training seconds. A cell's noise is injected with
    ``--noise`` unless it is :data:`REAL`."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "results.jsonl"
    done = {(r["config"], r["cell"], r["noise"], r["seed"]): r
            for r in map(json.loads, log.read_text().splitlines())} if log.exists() else {}  # fmt: skip
    for cfg, args_for in configs.items():
        for name, data, noise in cell_list:
            for seed in seeds:
                key = (cfg, name, noise, seed)
                if key in done:
                    continue
                extra = args_for(name)
                tag = "_".join(extra).replace("--", "")
                run_dir = out / "runs" / f"{tag}_{name}_{noise.replace(':', '')}_s{seed}"
                noise_args = [] if noise == REAL else ["--noise", noise]  # REAL: the data args name the truth
                cmd = [sys.executable, "-m", "labeltrace.cli", "scan", *data, "--out", str(run_dir), *noise_args,
                       "--seed", str(seed), "--model", "small-cnn", "--quiet", "--force", *extra]  # fmt: skip
                subprocess.run(cmd, check=True, env=dict(env), stdout=subprocess.DEVNULL)
                meta = json.loads((run_dir / "run.json").read_text())
                m = meta["metrics"]
                r = {"config": cfg, "cell": name, "noise": noise, "seed": seed, "f1": m["f1"],
                     "auroc": m.get("auroc"), "flagged": m.get("n_flagged"), "train_s": meta["timings"]["train"]}  # fmt: skip
                done[key] = r
                with log.open("a") as fh:
                    fh.write(json.dumps(r) + "\n")
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--pneumonia", default=None)
    a = ap.parse_args()

    def args_for(cfg: str) -> Callable[[str], list[str]]:  # digits (8 px) had width 16 before the study
        return lambda cell: ["--width", "16", "--epochs", "20"] if cfg == BASE and cell == "digits" else CONFIGS[cfg]

    done = run_scans({cfg: args_for(cfg) for cfg in CONFIGS}, cells(a.pneumonia), Path(a.out),
                     env=os.environ | {"OMP_NUM_THREADS": "1"})  # fmt: skip
    print("# A cheaper CNN for the default scan, on the dev cells\n")
    print("`python scripts/cnn_size_dev.py --out /work/cache/cnn_size --pneumonia .../pneumoniamnist_modified.npz`"
          " (3 seeds; F1 of the default detector; training seconds on the shared 2-core machine; digits is 8 px, so its previous default was already width 16 and the width-16, 20-epoch rows repeat it)\n")
    print("| config | cell | noise | F1 | train s | F1 − default (mean ± sd over seeds) |")
    print("|---|---|---|---|---|---|")
    for cfg in CONFIGS:
        diffs = []
        for name, _, noise in cells(a.pneumonia):
            rs = [done[(cfg, name, noise, s)] for s in (0, 1, 2)]
            d = [r["f1"] - done[(BASE, name, noise, r["seed"])]["f1"] for r in rs]
            diffs += d
            print(f"| {cfg} | {name} | {noise} | {np.mean([r['f1'] for r in rs]):.3f} | "
                  f"{np.mean([r['train_s'] for r in rs]):.1f} | {np.mean(d):+.4f} ± {np.std(d, ddof=1):.4f} |")
        tot = sum(done[(cfg, n, z, s)]["train_s"] for n, _, z in cells(a.pneumonia) for s in (0, 1, 2))
        print(f"| {cfg} | **all** | | | {tot:.0f} (total) | {np.mean(diffs):+.4f} (worst {min(diffs):+.4f}) |")


if __name__ == "__main__":
    main()
