"""How large and how slow is a Label Studio export of large photos with embedded images?

Writes 20 synthetic 2,000 x 1,500 JPEG "photos" (smooth gradients with noise, two classes), a run
directory for them from a recording of random logits (``labeltrace.write_run``: no training),
then times ``export_run(..., "labelstudio")`` (data URIs) with the default ``max_side`` and with
``max_side=None`` (whole images) and prints the file sizes::

    python scripts/export_size.py [--photos 20] [--out DIR]

Measured 2026-12-06 on the 2-core machine, with a CI run sharing the cores (12.3 MB of JPEG):
at 97a080a, before the export shrank large images and kept JPEGs as JPEG, the default export
wrote 103.3 MB in 52.9 s (``max_side`` did not exist: that run stops at the second export);
at fc8270b 4.7 MB in 3.0 s, and 23.2 MB in 2.1 s with ``max_side=None`` (whole, as JPEG).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from labeltrace import Recorder, write_run
from labeltrace.data import from_folder
from labeltrace.export import export_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=20)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="export_size_"))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:1500, 0:2000]
    for i in range(args.photos):
        folder = out / "data" / ("cat" if i % 2 else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        base = np.stack([(xx * (i + 1) / 20) % 255, (yy / 6) % 255, ((xx + yy) / 14) % 255], -1)
        img = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"p{i}.jpg", quality=90)
    ds = from_folder(out / "data")
    rec = Recorder(len(ds), 2)
    labels = torch.as_tensor(np.array(ds.labels))
    for epoch in range(3):
        z = rng.normal(size=(len(ds), 2))
        z[np.arange(len(ds)), ds.labels] += epoch
        rec.update(torch.arange(len(ds)), torch.as_tensor(z, dtype=torch.float32), labels)
        rec.end_epoch()
    run = write_run(ds, rec, out / "run", force=True, log=lambda s: None).run_dir
    source = sum(f.stat().st_size for f in (out / "data").rglob("*.jpg"))
    print(f"{args.photos} photos, {source / 2**20:.1f} MB of JPEG on disk")
    for name, kw in (("default max_side", {}), ("max_side=None", {"max_side": None})):
        t0 = time.perf_counter()
        path = Path(export_run(run, "labelstudio", out / f"tasks_{len(kw)}.json", warn=lambda m: None, **kw))
        print(f"{name}: {path.stat().st_size / 2**20:.1f} MB in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
