"""Shared helpers for the CIFAR-10N detector research (evidence code, not product).

Everything runs on the cached frozen EfficientNet-Lite0 features
(/work/cache/features/cifar10n_effl0_96.npy, see extract_features.py).
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

FEATS = Path("/work/cache/features/cifar10n_effl0_96.npy")
LABELS = Path("/work/cache/cifar10n/labels.csv")
RESULTS = Path(__file__).with_name("results.jsonl")
SETS = ("aggre", "random1", "worse")
K = 10


def set_threads(n: int = 2) -> None:
    torch.set_num_threads(n)
    os.environ.setdefault("OMP_NUM_THREADS", str(n))


def load_data() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Standardised features (N, 1280) float32 and a dict of label arrays (clean, aggre, ...)."""
    x = np.load(FEATS).astype(np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    with open(LABELS) as fh:
        rows = list(csv.DictReader(fh))
    labels = {k: np.array([int(r[k]) for r in rows], dtype=np.int64)
              for k in ("clean", "aggre", "random1", "random2", "random3", "worse")}
    return x, labels


# ---------------------------------------------------------------- metrics
def evaluate(truth: np.ndarray, flagged: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """F1/precision/recall of the flagged mask; AUROC/AP of ``score`` (lower = more suspicious)."""
    flagged = flagged.astype(bool)
    tp = int((flagged & truth).sum())
    prec = tp / max(int(flagged.sum()), 1)
    rec = tp / max(int(truth.sum()), 1)
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return {
        "f1": round(f1, 4), "precision": round(prec, 4), "recall": round(rec, 4),
        "auroc": round(float(roc_auc_score(truth, -score)), 4),
        "ap": round(float(average_precision_score(truth, -score)), 4),
        "n_flagged": int(flagged.sum()), "n_true": int(truth.sum()),
    }


def log_result(method: str, label_set: str, metrics: dict, wall_s: float, **extra) -> None:
    rec = {"method": method, "set": label_set, **metrics, "wall_s": round(wall_s, 1), **extra}
    print(json.dumps(rec), flush=True)
    with open(RESULTS, "a") as fh:
        fh.write(json.dumps(rec) + "\n")


# ---------------------------------------------------------------- per-epoch quantities
def epoch_stats(p: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """p_given, margin, entropy, signed entropy, correct for one epoch's softmax (N, K)."""
    n = len(y)
    pg = p[np.arange(n), y]
    other = p.copy()
    other[np.arange(n), y] = -np.inf
    margin = pg - other.max(1)
    ent = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(1)
    correct = p.argmax(1) == y
    return {"p_given": pg, "margin": margin, "entropy": ent,
            "signed_entropy": np.where(correct, ent, -ent), "correct": correct.astype(np.float32)}


@dataclass
class Trajectory:
    """Per-epoch softmax of every sample (T, N, C) plus the labels used for training."""

    probs: np.ndarray
    labels: np.ndarray
    wall_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def stat(self, name: str, epochs: slice = slice(None)) -> np.ndarray:
        """(T', N) per-epoch stat over the selected epochs."""
        return np.stack([epoch_stats(p, self.labels)[name] for p in self.probs[epochs]])

    def mean(self, name: str, epochs: slice = slice(None)) -> np.ndarray:
        return self.stat(name, epochs).mean(0)

    def posterior(self, epochs: slice = slice(None)) -> np.ndarray:
        return self.probs[epochs].mean(0)


# ---------------------------------------------------------------- heads
def make_head(d: int, c: int, hidden: int | None, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if hidden is None:
        return torch.nn.Linear(d, c)
    return torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, c))


def train_head(
    x: np.ndarray, y: np.ndarray, *, num_classes: int, epochs: int, lr: float, hidden: int | None = None,
    weight_decay: float = 0.0, momentum: float = 0.9, batch_size: int = 256, label_smoothing: float = 0.0,
    seed: int = 0, record: Callable[[int, torch.nn.Module], None] | None = None, cosine: bool = False,
    optimizer: str = "sgd",
) -> torch.nn.Module:
    """Mini-batch training of a linear/MLP head; ``record(epoch, model)`` is called after each epoch."""
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    model = make_head(x.shape[1], num_classes, hidden, seed)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs) if cosine else None
    lossf = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    gen = torch.Generator().manual_seed(seed)
    n = len(y)
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        if sched is not None:
            sched.step()
        if record is not None:
            model.eval()
            record(ep, model)
    return model


def softmax_np(model: torch.nn.Module, x: np.ndarray, chunk: int = 10000) -> np.ndarray:
    with torch.inference_mode():
        xt = torch.from_numpy(x)
        return torch.cat([torch.softmax(model(xt[i:i + chunk]), 1) for i in range(0, len(x), chunk)]).numpy()


def folds(y: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(len(y)), y))


def oof_trajectory(x: np.ndarray, y: np.ndarray, *, n_folds: int = 5, seed: int = 0, **train_kw) -> Trajectory:
    """Cross-fitted dynamics: each fold's held-out samples are scored after every epoch."""
    t0, c0 = time.time(), time.process_time()
    epochs = train_kw["epochs"]
    probs = np.zeros((epochs, len(y), K), np.float32)
    for f, (tr, te) in enumerate(folds(y, n_folds, seed)):
        xte = x[te]

        def rec(ep: int, m: torch.nn.Module, te=te, xte=xte) -> None:
            probs[ep, te] = softmax_np(m, xte)

        train_head(x[tr], y[tr], num_classes=K, seed=seed * 100 + f, record=rec, **train_kw)
    return Trajectory(probs, y, time.time() - t0, {"cpu_s": time.process_time() - c0})


def insample_trajectory(x: np.ndarray, y: np.ndarray, *, seed: int = 0, num_classes: int = K,
                        **train_kw) -> Trajectory:
    """Training-set dynamics: one head on all samples, every sample scored after every epoch."""
    t0, c0 = time.time(), time.process_time()
    epochs = train_kw["epochs"]
    probs = np.zeros((epochs, len(y), num_classes), np.float32)

    def rec(ep: int, m: torch.nn.Module) -> None:
        probs[ep] = softmax_np(m, x)

    train_head(x, y, num_classes=num_classes, seed=seed, record=rec, **train_kw)
    return Trajectory(probs, y, time.time() - t0, {"cpu_s": time.process_time() - c0})


# ---------------------------------------------------------------- cutoffs
def cl_issue_count(labels: np.ndarray, pred_probs: np.ndarray, method: str = "off_diagonal") -> int:
    from cleanlab.count import num_label_issues

    return int(num_label_issues(labels, pred_probs, estimation_method=method))


def flag_lowest(score: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(len(score), bool)
    if n > 0:
        out[np.argsort(score, kind="stable")[:n]] = True
    return out


def gmm_flag(score: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.mixture import GaussianMixture

    g = GaussianMixture(2, random_state=seed).fit(score[:, None])
    low = int(np.argmin(g.means_.ravel()))
    return g.predict_proba(score[:, None])[:, low] > 0.5
