"""Count rules for the one-training detector (``single``) on the dev cells (not a test): F1 of its
ranking (−mean loss of one plain run) cut at each rule's count, from the bench cache — no training.

    python scripts/single_count_dev.py --cache /work/cache/bench > benchmarks/results/dev-single-counts.md

Dev cells only (``benchmarks/SPLIT.md``); every cell's one-run recording must be in the cache
(``labeltrace bench --config benchmarks/configs/dev.toml ...`` first). Rules:

* ``capped`` — a BIC-gated two-component mixture's count on the score, capped at 3 × confident
  learning's rate on the trajectory-averaged posterior (the rule before this study; kept for N ≥ 5,000);
* ``capped_3.5x`` / ``capped_4x`` — the same cap at 3.5 × / 4 × (for the large cells with 224 px
  features, where the memorised rate is a smaller part of the truth; 3.5 × is the rule since);
* ``gmm`` — the mixture's count alone;
* ``contradicted`` — the samples the model contradicted (argmax ≠ label) in most epochs;
* ``contradicted_first_half`` / ``_first_quarter`` / ``_first_epoch`` — the same over the first
  half / quarter of the epochs / the first epoch only;
* ``cl_mean`` — the crossfit count's small-set rule (geometric mean of confident learning's count
  and rate × N) on the run's trajectory-averaged (in-sample) posterior;
* ``max_contradicted_cl_mean`` — the larger of ``contradicted`` and ``cl_mean``;
* ``agree_below_two_thirds`` — the samples the model agreed with in fewer than 2/3 of the epochs;
* ``gmm_capped_2x_contradicted`` — the mixture's count, at most twice ``contradicted``.

``cl_mean`` (added later) collapses as expected of a memorised posterior: mean F1 0.400 on the 54
small noisy dev cells (PneumoniaMNIST val, frozen features, confusion 0.4: 7–24 flagged for 210);
the larger-of rule never differs from ``contradicted`` there. ``contradicted`` stays.
The last two (added with the 224 px dev cells) look for a count between ``contradicted`` (half the
truth with the frozen-feature head, which memorises) and the mixture (which splits clean sets):
each buys F1 there only by flagging more on the clean cells (see the summary table).

Prints every cell and seed, then the mean F1 per rule over the noisy cells and the mean number
flagged on the clean cells, for small (N < ``count.LARGE``) and large sets apart, the small sets
per model and the large ones per dev cell (``cifar10n-dev-auto``: the default resolution).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from dev_cells import dev_cells, f1_at, parse_args, print_header  # scripts/, run as a script

from labeltrace._checks import round_half_up
from labeltrace.bench.cells import CellRunner
from labeltrace.decide import count as C
from labeltrace.decide import detectors

RULES = ("capped", "capped_3.5x", "capped_4x", "gmm", "contradicted", "contradicted_first_half", "contradicted_first_quarter",
         "contradicted_first_epoch", "cl_mean", "max_contradicted_cl_mean", "agree_below_two_thirds",
         "gmm_capped_2x_contradicted")  # fmt: skip


def counts(runner: CellRunner) -> tuple[np.ndarray, dict[str, int]]:
    ev = runner.evidence()
    dyn = ev.single.dynamics
    s = detectors.get("single").score(ev)
    post = dyn.mean_posterior()[:, : ev.num_classes]
    rate = C.cl_rate_count(post / post.sum(1, keepdims=True), ev.labels)
    gmm = C.bimodal_count(s)
    t = dyn.num_epochs
    out = {"capped": min(gmm, 3 * rate), "capped_3.5x": min(gmm, round_half_up(3.5 * rate)), "capped_4x": min(gmm, 4 * rate),
           "gmm": gmm, "contradicted": C.contradicted_count(dyn.mean("correct"))}  # fmt: skip
    for name, w in (("first_half", max(1, t // 2)), ("first_quarter", max(1, t // 4)), ("first_epoch", 1)):
        out[f"contradicted_{name}"] = C.contradicted_count(dyn.mean("correct", slice(0, w)))
    pn = post / post.sum(1, keepdims=True)
    out["cl_mean"] = int(round(float(np.sqrt(C.cl_count(pn, ev.labels) * rate))))
    out["max_contradicted_cl_mean"] = max(out["contradicted"], out["cl_mean"])
    out["agree_below_two_thirds"] = int((dyn.mean("correct") < 2 / 3).sum())
    out["gmm_capped_2x_contradicted"] = min(gmm, 2 * out["contradicted"])
    return s, out


def main() -> None:
    a = parse_args(__doc__)
    f1s: dict[tuple[str, str], list[float]] = defaultdict(list)
    clean: dict[tuple[str, str], list[int]] = defaultdict(list)
    print_header("One-training (`single`) count rules on the dev cells", "single_count_dev.py",
                 "dev-single-counts.md", "the `single` ranking", RULES)  # fmt: skip
    for cell, runner in dev_cells(a.config, a.cache):
        s, got = counts(runner)
        truth = runner.truth
        size = "small" if truth.size < C.LARGE else "large"
        groups = (size, f"{size}, {cell.model.name}" if size == "small" else f"{size}, {cell.dataset.name}")
        outs = []
        for rule in RULES:
            k = got[rule]
            for g in groups:
                if truth.any():
                    f1s[(g, rule)].append(f1_at(s, truth, k))
                else:
                    clean[(g, rule)].append(k)
            outs.append(f"{k} ({f1_at(s, truth, k):.3f})" if truth.any() else str(k))
        print(f"| {cell.dataset.name} {cell.labels} {cell.model.name} | {cell.seed} | {truth.size} | "
              f"{int(truth.sum())} | " + " | ".join(outs) + " |")
    print("\n| sets | rule | mean F1, noisy dev cells | flagged on clean dev cells (mean) |")
    print("|---|---|---|---|")
    for size in sorted({g for g, _ in f1s}, key=lambda g: (g.startswith("large"), g)):
        for rule in RULES:
            f, c = f1s[(size, rule)], clean[(size, rule)]
            print(f"| {size} | {rule} | {np.mean(f):.4f} (n={len(f)}) | {np.mean(c) if c else float('nan'):.1f} |")


if __name__ == "__main__":
    main()
