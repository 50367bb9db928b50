"""Timing and memory of the core (not a test): the bars of issue 13 §1, and the recorder's overhead.

    python scripts/perf_core.py                          # everything at full size (~4 GB of disk)
    python scripts/perf_core.py --part scoring --n 100000  # smaller
    python scripts/perf_core.py --part checkpoint
    python scripts/perf_core.py --part overhead

Parts (``--part``):

* ``scoring`` — N × T (default 1,000,000 × 150, K = 10) recorded through the public Recorder,
  fed in batches like a training loop, once with the per-epoch arrays in files
  (``directory=``, the out-of-core path) and once in memory (``max_epochs=T``). Each runs in a
  fresh subprocess that reports: recording time, ``dynamics()`` + ``score.compute("sei", dyn)``
  time (bar: < 2 s), the windowed SEI that reads every per-epoch row, and the process's peak
  RSS (``VmHWM``, else ``resource.getrusage``) against the raw trajectory size T × N × (6 float32 + 1 bool)
  (bar: < 1.5×); then ``Recorder.load(checkpoint).dynamics()`` + SEI in another subprocess.
* ``checkpoint`` — ``save()`` time of a file-backed recorder at N = 200,000, K = 10 after
  epochs 1, 10, 20, 40 (flat in T: the state is O(N)), and of an in-memory one (embeds the
  history) for comparison.
* ``overhead`` — ``Recorder.update`` as a fraction of a small CNN's forward + backward step.

Prints the load average at the start and the end: timings are only comparable on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from labeltrace import Recorder
from labeltrace.record import FIELDS
from labeltrace.score import trajectory as scores

_BATCH = 65_536  # rows per update when recording the large runs


def _peak_rss() -> int:
    """Peak resident set size of this process, bytes.

    Linux: ``VmHWM`` of this process image (``getrusage``'s ``ru_maxrss`` would carry over the
    parent's peak at fork, across exec); elsewhere ``getrusage`` (macOS reports bytes).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


def _record(rec: Recorder, n: int, T: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    base = rng.normal(size=(n, k)).astype(np.float32)
    ids = np.arange(n)
    for t in range(T):
        z = base.copy()
        z[ids, labels] += np.float32(0.02 * t)
        for b in range(0, n, _BATCH):
            rec.update(ids[b : b + _BATCH], z[b : b + _BATCH], labels[b : b + _BATCH])
        rec.end_epoch()


def child_scoring(a: argparse.Namespace) -> dict[str, float]:
    """Runs in its own process: record, snapshot, score, checkpoint; reports times and peak RSS."""
    out: dict[str, float] = {"rss_baseline": _peak_rss()}  # the interpreter and numpy
    directory = Path(a.workdir) / "dyn" if a.store == "files" else None
    if a.store == "load":
        t0 = time.perf_counter()
        rec = Recorder.load(Path(a.workdir) / "ckpt.npz")
        out["load_s"] = time.perf_counter() - t0
    else:
        rec = Recorder(a.n, a.classes, keep_probs=1, directory=directory, max_epochs=a.epochs)
        t0 = time.perf_counter()
        _record(rec, a.n, a.epochs, a.classes, a.seed)
        out["record_s"] = time.perf_counter() - t0
    out["rss_before_snapshot"] = _peak_rss()
    t0 = time.perf_counter()
    dyn = rec.dynamics()
    sei = scores.compute("sei", dyn)
    out["dynamics_sei_s"] = time.perf_counter() - t0
    assert sei.shape == (a.n,) and np.isfinite(sei).all()
    t0 = time.perf_counter()
    w = scores.compute("sei", dyn, epochs=slice(a.epochs // 2, a.epochs))
    out["sei_window_s"] = time.perf_counter() - t0
    assert np.isfinite(w).all()
    if a.store == "files":
        t0 = time.perf_counter()
        rec.save(Path(a.workdir) / "ckpt.npz")
        out["save_s"] = time.perf_counter() - t0
    out["peak_rss"] = _peak_rss()
    return out


def time_scoring(a: argparse.Namespace) -> None:
    raw = a.epochs * a.n * (len(FIELDS) * 4 + 1)
    print(f"scoring N={a.n:,} x T={a.epochs} (K={a.classes}), one thread; raw trajectory {raw / 2**30:.2f} GiB")
    with tempfile.TemporaryDirectory(dir=a.tmp) as wd:
        for store in ("files", "load", "memory"):
            cmd = [sys.executable, __file__, "--child", "scoring", "--store", store, "--workdir", wd,
                   "--n", str(a.n), "--epochs", str(a.epochs), "--classes", str(a.classes), "--seed", str(a.seed)]  # fmt: skip
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                print(res.stderr)
                raise SystemExit(f"child {store} failed")
            r = json.loads(res.stdout.strip().splitlines()[-1])
            what = {"files": "directory= (memory-mapped files)", "load": "Recorder.load(checkpoint)",
                    "memory": "in memory, max_epochs=T"}[store]  # fmt: skip
            print(f"  {what}")
            if "record_s" in r:
                print(f"    record {a.epochs} epochs: {r['record_s']:.1f} s")
            if "load_s" in r:
                print(f"    Recorder.load: {r['load_s']:.3f} s")
            print(f"    dynamics() + compute('sei'): {r['dynamics_sei_s']:.3f} s   (bar < 2 s)")
            print(f"    compute('sei', epochs=last half), reads the rows: {r['sei_window_s']:.2f} s")
            if "save_s" in r:
                print(f"    save(checkpoint): {r['save_s']:.3f} s")
            print(f"    peak RSS: {r['peak_rss'] / 2**30:.2f} GiB = {r['peak_rss'] / raw:.2f} x raw   (bar < 1.5 x; "
                  f"{r['rss_baseline'] / 2**20:.0f} MiB of it before the first Recorder)")


def time_checkpoint(a: argparse.Namespace) -> None:
    n, k, T = 200_000, a.classes, 40
    print(f"checkpoint save, N={n:,}, K={k}, keep_probs=5 (default)")
    with tempfile.TemporaryDirectory(dir=a.tmp) as wd:
        files = Recorder(n, k, directory=Path(wd) / "dyn")
        mem = Recorder(n, k)
        rng = np.random.default_rng(a.seed)
        labels = rng.integers(0, k, n)
        base = rng.normal(size=(n, k)).astype(np.float32)
        rows = []
        for t in range(1, T + 1):
            for rec in (files, mem):
                for b in range(0, n, _BATCH):
                    rec.update(np.arange(b, min(b + _BATCH, n)), base[b : b + _BATCH], labels[b : b + _BATCH])
                rec.end_epoch()
            if t in (1, 10, 20, 40):
                t0 = time.perf_counter()
                p1 = files.save(Path(wd) / "files.npz")
                t1 = time.perf_counter()
                p2 = mem.save(Path(wd) / "mem.npz")
                t2 = time.perf_counter()
                rows.append((t, t1 - t0, p1.stat().st_size, t2 - t1, p2.stat().st_size))
        for t, s1, b1, s2, b2 in rows:
            print(f"  T={t:>2}: directory= {s1:.3f} s ({b1 / 2**20:.0f} MiB)   in memory (embedded) {s2:.3f} s ({b2 / 2**20:.0f} MiB)")


def time_overhead(n: int, batch: int, steps: int, seed: int) -> None:
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    k = 10
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 128, 3, padding=1, stride=2), nn.BatchNorm2d(128), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, k),
    )  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, k, (batch,))
    rec = Recorder(n, k)
    ids = torch.arange(batch)

    def step() -> tuple[float, float]:
        t0 = time.perf_counter()
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t1 = time.perf_counter()
        rec.update(ids, logits, y)
        return t1 - t0, time.perf_counter() - t1

    for _ in range(3):
        step()
    train_t, rec_t = zip(*(step() for _ in range(steps)), strict=True)
    tr, rc = float(np.median(train_t)), float(np.median(rec_t))
    print(f"recorder overhead, small CNN on 32x32x3, batch {batch}, N={n:,}, one thread")
    print(f"  forward+backward+step: {tr * 1e3:.2f} ms   Recorder.update: {rc * 1e3:.3f} ms   "
          f"overhead: {100 * rc / tr:.2f} %")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["all", "scoring", "checkpoint", "overhead"], default="all")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default=None, help="where the scratch files go (default: the system temp dir)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == "scoring":
        print(json.dumps(child_scoring(a)))
        return
    print("load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if a.part in ("all", "overhead"):
        time_overhead(50_000, a.batch, 30, a.seed)
    if a.part in ("all", "checkpoint"):
        time_checkpoint(a)
    if a.part in ("all", "scoring"):
        time_scoring(a)
    print("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
