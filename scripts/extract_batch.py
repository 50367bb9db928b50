"""Images per backbone forward pass on a CPU: time, peak memory and the features themselves, for
EfficientNet-Lite0 feature extraction at 96 and 224 px (why a CPU pass takes at most
``backbone.CPU_FORWARD_IMAGES`` = 32 images and ``CPU_FORWARD_PIXELS`` = 16 images at 224 px).

    python scripts/extract_batch.py --data ../shared/data/medmnist/pneumoniamnist_modified.npz \\
        > benchmarks/results/extract-batch.md

Each (resolution, pass size) runs in its own process (so its peak RSS is its own) on the first
``--n`` images of the file's ``train_images``, with ``torch`` on the machine's threads; run it alone
on the machine. Every run's features are compared with the first run's of the same resolution
(max absolute difference: 0 means bit for bit). Peak RSS is ``ru_maxrss`` read as KiB (Linux).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PASSES = (256, 64, 32, 16, 8)
RESOLUTIONS = (96, 224)


def child(data: str, n: int, resolution: int, per_pass: int, out: str) -> None:
    import torch

    from labeltrace.models import backbone

    images = np.load(data)["train_images"][:n]
    x = torch.from_numpy(images[:, None].astype(np.float32) / 255.0)
    model = backbone.load_efficientnet_lite0(pretrained=True)
    backbone.CPU_FORWARD_IMAGES, backbone.CPU_FORWARD_PIXELS = per_pass, per_pass * resolution**2  # this run's
    t = time.perf_counter()
    f = backbone.extract_features(x, model=model, resolution=resolution, batch_size=256, progress=False)
    seconds = time.perf_counter() - t
    np.save(out, f)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a MedMNIST-style .npz with train_images (N, H, W) uint8")
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--child", nargs=3, metavar=("RES", "PASS", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.data, a.n, int(a.child[0]), int(a.child[1]), a.child[2])
        return
    print("# Images per backbone forward pass on a CPU (EfficientNet-Lite0 features)\n")
    print(f"`python scripts/extract_batch.py --data .../pneumoniamnist_modified.npz > "
          f"benchmarks/results/extract-batch.md` ({a.n} PneumoniaMNIST train images, 28 px grayscale, "
          "resized by the backbone's preprocessing; one process per row, alone on the 2-core machine)\n")  # fmt: skip
    print("| resolution | images per pass | seconds | images / s | peak RSS MiB | max abs diff to the first row |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for res in RESOLUTIONS:
            first = None
            for per_pass in PASSES:
                out = str(Path(tmp) / f"f_{res}_{per_pass}.npy")
                cmd = [sys.executable, __file__, "--data", a.data, "--n", str(a.n), "--child", str(res),
                       str(per_pass), out]  # fmt: skip
                r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())
                f = np.load(out)
                first = f if first is None else first
                diff = float(np.abs(f - first).max())
                print(f"| {res} | {per_pass} | {r['seconds']:.1f} | {a.n / r['seconds']:.0f} | {r['peak_mib']:.0f} "
                      f"| {diff:.3g} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
