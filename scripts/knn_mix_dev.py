"""crossfit's posterior mixed with the kNN label shares at a fixed weight, on the small dev cells
(dev cells only, ``benchmarks/SPLIT.md``; a study).

    python scripts/knn_mix_dev.py --cache /work/cache/bench > benchmarks/results/dev-knn-mix.md

Every small dev cell (N < ``count.LARGE``). For each weight ``w``, the crossfit posterior becomes
``(1 - w) * posterior + w * shares``, where ``shares`` are the label shares of each sample's
``knn_k`` nearest neighbours in the features that ``labeltrace scan`` has at no cost — the frozen
features for the head, the fold models' common embedding for a network (the first fold model's
when the study was made) — and both the ranking
(p(given label)) and the count (``count.conservative_count``, on the mixed held-out and in-sample
posteriors) read the mixture. ``w = 0`` is crossfit as it was. Prints, per noisy cell, the mean
AUROC and the F1 of the flagged set over the seeds; then, per model, the paired difference to
``w = 0`` (mean over the cells, 95 % t-interval over the cells), the worst cell, and the mean count
on the clean cells. (``crossfit_knn`` chooses its weight per dataset from virtual implanted errors;
this fixes it.)
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from dev_cells import SMALL_DEV, dev_cells, f1_at, parse_args  # scripts/, run as a script
from sklearn.metrics import roc_auc_score

from labeltrace.decide import count as C
from labeltrace.decide import detectors
from labeltrace.evaluate.metrics import interval_text, t_interval

WEIGHTS = (0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5)


def _ci(d: np.ndarray) -> str:
    return interval_text(*t_interval(d), "+.4f")


def main() -> None:
    a = parse_args(__doc__)
    auc: dict[tuple[str, ...], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    f1: dict[tuple[str, ...], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    clean: dict[tuple[str, float], list[int]] = defaultdict(list)
    for cell, runner in dev_cells(a.config, a.cache, SMALL_DEV):
        ev = runner.evidence(embedding_from="in_sample" if cell.model.on_features else "held_out")
        y, truth = ev.labels, runner.truth
        rows = np.arange(len(y))
        held, ins = detectors._held_posteriors(ev)
        nb = ev.knn_shares()
        key = (cell.dataset.name, cell.labels, cell.model.name)
        for w in WEIGHTS:
            h, i = C.knn_mixed(held, ins, nb, w)
            s = (h if i is None else (h + i) / 2)[rows, y]
            k = C.conservative_count(h, i, y)
            if truth.any():
                auc[key][w].append(roc_auc_score(truth, -s))
                f1[key][w].append(f1_at(s, truth, k))
            else:
                clean[(cell.model.name, w)].append(k)
    print("# crossfit's posterior mixed with the kNN label shares at a fixed weight (small dev cells)\n")
    print("`python scripts/knn_mix_dev.py --cache /work/cache/bench > benchmarks/results/dev-knn-mix.md` "
          "(from the bench cache of `configs/dev.toml`; each entry: mean AUROC / mean F1 of the flagged set "
          "over the seeds; features: frozen for `effnet-mlp`, the fold models' common embedding for "
          "`small-cnn`, as `labeltrace scan` has them).\n")  # fmt: skip
    print("| cell | " + " | ".join(f"w = {w}" for w in WEIGHTS) + " |")
    print("|---|" + "---|" * len(WEIGHTS))
    for key in auc:
        print(f"| {' '.join(key)} | "
              + " | ".join(f"{np.mean(auc[key][w]):.3f} / {np.mean(f1[key][w]):.3f}" for w in WEIGHTS) + " |")  # fmt: skip
    print("\nPaired against `w = 0` (crossfit), per model: mean over the noisy cells of the per-cell mean "
          "difference, 95 % t-interval over the cells; the worst cell's F1 difference; mean count on the "
          "clean cells (per cell and seed).\n")  # fmt: skip
    print("| model | w | noisy cells | Δ AUROC | Δ F1 | worst cell Δ F1 | clean cell-seeds | flagged on clean |")
    print("|---|---|---|---|---|---|---|---|")
    for model in dict.fromkeys(k[2] for k in auc):
        keys = [k for k in auc if k[2] == model]
        for w in WEIGHTS:
            da = np.array([np.mean(auc[k][w]) - np.mean(auc[k][0.0]) for k in keys])
            df = np.array([np.mean(f1[k][w]) - np.mean(f1[k][0.0]) for k in keys])
            cl = clean[(model, w)]
            print(f"| {model} | {w} | {len(keys)} | {_ci(da)} | {_ci(df)} | {df.min():+.3f} | "
                  f"{len(cl)} | {np.mean(cl):.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
