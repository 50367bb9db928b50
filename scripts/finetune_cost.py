"""What fine-tuning EfficientNet-Lite0 end to end would cost on this CPU, for the relabeling
simulation's bar cell (issue 14: CIFAR-10H, 10,000 images, 15 % noise, 5 seeds) — a measurement of
training and inference throughput, then arithmetic; nothing is trained to convergence.

    python scripts/finetune_cost.py > benchmarks/results/finetune-cost.md

For each input resolution: seconds per image of one SGD step (forward, backward, update; batch 32,
the whole network trainable, training mode) and of one evaluation forward pass, timed over a few
batches after a warm-up on seeded random inputs (the time does not depend on the pixel values).
The projection is the cross-fitted protocol of ``labeltrace scan``'s default: 5 fold models, each
trained on 4/5 of the images for E epochs, every image evaluated by its held-out model each epoch.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from labeltrace.models.backbone import load_efficientnet_lite0  # noqa: E402

N_IMAGES, FOLDS, SEEDS = 10_000, 5, 5


def per_image(model: torch.nn.Module, res: int, *, train: bool, batch: int, steps: int) -> float:
    """Mean seconds per image of a training step (or an evaluation forward pass) at ``res`` px."""
    g = torch.Generator().manual_seed(res)
    x = torch.rand(batch, 3, res, res, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    head = torch.nn.Linear(1280, 10)
    params = [p for p in model.parameters()] + list(head.parameters())
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)

    def once() -> None:
        if train:
            model.train()
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(head(model.extract_features(x).mean((2, 3))), y)
            loss.backward()
            opt.step()
        else:
            model.eval()
            with torch.inference_mode():
                head(model.extract_features(x).mean((2, 3)))

    once()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        once()
    return (time.perf_counter() - t0) / (steps * batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resolutions", default="32,64,96,224")
    ap.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs in the projection")
    ap.add_argument("--steps", type=int, default=3, help="timed batches per measurement")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = load_efficientnet_lite0(pretrained=True)
    for p in model.parameters():
        p.requires_grad_(True)
    print("# Fine-tuning EfficientNet-Lite0 end to end on this CPU: what the 0.80 bar's next lever costs\n")
    print("`python scripts/finetune_cost.py > benchmarks/results/finetune-cost.md` — "
          f"{platform.machine()}, {os.cpu_count()} cores, {a.threads} torch threads, torch {torch.__version__}; "
          f"batch 32, {a.steps} timed batches after one warm-up.\n")
    print(f"Projection: CIFAR-10H ({N_IMAGES:,} images), {FOLDS} cross-fitted models × {a.epochs} epochs "
          f"on {FOLDS - 1}/{FOLDS} of the images + every image's held-out evaluation each epoch; one "
          f"static campaign per seed, {SEEDS} seeds (a live campaign refits the model every 500 "
          "relabels: 9 more fits per seed at this budget).\n")
    print("| input px | train s / image | eval s / image | one cross-fitted fit (h) | 5 seeds, static (h) | 5 seeds, refit every 500 (h) |")
    print("|---|---|---|---|---|---|")
    for res in (int(r) for r in a.resolutions.split(",")):
        tr = per_image(model, res, train=True, batch=32, steps=a.steps)
        ev = per_image(model, res, train=False, batch=32, steps=a.steps)
        fit = a.epochs * (FOLDS * N_IMAGES * (FOLDS - 1) / FOLDS * tr + N_IMAGES * ev) / 3600
        print(f"| {res} | {tr:.4f} | {ev:.4f} | {fit:.2f} | {SEEDS * fit:.1f} | {SEEDS * 10 * fit:.1f} |", flush=True)


if __name__ == "__main__":
    main()
