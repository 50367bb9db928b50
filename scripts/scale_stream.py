"""Peak memory of ``labeltrace scan`` on a large image folder, streamed (not a test): issue 13 §4.

    python scripts/scale_stream.py generate --n 100000 --out /work/cache/scale/folder100k
    python scripts/scale_stream.py measure --data /work/cache/scale/folder100k --n 20000 100000
    python scripts/scale_stream.py inputs --n 20000 100000 --stream      # the inputs alone, at 64 px
    python scripts/scale_stream.py inputs --n 20000 --no-stream
    python scripts/scale_stream.py features --data /work/cache/scale/folder100k --n 5000 20000 --resolution 32

``generate`` writes ``N`` synthetic 64 x 64 RGB PNG images into ``OUT/<class>/<i>.png`` (10
classes: a coloured square at a class-dependent place and tint over seeded noise, so a small CNN
learns them). ``measure`` scans the first ``n`` images of the folder for each ``n`` (a manifest
of the first ``n`` files, written next to the run) in a fresh subprocess with ``--stream`` and
reports the subprocess's peak RSS (``VmHWM`` of the scan's process; the DataLoader's decoding
workers are separate processes and reported apart), wall time and the epochs' seconds. Extra
``labeltrace scan`` arguments go after ``--``, e.g. ``-- --epochs 2 --folds 2 --image-size 32``.

``inputs`` only prepares the small CNN's inputs at the native 64 px (streamed: the statistics pass,
then one pass over every batch as an epoch would; in memory: the normalised tensor) and reports
the peak RSS of that subprocess — what streaming saves, without the training.

``features`` extracts the frozen EfficientNet-Lite0 features of the first ``n`` images (streamed:
decoded in a worker, written chunk by chunk to a fresh cache) in a fresh subprocess per ``n`` and
reports its peak RSS; with ``--kill-after S`` it first kills an extraction after ``S`` seconds and
shows that the rerun resumes at the chunk it reached.

Prints the load average at the start and the end: timings are only comparable on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

CLASSES = 10
SIDE = 64


def _image(rng: np.random.Generator, k: int) -> np.ndarray:
    img = rng.integers(0, 96, size=(SIDE, SIDE, 3), dtype=np.uint8)
    tint = np.array([(k * 53) % 256, (k * 97) % 256, (k * 151) % 256], dtype=np.uint8)
    y, x = (k // 4) * 16 + rng.integers(0, 8), (k % 4) * 14 + rng.integers(0, 8)
    img[y : y + 14, x : x + 14] = tint
    return img


def generate(n: int, out: Path, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k in range(CLASSES):
        (out / f"c{k}").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i in range(n):
        k = i % CLASSES
        p = out / f"c{k}" / f"{i:07d}.png"
        if not p.exists():
            Image.fromarray(_image(rng, k)).save(p, compress_level=1)
        else:
            _image(rng, k)  # keep the stream of draws the same when resuming
        if (i + 1) % 10_000 == 0:
            print(f"{i + 1} images, {time.perf_counter() - t0:.0f} s", flush=True)


def _manifest(data: Path, n: int, where: Path) -> Path:
    """A manifest of the first ``n`` images (by index) of a generated folder."""
    rows = ["path,label"]
    for i in range(n):
        k = i % CLASSES
        rows.append(f"c{k}/{i:07d}.png,c{k}")
    p = where / f"manifest_{n}.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


#: what every child program starts with: one torch thread, and its peak RSS (VmHWM) in bytes
_PRELUDE = r"""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0
"""


def _child(code: str, args: list[str], what: str) -> dict:
    """Run a child program (``_PRELUDE`` + ``code``) and return the JSON of its ``RESULT`` line."""
    p = subprocess.run([sys.executable, "-c", _PRELUDE + code, *args], capture_output=True, text=True,
                       env=os.environ | {"OMP_NUM_THREADS": "1"}, check=False)  # fmt: skip
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not line:
        print(p.stdout[-3000:], p.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{what} failed")
    return json.loads(line[0][7:])


_CHILD = r"""
import resource
from labeltrace.cli import main

t0 = time.perf_counter()
rc = main(sys.argv[1:])
print("RESULT " + json.dumps({"rc": rc, "peak_rss": hwm(), "wall": time.perf_counter() - t0,
      "children_maxrss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


def measure(data: Path, sizes: list[int], work: Path, extra: list[str]) -> list[dict]:
    work.mkdir(parents=True, exist_ok=True)
    out = []
    for n in sizes:
        man = _manifest(data, n, work)
        run = work / f"run_{n}"
        args = ["scan", "--labels", str(man), str(data), "--out", str(run), "--stream", "--model", "small-cnn",
                "--quiet", "--force", *extra]  # fmt: skip
        t0 = time.perf_counter()
        r = _child(_CHILD, args, f"scan of {n} images")
        meta = json.loads((run / "run.json").read_text())
        r |= {"n": n, "total_wall": time.perf_counter() - t0, "timings": meta["timings"],
              "inputs": meta["inputs"], "epochs": meta["train"]["epochs"],
              "f1": (meta.get("metrics") or {}).get("f1")}
        print(f"n={n:>7}  peak RSS {r['peak_rss'] / 2**20:7.0f} MiB  (largest worker {r['children_maxrss'] / 2**20:.0f} "
              f"MiB)  wall {r['wall']:.0f} s  timings {json.dumps({k: round(v, 1) for k, v in meta['timings'].items()})}",
              flush=True)
        out.append(r)
    return out


_FEATURES = r"""
from labeltrace.data import from_manifest
from labeltrace.models.features import frozen_features

man, root, cache, res = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ds = from_manifest(Path(man), root=Path(root), verify=False)
t0 = time.perf_counter()
inp = frozen_features(ds, resolution=res, cache_dir=cache, stream=True, workers=1)
print("RESULT " + json.dumps({"peak_rss": hwm(), "wall": time.perf_counter() - t0, "shape": list(inp.source.shape)}))
"""


_INPUTS = r"""
from labeltrace.data import from_manifest
from labeltrace.models.inputs import prepare_inputs

man, root, stream = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
ds = from_manifest(Path(man), root=Path(root))
base = hwm()
t0 = time.perf_counter()
inp = prepare_inputs(ds, "small-cnn", stream=stream, workers=1)
n = sum(len(i) for i, _ in inp.source.batches(torch.randperm(len(ds)), 128))
print("RESULT " + json.dumps({"peak_rss": hwm(), "before_inputs": base, "wall": time.perf_counter() - t0,
                              "shape": list(inp.source.shape), "batched": n}))
"""


def inputs(data: Path, sizes: list[int], work: Path, stream: bool) -> None:
    work.mkdir(parents=True, exist_ok=True)
    for n in sizes:
        man = _manifest(data, n, work)
        r = _child(_INPUTS, [str(man), str(data), "1" if stream else "0"], f"inputs of {n} images")
        print(f"n={n:>7}  {'streamed ' if stream else 'in memory'}  inputs {r['shape']}  peak RSS "
              f"{r['peak_rss'] / 2**20:7.0f} MiB (dataset loaded: {r['before_inputs'] / 2**20:.0f} MiB)  "
              f"wall {r['wall']:.0f} s", flush=True)


def features(data: Path, sizes: list[int], work: Path, resolution: int, kill_after: float | None) -> None:
    work.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    for n in sizes:
        man = _manifest(data, n, work)
        cache = work / f"features_{n}_r{resolution}"
        if cache.exists():
            import shutil

            shutil.rmtree(cache)
        args = [str(man), str(data), str(cache), str(resolution)]
        if kill_after:
            cmd = [sys.executable, "-c", _PRELUDE + _FEATURES, *args]
            p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(kill_after)
            p.kill()
            p.wait()
            st = [json.loads(f.read_text()) for f in cache.glob("*.partial.json")]
            print(f"n={n:>7}  killed after {kill_after:.0f} s with {st[0]['rows'] if st else 0} rows written", flush=True)
        r = _child(_FEATURES, args, f"feature extraction of {n} images")
        print(f"n={n:>7}  features {r['shape']}  peak RSS {r['peak_rss'] / 2**20:7.0f} MiB  wall {r['wall']:.0f} s"
              + ("  (resumed)" if kill_after else ""), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--n", type=int, default=100_000)
    g.add_argument("--out", type=Path, default=Path("/work/cache/scale/folder100k"))
    g.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("measure")
    m.add_argument("--data", type=Path, default=Path("/work/cache/scale/folder100k"))
    m.add_argument("--n", type=int, nargs="+", default=[20_000, 100_000])
    m.add_argument("--work", type=Path, default=Path("/work/cache/scale/runs"))
    m.add_argument("--json", type=Path, help="also write the results here")
    m.add_argument("extra", nargs="*", help="after --: more labeltrace scan arguments")
    i = sub.add_parser("inputs")
    i.add_argument("--data", type=Path, default=Path("/work/cache/scale/folder100k"))
    i.add_argument("--n", type=int, nargs="+", default=[20_000, 100_000])
    i.add_argument("--work", type=Path, default=Path("/work/cache/scale/runs"))
    i.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True)
    f = sub.add_parser("features")
    f.add_argument("--data", type=Path, default=Path("/work/cache/scale/folder100k"))
    f.add_argument("--n", type=int, nargs="+", default=[5_000, 20_000])
    f.add_argument("--work", type=Path, default=Path("/work/cache/scale/runs"))
    f.add_argument("--resolution", type=int, default=32)
    f.add_argument("--kill-after", type=float, help="kill a first extraction after this many seconds")
    a = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    if a.cmd == "generate":
        generate(a.n, a.out, a.seed)
    elif a.cmd == "inputs":
        inputs(a.data, a.n, a.work, a.stream)
    elif a.cmd == "features":
        features(a.data, a.n, a.work, a.resolution, a.kill_after)
    else:
        res = measure(a.data, a.n, a.work, a.extra)
        if a.json:
            a.json.write_text(json.dumps(res, indent=2))
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
