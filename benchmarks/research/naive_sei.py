"""Naive SEI (the variant that lost): MLP head 1280->512->11 (auxiliary class), SGD lr 0.05 (momentum 0.9,
batch 256), 30 epochs, two runs with disjoint auxiliary sets of N/(K+1) samples relabeled to class K.
SEI = mean signed entropy over the 30 epochs (training-set dynamics), averaged over the runs in which
the sample was not auxiliary; cutoff = mean SEI of the auxiliary samples (in their aux run).
Run: PYTHONPATH=src python benchmarks/research/naive_sei.py [seed]
"""
from __future__ import annotations

import sys
import time

import numpy as np
from common import SETS, K, evaluate, insample_trajectory, log_result, set_threads

set_threads(2)
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
from common import load_data  # noqa: E402

x, labels = load_data()
n = len(x)
for s in SETS:
    y = labels[s]
    truth = y != labels["clean"]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_aux = n // (K + 1)
    aux_sets = [perm[:n_aux], perm[n_aux:2 * n_aux]]
    t0 = time.time()
    sei_sum = np.zeros(n)
    sei_cnt = np.zeros(n)
    aux_sei = []
    p_sum = np.zeros(n)
    for r, aux in enumerate(aux_sets):
        yr = y.copy()
        yr[aux] = K
        traj = insample_trajectory(x, yr, seed=seed * 10 + r, num_classes=K + 1, epochs=30, lr=0.05,
                                   hidden=512, momentum=0.9, batch_size=256)
        se = traj.mean("signed_entropy")
        pg = traj.mean("p_given")
        keep = np.ones(n, bool)
        keep[aux] = False
        sei_sum[keep] += se[keep]
        p_sum[keep] += pg[keep]
        sei_cnt[keep] += 1
        aux_sei.append(se[aux])
        print(f"run {r} done {time.time() - t0:.0f}s", flush=True)
    sei = sei_sum / sei_cnt
    cutoff = float(np.concatenate(aux_sei).mean())
    wall = time.time() - t0
    flagged = sei < cutoff
    log_result("naive SEI (MLP512, aux-class, aux-mean cutoff)", s, evaluate(truth, flagged, sei), wall,
               seed=seed, cutoff=round(cutoff, 4))
    # same trajectories, other cutoffs / scores, for reference
    pbar = p_sum / sei_cnt
    log_result("naive SEI run: mean p_given score, aux-mean cutoff on SEI", s,
               evaluate(truth, flagged, pbar), wall, seed=seed)
    aux_all = np.concatenate(aux_sei)
    for q in (50, 90, 99):
        c = float(np.percentile(aux_all, q))
        log_result(f"naive SEI, aux {q}th-percentile cutoff", s, evaluate(truth, sei < c, sei), wall,
                   seed=seed)
