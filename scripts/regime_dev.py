"""Is there a label-free sign of the cells where scoring by signed entropy beats crossfit's
p(given label)? Dev cells only (not a test), from the bench cache — no training.

    python scripts/regime_dev.py --cache /work/cache/bench > benchmarks/results/dev-regime.md

On the small and mid-size dev sets (PneumoniaMNIST's other training images and val, BreastMNIST
val, the 2,000 CIFAR-10N images, the cats and dogs, digits) it prints, per cell and averaged over
the seeds: the AUROC gain of the held-out signed entropy over ``crossfit`` (needs the truth: what
a sign would have to predict), then label-free statistics of the cross-fitted run: the fraction of
labels its held-out posterior contradicts, the Spearman correlation of the two scores, the mean
top-class probability of the agreeing and of the contradicting samples, the fraction of samples
agreed with at p > 0.9, and the mean in-sample minus held-out p(given label).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from dev_cells import dev_cells, parse_args  # scripts/, run as a script
from ranking_dev import signed_entropy
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from labeltrace.decide import detectors

DATASETS = ("pneumoniamnist-train-rest", "pneumoniamnist-val", "breastmnist-val", "cifar10n-dev-2k",
            "cifar10-catdog-dev", "digits")  # fmt: skip
COLUMNS = ("AUROC gain of held-out SE (truth)", "contradicted", "Spearman(crossfit, SE)", "p(top) agreeing",
           "p(top) contradicting", "agreed at p > 0.9", "in-sample − held-out p(given)")  # fmt: skip


def main() -> None:
    a = parse_args(__doc__ or "")
    per: dict[tuple[str, ...], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for cell, runner in dev_cells(a.config, a.cache, DATASETS):
        ev, y = runner.evidence(), runner.given
        cf = detectors.get("crossfit").score(ev)
        held, ins = detectors._held_posteriors(ev)  # crossfit's own reading (renormalised, checked)
        assert ins is not None, "a cross-fitted recording keeps its in-sample posterior"
        se = signed_entropy(held, y)
        agree, top = held.argmax(axis=1) == y, held.max(axis=1)
        rows = np.arange(y.size)
        st = per[(cell.dataset.name, cell.labels, cell.model.name)]
        if runner.truth.any():
            st[COLUMNS[0]].append(roc_auc_score(runner.truth, -se) - roc_auc_score(runner.truth, -cf))
        st[COLUMNS[1]].append(1.0 - agree.mean())
        st[COLUMNS[2]].append(spearmanr(cf, se)[0])
        st[COLUMNS[3]].append(top[agree].mean())
        st[COLUMNS[4]].append(top[~agree].mean() if (~agree).any() else np.nan)
        st[COLUMNS[5]].append((agree & (top > 0.9)).mean())
        st[COLUMNS[6]].append((ins[rows, y] - held[rows, y]).mean())
    print("# A label-free sign of where signed entropy ranks better? (dev cells)\n")
    print("`python scripts/regime_dev.py --cache /work/cache/bench > benchmarks/results/dev-regime.md` "
          "(from the bench cache of `configs/dev.toml`; means over the seeds).\n")  # fmt: skip
    print("| cell | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for c, d in per.items():
        print(f"| {' '.join(c)} | " + " | ".join(f"{np.mean(d[n]):+.3f}" if d[n] else "–" for n in COLUMNS) + " |")


if __name__ == "__main__":
    main()
