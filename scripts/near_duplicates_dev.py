"""Near-duplicate study (labeltrace.data.near_duplicates): how close real images come to their
nearest neighbour, how close synthetic copies stay, and contact sheets of the closest pairs to
judge by eye which are copies.

    PYTHONPATH=src python scripts/near_duplicates_dev.py --sheets /tmp/near_sheets \
        > benchmarks/results/dev-near-duplicates.md
    PYTHONPATH=src python scripts/near_duplicates_dev.py --heldout >> benchmarks/results/dev-near-duplicates.md

Dev sets (the threshold is chosen on these only): sklearn digits, PneumoniaMNIST val, BreastMNIST
val, the first 10,000 CIFAR-10N training images. ``--heldout``: PneumoniaMNIST train and CIFAR-10H
test, counts only.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from labeltrace.data.duplicates import find_duplicates
from labeltrace.data.near_duplicates import MIN_STD, SIZE, near_pairs, signatures

DATA = Path("/work/shared/data")
CIFAR10N = Path("/work/cache/cifar10n")
THRESHOLDS = (0.90, 0.95, 0.97, 0.975, 0.98, 0.985, 0.99, 0.995)
BANDS = ((0.95, 0.97), (0.97, 0.98), (0.98, 0.99), (0.99, 1.01))


def _medmnist(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    z = np.load(DATA / "medmnist" / name)
    return z[f"{split}_images"], z[f"{split}_labels"].reshape(-1).astype(np.int64)


def _jpegs(files: list[bytes]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in files])


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, H, W[, 3]) and labels."""
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return np.rint(d.images / 16 * 255).astype(np.uint8), d.target.astype(np.int64)
    if name == "pneumoniamnist-val":
        return _medmnist("pneumoniamnist_modified.npz", "val")
    if name == "breastmnist-val":
        return _medmnist("breastmnist.npz", "val")
    if name == "pneumoniamnist-train":
        return _medmnist("pneumoniamnist_modified.npz", "train")
    if name == "cifar10n-10k":
        import csv

        rows = list(csv.DictReader(open(CIFAR10N / "labels.csv")))[:10_000]
        imgs = _jpegs([(CIFAR10N / r["file"]).read_bytes() for r in rows])
        return imgs, np.array([int(r["clean"]) for r in rows])
    if name == "cifar10h-test":
        import csv

        with zipfile.ZipFile(DATA / "cifar10h.zip") as z:
            rows = list(csv.DictReader(io.TextIOWrapper(z.open("labels.csv"))))
            imgs = _jpegs([z.read(r["file"]) for r in rows])
        return imgs, np.array([int(r["original_label"]) for r in rows])
    raise ValueError(name)


def _float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=q)
    return np.asarray(Image.open(buf).convert(Image.fromarray(img).mode))


def _resize(img: np.ndarray, f: float) -> np.ndarray:
    h, w = img.shape[:2]
    small = Image.fromarray(img).resize(
        (max(2, round(w * f)), max(2, round(h * f))), Image.Resampling.BILINEAR
    )
    return np.asarray(small.resize((w, h), Image.Resampling.BILINEAR))


ALTER = {
    "jpeg q70": lambda im: _jpeg(im, 70),
    "jpeg q40": lambda im: _jpeg(im, 40),
    "shift 1 px": lambda im: np.concatenate([im[:, :1], im[:, :-1]], axis=1),
    "brightness/contrast": lambda im: np.clip(im.astype(np.float32) * 0.8 + 40, 0, 255).astype(
        np.uint8
    ),
    "resized 75 % and back": lambda im: _resize(im, 0.75),
    "jpeg q70 + shift 1 px": lambda im: _jpeg(np.concatenate([im[:, :1], im[:, :-1]], axis=1), 70),
}


def synthetic(imgs: np.ndarray, size: int, n: int = 200) -> dict[str, np.ndarray]:
    """Cosine of each of ``n`` seeded images with each altered copy of it."""
    pick = np.random.default_rng(0).choice(len(imgs), size=min(n, len(imgs)), replace=False)
    base, _ = signatures(_float(imgs[pick]), size, 0.0)
    out = {}
    for name, fn in ALTER.items():
        alt, _ = signatures(_float(np.stack([fn(imgs[i]) for i in pick])), size, 0.0)
        out[name] = (base * alt).sum(1)
    return out


def nearest(sig: np.ndarray, ok: np.ndarray, exact: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Each informative image's highest cosine with another informative image that is no exact copy of it."""
    best = np.full(len(sig), np.nan, np.float32)
    idx = np.flatnonzero(ok)
    s = sig[idx]
    for a in range(0, len(idx), chunk):
        block = s[a : a + chunk] @ s.T
        rows = idx[a : a + chunk]
        same = (exact[rows][:, None] >= 0) & (exact[rows][:, None] == exact[idx][None, :])
        block[same] = -2
        block[np.arange(len(rows)), a + np.arange(len(rows))] = -2
        best[rows] = block.max(1)
    return best


def _std(x: np.ndarray, size: int) -> np.ndarray:
    """Thumbnail standard deviation of each image (as signatures() measures it)."""
    from labeltrace.data.near_duplicates import _area, _gray

    g = _gray(x)
    small = np.einsum(
        "sh,nhw,tw->nst", _area(g.shape[1], size), g, _area(g.shape[2], size)
    ).reshape(len(g), -1)
    return small.std(axis=1)


def sheet(
    imgs: np.ndarray,
    labels: np.ndarray,
    pairs: list[tuple[int, int, float]],
    path: Path,
    px: int = 64,
) -> None:
    cols = 4
    cell_w, cell_h = 2 * px + 16, px + 14
    rows = (len(pairs) + cols - 1) // cols
    canvas = Image.new("RGB", (cols * cell_w, max(1, rows) * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (i, j, c) in enumerate(pairs):
        x, y = (k % cols) * cell_w, (k // cols) * cell_h
        for m, s in enumerate((i, j)):
            im = Image.fromarray(imgs[s]).convert("RGB").resize((px, px), Image.Resampling.NEAREST)
            canvas.paste(im, (x + m * (px + 2), y))
        draw.text((x, y + px), f"{k}: {c:.4f} {labels[i]}/{labels[j]}", fill="black")
    canvas.save(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=SIZE)
    ap.add_argument("--min-std", type=float, default=MIN_STD)
    ap.add_argument("--sheets", type=Path, help="folder for the contact sheets (PNG)")
    ap.add_argument(
        "--no-size-guard", action="store_true", help="match images smaller than the thumbnail too"
    )
    ap.add_argument(
        "--heldout",
        action="store_true",
        help="PneumoniaMNIST train and CIFAR-10H test, counts only",
    )
    a = ap.parse_args()
    names = (
        ["pneumoniamnist-train", "cifar10h-test"]
        if a.heldout
        else ["digits", "pneumoniamnist-val", "breastmnist-val", "cifar10n-10k"]
    )
    if a.sheets:
        a.sheets.mkdir(parents=True, exist_ok=True)
    if not a.heldout:
        print(
            f"## Synthetic copies ({a.size}x{a.size} signature): cosine with the original, min / 1st percentile "
            "/ median of 200 seeded images\n"
        )
        print("| data | " + " | ".join(ALTER) + " |\n|---|" + "---|" * len(ALTER))
    counts = []
    for name in names:
        imgs, labels = load(name)
        sig, ok = signatures(_float(imgs), a.size, a.min_std)
        std = _std(_float(imgs), a.size)
        if a.no_size_guard:
            ok = std >= a.min_std
        exact = find_duplicates(imgs)
        if not a.heldout:
            syn = synthetic(imgs[std >= a.min_std], a.size)
            print(
                f"| {name} | "
                + " | ".join(
                    f"{v.min():.3f} / {np.quantile(v, 0.01):.3f} / {np.median(v):.3f}"
                    for v in syn.values()
                )
                + " |"
            )
        i, j, c = near_pairs(sig, ok, min(THRESHOLDS[0], BANDS[0][0]))
        notexact = (exact[i] < 0) | (exact[i] != exact[j])
        i, j, c = i[notexact], j[notexact], c[notexact]
        best = nearest(
            sig, std >= a.min_std, exact
        )  # without the size guard: how close small images come
        counts.append(
            (
                name,
                len(imgs),
                int((~ok).sum()),
                int((exact >= 0).sum()),
                std,
                best,
                [
                    (int((c >= t).sum()), int(((c >= t) & (labels[i] != labels[j])).sum()))
                    for t in THRESHOLDS
                ],
            )
        )
        if a.sheets:
            for lo, hi in BANDS:
                band = np.flatnonzero((c >= lo) & (c < hi))
                pick = np.sort(
                    np.random.default_rng(1).choice(band, size=min(24, len(band)), replace=False)
                )
                pick = pick[np.argsort(-c[pick])]
                sheet(
                    imgs,
                    labels,
                    [(int(i[k]), int(j[k]), float(c[k])) for k in pick],
                    a.sheets / f"{name}_{lo:.2f}-{min(hi, 1):.2f}.png",
                )
            low = np.argsort(std)[:24]
            sheet(
                imgs,
                labels,
                [(int(k), int(k), float(std[k])) for k in low],
                a.sheets / f"{name}_lowstd.png",
            )
    print(
        f"\n## Pairs at or above each cosine ({a.size}x{a.size}, std floor {a.min_std}; exact copies left out): "
        "pairs (of them with different labels)\n"
    )
    print(
        "| data | images | never matched (std floor or < size px) | in exact groups | "
        + " | ".join(f"≥ {t}" for t in THRESHOLDS)
        + " |\n|---|---|---|---|"
        + "---|" * len(THRESHOLDS)
    )
    for name, n, low, ex, _, _, cnt in counts:
        print(
            f"| {name} | {n:,} | {low} | {ex} | " + " | ".join(f"{p} ({d})" for p, d in cnt) + " |"
        )
    print("\n## Each image's nearest neighbour (cosine; quantiles) and thumbnail std (quantiles)\n")
    print(
        "| data | NN 50 % | NN 99 % | NN 99.9 % | NN max | std 0.1 % | std 1 % | std 50 % |\n|---|---|---|---|---|---|---|---|"
    )
    for name, _, _, _, std, best, _ in counts:
        b = best[np.isfinite(best)]
        q = np.quantile(b, [0.5, 0.99, 0.999]).tolist() + [b.max()]
        s = np.quantile(std, [0.001, 0.01, 0.5]).tolist()
        print(
            f"| {name} | "
            + " | ".join(f"{v:.4f}" for v in q)
            + " | "
            + " | ".join(f"{v:.4f}" for v in s)
            + " |"
        )


if __name__ == "__main__":
    main()
