"""Dev proxy for the simulation head (CIFAR-10N dev cell, 15 % noise from the votes): average
precision / AUROC of the cross_entropy priority for finding the initially noisy labels, for three
heads (lr 0.005) on flip-averaged EfficientNet-Lite0 features at 224 px and their posterior
averages with heads on 160 px and 96 px features. A proxy for the gain, not the gain.

Run: python benchmarks/simulation/views_proxy.py /work/cache/simulation/cifar10n_votes_10k.csv \
    "cifar10n_effl0_{}_10k" 6 > benchmarks/simulation/dev_views_proxy.md
(needs RES=96/160/224, FLIP=0/1 features from benchmarks/research/extract_features.py cifar10n_10k)
"""
import csv
import sys
import time

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, "src")
import torch

from labeltrace.relabel.head import HeadConfig, standardize, train_head
from labeltrace.relabel.votes import sample_initial_labels, temperature_for_rate, vote_distribution

torch.set_num_threads(2)
def load_votes(path):
    rows = list(csv.DictReader(open(path)))
    cols = [c for c in rows[0] if c.startswith("votes_")]
    return np.array([[int(r[c]) for c in cols] for r in rows])
votes = load_votes(sys.argv[1])
F = "/work/cache/features/" + sys.argv[2]
tta = lambda r: (np.load(F.format(r) + ".npy") + np.load(F.format(r) + "_flip.npy")) / 2
a_raw, b_raw, c_raw = tta(224), tta(96), tta(160)
dist = vote_distribution(votes); truth = dist.argmax(1); n, k = dist.shape
A, B, C = standardize(a_raw), standardize(b_raw), standardize(c_raw)
def ce(p, y): return -np.log(np.clip(p[np.arange(n), y], 1e-12, 1))
res = {}
for s in range(int(sys.argv[3])):
    tau = temperature_for_rate(votes, 0.15, seed=s)
    y = sample_initial_labels(votes, temperature=tau, seed=s).labels
    noisy = y != truth; t = time.time()
    E = dict(lr=0.005, ensemble=3, seed=s)
    pa = train_head(A, y, num_classes=k, config=HeadConfig(**E)).posterior
    pb = train_head(B, y, num_classes=k, config=HeadConfig(**E)).posterior
    pc = train_head(C, y, num_classes=k, config=HeadConfig(**E)).posterior
    c = {"224": pa, "160": pc, "avg224+96": (pa + pb) / 2, "w.7": 0.7 * pa + 0.3 * pb, "avg224+160": (pa + pc) / 2, "avg3": (pa + pb + pc) / 3, "w.5/.3/.2": 0.5 * pa + 0.3 * pc + 0.2 * pb}
    for name, p in c.items():
        sc = ce(p, y)
        res.setdefault(name, []).append((average_precision_score(noisy, sc), roc_auc_score(noisy, sc)))
    print(f"seed {s} {time.time()-t:.0f}s", flush=True)
b = np.array(res["224"])
for name, v in res.items():
    v = np.array(v); d = v[:, 0] - b[:, 0]
    print(f"{name:10s} AP {v[:,0].mean():.4f} AUROC {v[:,1].mean():.4f} dAP {d.mean():+.4f} ± {1.96*d.std(ddof=1)/np.sqrt(len(d)):.4f}")
