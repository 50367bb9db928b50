"""The planned study of a per-dataset choice of the ranking's form (issue 12 §3), dev cells only:
should a small set's ranking switch from p(given label) to SEI's signed entropy when *virtual
implanted errors drawn like the estimated noise* say the signed entropy separates them better?

    python scripts/form_select_dev.py --cache /work/cache/bench --cnn /work/cache/cnn_knn \\
        > benchmarks/results/dev-form-select.md

Why: on the cells where one given label is mostly another class (PneumoniaMNIST with confusion
noise 0.2-0.4; RESULTS §4), every SEI variant ranks far better than ``crossfit`` (dev: held-out SE
0.90 against 0.73 on PneumoniaMNIST's other training images at confusion 0.3), and far worse
everywhere else (``results/dev-rankings.md``); no label-free statistic we tried told the two
regimes apart (``results/dev-regime.md``). ``count.implant_weight``'s virtual errors did not
either: they are drawn per sample from the classes its held-out posterior confuses it with, in
both directions, so they look like confident contradictions, which p(given) always wins.

This study draws them from the *estimated noise* instead. A held-out posterior row never depends
on its sample's own label, so relabelling a sample in the scoring is an error made on that image
as the model would see it. Confident learning's calibrated joint ``C[given, true]`` on the held-out
posterior estimates how many images of true class ``a`` carry label ``b``; each sample with given
label ``a`` becomes a virtual error ``b`` with weight ``C[b, a] / n_a``. (Under the bench's
synthetic noise the flipped images are drawn uniformly within their class, so these virtual errors
are distributed as the real ones, up to the estimate of ``C``.) Each form's *virtual AUROC* is the
weighted AUROC of the virtual errors against every sample at its given label. No truth is read.

Candidates (each cut at ``crossfit``'s own count, so only the ranking moves):

* ``crossfit`` — the default: p(given) of the mean of its held-out and in-sample posteriors
  (on a small set with frozen features, each mixed 3:1 with the kNN label shares);
* ``select`` — the held-out signed entropy (``+H(p)`` where ``argmax p`` is the given label, else
  ``-H(p)``, on crossfit's held-out posterior) where its virtual AUROC exceeds that of p(given) on
  the same posterior by more than ``DELTA`` = 0.01, else ``crossfit``. Reported beside it, not
  deciding: the margins 0 and 0.02, and the two SEI readings of the recording (held-out and
  in-sample trajectories) as the form chosen by the same switch.

Decision rule, written before any run (the noisy dev cells below, mean over seeds per cell,
paired against ``crossfit``): ``select`` becomes the default ranking on small sets (N < 5,000,
``count.LARGE``) if (a) no cell's mean ΔAUROC is below −0.01, (b) no cell's mean ΔF1 is below
−0.02, (c) the pooled mean ΔAUROC over every cell and seed is > 0 and its ΔF1 ≥ 0. The clean cells
are reported (how often it switches there); the count does not move.

Cells: the small-CNN scans of ``cnn_allfolds_dev.py`` (``--cnn``: 22 noisy and 2 clean cells,
3 seeds, ``labeltrace scan --model small-cnn``), and the frozen-feature (EfficientNet-Lite0 head)
small dev cells of ``configs/dev.toml`` at 96 px — PneumoniaMNIST val, BreastMNIST val, 2,000
CIFAR-10N images, CIFAR-10's cats and dogs, PneumoniaMNIST's other training images, and the
``-low`` cells — trained into ``--cache`` where missing.

After the verdict the file also shows, for the binary cells, why the switch fires where it does:
confident learning's joint against the true one, how confidently the held-out model agrees with
the wrong labels of class 0 against the right labels of class 1, and the share of label 0 it
contradicts against the share that is wrong (read after the rule; it decides nothing).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from cnn_allfolds_dev import run_evidence, run_truth  # scripts/, run as a script
from dev_cells import dev_cells, f1_at
from ranking_dev import signed_entropy
from sklearn.metrics import roc_auc_score

from labeltrace.decide import detectors
from labeltrace.decide.evidence import Evidence
from labeltrace.evaluate.metrics import interval_text, t_interval
from labeltrace.rundir import open_run
from labeltrace.score import confident, trajectory

DELTA = 0.01
MARGINS = (0.0, 0.01, 0.02)
FROZEN = ("pneumoniamnist-val", "breastmnist-val", "cifar10n-dev-2k", "cifar10-catdog-dev",
          "pneumoniamnist-train-rest", "pneumoniamnist-val-low", "breastmnist-val-low",
          "pneumoniamnist-train-rest-low")  # fmt: skip

Score = Callable[[np.ndarray, np.ndarray], np.ndarray]


def p_given(post: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p[i, labels[i]] without ``probs.self_confidence``'s checks: a virtual label set need not hold
    every class."""
    return post[np.arange(len(labels)), labels]


def virtual_auroc(post: np.ndarray, labels: np.ndarray, score: Score) -> float:
    """Weighted AUROC of virtual errors drawn like confident learning's estimated noise against
    every sample at its given label (NaN when the joint estimates no error)."""
    k = post.shape[1]
    joint = confident.confident_joint(post, labels).astype(np.float64)  # C[given, true]
    n_a = np.bincount(labels, minlength=k).astype(np.float64)
    pos_s, pos_w = [], []
    for a in range(k):
        idx = np.flatnonzero(labels == a)
        for b in range(k):
            if b == a or joint[b, a] <= 0 or idx.size == 0:
                continue
            pos_s.append(score(post[idx], np.full(idx.size, b)))
            pos_w.append(np.full(idx.size, joint[b, a] / n_a[a]))
    if not pos_s:
        return float("nan")
    s_pos, w_pos = np.concatenate(pos_s), np.concatenate(pos_w)
    n = len(labels)
    s = np.r_[score(post, labels), s_pos]
    w = np.r_[np.full(n, w_pos.sum() / n), w_pos]  # the two sides weigh the same in total
    truth = np.r_[np.zeros(n, bool), np.ones(s_pos.size, bool)]
    return float(roc_auc_score(truth, -s, sample_weight=w))


def candidates(ev: Evidence) -> tuple[dict[str, np.ndarray], int, dict[str, float]]:
    """Each ranking's score, crossfit's count and the two virtual AUROCs."""
    cf = detectors.detect("crossfit", ev)
    held, _ = detectors._crossfit_posteriors(ev)  # crossfit's held-out side, as it reads it
    v = {"p(given)": virtual_auroc(held, ev.labels, p_given), "SE": virtual_auroc(held, ev.labels, signed_entropy)}
    scores = {"crossfit": cf.score, "held-out SE": signed_entropy(held, ev.labels),
              "held-out SEI": trajectory.compute("sei", ev.held_out.dynamics)}  # fmt: skip
    if ev.held_out.in_sample is not None:  # recorded while the fold models train (free)
        scores["in-sample SEI"] = trajectory.compute("sei", ev.held_out.in_sample)
    return scores, int(cf.flagged.sum()), v


def cnn_cells(root: str) -> Iterator[tuple[str, Evidence, np.ndarray]]:
    for run_dir in sorted((Path(root) / "runs").iterdir()):
        name, noise, _seed = run_dir.name[1:].rsplit("_", 2)
        run = open_run(run_dir)
        yield f"{name} {noise} small-cnn", run_evidence(run), run_truth(run)


def frozen_cells(cache: str) -> Iterator[tuple[str, Evidence, np.ndarray]]:
    for cell, runner in dev_cells(str(Path(__file__).resolve().parents[1] / "benchmarks/configs/dev.toml"),
                                  cache, FROZEN):  # fmt: skip
        if cell.model.on_features:
            yield f"{cell.dataset.name} {cell.labels} {cell.model.name}", runner.evidence(), runner.truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="the bench cache for the frozen-feature dev cells")
    ap.add_argument("--cnn", required=True, help="cnn_allfolds_dev.py's --out (the small-CNN scans)")
    a = ap.parse_args()
    m: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for source in (cnn_cells(a.cnn), frozen_cells(a.cache)):
        for key, ev, truth in source:
            scores, n_hat, v = candidates(ev)
            r = m[key]
            r["gap"].append(v["SE"] - v["p(given)"])
            r["v p"].append(v["p(given)"])
            r["v se"].append(v["SE"])
            for delta in MARGINS:
                switch = v["SE"] - v["p(given)"] > delta
                r[f"switch {delta}"].append(float(switch))
                for form in ("held-out SE", "held-out SEI", "in-sample SEI"):
                    if form in scores:
                        scores[f"select {delta} {form}"] = scores[form] if switch else scores["crossfit"]
            if not truth.any():
                continue
            if ev.num_classes == 2:
                diagnose(r, ev, truth)
            for n, s in scores.items():
                r[f"auroc {n}"].append(float(roc_auc_score(truth, -s)))
                r[f"f1 {n}"].append(f1_at(s, truth, n_hat))
    report(m)


def diagnose(r: dict[str, list[float]], ev: Evidence, truth: np.ndarray) -> None:
    """Binary cells, read after the verdict: confident learning's joint against the true one
    (label 0 given / true class 1, and 1 / 0), and crossfit's held-out p(given) (median) of the
    wrong labels of true class 0 against the right labels of class 1; the share of label 0 that the
    held-out model contradicts (argmax ≠ 0) and the share that is wrong."""
    held, _ = detectors._crossfit_posteriors(ev)
    y = ev.labels
    true = np.where(truth, 1 - y, y)
    joint = confident.confident_joint(held, y)
    pg = p_given(held, y)
    r["C01"].append(float(joint[0, 1]))
    r["C10"].append(float(joint[1, 0]))
    r["T01"].append(float(((y == 0) & (true == 1)).sum()))
    r["T10"].append(float(((y == 1) & (true == 0)).sum()))
    r["p wrong 1|0"].append(float(np.median(pg[(y == 1) & (true == 0)])) if ((y == 1) & (true == 0)).any() else np.nan)
    r["p right 1|1"].append(float(np.median(pg[(y == 1) & (true == 1)])))
    r["contra 0"].append(float((held[y == 0].argmax(1) != 0).mean()))
    r["wrong 0"].append(float(truth[y == 0].mean()))


def _mean(r: dict[str, list[float]], key: str) -> str:
    return f"{np.mean(r[key]):.3f}" if r.get(key) else "–"


def report(m: dict[str, dict[str, list[float]]]) -> None:
    noisy = [k for k in m if "auroc crossfit" in m[k]]
    clean = [k for k in m if k not in noisy]
    main_c = f"select {DELTA} held-out SE"
    print("# A per-dataset choice of the ranking's form by virtual errors drawn like the estimated noise (dev)\n")
    print("`python scripts/form_select_dev.py --cache /work/cache/bench --cnn /work/cache/cnn_knn` (the rule is in "
          "the script's docstring; mean over seeds; v = virtual AUROC on crossfit's held-out posterior; "
          "every ranking cut at crossfit's count)\n")  # fmt: skip
    shown = ["crossfit", "held-out SE", "held-out SEI", "in-sample SEI", main_c]
    print("| cell | v p(given) | v SE | switched (of seeds) | " + " | ".join(f"AUROC {n}" for n in shown) + " | "
          + " | ".join(f"F1 {n}" for n in shown) + " |")  # fmt: skip
    print("|---|---|---|---|" + "---|" * (2 * len(shown)))
    for k in noisy:
        r = m[k]
        print(f"| {k} | {np.mean(r['v p']):.3f} | {np.mean(r['v se']):.3f} | {int(sum(r[f'switch {DELTA}']))}/"
              f"{len(r['gap'])} | " + " | ".join(_mean(r, f"auroc {n}") for n in shown) + " | "
              + " | ".join(_mean(r, f"f1 {n}") for n in shown) + " |")  # fmt: skip
    print("\nThe clean cells (original labels): how often the switch fires\n")
    print("| cell | v p(given) | v SE | " + " | ".join(f"switched at {d}" for d in MARGINS) + " |")
    print("|---|---|---|" + "---|" * len(MARGINS))
    for k in clean:
        r = m[k]
        print(f"| {k} | {np.mean(r['v p']):.3f} | {np.mean(r['v se']):.3f} | "
              + " | ".join(f"{int(sum(r[f'switch {d}']))}/{len(r['gap'])}" for d in MARGINS) + " |")
    print(f"\nAgainst `crossfit` over the {len(noisy)} noisy cells (pooled: every cell and seed, t-interval; "
          "worst: the lowest per-cell mean)\n")
    print("| candidate | switched (cell-seeds) | ΔAUROC pooled | worst cell ΔAUROC | ΔF1 pooled | worst cell ΔF1 |")
    print("|---|---|---|---|---|---|")
    verdict = None
    for d in MARGINS:
        for form in ("held-out SE", "held-out SEI", "in-sample SEI"):
            n = f"select {d} {form}"
            keys = [k for k in noisy if m[k].get(f"auroc {n}")]
            da = [u - v for k in keys for u, v in zip(m[k][f"auroc {n}"], m[k]["auroc crossfit"], strict=True)]
            df = [u - v for k in keys for u, v in zip(m[k][f"f1 {n}"], m[k]["f1 crossfit"], strict=True)]
            wa = min(np.mean(m[k][f"auroc {n}"]) - np.mean(m[k]["auroc crossfit"]) for k in keys)
            wf = min(np.mean(m[k][f"f1 {n}"]) - np.mean(m[k]["f1 crossfit"]) for k in keys)
            sw = int(sum(sum(m[k][f"switch {d}"]) for k in keys))
            tag = " (the candidate)" if n == main_c else ""
            print(f"| select, margin {d}, {form}{tag} | {sw} / {sum(len(m[k]['gap']) for k in keys)} | "
                  f"{interval_text(*t_interval(da), '+.4f')} | {wa:+.3f} | {interval_text(*t_interval(df), '+.4f')} "
                  f"| {wf:+.3f} |")  # fmt: skip
            if n == main_c:
                verdict = wa >= -0.01 and wf >= -0.02 and np.mean(da) > 0 and np.mean(df) >= 0
    print(f"\nRule: {'adopt' if verdict else 'do not adopt'} `select` (margin {DELTA}, held-out SE) as the small-set "
          "default ranking.")
    print("\nRead after the verdict, the binary noisy cells: confident learning's joint `C[given, true]` on crossfit's "
          "held-out posterior against the true one (`T`), and the median held-out p(given) of class 0's images "
          "labelled 1 (wrong) and of class 1's images labelled 1 (right); mean over seeds\n")
    print("| cell | C[0, 1] | T[0, 1] | C[1, 0] | T[1, 0] | p(given), wrong 1 of class 0 | p(given), right 1 | "
          "label 0 contradicted | label 0 wrong |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k in noisy:
        r = m[k]
        if r.get("C01"):
            print(f"| {k} | {np.mean(r['C01']):.0f} | {np.mean(r['T01']):.0f} | {np.mean(r['C10']):.0f} | "
                  f"{np.mean(r['T10']):.0f} | {np.nanmean(r['p wrong 1|0']):.3f} | {np.mean(r['p right 1|1']):.3f} | "
                  f"{np.mean(r['contra 0']):.2f} | {np.mean(r['wrong 0']):.2f} |")


if __name__ == "__main__":
    main()
