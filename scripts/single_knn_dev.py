"""The one-training count on small sets with a free held-out posterior: the kNN label shares of
each sample's neighbours in the features (dev cells only, ``benchmarks/SPLIT.md``; a study, the
rule it chose is ``count.one_run_count``).

    python scripts/single_knn_dev.py --cache /work/cache/bench > benchmarks/results/dev-single-knn.md

Every small dev cell (N < ``count.LARGE``). The `single` ranking (−mean loss of one plain run) cut at:

* ``contradicted`` — the samples the run contradicted in most epochs (the rule before this study);
* ``knn`` — the crossfit count's small-set rule (geometric mean of confident learning's count and
  rate × N, ``count.conservative_count``) on the kNN label shares (k = the config's ``knn_k``): the
  frozen features, or the run's own embedding with a network (what ``labeltrace scan`` keeps);
* ``max`` — the larger of the two (the rule chosen);
* ``crossfit`` — for scale, the default's count on the same cell (5 trainings, held out; frozen
  features only).

The bench trains what the cache lacks (``labeltrace bench --config benchmarks/configs/dev.toml``
fills it; on an idle 2-core machine the small cells take about 15 min).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from dev_cells import (  # scripts/, run as a script
    SMALL_DEV,
    dev_cells,
    f1_at,
    parse_args,
    print_header,
)

from labeltrace.decide import count as C
from labeltrace.decide import detectors

RULES = ("contradicted", "knn", "max", "crossfit")


def main() -> None:
    a = parse_args(__doc__)
    f1s: dict[tuple[str, str], list[float]] = defaultdict(list)
    clean: dict[tuple[str, str], list[int]] = defaultdict(list)
    print_header("One-training count on small sets: contradicted vs the kNN posterior's", "single_knn_dev.py",
                 "dev-single-knn.md", "the `single` ranking", RULES)  # fmt: skip
    for cell, runner in dev_cells(a.config, a.cache, SMALL_DEV):
        ev = runner.evidence(embedding_from="in_sample" if cell.model.on_features else "single")
        s = detectors.get("single").score(ev)
        con = C.contradicted_count(ev.single.dynamics.mean("correct"))
        knn = C.conservative_count(ev.knn_shares(), None, ev.labels)
        got = {"contradicted": con, "knn": knn,
               "max": C.one_run_count(ev.single.dynamics.mean("correct"), ev.knn_shares(), ev.labels)[0]}
        if cell.model.on_features:  # the networks' cross-fitted trainings would cost 5 more each
            got["crossfit"] = int(detectors.detect("crossfit", ev).flagged.sum())
        truth = runner.truth
        group = f"{cell.dataset.name}, {cell.model.name}"
        outs = []
        for rule in RULES:
            if rule not in got:
                outs.append("–")
                continue
            k = got[rule]
            for g in (group, f"all small, {cell.model.name}"):
                (f1s[(g, rule)].append(f1_at(s, truth, k)) if truth.any() else clean[(g, rule)].append(k))
            outs.append(f"{k} ({f1_at(s, truth, k):.3f})" if truth.any() else str(k))
        print(f"| {cell.dataset.name} {cell.labels} {cell.model.name} | {cell.seed} | {truth.size} | "
              f"{int(truth.sum())} | " + " | ".join(outs) + " |", flush=True)
    print("\n| cells | rule | mean F1 of `single` cut there, noisy cells | flagged on the clean cells (mean) |")
    print("|---|---|---|---|")
    for g in sorted({g for g, _ in list(f1s) + list(clean)}, key=lambda g: (not g.startswith("all"), g)):
        for rule in RULES:
            f, c = f1s[(g, rule)], clean[(g, rule)]
            print(f"| {g} | {rule} | {np.mean(f) if f else float('nan'):.4f} (n={len(f)}) | "
                  f"{np.mean(c) if c else float('nan'):.1f} |")


if __name__ == "__main__":
    main()
