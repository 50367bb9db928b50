"""Vote tables (and a feature subset) for the relabeling simulations, from the shared zips.

Writes under ``/work/cache/simulation/`` (override with ``--out``):

* ``cifar10h_votes.csv`` — CIFAR-10H ``labels.csv`` as is (``index,file,original_label,
  votes_<class>…``, ~51 human votes per image, 10,000 test images);
* ``cifar10n_votes_10k.csv`` and ``cifar10n_effl0_96_10k.npy`` — CIFAR-10N: the vote counts of
  the three independent annotations ``random1..3`` per image (``aggre`` and ``worse`` are derived
  from them, so they are not extra votes), for a seeded subset of 10,000 of the 50,000 training
  images (``numpy.random.default_rng(0).choice(50000, 10000, replace=False)``, sorted), with the
  matching rows of the feature file. Columns ``index`` (0..9999, the simulation's sample id),
  ``source_index`` (row in the 50k set), ``file``, ``clean``, ``votes_<class>…``.

Usage: ``python benchmarks/simulation/prepare_data.py [--out DIR] [--subset 10000]``
"""

from __future__ import annotations

import argparse
import csv
import io
import zipfile
from pathlib import Path

import numpy as np

DATA = Path("/work/shared/data")
FEATURES = Path("/work/cache/features")


def _read_zip_csv(zpath: Path, name: str) -> tuple[list[str], list[list[str]]]:
    with zipfile.ZipFile(zpath) as z, z.open(name) as fh:
        rows = list(csv.reader(io.TextIOWrapper(fh, encoding="utf-8", newline="")))
    return rows[0], rows[1:]


def _classes(zpath: Path) -> list[str]:
    with zipfile.ZipFile(zpath) as z:
        return z.read("classes.txt").decode().split()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/work/cache/simulation"))
    ap.add_argument("--subset", type=int, default=10000, help="CIFAR-10N images (0 = all 50,000)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    header, rows = _read_zip_csv(DATA / "cifar10h.zip", "labels.csv")
    with open(args.out / "cifar10h_votes.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    print(f"cifar10h: {len(rows)} images -> {args.out / 'cifar10h_votes.csv'}")

    classes = _classes(DATA / "cifar10n.zip")
    header, rows = _read_zip_csv(DATA / "cifar10n.zip", "labels.csv")
    col = {name: j for j, name in enumerate(header)}
    ann = np.array([[int(r[col[f"random{a}"]]) for a in (1, 2, 3)] for r in rows])
    n = len(rows)
    votes = np.zeros((n, len(classes)), dtype=np.int64)
    for a in range(3):
        np.add.at(votes, (np.arange(n), ann[:, a]), 1)
    if args.subset and args.subset < n:
        ids = np.sort(np.random.default_rng(args.seed).choice(n, args.subset, replace=False))
        tag = f"_{args.subset // 1000}k"
    else:
        ids = np.arange(n)
        tag = ""
    with open(args.out / f"cifar10n_votes{tag}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "source_index", "file", "clean"] + [f"votes_{c}" for c in classes])
        for new, i in enumerate(ids.tolist()):
            r = rows[i]
            w.writerow([new, i, r[col["file"]], r[col["clean"]], *votes[i].tolist()])
    feats = FEATURES / "cifar10n_effl0_96.npy"
    if feats.exists():
        x = np.load(feats, mmap_mode="r")
        if x.shape[0] != n:
            raise SystemExit(f"{feats} has {x.shape[0]} rows, expected {n}")
        np.save(args.out / f"cifar10n_effl0_96{tag}.npy", np.ascontiguousarray(x[ids]))
    else:
        print(f"note: {feats} not found; no feature subset written")
    print(f"cifar10n: {ids.size} of {n} images -> {args.out / f'cifar10n_votes{tag}.csv'}")


if __name__ == "__main__":
    main()
