"""Per class, how much of each benchmark cell's synthetic noise lands where: a description of the
label sets (no training, no detector, nothing chosen from it).

    python scripts/noise_per_class.py --cache /work/cache/bench > benchmarks/results/noise-per-class.md

For every test cell's label set and the small dev sets' (mean over the config's seeds): for each
true class the fraction of its images whose label was flipped, and for each given label the
fraction of the images carrying it that are wrong, **bold** where most of its images belong to one
other class (in most seeds). Such a label breaks the condition every detector here leans on
(among the images given a label, that class is the most common), so no ranking can be expected
to find those errors from the labels and features alone. Last, the bar of issue 12 (``bench.paired.bar_lines``) on the committed test rows
(``benchmarks/results/test-*.csv``), split into the cells without such a label and the others.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import replace
from pathlib import Path

import numpy as np

from labeltrace.bench.config import load_config
from labeltrace.bench.grid import expand, load_dataset
from labeltrace.bench.paired import bar_lines

CONFIGS = Path(__file__).resolve().parents[1] / "benchmarks" / "configs"
RESULTS = CONFIGS.parent / "results"
WHAT = (("test.toml", ("cifar10n", "cifar10h", "pneumoniamnist", "breastmnist")),
        ("dev.toml", ("pneumoniamnist-train-rest", "pneumoniamnist-val", "breastmnist-val", "cifar10-catdog-dev")))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="the bench cache (features and extracted data)")
    args = ap.parse_args()
    print("# Where the synthetic noise lands, per class\n")
    print("`python scripts/noise_per_class.py --cache /work/cache/bench > benchmarks/results/noise-per-class.md` "
          "(the label sets only; means over the seeds).\n")  # fmt: skip
    print("| config | dataset | labels | images per true class (ten classes: images) | flipped, per true class | wrong, per given label |")
    print("|---|---|---|---|---|---|")
    label_lost: set[tuple[str, str]] = set()
    for config, names in WHAT:
        cfg = replace(load_config(CONFIGS / config), cache_dir=args.cache)
        data = {}
        cells: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
        for cell in expand(cfg):
            if cell.dataset.name not in names or cell.labels == "clean":
                continue
            key = (cell.dataset.name, cell.labels)
            if key in cells and len(cells[key]) == len(cfg.seeds):
                continue  # the label set does not depend on the model
            if cell.dataset.name not in data:
                data[cell.dataset.name] = load_dataset(cell.dataset, cfg.cache_path, log=lambda s: None)
            d = data[cell.dataset.name]
            y, c = d.given_labels(cell.labels, cell.seed), d.clean
            k = d.num_classes
            flipped = np.array([(y[c == j] != j).mean() for j in range(k)])
            wrong = np.array([(c[y == j] != j).mean() if (y == j).any() else np.nan for j in range(k)])
            # a given label whose images are mostly of one other class (the plurality is not the label)
            lost = np.array([(y == j).any() and np.bincount(c[y == j], minlength=k).argmax() != j for j in range(k)])
            cells.setdefault(key, []).append((flipped, wrong, lost))
        for (name, labels), v in cells.items():
            d = data[name]
            sizes = " / ".join(str(int((d.clean == j).sum())) for j in range(d.num_classes))
            f = np.mean([a for a, _, _ in v], axis=0)
            w = np.mean([b for _, b, _ in v], axis=0)
            lost = np.mean([x for _, _, x in v], axis=0) > 0.5  # in most seeds
            if config == "test.toml" and lost.any():
                label_lost.add((name, labels))
            if d.num_classes > 2:  # ten classes: the extremes only
                j = int(np.nanargmax(w))
                flips = f"{f.min():.2f}–{f.max():.2f}"
                wrongs = f"{np.nanmin(w):.2f}–" + (f"**{w[j]:.2f}**" if lost[j] else f"{w[j]:.2f}")
            else:
                flips = " / ".join(f"{x:.2f}" for x in f)
                wrongs = " / ".join(f"**{x:.2f}**" if bad else f"{x:.2f}" for x, bad in zip(w, lost, strict=True))
            print(f"| {config} | {name} | {labels} | {sizes if d.num_classes == 2 else d.n} | {flips} | {wrongs} |")
    rows = [r for p in sorted(RESULTS.glob("test-*.csv")) for r in csv.DictReader(open(p, newline=""))
            if "detector" in r and float(r.get("n_noisy") or 0) > 0]  # fmt: skip
    for title, keep in (("every given label is mostly its own class", False),
                        ("some given label is mostly another class", True)):  # fmt: skip
        part = [r for r in rows if ((r["dataset"], r["labels"]) in label_lost) == keep]
        print(f"\n**The bar on the test cells where {title}** (crossfit, against cleanlab):\n")
        print("\n".join(bar_lines(part, "crossfit", baseline="cleanlab")))


if __name__ == "__main__":
    main()
