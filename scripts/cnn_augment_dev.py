"""The planned study of augmentation for the from-scratch CNN (issue 12 §3), dev cells only: should
``labeltrace scan --model small-cnn`` train with random crops (and flips) by default?

    python scripts/cnn_augment_dev.py --out /work/cache/cnn_aug --base /work/cache/cnn_knn \\
        --pneumonia /work/shared/data/medmnist/pneumoniamnist_modified.npz \\
        --breast /work/shared/data/medmnist/breastmnist.npz > benchmarks/results/dev-cnn-augment.md

Why: the small CNN trains on the plain images (``scan_settings``: ``augment`` False), so in 20
epochs it memorises its labels, wrong ones included. A held-out fold model that has memorised the
wrong labels of its neighbours predicts them for the held-out image too, and the in-sample half of
crossfit's posterior saturates near 1 for clean and wrong labels alike. Random crops slow that
memorisation (the label-noise literature trains with them as a rule) and cost nothing measurable
here (one PneumoniaMNIST val scan: 23.1 s of training with them, 23.2 s without). Augmentation
was never measured on the CPU cells; the GPU config's ``small-cnn-aug`` is for CIFAR-sized photos.

Candidates (``TrainConfig.augment``; the held-out posterior is always predicted on the plain images,
the in-sample one is recorded on the augmented batches the model trains on):

* ``crop+flip`` — ``--augment``: a random crop after zero padding by 1/8 of the side (at least one
  pixel) and a random horizontal flip;
* ``crop`` — the same crop, no flip (a flip changes what some images mean, e.g. digits): the scans
  run in this process with ``labeltrace.train.loop.augment_batch`` patched to ``hflip=False``.

Baseline: ``--base`` holds ``cnn_allfolds_dev.py``'s default scans of the same cells and seeds
(the same labels: checked), made in an earlier session with the same code path; CNN trainings
differ across sessions in CPU floating-point order only.

Decision rule, written before the runs (22 noisy dev cells x 3 seeds, paired over seeds, the
default detector ``crossfit`` at its own count): a candidate becomes the small CNN's default if
against the baseline its ΔF1 interval lies above 0; its mean ΔAUROC is ≥ 0; no cell's mean ΔF1 is
below −0.03; on the two clean cells (digits, PneumoniaMNIST val, original labels) it flags on
average at most 1.1 x as many; and its training takes on average at most 1.15 x as long. If both
pass, the larger mean ΔF1. Else the default stays, and the file says by how much each missed.

Cells: ``cnn_allfolds_dev.py``'s (digits, PneumoniaMNIST / BreastMNIST val, PneumoniaMNIST's other
1,882 training images; symmetric and confusion noise 0.1-0.4) and the two clean ones. Seeds 0-2.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from cnn_allfolds_dev import (  # scripts/: run as a script
    cells,
    f1,
    parse_args,
    read,
    run_truth,
    scanned,
)
from sklearn.metrics import roc_auc_score

from labeltrace.evaluate.metrics import interval_text, t_interval
from labeltrace.rundir import open_run
from labeltrace.train import loop

CANDIDATES = ("crop+flip", "crop")
NAMES = ("baseline", *CANDIDATES)
SHOWN = ("crossfit", "knn_vote")


def _scans(a: argparse.Namespace, cell_list: list[tuple[str, list[str], str]]
           ) -> Iterator[tuple[str, str, str, dict[str, Path]]]:  # fmt: skip
    """Every cell and seed: (name, noise, tag, run dir by variant), each candidate's scans run first."""
    out = Path(a.out)
    orig = loop.augment_batch
    for cand, patch in (("crop+flip", orig), ("crop", functools.partial(orig, hflip=False))):
        loop.augment_batch = patch
        try:
            for _ in scanned(str(out / cand.replace("+", "_")), cell_list, ["--augment"]):
                pass
        finally:
            loop.augment_batch = orig
    for name, noise, tag, base_dir in scanned(a.base, cell_list):
        yield name, noise, tag, {"baseline": base_dir} | {c: out / c.replace("+", "_") / "runs" / tag
                                                           for c in CANDIDATES}  # fmt: skip


def main() -> None:
    a = parse_args(__doc__)
    m: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for name, noise, tag, dirs in _scans(a, cells(a)):
        r = m[(name, noise)]
        labels = {v: open_run(d).column("given_label_id") for v, d in dirs.items()}
        assert all(np.array_equal(labels["baseline"], x) for x in labels.values()), f"{tag}: other labels"
        truth = run_truth(open_run(dirs["baseline"]))
        for v, d in dirs.items():
            got = read(d)
            r[f"flags {v}"].append(float(got["crossfit"][1].sum()))
            r[f"train_s {v}"].append(float(json.loads((d / "run.json").read_text())["cost"]["seconds"]))
            if noise == "clean":
                continue
            for det in SHOWN:
                s, fl = got[det]
                r[f"auroc {det} {v}"].append(float(roc_auc_score(truth, -s)))
                r[f"f1 {det} {v}"].append(f1(fl, truth))
    report(m)


def _paired(m: dict, keys: list, x: str, y: str) -> list[float]:
    return [u - v for k in keys for u, v in zip(m[k][x], m[k][y], strict=True)]


def report(m: dict[tuple[str, str], dict[str, list[float]]]) -> None:
    noisy = [k for k in m if k[1] != "clean"]
    clean = [k for k in m if k[1] == "clean"]
    print("# Augmentation for the from-scratch CNN, on the dev cells: the planned study\n")
    print("`python scripts/cnn_augment_dev.py --out /work/cache/cnn_aug --base /work/cache/cnn_knn --pneumonia "
          ".../pneumoniamnist_modified.npz --breast .../breastmnist.npz` (3 seeds; `labeltrace scan --model "
          "small-cnn`, baseline at its defaults; mean over seeds; F1 by each detector's own rule; the rule is in "
          "the script's docstring)\n")  # fmt: skip
    cols = [f"{w} {det} {v}" for w in ("auroc", "f1") for det in SHOWN for v in NAMES]
    print("| cell | noise | " + " | ".join(c.replace("auroc", "AUROC").replace("f1", "F1") for c in cols)
          + " | " + " | ".join(f"flags {v}" for v in NAMES) + " |")  # fmt: skip
    print("|---|---|" + "---|" * (len(cols) + len(NAMES)))
    for k in noisy:
        r = m[k]
        print(f"| {k[0]} | {k[1]} | " + " | ".join(f"{np.mean(r[c]):.3f}" for c in cols) + " | "
              + " | ".join(f"{np.mean(r[f'flags {v}']):.1f}" for v in NAMES) + " |")  # fmt: skip
    print("\nThe clean cells (original labels): crossfit's flags per seed, mean\n")
    print("| cell | " + " | ".join(NAMES) + " |\n|---|" + "---|" * len(NAMES))
    for k in clean:
        print(f"| {k[0]} | " + " | ".join(f"{np.mean(m[k][f'flags {v}']):.1f}" for v in NAMES) + " |")
    print("\nPaired against the baseline over the noisy cells' seeds (mean, 95 % t-interval); `crossfit` decides\n")
    print("| candidate | ΔF1 crossfit | ΔAUROC crossfit | worst cell ΔF1 | clean flags / baseline | "
          "training time / baseline | ΔAUROC knn_vote | adopt |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    gains = {}
    for c in CANDIDATES:
        df = _paired(m, noisy, f"f1 crossfit {c}", "f1 crossfit baseline")
        da = _paired(m, noisy, f"auroc crossfit {c}", "auroc crossfit baseline")
        dk = _paired(m, noisy, f"auroc knn_vote {c}", "auroc knn_vote baseline")
        worst = min(float(np.mean(np.subtract(m[k][f"f1 crossfit {c}"], m[k]["f1 crossfit baseline"])))
                    for k in noisy)  # fmt: skip
        flags = sum(sum(m[k][f"flags {c}"]) for k in clean) / max(sum(sum(m[k]["flags baseline"]) for k in clean), 1.0)
        keys = list(m)
        time = float(np.mean([u / v for k in keys for u, v in zip(m[k][f"train_s {c}"], m[k]["train_s baseline"],
                                                                   strict=True)]))  # fmt: skip
        ok = t_interval(df)[1] > 0 and float(np.mean(da)) >= 0 and worst >= -0.03 and flags <= 1.1 and time <= 1.15
        if ok:
            gains[c] = float(np.mean(df))
        print(f"| {c} | {interval_text(*t_interval(df), '+.4f')} | {interval_text(*t_interval(da), '+.4f')} | "
              f"{worst:+.4f} | {flags:.2f} | {time:.2f} | {interval_text(*t_interval(dk), '+.4f')} | "
              f"{'passes' if ok else 'no'} |")  # fmt: skip
    pick = max(gains, key=lambda c: gains[c]) if gains else None
    print(f"\nDecision: {'the default stays (no candidate passes)' if pick is None else f'adopt `{pick}`'}.")


if __name__ == "__main__":
    main()
