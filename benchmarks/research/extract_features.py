"""Extract frozen EfficientNet-Lite features (Lite0 at 96 px by default, GAP) for the research data sets.

Writes /work/cache/features/{cifar10n,cifar10h}_effl0_96.npy and medmnist_<set>_<split>_effl0_96.npy
(float32, (N, 1280), in file/index order) through labeltrace.models.backbone.cached_features.
Run:  nohup python benchmarks/research/extract_features.py > /work/cache/extract.log 2>&1 &
(the CIFAR archives of ``../shared/data`` are unpacked into /work/cache/{cifar10n,cifar10h} first,
by the bench's own ``extract_zip``, when they are not there yet).

``RES=224 python benchmarks/research/extract_features.py cifar10h cifar10n_10k`` extracts at another
resolution (file names carry it); ``cifar10n_10k`` is only the relabeling simulation's seeded
10,000-image subset of CIFAR-10N (``benchmarks/simulation/prepare_data.py``), written as
``cifar10n_effl0_<RES>_10k.npy``. ``LITE=2 RES=260`` takes EfficientNet-Lite2 (any of 0–4; files
``*_effl2_260*.npy``). ``FLIP=1`` extracts the horizontally mirrored images (files ``*_flip.npy``;
the mean of a file and its ``_flip`` twin is the flip-averaged feature the simulation's dev study
tried).
"""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from labeltrace.bench.grid import extract_zip
from labeltrace.models.backbone import (
    cached_features,
    extract_features,
    fingerprint_array,
    fingerprint_files,
    load_efficientnet_lite,
)

CACHE = Path("/work/cache")
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
OUT = CACHE / "features"
RES = int(os.environ.get("RES", "96"))
LITE = int(os.environ.get("LITE", "0"))
FLIP = os.environ.get("FLIP", "0") == "1"
MODEL_NAME = f"efficientnet-lite{LITE}"


def load_images(paths: list[Path]) -> np.ndarray:
    """(N, 3, H, W) uint8 RGB images of ``paths``, in that order."""
    imgs = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])  # (N,H,W,3) uint8
    return np.ascontiguousarray(imgs.transpose(0, 3, 1, 2))


def load_jpegs(root: Path, csv_name: str = "labels.csv") -> tuple[list[Path], np.ndarray]:
    with open(root / csv_name) as fh:
        rows = list(csv.DictReader(fh))
    paths = [root / r["file"] for r in rows]
    return paths, load_images(paths)


def run(name: str, key: dict, load, suffix: str = "") -> None:
    target = OUT / f"{name}_effl{LITE}_{RES}{suffix}{'_flip' if FLIP else ''}.npy"
    t0 = time.time()
    imgs = load()
    if FLIP:
        imgs = np.ascontiguousarray(imgs[..., ::-1])
    t_load = time.time() - t0

    def compute() -> np.ndarray:
        return extract_features(imgs, model=MODEL, resolution=RES, batch_size=250, progress=False)

    t1 = time.time()
    feats = cached_features({**key, "model": MODEL_NAME, "resolution": RES, "normalize": "imagenet",
                             **({"flip": True} if FLIP else {})},
                            compute, cache_dir=OUT / "store")
    t_feat = time.time() - t1
    tmp = target.with_suffix(".tmp.npy")
    np.save(tmp, feats, allow_pickle=False)
    os.replace(tmp, target)
    print(f"{name}: {feats.shape} load {t_load:.1f}s features {t_feat:.1f}s -> {target}", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    MODEL = load_efficientnet_lite(LITE, pretrained=True)
    which = sys.argv[1:] or ["cifar10n", "cifar10h", "medmnist"]
    if "cifar10n" in which:
        root = extract_zip(SHARED / "cifar10n.zip", CACHE / "cifar10n")
        paths = [root / f"train/{i:05d}.jpg" for i in range(50000)]
        run("cifar10n", {"data": fingerprint_files(paths)}, lambda: load_jpegs(root)[1])
    if "cifar10n_10k" in which:  # the simulation's subset: same seeded draw as prepare_data.py
        root = extract_zip(SHARED / "cifar10n.zip", CACHE / "cifar10n")
        ids = np.sort(np.random.default_rng(0).choice(50000, 10000, replace=False))
        paths = [root / f"train/{i:05d}.jpg" for i in ids]
        run("cifar10n", {"data": fingerprint_files(paths)}, lambda: load_images(paths), suffix="_10k")
    if "cifar10h" in which:
        root = extract_zip(SHARED / "cifar10h.zip", CACHE / "cifar10h")
        paths = [root / f"test/{i:05d}.jpg" for i in range(10000)]
        run("cifar10h", {"data": fingerprint_files(paths)}, lambda: load_jpegs(root)[1])
    if "medmnist" in which:
        for f in sorted(Path("/work/shared/data/medmnist").glob("*.npz")):
            z = np.load(f, allow_pickle=False)
            for split in ("train", "val", "test"):
                x = z[f"{split}_images"]
                x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
                run(f"medmnist_{f.stem}_{split}", {"data": fingerprint_array(x, full=True)},
                    lambda x=x: np.ascontiguousarray(x))
