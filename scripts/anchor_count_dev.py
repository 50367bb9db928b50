"""Anchor-point noise-rate counts for crossfit on the small dev cells (not a test): F1 of the
crossfit ranking cut at each count, from the bench cache — no training.

    python scripts/anchor_count_dev.py --cache /work/cache/bench > benchmarks/results/dev-anchor-count.md

The estimator of Scott et al. / Patrini et al. (issue 12 §2's mixture-proportion idea): for each
class i, the held-out posterior row of an *anchor* — a sample the model is most sure belongs to i —
estimates row i of the noise transition matrix T (P(given label | true class i)); the count is
Σ_i π_i (1 − T_ii), with the clean class sizes π from the given ones through T (the given sizes when
that solve goes negative). Anchors: the sample at the q-quantile of P(i | x) (``q97``, ``q99``), or
the mean row of the top 3 % / 10 % of the samples by P(i | x) (``top3``, ``top10``). ``crossfit``
is the default's count (`count.conservative_count`). Small dev cells only (N < ``count.LARGE``).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from dev_cells import dev_cells, f1_at, parse_args, print_header  # scripts/, run as a script

from labeltrace.decide import count as C
from labeltrace.decide import detectors

SMALL = ("digits", "pneumoniamnist-val", "breastmnist-val", "cifar10n-dev-2k", "cifar10n-dev-2k-224",
         "pneumoniamnist-val-224", "breastmnist-val-224", "cifar10-catdog-dev", "pneumoniamnist-train-rest")  # fmt: skip
ANCHORS: dict[str, tuple[str, float]] = {"q97": ("quantile", 0.97), "q99": ("quantile", 0.99),
                                         "top3": ("top", 0.03), "top10": ("top", 0.10)}  # fmt: skip


def transition(post: np.ndarray, how: str, v: float) -> np.ndarray:
    """(K, K) estimate of T from the posterior rows of each class's anchors (rows sum to 1)."""
    n, k = post.shape
    if how == "quantile":
        near = np.abs(post - np.quantile(post, v, axis=0)).argmin(axis=0)  # one anchor per class
        t = post[near]
    else:
        m = max(1, round(v * n / k))
        top = np.argsort(-post, axis=0, kind="stable")[:m]  # (m, K) sample ids per class
        t = post[top].mean(axis=0)  # (K, K): row i = mean posterior of class i's anchors
    return t / t.sum(axis=1, keepdims=True)


def anchor_count(post: np.ndarray, labels: np.ndarray, how: str, v: float) -> int:
    t = transition(post, how, v)
    given = np.bincount(labels, minlength=post.shape[1]).astype(float)
    try:
        prior = np.linalg.solve(t.T, given)
    except np.linalg.LinAlgError:
        prior = given
    if (prior < 0).any():
        prior = given
    return int(round(float(prior @ (1.0 - np.diag(t)))))


def main() -> None:
    a = parse_args(__doc__)
    names = ["crossfit", *ANCHORS]
    f1s: dict[str, list[float]] = defaultdict(list)
    clean: dict[str, list[int]] = defaultdict(list)
    print_header("Anchor-point counts on the small dev cells", "anchor_count_dev.py", "dev-anchor-count.md",
                 "the crossfit ranking", names)  # fmt: skip
    for cell, runner in dev_cells(a.config, a.cache, SMALL):
        ev = runner.evidence()
        held, ins = detectors._held_posteriors(ev)
        score = detectors.get("crossfit").score(ev)
        counts = {"crossfit": C.conservative_count(held, ins, ev.labels)}
        counts |= {name: anchor_count(held, ev.labels, how, v) for name, (how, v) in ANCHORS.items()}
        truth = runner.truth
        outs = []
        for name, k in counts.items():
            f = f1_at(score, truth, k)
            (f1s[name].append(f) if truth.any() else clean[name].append(k))
            outs.append(f"{k} ({f:.3f})" if truth.any() else f"{k}")
        print(f"| {cell.dataset.name} {cell.labels} {cell.model.name} | {cell.seed} | {len(truth)} | "
              f"{int(truth.sum())} | " + " | ".join(outs) + " |")
    print("\n| count | mean F1, noisy small dev cells | flagged on the clean small dev cells (mean) |")
    print("|---|---|---|")
    for name in names:
        print(f"| {name} | {np.mean(f1s[name]):.4f} (n={len(f1s[name])}) | {np.mean(clean[name]):.1f} |")


if __name__ == "__main__":
    main()
