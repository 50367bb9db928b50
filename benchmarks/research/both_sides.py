"""Cross-fitted MLP heads on CIFAR-10N recording both sides: held-out (the fold left out) and in-sample
(the training batches), and the detector on each posterior and on their mean.

The recording is labeltrace's own cross-fitted protocol (labeltrace.train.protocol, the one scan and
bench use), with the bench's seed 0.
Run: python benchmarks/research/both_sides.py aggre worse  (needs the cached features, see extract_features.py)
"""
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from labeltrace.decide import cutoffs  # noqa: E402
from labeltrace.models.inputs import standardize  # noqa: E402
from labeltrace.score import probs  # noqa: E402
from labeltrace.train import TrainConfig, protocol  # noqa: E402
from labeltrace.train.recipe import NetworkSpec  # noqa: E402

torch.set_num_threads(2)
x = torch.from_numpy(standardize(np.load("/work/cache/features/cifar10n_effl0_96.npy").astype(np.float32)))
rows = list(csv.DictReader(open("/work/cache/cifar10n/labels.csv")))
for s in sys.argv[1:]:
    y = np.array([int(r[s]) for r in rows])
    truth = y != np.array([int(r["clean"]) for r in rows])
    t0 = time.time()
    rec = protocol.record_crossfit(NetworkSpec("mlp", hidden=256), TrainConfig(epochs=10, batch_size=256, lr=0.05,
                                   weight_decay=1e-3), x, y, num_classes=10, seed=0,
                                   directory=Path("/work/cache/research/both_sides") / s, progress=False)
    wall = time.time() - t0
    run = rec.runs[0]
    ph, pi = run.dynamics.mean_posterior(), run.in_sample.mean_posterior()
    ph, pi = ph / ph.sum(1, keepdims=True), pi / pi.sum(1, keepdims=True)

    def ev(name: str, post: np.ndarray, n: int) -> None:
        pg = post[np.arange(len(y)), y]
        fl = cutoffs.flag(pg, cutoffs.top_fraction(pg, n / len(y)))
        f1 = 2 * (fl & truth).sum() / (fl.sum() + truth.sum())
        print(f"{s:8s} {name:28s} F1 {f1:.3f} AUROC {roc_auc_score(truth, -pg):.3f} n {n}", flush=True)

    nh = probs.num_label_issues(ph, y)
    ev("held-out", ph, nh)
    ev("in-sample (4 fold models)", pi, nh)
    ev("mean of both", (ph + pi) / 2, nh)
    for w in (0.25, 0.75):
        ev(f"w_in={w}", (1 - w) * ph + w * pi, nh)
    print(f"{s} wall {wall:.0f}s", flush=True)
