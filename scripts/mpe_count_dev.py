"""Exploratory (no decision): a mixture-proportion count for crossfit on the small dev cells with
frozen features — the issue's "PU-learning estimator" idea, from the bench cache, no training.

    python scripts/mpe_count_dev.py --cache /work/cache/bench > benchmarks/results/dev-mpe-count.md

For every ordered pair of classes (i, j), the samples labelled j are read as a mixture of class j
and flips from class i, and the samples labelled i as a sample of class i; the share of class i in
the labelled-j set is the smallest ratio of the two sets' tail fractions of the held-out
posterior's p(i), at the threshold that minimises its upper confidence bound (Best Bin
Estimation, Garg et al. 2021, δ = 0.1). The count is the sum over pairs. It assumes the flipped
samples of a class look like the rest of it (true of the bench's symmetric and confusion noise,
which choose uniformly within a class) and that the reference set is clean enough. Only the
frozen-feature cells: the small-CNN dev cells' cached crossfit recordings predate the fold
models' common embedding in the cache key, so reading them retrains every one.
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

LOW = ("pneumoniamnist-val-low", "breastmnist-val-low", "pneumoniamnist-train-rest-low")


def bbe_count(post: np.ndarray, labels: np.ndarray, delta: float = 0.1) -> int:
    """Sum over class pairs of the Best-Bin mixture-proportion estimate times the labelled set's size."""
    total = 0.0
    for i in range(post.shape[1]):
        ref = np.sort(post[labels == i, i])[::-1]
        if not len(ref):
            continue
        qp = np.arange(1, len(ref) + 1) / len(ref)
        for j in np.unique(labels[labels != i]):
            mix = np.sort(post[labels == j, i])
            qu = (len(mix) - np.searchsorted(mix, ref, side="left")) / len(mix)
            eps = np.sqrt(np.log(4 / delta) / (2 * len(ref))) + np.sqrt(np.log(4 / delta) / (2 * len(mix)))
            t = int(np.argmin((qu + eps) / qp))
            total += min(1.0, qu[t] / qp[t]) * len(mix)
    return int(round(total))


def main() -> None:
    a = parse_args(__doc__)
    table = CountTable()
    rules = ["cl_count", "rate", "geomean (default)", "bbe", "geomean_bbe"]
    print_header("A mixture-proportion (Best Bin) count on the small frozen-feature dev cells", "mpe_count_dev.py",
                 "dev-mpe-count.md", "the crossfit ranking", rules)  # fmt: skip
    for cell, runner in dev_cells(a.config, a.cache, SMALL_DEV + LOW):
        if cell.model.name == "small-cnn" or len(runner.given) >= C.LARGE:
            continue
        ev = runner.evidence()
        held, _ = detectors._held_posteriors(ev)
        n, r = C.cl_count(held, ev.labels), C.cl_rate_count(held, ev.labels)
        g, b = round(float(np.sqrt(n * r))), bbe_count(held, ev.labels)
        counts = dict(zip(rules, (n, r, g, b, round(float(np.sqrt(g * b))))))
        table.row(f"{cell.dataset.name} {cell.labels} {cell.model.name}", cell.seed,
                  detectors.get("crossfit").score(ev), runner.truth, counts)  # fmt: skip
    table.footer("| rule | mean F1, noisy dev cells | flagged on clean dev cells (mean) |")


if __name__ == "__main__":
    main()
