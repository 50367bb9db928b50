"""The relabeling simulation with a fine-tuned EfficientNet-Lite0 in the loop (issue 14's next
lever), for the GPU machine: on this project's 2-core CPU one cross-fitted fit of 10,000 images at
224 px takes about 19 h (`benchmarks/results/finetune-cost.md`).

    python benchmarks/simulation/finetune_sim.py --votes VOTES.csv --images IMAGES.npy \\
        --noise-rate 0.15 --seeds 0,1,2,3,4 --resolution 224 --epochs 10 --device cuda --out DIR

IMAGES: an (N, 3, H, W) or (N, H, W, 3) uint8 array, row i = the image of vote row i. Per seed: the
initial noisy labels exactly as ``labeltrace simulate`` draws them; the whole network (ImageNet
weights, a linear head) fine-tuned on them with ``labeltrace scan``'s cross-fitted protocol — five
fold models in lockstep, every image's posterior the trajectory mean of the model that never saw
its label (``train.protocol.record_crossfit``; recordings kept under ``DIR/recordings``, so a
killed run resumes); then every selector's campaign on the real votes
(``relabel.experiment.run_simulation(model=...)``), written as ``labeltrace simulate`` writes
its runs, so ``tables.py`` reads ``DIR``. ``--active-every M`` refits the network on the current
labels every M relabels (one cross-fitted fit per refresh and model selector).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from labeltrace.models.backbone import fingerprint_array  # noqa: E402
from labeltrace.relabel import io as rio  # noqa: E402
from labeltrace.relabel.experiment import ModelFn, run_simulation  # noqa: E402
from labeltrace.relabel.simulation import parse_selectors  # noqa: E402
from labeltrace.score import trajectory as scores  # noqa: E402
from labeltrace.train import TrainConfig, protocol  # noqa: E402
from labeltrace.train.recipe import NetworkSpec  # noqa: E402


def load_images(path: str, n: int) -> torch.Tensor:
    """(N, 3, H, W) float32 in [0, 1] from a uint8 array file, checked against the vote rows."""
    x = np.load(path, allow_pickle=False)
    if x.ndim == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] != 3 or x.dtype != np.uint8:
        raise ValueError(f"{path}: need an (N, 3, H, W) or (N, H, W, 3) uint8 array, got {x.shape} {x.dtype}")
    if x.shape[0] != n:
        raise ValueError(f"{path} has {x.shape[0]} images but the votes have {n} rows")
    return torch.from_numpy(np.ascontiguousarray(x)).float().div_(255.0)


def finetuned(x: torch.Tensor, k: int, a: argparse.Namespace) -> ModelFn:
    """``model(labels, seed)``: the cross-fitted fine-tuned network's held-out posterior and SEI."""
    spec = NetworkSpec("effnet-lite0", resolution=a.resolution, head="linear")
    train = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=1e-4,
                        augment=a.augment, device=a.device)  # fmt: skip
    data = {"inputs": fingerprint_array(x.numpy())}
    root = Path(a.out) / "recordings"

    def model(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        key = hashlib.sha256(np.asarray(labels, np.int64).tobytes() + str(seed).encode()).hexdigest()[:16]
        rec = protocol.record_crossfit(spec, train, x, labels, folds=a.folds, num_classes=k, seed=seed,
                                       directory=root / key, data=data, progress=False)  # fmt: skip
        dyn = rec.runs[0].dynamics  # held out: every sample seen by the model that never trained on it
        post = np.asarray(dyn.mean_posterior(), dtype=np.float64)
        return post / post.sum(axis=1, keepdims=True), np.asarray(scores.compute("sei", dyn), dtype=np.float64)

    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--votes", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--selectors", default="random,cross_entropy,joint,oracle")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--noise-rate", type=float, default=0.15)
    ap.add_argument("--budget-factor", type=float, default=3.0)
    ap.add_argument("--active-every", type=int, default=None)
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--augment", action="store_true", help="random crop + flip while fine-tuning")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    votes, _ = rio.load_votes(a.votes)
    x = load_images(a.images, votes.shape[0])
    sim = run_simulation(votes, model=finetuned(x, votes.shape[1], a), selectors=parse_selectors(a.selectors),
                         seeds=[int(s) for s in a.seeds.split(",")], noise_rate=a.noise_rate,
                         budget_factor=a.budget_factor, active_every=a.active_every,
                         log=lambda s: print(s, flush=True))  # fmt: skip
    settings = {k: getattr(a, k) for k in ("resolution", "epochs", "batch_size", "lr", "augment", "folds")}
    rio.write_simulation(sim, a.out, title=f"fine-tuned EfficientNet-Lite0, {a.resolution} px",
                         meta={"votes": a.votes, "images": a.images, "model": "effnet-lite0 fine-tuned",
                               **settings})  # fmt: skip
    print(rio.format_summary(sim))


if __name__ == "__main__":
    main()
