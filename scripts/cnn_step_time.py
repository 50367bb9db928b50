"""How fast this machine trains the default small CNN, one SGD step at a time (issue 12 §6): the
per-step time the default scan's cost rests on, measured beside ``cost_scan.py`` so that sessions on
machines of different speed can be compared.

    python scripts/cnn_step_time.py > benchmarks/results/cnn-step-time.md
    python scripts/cnn_step_time.py cnn-step-time-avx512bf16.md > benchmarks/results/cnn-step-time-avx512bf16.md

(the optional argument: the file name the header's command names — one file per kind of CPU measured)

The CNN at its default width for 28 px images (16), one batch of 128 random 28 x 28 grayscale
images, SGD with momentum: 5 warm-up steps, then the mean of 60. Four settings, each in its own
process (run it alone on the machine): two torch threads (what the scan uses on 2 cores), the same
with the forward pass in bfloat16 (``--precision bfloat16``), one thread, and two one-thread
processes side by side (what training the folds in two processes would get), the four in turn, :data:`REPEATS` times: a single reading of the two-thread step
varies by a quarter within a session. Prints a markdown table of medians and ranges.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn

from labeltrace.models.small_cnn import SmallResNet
from labeltrace.train.precision import autocast, native_bfloat16, widened

STEPS, WARMUP, BATCH, REPEATS = 60, 5, 128, 5


def step_ms(threads: int, precision: str = "float32") -> float:
    """Mean milliseconds per training step with ``threads`` torch threads, the forward pass in
    ``precision`` (as ``labeltrace.train.loop.run_epoch`` runs it)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = SmallResNet(1, 2, width=16)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    x, y = torch.randn(BATCH, 1, 28, 28), torch.randint(0, 2, (BATCH,))

    def step() -> None:
        with autocast(precision, torch.device("cpu")):
            logits = widened(m(x), precision)
        loss = nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(WARMUP):
        step()
    t = time.perf_counter()
    for _ in range(STEPS):
        step()
    return (time.perf_counter() - t) / STEPS * 1000


def _child(threads: int, precision: str = "float32") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--child", str(threads), precision], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        print(f"{step_ms(int(sys.argv[2]), *sys.argv[3:4]):.1f}")
        return
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):  # it was taken for the file name and measured
        print(__doc__)
        return
    name = sys.argv[1] if len(sys.argv) > 1 else "cnn-step-time.md"
    load = os.getloadavg()[0]
    two, one, pair, bf16 = [], [], [], []  # ms per step; steps per second of the two processes together
    for _ in range(REPEATS):
        two.append(float(_child(2).communicate()[0]))
        bf16.append(float(_child(2, "bfloat16").communicate()[0]))
        one.append(float(_child(1).communicate()[0]))
        procs = [_child(1), _child(1)]
        pair.append(sum(1000 / float(p.communicate()[0]) for p in procs))
    gain = [p / (1000 / t) for p, t in zip(pair, two, strict=True)]

    def cell(v: list[float], fmt: str) -> str:
        return f"{np.median(v):{fmt}} ({min(v):{fmt}}–{max(v):{fmt}})"

    print("# One training step of the default small CNN on this machine\n")
    arg = "" if name == "cnn-step-time.md" else f" {name}"
    print(f"`python scripts/cnn_step_time.py{arg} > benchmarks/results/{name}` (width 16, 128 images of "
          f"28 x 28, SGD; mean of {STEPS} steps after {WARMUP}; each setting {REPEATS} times in turn, median "
          f"(range); the 2-core machine's load average over one minute {load:.1f} at the start and "
          f"{os.getloadavg()[0]:.1f} at the end: above 2, other work shared the cores)\n")
    print("| setting | ms per step | steps per second, all processes |")
    print("|---|---|---|")
    print(f"| 1 process, 2 threads | {cell(two, '.1f')} | {cell([1000 / t for t in two], '.1f')} |")
    print(f"| 1 process, 2 threads, bfloat16 forward passes (`--precision bfloat16`) | {cell(bf16, '.1f')} | "
          f"{cell([1000 / t for t in bf16], '.1f')} |")
    print(f"| 1 process, 1 thread | {cell(one, '.1f')} | {cell([1000 / t for t in one], '.1f')} |")
    print(f"| 2 processes side by side, 1 thread each | | {cell(pair, '.1f')} |")
    print(f"\nTwo one-thread processes against one two-thread process, the same round: {cell(gain, '.2f')} x the steps.")
    speed = [t / b for t, b in zip(two, bf16, strict=True)]
    print(f"\nbfloat16 against float32 forward passes, two threads, the same round: {cell(speed, '.2f')} x the steps "
          f"(this CPU runs bfloat16 natively: {native_bfloat16(torch.device('cpu'))}; AMX tiles: "
          f"{torch.cpu._is_amx_tile_supported()}, AVX512-BF16: {torch.cpu._is_avx512_bf16_supported()}).")

if __name__ == "__main__":
    main()
