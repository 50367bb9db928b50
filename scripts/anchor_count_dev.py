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

import numpy as np
from dev_cells import (  # scripts/, run as a script
    SMALL_DEV,
    CountTable,
    dev_cells,
    parse_args,
    print_header,
)

from labeltrace.decide import count as C
from labeltrace.decide import detectors

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
    table = CountTable()
    print_header("Anchor-point counts on the small dev cells", "anchor_count_dev.py", "dev-anchor-count.md",
                 "the crossfit ranking", names)  # fmt: skip
    for cell, runner in dev_cells(a.config, a.cache, SMALL_DEV):
        ev = runner.evidence()
        held, ins = detectors._held_posteriors(ev)
        counts = {"crossfit": C.conservative_count(held, ins, ev.labels)}
        counts |= {name: anchor_count(held, ev.labels, how, v) for name, (how, v) in ANCHORS.items()}
        table.row(f"{cell.dataset.name} {cell.labels} {cell.model.name}", cell.seed,
                  detectors.get("crossfit").score(ev), runner.truth, counts)  # fmt: skip
    table.footer("| count | mean F1, noisy small dev cells | flagged on the clean small dev cells (mean) |")

if __name__ == "__main__":
    main()
