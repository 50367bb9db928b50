"""Class-conditional corrections of crossfit's ranking, on the small dev cells (dev cells only,
``benchmarks/SPLIT.md``; a study — nothing here became a default).

    python scripts/class_correction_dev.py --cache /work/cache/bench > benchmarks/results/dev-class-correction.md

Under class-conditional noise a class's posterior is diluted by the labels flipped into it, so
p(given label) is not comparable across classes. Candidates (lower = more suspect), each from
crossfit's cross-fitted posterior ``P`` (mean of held-out and in-sample, as crossfit scores):

* ``crossfit`` — p(given label) under ``P`` (the default, without its kNN mix);
* ``bayes`` — the probability that the given label is the true one under a noise transition
  matrix ``T[i, j] = P(given j | true i)`` estimated from confident learning's calibrated joint on
  the held-out posterior: the clean posterior ``q = P · T⁻¹`` (clipped to ≥ 0, renormalised), then
  ``q[y] · T[y, y] / (q · T)[y]`` (Bayes' rule; backward correction, Patrini et al. 2017);
* ``threshold`` — ``P[y] − t_y`` with ``t_c`` confident learning's per-class threshold (the mean
  p(c) over the samples labelled c; cleanlab's ``adjust_pred_probs``);
* ``threshold ratio`` — ``P[y] / t_y``.

Prints the mean AUROC over the seeds per noisy cell, then each candidate's mean over the cells and
how many cells it beats ``crossfit`` in by more than 0.005 / falls below by more.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from dev_cells import SMALL_DEV, dev_cells, parse_args  # scripts/, run as a script
from sklearn.metrics import roc_auc_score

from labeltrace.decide import detectors
from labeltrace.score import confident


def transition(held: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``T[i, j] = P(given j | true i)`` from confident learning's calibrated joint ``C[given, true]``
    (a small pseudo-count keeps every row defined)."""
    cj = confident.confident_joint(held, labels).astype(np.float64) + 1e-3
    return cj.T / cj.T.sum(axis=1, keepdims=True)


def bayes(post: np.ndarray, labels: np.ndarray, t: np.ndarray) -> np.ndarray:
    rows = np.arange(len(labels))
    q = np.clip(post @ np.linalg.pinv(t), 1e-6, None)
    q /= q.sum(axis=1, keepdims=True)
    return q[rows, labels] * t[labels, labels] / (q @ t)[rows, labels]


def candidates(held: np.ndarray, post: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    rows = np.arange(len(labels))
    thr = confident.confident_thresholds(post, labels)
    return {"crossfit": post[rows, labels], "bayes": bayes(post, labels, transition(held, labels)),
            "threshold": post[rows, labels] - thr[labels], "threshold ratio": post[rows, labels] / thr[labels]}  # fmt: skip


def main() -> None:
    a = parse_args(__doc__)
    auc: dict[tuple[str, ...], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for cell, runner in dev_cells(a.config, a.cache, SMALL_DEV):
        truth = runner.truth
        if not truth.any():
            continue
        ev = runner.evidence()
        held, ins = detectors._held_posteriors(ev)
        post = held if ins is None else (held + ins) / 2
        for name, s in candidates(held, post, ev.labels).items():
            auc[(cell.dataset.name, cell.labels, cell.model.name)][name].append(roc_auc_score(truth, -s))
    names = list(next(iter(auc.values())))
    print("# Class-conditional corrections of crossfit's ranking, on the small dev cells (AUROC)\n")
    print("`python scripts/class_correction_dev.py --cache /work/cache/bench > "
          "benchmarks/results/dev-class-correction.md` (from the bench cache of `configs/dev.toml`; "
          "mean AUROC over the seeds).\n")  # fmt: skip
    print("| cell | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    means = {c: {n: float(np.mean(v)) for n, v in d.items()} for c, d in auc.items()}
    for c, m in means.items():
        print(f"| {' '.join(c)} | " + " | ".join(f"{m[n]:.3f}" for n in names) + " |")
    print("\n| candidate | mean AUROC over the noisy cells | above crossfit by > 0.005 | below by > 0.005 |")
    print("|---|---|---|---|")
    for n in names:
        d = np.array([m[n] - m["crossfit"] for m in means.values()])
        print(f"| {n} | {np.mean([m[n] for m in means.values()]):.4f} (n={len(d)}) | {(d > 0.005).sum()} | "
              f"{(d < -0.005).sum()} |")  # fmt: skip


if __name__ == "__main__":
    main()
