"""The large-set count's in-sample factor on the dev cells (not a test): F1 of the crossfit ranking
cut at ``min(n, r, k × m)`` for several ``k``, from the bench cache — no training.

    python scripts/large_count_dev.py --cache /work/cache/bench > benchmarks/results/dev-large-count.md

``n``: confident learning's count on the held-out posterior; ``r``: its calibrated rate × N;
``m``: its count on the mean of the held-out and in-sample posteriors
(``decide.count.conservative_count``, sets of N ≥ ``count.LARGE``). Dev cells only
(``benchmarks/SPLIT.md``): the 50,000 CIFAR-10N training images with ``random2`` / ``random3`` /
the original labels, with 96 px features (``cifar10n-dev``) and at the default resolution
(``cifar10n-dev-auto``: the resolution probe's pick per seed). Every cell's trainings must be in
the cache (``labeltrace bench --config benchmarks/configs/dev.toml --only cifar10n-dev,cifar10n-dev-auto``).

Prints every cell and seed, then per cell and factor the mean F1 over the noisy label sets and the
mean number flagged on the original labels (``cifar10n-dev-auto``: the default's resolution, 224 px
in 8 of its 9 readings; its one 96 px seed is the same training as ``cifar10n-dev``'s).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from dev_cells import dev_cells, f1_at, parse_args  # scripts/, run as a script

from labeltrace._checks import round_half_up
from labeltrace.decide import count as C
from labeltrace.decide import detectors

FACTORS = (2.0, 2.5, 3.0)


def main() -> None:
    a = parse_args(__doc__)
    f1s: dict[tuple[str, float], list[float]] = defaultdict(list)
    clean: dict[tuple[str, float], list[int]] = defaultdict(list)
    print("# The large-set count's in-sample factor on the dev cells\n")
    print("`python scripts/large_count_dev.py --cache /work/cache/bench > benchmarks/results/dev-large-count.md` "
          "(from the bench cache of `configs/dev.toml`; N ≥ 5,000 only; each entry: count (F1 of the crossfit "
          "ranking cut there)).\n")  # fmt: skip
    print("| cell | seed | features px | true | m / true | n | r | m | "
          + " | ".join(f"min(n, r, {k:g} m)" for k in FACTORS) + " |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|" + "---|" * len(FACTORS))
    for cell, runner in dev_cells(a.config, a.cache):
        if runner.truth.size < C.LARGE:
            continue
        ev, truth = runner.evidence(), runner.truth
        held, ins = detectors._held_posteriors(ev)  # the detector's own normalisation
        assert ins is not None
        s = detectors.get("crossfit").score(ev)
        n, r, m = C.cl_count(held, ev.labels), C.cl_rate_count(held, ev.labels), C.cl_count((held + ins) / 2, ev.labels)
        px = str(runner.resolution)
        group = cell.dataset.name  # -auto: the probe's pick per seed (96 px in one seed: that row repeats -dev's)
        cells = []
        for k in FACTORS:
            c = min(n, r, round_half_up(k * m))
            if truth.any():
                f1s[(group, k)].append(f1_at(s, truth, c))
                cells.append(f"{c} ({f1_at(s, truth, c):.3f})")
            else:
                clean[(group, k)].append(c)
                cells.append(str(c))
        ratio = f"{m / truth.sum():.2f}" if truth.any() else "–"
        print(f"| {cell.dataset.name} {cell.labels} | {cell.seed} | {px} | {int(truth.sum())} | {ratio} | {n} | {r} "
              f"| {m} | " + " | ".join(cells) + " |", flush=True)  # fmt: skip
    print("\n| cell | factor | mean F1, noisy labels | flagged of 50,000 original labels (mean) |")
    print("|---|---|---|---|")
    for group in sorted({g for g, _ in f1s}):
        for k in FACTORS:
            f, c = f1s[(group, k)], clean[(group, k)]
            print(f"| {group} | {k:g} | {np.mean(f):.4f} (n={len(f)}) | {np.mean(c) if c else float('nan'):.0f} (n={len(c)}) |")


if __name__ == "__main__":
    main()
