"""Combine cached out-of-fold signals: the cleanlab LR probabilities and cross-fitted MLP trajectories.

Reads /work/cache/research/lr_oof_<set>_it<max_iter>.npy (baseline_cleanlab.py) and the trajectories
cached by sweep.py (traj_oof_<set>_*.npz); for every trajectory and window it evaluates the
trajectory-averaged posterior alone and averaged with the LR probabilities, each flagged by
confident learning (prune_by_noise_rate) and ranked by p(given label).
Run: PYTHONPATH=src python benchmarks/research/combine.py [max_iter]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from cleanlab.filter import find_label_issues
from common import SETS, evaluate, load_data

CACHE = Path("/work/cache/research")


def report(tag: str, s: str, y: np.ndarray, truth: np.ndarray, post: np.ndarray) -> None:
    post = post / post.sum(1, keepdims=True)
    mask = find_label_issues(y, post, filter_by="prune_by_noise_rate")
    m = evaluate(truth, mask, post[np.arange(len(y)), y])
    print(f"{s:8s} {tag:70s} F1 {m['f1']:.3f} P {m['precision']:.3f} R {m['recall']:.3f} "
          f"AUROC {m['auroc']:.3f} AP {m['ap']:.3f} flagged {m['n_flagged']}", flush=True)


def main() -> None:
    it = sys.argv[1] if len(sys.argv) > 1 else "100"
    _, labels = load_data()
    for s in SETS:
        y = labels[s]
        truth = y != labels["clean"]
        lr_p = CACHE / f"lr_oof_{s}_it{it}.npy"
        lr = np.load(lr_p).astype(np.float64) if lr_p.exists() else None
        if lr is not None:
            report("LR (cleanlab recipe)", s, y, truth, lr)
        for f in sorted(CACHE.glob(f"traj_oof_{s}_*.npz")):
            z = np.load(f)
            probs = z["probs"].astype(np.float64)
            cfg = str(z["cfg"]) if "cfg" in z else f.stem
            T = probs.shape[0]
            for wname, win in {"all": slice(None), "last half": slice(T // 2, None), "last": slice(T - 1, None)}.items():
                post = probs[win].mean(0)
                report(f"{cfg[:40]} {wname}", s, y, truth, post)
                if lr is not None:
                    report(f"{cfg[:40]} {wname} + LR", s, y, truth, (post + lr) / 2)


if __name__ == "__main__":
    main()
