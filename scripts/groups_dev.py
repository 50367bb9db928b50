"""Several images of one patient: the default scan with and without the patients named
(``--group-column``), on a dev set built from PneumoniaMNIST **val** (dev data, ``benchmarks/SPLIT.md``;
a report — nothing is chosen from it).

    python scripts/groups_dev.py --data ../shared/data/medmnist/pneumoniamnist_modified.npz \\
        --work /tmp/groups_dev > benchmarks/results/dev-groups.md

Each of the 524 val images is one patient with two views: the image and a copy shifted by one
pixel with mild noise (±6 grey levels), so the two are near-identical but not byte-identical. Label
noise is drawn per patient (both views get the same wrong label: the error a patient-level record
makes), symmetric, at 15 % of the patients, seeded. For each seed and model the default detector
(``crossfit``) scans the 1,048 images twice, the same seed, once with each image's patient as its
group and once without; the table gives the flagged count, precision, recall, F1 and AUROC against
the pre-noise labels, and the paired difference (with − without) over the seeds with its 95 %
t-interval.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from labeltrace import data
from labeltrace.evaluate import metrics as M
from labeltrace.scan import ScanConfig, scan

NOISE = 0.15


def patients(images: np.ndarray, labels: np.ndarray, seed: int) -> tuple[data.ImageDataset, np.ndarray]:
    """(dataset of two views per patient with patient-level symmetric noise, the clean labels)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    second = np.roll(images, 1, axis=2).astype(np.int64) + rng.integers(-6, 7, images.shape)
    views = np.stack([images, np.clip(second, 0, 255).astype(np.uint8)], axis=1).reshape(2 * n, *images.shape[1:])
    k = int(labels.max()) + 1
    wrong = rng.random(n) < NOISE
    given = labels.copy()
    given[wrong] = (labels[wrong] + rng.integers(1, k, int(wrong.sum()))) % k
    ids = [f"p{p:04d}_v{v}" for p in range(n) for v in range(2)]
    ds = data.from_arrays(views, np.repeat(given, 2), ids=ids, classes=["normal", "pneumonia"])
    return replace(ds, groups=tuple(f"p{p:04d}" for p in range(n) for _ in range(2))), np.repeat(labels, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="PneumoniaMNIST .npz (its val split is read)")
    ap.add_argument("--work", required=True, help="folder for the runs")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--models", default="effnet-lite0,small-cnn")
    a = ap.parse_args()
    npz = np.load(a.data)
    images, labels = npz["val_images"], npz["val_labels"].ravel().astype(np.int64)
    seeds = [int(s) for s in a.seeds.split(",")]
    print("# Several images of one patient: the default scan with and without the patients named\n")
    print(f"`python scripts/groups_dev.py --data PNEUMONIAMNIST.npz --work DIR` — PneumoniaMNIST val, {len(labels)} "
          f"patients x 2 near-identical views, {NOISE:.0%} of the patients mislabelled (both views), crossfit "
          "(the default detector), seeds " + ", ".join(map(str, seeds)) + ". Each entry: flagged, P / R / F1, AUROC.\n")
    print("| model | seed | wrong | without groups | with groups (--group-column) |")
    print("|---|---|---|---|---|")
    diffs: dict[str, dict[str, list[float]]] = {}
    for model in a.models.split(","):
        d = diffs.setdefault(model, {"f1": [], "recall": [], "auroc": []})
        for seed in seeds:
            ds, clean = patients(images, labels, seed)
            cells = []
            for grouped in (False, True):
                run_ds = ds if grouped else replace(ds, groups=None)
                out = Path(a.work) / f"{model}-s{seed}-{'g' if grouped else 'n'}"
                res = scan(run_ds, out, ScanConfig(model=model, seed=seed), progress=False, log=lambda s: None,
                           true_labels=clean)  # fmt: skip
                r = M.detection_report(run_ds.labels != clean, res.detection.flagged, res.detection.score)
                cells.append(r)
            for key in d:
                d[key].append(cells[1][key] - cells[0][key])
            print(f"| {model} | {seed} | {int((ds.labels != clean).sum())} | "
                  + " | ".join(f"{int(r['n_flagged'])}, {r['precision']:.3f} / {r['recall']:.3f} / {r['f1']:.3f}, "
                               f"{r['auroc']:.3f}" for r in cells) + " |")  # fmt: skip
    print("\nWith minus without groups, paired over the seeds (mean [95 % t-interval]):\n")
    print("| model | F1 | recall | AUROC |")
    print("|---|---|---|---|")
    for model, d in diffs.items():
        print(f"| {model} | " + " | ".join(M.interval_text(*M.t_interval(np.asarray(d[k])), "+.3f")
                                          for k in ("f1", "recall", "auroc")) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
