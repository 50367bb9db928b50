"""Early stop, or fewer epochs, on the dev cells (not a test): F1, epochs and training time of the
scan's default against the shorter training.

    python scripts/early_stop_dev.py --out /work/cache/scale/early_stop          # digits, 3 seeds
    python scripts/early_stop_dev.py --out ... --pneumonia /work/shared/data/medmnist/pneumoniamnist_modified.npz
    python scripts/early_stop_dev.py --out /work/cache/scale/epochs15 --epochs 15 --pneumonia ...

Runs ``labeltrace scan`` (default detector ``crossfit``, ``--model small-cnn``, the scan's default
epochs) on each dev cell (benchmarks/SPLIT.md: digits with symmetric / confusion noise 0.2 and
0.4; with ``--pneumonia``, PneumoniaMNIST ``val`` with symmetric / confusion 0.2) for seeds 0-2,
once with ``--no-early-stop`` and once with ``--early-stop`` (with ``--epochs E``: once at the
scan's default epochs and once at E, both without early stop), one torch thread each, one after
the other. Each finished scan is appended to ``OUT/results.jsonl`` (a rerun skips those), then the
paired table is printed: F1 of the default detector without / with, the paired difference, the
epochs trained and the training seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

NOISES = ("symmetric:0.2", "symmetric:0.4", "confusion:0.2", "confusion:0.4")


def cells(pneumonia: str | None) -> list[tuple[str, list[str], str]]:
    out = [("digits", ["--example", "digits"], n) for n in NOISES]
    if pneumonia:
        out += [("pneumoniamnist-val", [pneumonia, "--split", "val"], n) for n in ("symmetric:0.2", "confusion:0.2")]
    return out


def run(out: Path, pneumonia: str | None, seeds: list[int], epochs: int | None = None) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    log = out / "results.jsonl"
    done = {(r["cell"], r["noise"], r["seed"], r["early_stop"]): r
            for r in map(json.loads, log.read_text().splitlines())} if log.exists() else {}  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    for name, data, noise in cells(pneumonia):
        for seed in seeds:
            for es in (False, True):
                key = (name, noise, seed, es)
                if key in done:
                    continue
                run_dir = out / "runs" / f"{name}_{noise.replace(':', '')}_s{seed}_{'es' if es else 'full'}"
                shorter = ["--early-stop"] if epochs is None else ["--no-early-stop", "--epochs", str(epochs)]
                cmd = [sys.executable, "-m", "labeltrace.cli", "scan", *data, "--out", str(run_dir), "--noise", noise,
                       "--seed", str(seed), "--model", "small-cnn", "--quiet", "--force",
                       *(shorter if es else ["--no-early-stop"])]  # fmt: skip
                subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
                meta = json.loads((run_dir / "run.json").read_text())
                r = {"cell": name, "noise": noise, "seed": seed, "early_stop": es, "f1": meta["metrics"]["f1"],
                     "auroc": meta["metrics"]["auroc"], "epochs": meta["protocol"]["epochs_trained"],
                     "planned": meta["protocol"]["epochs_planned"], "train_s": meta["timings"]["train"],
                     "flagged": meta["counts"]["flagged"]}  # fmt: skip
                done[key] = r
                with log.open("a") as fh:
                    fh.write(json.dumps(r) + "\n")
                print(json.dumps(r), flush=True)
    return list(done.values())


def table(rows: list[dict], arm: str = "early stop") -> str:
    lines = [f"| cell | noise | F1 full | F1 {arm} | paired diff (mean ± sd) | epochs | train s full → {arm} |",
             "|---|---|---|---|---|---|---|"]
    keys = sorted({(r["cell"], r["noise"]) for r in rows})
    all_d: list[float] = []
    for cell, noise in keys:
        by = {(r["seed"], r["early_stop"]): r for r in rows if r["cell"] == cell and r["noise"] == noise}
        seeds = sorted({s for s, _ in by if (s, True) in by and (s, False) in by})
        if not seeds:
            continue
        f0 = np.array([by[s, False]["f1"] for s in seeds])
        f1 = np.array([by[s, True]["f1"] for s in seeds])
        d = f1 - f0
        all_d += d.tolist()
        ep = [by[s, True]["epochs"] for s in seeds]
        t0 = np.mean([by[s, False]["train_s"] for s in seeds])
        t1 = np.mean([by[s, True]["train_s"] for s in seeds])
        lines.append(f"| {cell} | {noise} | {f0.mean():.3f} | {f1.mean():.3f} | {d.mean():+.4f} ± {d.std():.4f} | "
                     f"{'/'.join(map(str, ep))} of {by[seeds[0], False]['planned']} | {t0:.1f} → {t1:.1f} |")
    if all_d:
        lines.append(f"\nall cells: mean paired F1 difference {np.mean(all_d):+.4f} (min {np.min(all_d):+.4f}) "
                     f"over {len(all_d)} pairs")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/work/cache/scale/early_stop"))
    ap.add_argument("--pneumonia", help="PneumoniaMNIST .npz: also its val cells")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, help="compare the default epochs with E epochs instead of early stop")
    a = ap.parse_args()
    rows = run(a.out, a.pneumonia, a.seeds, a.epochs)
    print(table(rows, "early stop" if a.epochs is None else f"{a.epochs} epochs"))


if __name__ == "__main__":
    main()
