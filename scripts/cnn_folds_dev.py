"""A cheaper from-scratch CNN for the default scan's cost (issue 12 §6), on the dev cells (not a
test): F1, AUROC and training time of ``labeltrace scan --model small-cnn`` at the default (5
cross-fitting folds, native 28 px) against a cheaper configuration:

* ``--study folds``: 4 folds instead of 5. Five fold models each train on 4/5 of the data (4
  trainings of arithmetic), four on 3/4 (3). Three folds (2 trainings) was planned as a third
  configuration and stopped once 4 folds had lost F1.
* ``--study size``: the 28 px medical images downsampled to 20 px (``--image-size 20``: half the
  convolutions' arithmetic) and to 14 px (a quarter). Digits (8 px) is left out: it is already
  smaller.
* ``--study size-confusion``: 14 px against 28 px on the PneumoniaMNIST cells with confusion noise
  0.3 and 0.4 (val and the 1,882 other training images), where most *normal* labels are wrong —
  added after the first two studies, to see whether 14 px holds where the test cells are hardest.
* ``--study precision``: the trainings' forward passes in bfloat16 under autocast (``--precision
  bfloat16``) against float32, on the cells of ``--study size`` and digits at 0.2 — the speed is
  the CPU's (AMX tiles here); F1 and AUROC are the question. Its training seconds are measured
  with the other work on the machine at the time: ``scripts/cnn_step_time.py`` times the step
  alone.
* ``--study width``: the CNN's base width 8 instead of 16 (the convolutions' arithmetic scales with
  the width squared) on the cells of ``--study size``, at the images' own 28 px, against the
  default rerun in the same session (times are comparable only within a session).
* ``--study photos``: the same question on natural photos, 32 px RGB, with real human noise: the
  dev cell ``cifar10n-dev-2k`` (the stratified 2,000-image subset of CIFAR-10N's training images,
  labels ``random2``, truth the original labels; the images as the bench extracts them under
  ``OUT/bench``, with a manifest beside them), native against 16 px (half the side, as 28 -> 14).

    python scripts/cnn_folds_dev.py --study folds --out /work/cache/cnn_folds \\
        --pneumonia /work/shared/data/medmnist/pneumoniamnist_modified.npz \\
        --breast /work/shared/data/medmnist/breastmnist.npz > benchmarks/results/dev-cnn-folds.md
    python scripts/cnn_folds_dev.py --study size ... > benchmarks/results/dev-cnn-image-size.md
    python scripts/cnn_folds_dev.py --study size-confusion --out /work/cache/cnn_folds \\
        --pneumonia /work/shared/data/medmnist/pneumoniamnist_modified.npz > benchmarks/results/dev-cnn-size-confusion.md
    python scripts/cnn_folds_dev.py --study photos --out /work/cache/cnn_folds > benchmarks/results/dev-cnn-photos.md
    python scripts/cnn_folds_dev.py --study width ... > benchmarks/results/dev-cnn-width.md
    python scripts/cnn_folds_dev.py --study precision ... > benchmarks/results/dev-cnn-precision.md

Dev cells (``benchmarks/SPLIT.md``): digits with symmetric / confusion noise 0.2 and 0.4;
PneumoniaMNIST and BreastMNIST ``val`` with symmetric / confusion 0.2; and PneumoniaMNIST's other
training images (the 1,882 that the test cells' stratified 2,000-image subset leaves out, the dev
cell ``pneumoniamnist-train-rest`` of ``configs/dev.toml``, loaded as the bench loads it and written
once to ``OUT/pneumonia_rest.npz``)
with symmetric / confusion 0.2 — the only dev set of 28 px images near the size of the cost bar's
3,882. Seeds 0-2, the default detector (crossfit), both torch threads, one scan after the other
(run it alone: the times are part of the answer); the studies share ``OUT/results.jsonl`` and
its default rows. Prints per configuration and cell the mean F1, AUROC and training seconds, and
the paired F1 / AUROC differences against the default (mean and 95 % t-interval over the cells'
seeds).
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np
from cnn_size_dev import REAL, run_scans
from dev_cells import DEV

from labeltrace.bench.config import load_config
from labeltrace.bench.grid import DatasetData, load_dataset
from labeltrace.evaluate.metrics import interval_text, t_interval

BASE = "5 folds (default)"
STUDIES = {
    "folds": {BASE: ["--folds", "5"], "4 folds": ["--folds", "4"]},
    "size": {BASE: ["--folds", "5"], "20 px": ["--image-size", "20"], "14 px": ["--image-size", "14"]},
    "size-confusion": {BASE: ["--folds", "5"], "14 px": ["--image-size", "14"]},
    "photos": {BASE: ["--folds", "5"], "16 px": ["--image-size", "16"]},
    # its own baseline, rerun in the same session: the machine's speed varies between sessions
    "width": {"width 16 (default), rerun": ["--width", "16"], "width 8": ["--width", "8"]},
    "precision": {"float32 (default), rerun": ["--precision", "float32"], "bfloat16": ["--precision", "bfloat16"]},
}
TITLES = {"folds": "Fewer cross-fitting folds for the from-scratch CNN, on the dev cells",
          "size": "Smaller images for the from-scratch CNN, on the dev cells",
          "size-confusion": "Smaller images for the from-scratch CNN under heavy confusion noise, on the dev cells",
          "photos": "Smaller images for the from-scratch CNN on natural photos, on a dev cell",
          "width": "A narrower from-scratch CNN (width 8 instead of 16) at the images' own side, on the dev cells",
          "precision": "The from-scratch CNN trained with bfloat16 forward passes, on the dev cells"}
#: when a study's training seconds were not measured alone on the machine
WHEN = {"precision": "with other work running (not a speed measurement: scripts/cnn_step_time.py is)"}
NOISES = ("symmetric:0.2", "symmetric:0.4", "confusion:0.2", "confusion:0.4")
SEEDS = (0, 1, 2)


def dev_dataset(name: str, out: Path) -> DatasetData:
    """The dev config's dataset ``name`` as the bench loads it: its ``subset_idx`` picks the cell's
    images (``exclude`` / ``subset``), its labels are the cell's (``OUT/bench`` holds what it extracts)."""
    spec = next(d for d in load_config(DEV).datasets if d.name == name)
    return load_dataset(spec, out / "bench", log=lambda s: None)


def pneumonia_rest(out: Path) -> Path:
    """The dev cell ``pneumoniamnist-train-rest``'s images (PneumoniaMNIST train minus the test
    cells' 2,000-image subset) as a train-only npz."""
    path = out / "pneumonia_rest.npz"
    if not path.is_file():
        d = dev_dataset("pneumoniamnist-train-rest", out)
        raw = np.load(d.spec.path)
        np.savez(path, train_images=raw["train_images"][d.subset_idx], train_labels=raw["train_labels"][d.subset_idx])
    return path


def cifar_2k(out: Path) -> Path:
    """A manifest of the dev cell ``cifar10n-dev-2k``'s images with its ``random2`` labels and the
    original ``clean`` ones, beside the images the bench's loader extracted."""
    d = dev_dataset("cifar10n-dev-2k", out)
    ds = d.dataset()
    manifest = ds.root / "dev-2k-random2.csv"
    if not manifest.is_file():
        with manifest.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "label", "clean"])
            w.writerows(zip(ds.sources, d.real_labels["random2"], d.clean, strict=True))
    return manifest


def cells(a: argparse.Namespace, out: Path) -> list[tuple[str, list[str], str]]:
    if a.study == "photos":
        m = str(cifar_2k(out))
        return [("cifar10n-dev-2k random2", [m, "--truth-column", "clean"], REAL)]
    if a.study == "size-confusion":
        rest = str(pneumonia_rest(out))
        return [(name, data, n) for name, data in (("pneumoniamnist-val", [a.pneumonia, "--split", "val"]),
                                                   ("pneumoniamnist-train-rest", [rest]))
                for n in ("confusion:0.3", "confusion:0.4")]  # fmt: skip
    c = [("digits", ["--example", "digits"], n) for n in NOISES] if a.study == "folds" else []
    if a.study == "precision":  # the README's example and the other cells' noises
        c = [("digits", ["--example", "digits"], n) for n in ("symmetric:0.2", "confusion:0.2")]
    for name, npz in (("pneumoniamnist-val", a.pneumonia), ("breastmnist-val", a.breast)):
        if npz:
            c += [(name, [npz, "--split", "val"], n) for n in ("symmetric:0.2", "confusion:0.2")]
    if a.pneumonia:
        rest = str(pneumonia_rest(out))
        c += [("pneumoniamnist-train-rest", [rest], n) for n in ("symmetric:0.2", "confusion:0.2")]
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", choices=sorted(STUDIES), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pneumonia", default=None)
    ap.add_argument("--breast", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS),
                    help="the seeds to run and report (default 0 1 2; fewer: a study stopped early, reported on what it did)")
    a = ap.parse_args()
    seeds = tuple(a.seeds)
    out = Path(a.out)
    cell_list, configs = cells(a, out), STUDIES[a.study]
    ref = next(iter(configs))  # the study's baseline: the default
    scans = {cfg: (lambda _cell, x=extra: x) for cfg, extra in configs.items()}
    done: dict[tuple, dict] = {}
    for seed in seeds:  # seed by seed and cell by cell, every configuration: what is done when stopped is paired
        for cell in cell_list:
            done |= run_scans(scans, [cell], out, env=dict(os.environ), seeds=(seed,))
    print(f"# {TITLES[a.study]}\n")
    against = "the default (5 folds, native size)" if ref == BASE else f"`{ref}`"
    data = {"photos": "", "size-confusion": "--pneumonia .../pneumoniamnist_modified.npz"}.get(
        a.study, "--pneumonia .../pneumoniamnist_modified.npz --breast .../breastmnist.npz")
    seed_args = "" if seeds == SEEDS else " --seeds " + " ".join(map(str, seeds))
    print(f"`python scripts/cnn_folds_dev.py --study {a.study} --out /work/cache/cnn_folds{' ' if data else ''}{data}"
          f"{seed_args}` ({len(seeds)} seed{'s' if len(seeds) != 1 else ''}; `labeltrace scan --model small-cnn`, the default "
          f"detector; training seconds on the 2-core machine, {WHEN.get(a.study, 'alone')}; Δ = paired over seeds "
          f"against {against}, "
          "95 % t-interval over all cells' seeds in the **all** rows)\n")  # fmt: skip
    print("| config | cell | noise | F1 | AUROC | flagged | train s | ΔF1 | ΔAUROC |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cfg in configs:
        df, da, worst = [], [], []
        for name, _, noise in cell_list:
            rs = [done[(cfg, name, noise, s)] for s in seeds]
            base = [done[(ref, name, noise, s)] for s in seeds]
            d1 = [r["f1"] - b["f1"] for r, b in zip(rs, base, strict=True)]
            d2 = [r["auroc"] - b["auroc"] for r, b in zip(rs, base, strict=True)]
            df += d1
            da += d2
            worst.append(float(np.mean(d1)))
            print(f"| {cfg} | {name} | {noise} | {np.mean([r['f1'] for r in rs]):.3f} | "
                  f"{np.mean([r['auroc'] for r in rs]):.3f} | {np.mean([r['flagged'] for r in rs]):.0f} | "
                  f"{np.mean([r['train_s'] for r in rs]):.1f} | {np.mean(d1):+.4f} | {np.mean(d2):+.4f} |")
        tot = sum(done[(cfg, n, z, s)]["train_s"] for n, _, z in cell_list for s in seeds)
        print(f"| {cfg} | **all** | | | | | {tot:.0f} (total) | {interval_text(*t_interval(df), '+.4f')} (worst cell {min(worst):+.4f}) "
              f"| {interval_text(*t_interval(da), '+.4f')} |")


if __name__ == "__main__":
    main()
