"""Timing of the core (not a test): scoring at scale and the recorder's overhead in a training step.

    python scripts/perf_core.py                 # N = 1,000,000, T = 150 (needs ~12 GB RAM)
    python scripts/perf_core.py --n 100000      # smaller

Prints (1) the time of ``scores.compute("sei", ...)`` on N × T full-mode dynamics — over all
epochs (served from running sums) and over a window (which reads the per-epoch array) — on one
thread, and (2) the recorder's ``update`` cost as a fraction of a small CNN's forward + backward
step on CPU.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from torch import nn

from labeltrace import Recorder
from labeltrace.score import trajectory as scores


def time_scoring(n: int, T: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    rec = Recorder(n, k, keep_probs=1)
    base = rng.normal(size=(n, k)).astype(np.float32)
    t0 = time.perf_counter()
    for t in range(T):
        z = base + np.float32(0.02 * t) * np.eye(k, dtype=np.float32)[labels]
        rec.update(np.arange(n), z, labels)
        rec.end_epoch()
    t_rec = time.perf_counter() - t0
    t0 = time.perf_counter()
    dyn = rec.dynamics()
    t_snap = time.perf_counter() - t0
    del rec
    res = {}
    for name, kw in [
        ("sei", {}),
        ("sei", {"epochs": slice(T // 2, T)}),
        ("sei", {"epochs": slice(0, T)}),
        ("aum", {}),
        ("forgetting", {}),
        ("se_at", {"epoch": T // 2}),
    ]:
        t0 = time.perf_counter()
        s = scores.compute(name, dyn, **kw)
        dt = time.perf_counter() - t0
        res[f"{name}{kw or ''}"] = dt
        assert s.shape == (n,) and np.isfinite(s).all()
    print(f"scoring N={n:,} x T={T} (K={k}), one thread")
    print(f"  recording {T} epochs of whole-dataset updates: {t_rec:.1f} s; snapshot: {t_snap:.2f} s")
    for key, dt in res.items():
        print(f"  compute {key:<40s} {dt:8.3f} s")


class SmallCNN(nn.Module):
    def __init__(self, k: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 128, 3, padding=1, stride=2), nn.BatchNorm2d(128), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, k),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def time_overhead(n: int, batch: int, steps: int, seed: int) -> None:
    torch.manual_seed(seed)
    k = 10
    model = SmallCNN(k)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, k, (batch,))
    rec = Recorder(n, k)
    ids = torch.arange(batch)

    def step(with_rec: bool) -> float:
        t0 = time.perf_counter()
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t1 = time.perf_counter()
        if with_rec:
            rec.update(ids, logits, y)
        return t1 - t0, time.perf_counter() - t1

    for _ in range(3):
        step(True)
    train_t, rec_t = [], []
    for _ in range(steps):
        a, b = step(True)
        train_t.append(a)
        rec_t.append(b)
    tr, rc = float(np.median(train_t)), float(np.median(rec_t))
    print(f"recorder overhead, small CNN on 32x32x3, batch {batch}, N={n:,}, one thread")
    print(f"  forward+backward+step: {tr * 1e3:.2f} ms   Recorder.update: {rc * 1e3:.3f} ms   "
          f"overhead: {100 * rc / tr:.2f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    time_overhead(50_000, a.batch, 30, a.seed)
    time_scoring(a.n, a.epochs, a.classes, a.seed)


if __name__ == "__main__":
    main()
