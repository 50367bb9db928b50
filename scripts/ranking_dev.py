"""Rankings that add the in-sample trajectory to the held-out posterior, on the dev cells (not a
test): AUROC of each candidate score, from the bench cache — no training.

    python scripts/ranking_dev.py --cache /work/cache/bench > benchmarks/results/dev-rankings.md

Runs only on the dev cells of ``benchmarks/SPLIT.md``. Candidates (lower = more suspect): the
default ``crossfit`` score; SEI on the held-out trajectory of the cross-fitted recording, and the
signed entropy of its mean held-out posterior (``held-out SE``: the same posterior as crossfit's
held-out half, scored by SEI's sign and entropy instead of p(given label)); SEI and AUM on the
cross-fitted recording's own in-sample trajectory
(free: recorded while the fold models train); SEI of the two auxiliary runs (``sei``) and of one
plain run (``single_sei``); ``crossfit_knn``; and equal-weight rank averages of crossfit with each
trajectory score (``rank(a) + rank(b)``, no weight fitted on truth). Prints the mean AUROC over the
seeds per noisy cell and candidate, then the mean over cells and how many cells each candidate
beats crossfit in by more than 0.005.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from dev_cells import dev_cells, parse_args  # scripts/, run as a script
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from labeltrace.decide import detectors
from labeltrace.score import trajectory


def signed_entropy(posterior: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``+H(p)`` where ``argmax p`` is the label, else ``-H(p)``: SEI's per-epoch term, on one posterior."""
    p = np.clip(posterior, 1e-12, 1.0)
    h = -(p * np.log(p)).sum(axis=1)
    return np.where(posterior.argmax(axis=1) == labels, h, -h)


def _rank(s: np.ndarray) -> np.ndarray:
    return rankdata(s) / len(s)


def candidates(runner) -> dict[str, np.ndarray]:  # noqa: ANN001 - a bench CellRunner
    ev = runner.evidence()
    cf = detectors.get("crossfit").score(ev)
    ins = ev.held_out.in_sample
    ins_sei, ins_aum = trajectory.compute("sei", ins), trajectory.compute("aum", ins)
    sei, ssei = detectors.get("sei").score(ev), detectors.get("single_sei").score(ev)
    held, _ = detectors._held_posteriors(ev)  # crossfit's own reading (renormalised, checked)
    return {
        "crossfit": cf, "held-out SEI": trajectory.compute("sei", ev.held_out.dynamics),
        "held-out SE": signed_entropy(held, ev.labels),
        "in-sample SEI": ins_sei, "in-sample AUM": ins_aum, "sei (2 runs)": sei,
        "single_sei": ssei, "crossfit_knn": runner.detector("crossfit_knn")["score"],  # as scan: fold 0's embedding
        "rank crossfit + in-sample SEI": _rank(cf) + _rank(ins_sei),
        "rank crossfit + in-sample AUM": _rank(cf) + _rank(ins_aum),
        "rank crossfit + sei": _rank(cf) + _rank(sei),
    }  # fmt: skip


def main() -> None:
    a = parse_args(__doc__)
    per_cell: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for cell, runner in dev_cells(a.config, a.cache):
        truth = runner.truth
        if not truth.any():
            continue
        for name, s in candidates(runner).items():
            per_cell[(cell.dataset.name, cell.labels, cell.model.name)][name].append(roc_auc_score(truth, -s))
    names = list(next(iter(per_cell.values())))
    print("# In-sample trajectories in the ranking, on the dev cells (AUROC)\n")
    print("`python scripts/ranking_dev.py --cache /work/cache/bench > benchmarks/results/dev-rankings.md` "
          "(from the bench cache of `configs/dev.toml`; mean AUROC over the seeds).\n")  # fmt: skip
    print("| cell | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    means = {c: {n: float(np.mean(v)) for n, v in d.items()} for c, d in per_cell.items()}
    for c, m in means.items():
        best = max(m.values())
        print(f"| {' '.join(c)} | " + " | ".join(f"**{m[n]:.3f}**" if m[n] == best else f"{m[n]:.3f}"
                                                 for n in names) + " |")  # fmt: skip
    print("\n| candidate | mean AUROC over the noisy dev cells | cells above crossfit by > 0.005 | below by > 0.005 |")
    print("|---|---|---|---|")
    for n in names:
        d = np.array([m[n] - m["crossfit"] for m in means.values()])
        print(f"| {n} | {np.mean([m[n] for m in means.values()]):.4f} | {(d > 0.005).sum()} / {len(d)} "
              f"| {(d < -0.005).sum()} / {len(d)} |")


if __name__ == "__main__":
    main()
