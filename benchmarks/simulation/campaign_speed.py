"""Wall time of one static campaign: 10,000 relabels on 10,000 images (``joint`` priority).

The step loop costs O(1) Python work per relabel plus one vectorised vote draw; the curves are
assembled afterwards with cumulative sums. Expected well under a second (~0.1–0.3 s on one
core). This is a measurement, not a test: a shared CPU makes wall-clock assertions flaky.

Usage: ``PYTHONPATH=src python benchmarks/simulation/campaign_speed.py [--n 10000]
[--budget 10000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from labeltrace.relabel.experiment import run_campaign
from labeltrace.relabel.votes import sample_initial_labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="images")
    ap.add_argument("--budget", type=int, default=10_000, help="relabels")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs (the best is reported)")
    ap.add_argument("--selector", default="joint")
    args = ap.parse_args()
    rng = np.random.default_rng(8)
    votes = rng.multinomial(50, rng.dirichlet(np.full(10, 0.3), size=args.n))
    init = sample_initial_labels(votes, temperature=1.0, seed=0).labels
    post = rng.dirichlet(np.ones(10), size=args.n)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        res = run_campaign(votes, init, budget=args.budget, selector=args.selector, posterior=post,
                           sei=rng.normal(size=args.n))  # fmt: skip
        times.append(time.perf_counter() - t0)
    print(f"{args.selector}: {res.relabels_used} relabels on {args.n} images in "
          f"{min(times):.3f} s (best of {args.repeat}; {1e6 * min(times) / res.relabels_used:.1f} "
          "µs per relabel)")  # fmt: skip


if __name__ == "__main__":
    main()
