"""Sweep: how the head is trained x what is integrated x how the cutoff is set.

For one head configuration (CLI flags) it builds the cross-fitted (out-of-fold, OOF) trajectory and/or the
in-sample trajectory on each label set and evaluates many score/cutoff combinations on it.
Trajectories are cached in /work/cache/research/ so re-scoring is free.

Run: PYTHONPATH=src python benchmarks/research/sweep.py --mode oof --epochs 20 --lr 0.1 --wd 1e-3
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from cleanlab.filter import find_label_issues
from common import (
    SETS,
    Trajectory,
    cl_issue_count,
    evaluate,
    flag_lowest,
    gmm_flag,
    insample_trajectory,
    load_data,
    log_result,
    oof_trajectory,
    set_threads,
)

CACHE = Path("/work/cache/research")


def get_traj(mode: str, x: np.ndarray, y: np.ndarray, set_name: str, cfg: dict) -> Trajectory:
    tag = hashlib.sha1(json.dumps({"mode": mode, "set": set_name, **cfg}, sort_keys=True).encode()).hexdigest()[:12]
    path = CACHE / f"traj_{mode}_{set_name}_{tag}.npz"
    if path.exists():
        z = np.load(path)
        return Trajectory(z["probs"], y, float(z["wall_s"]), {"cpu_s": float(z["cpu_s"])})
    if mode == "oof":
        tr = oof_trajectory(x, y, **cfg)
    else:
        cfg2 = {k: v for k, v in cfg.items() if k != "n_folds"}
        tr = insample_trajectory(x, y, **cfg2)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, probs=tr.probs.astype(np.float32), wall_s=tr.wall_s, cpu_s=tr.extra["cpu_s"], cfg=json.dumps(cfg))
    return tr


def score_variants(tr: Trajectory, truth: np.ndarray, name: str, set_name: str, windows: dict) -> None:
    y = tr.labels
    n = len(y)
    for wname, win in windows.items():
        t0 = time.time()
        post = tr.posterior(win).astype(np.float64)
        post /= post.sum(1, keepdims=True)
        scores = {
            "p_given": tr.mean("p_given", win),
            "margin": tr.mean("margin", win),
            "SEI": tr.mean("signed_entropy", win),
        }
        other = post.copy()
        other[np.arange(n), y] = -np.inf
        scores["post_margin"] = post[np.arange(n), y] - other.max(1)
        cl_mask = find_label_issues(y, post, filter_by="prune_by_noise_rate")
        n_hat = cl_issue_count(y, post)
        n_hat_cal = cl_issue_count(y, post, "off_diagonal_calibrated")
        t_cut = time.time() - t0
        base = tr.wall_s + t_cut
        acc = float((post.argmax(1) == y).mean())
        cpu = round(tr.extra["cpu_s"], 1)
        for sname, sc in scores.items():
            tag = f"{name} | {wname} | {sname}"
            log_result(f"{tag} | CL-mask", set_name, evaluate(truth, cl_mask, sc), base, acc_given=round(acc, 4), traj_cpu_s=cpu)
            log_result(f"{tag} | lowest n_hat", set_name, evaluate(truth, flag_lowest(sc, n_hat), sc), base,
                       n_hat=n_hat)
            log_result(f"{tag} | lowest n_hat_cal", set_name, evaluate(truth, flag_lowest(sc, n_hat_cal), sc),
                       base, n_hat=n_hat_cal)
            log_result(f"{tag} | GMM", set_name, evaluate(truth, gmm_flag(sc), sc), base)
        log_result(f"{name} | {wname} | post_margin | argmax!=given", set_name,
                   evaluate(truth, post.argmax(1) != y, scores["post_margin"]), base)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["oof", "insample"], default="oof")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--wd", type=float, default=0.0)
    ap.add_argument("--hidden", type=int, default=0)
    ap.add_argument("--bs", type=int, default=256)
    ap.add_argument("--ls", type=float, default=0.0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cosine", action="store_true")
    ap.add_argument("--opt", default="sgd")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    set_threads(a.threads)
    x, labels = load_data()
    cfg = dict(epochs=a.epochs, lr=a.lr, weight_decay=a.wd, hidden=a.hidden or None, batch_size=a.bs,
               label_smoothing=a.ls, seed=a.seed, cosine=a.cosine, optimizer=a.opt)
    if a.mode == "oof":
        cfg["n_folds"] = a.folds
    name = (f"{a.mode}{a.folds if a.mode == 'oof' else ''} {'MLP' + str(a.hidden) if a.hidden else 'linear'} "
            f"{a.opt} lr{a.lr} wd{a.wd} ep{a.epochs} bs{a.bs} ls{a.ls}{' cos' if a.cosine else ''} s{a.seed}")
    T = a.epochs
    windows = {"all": slice(None), "last half": slice(T // 2, None), "last": slice(T - 1, None)}
    for s in a.sets.split(","):
        y = labels[s]
        truth = y != labels["clean"]
        tr = get_traj(a.mode, x, y, s, cfg)
        print(f"# {name} {s}: trajectory {tr.wall_s:.1f}s", flush=True)
        score_variants(tr, truth, name, s, windows)


if __name__ == "__main__":
    main()
