"""The planned study of the CNN's crossfit posterior mixed with the kNN label shares of a run of its
own (issue 12 §3), dev cells only: worth one more training for a network trained in the scan?

    python scripts/cnn_own_knn_dev.py --base /work/cache/cnn_knn --own /work/cache/cnn_knn_run \\
        --pneumonia /work/shared/data/medmnist/pneumoniamnist_modified.npz \\
        --breast /work/shared/data/medmnist/breastmnist.npz > benchmarks/results/dev-cnn-own-knn.md

Why: on the BreastMNIST test cells with confusion noise 10–20 % the kNN vote in the embedding of a
separate in-sample run is the best detector by far (0.497 / 0.538 against crossfit's 0.328 / 0.422,
RESULTS §1), and on the dev cells that embedding's vote ranks better than the fold models' common
embedding (``dev-cnn-knn-run.md``, exploratory: AUROC +0.013). The common embedding's shares did not
help crossfit (``dev-cnn-allfolds.md``, rule B). This study asks whether the separate run's do.

No training for the noisy cells: ``--base`` holds ``cnn_allfolds_dev.py``'s default scans (the crossfit recording
with its held-out and in-sample posteriors), ``--own`` the ``--detector knn_vote`` scans of
``cnn_knn_run_dev.py`` (the same labels: checked; an in-sample recording whose first run's
embedding is the one the bench's ``knn_vote`` reads). The shares are those of each sample's 10
nearest neighbours (cosine) in that embedding, the sample itself left out, by the product's
``Evidence.knn_shares``. The two clean cells' own runs (digits, PneumoniaMNIST val, original labels)
are trained here into ``--own`` where missing, the same way. Candidates, against ``crossfit``:

* ``rank quarter`` — crossfit's held-out and in-sample posteriors each mixed 3:1 with the shares
  (``count.knn_mixed``, ``count.KNN_WEIGHT``), ranked by p(given), cut at crossfit's own count;
* ``quarter`` — the same mixture read by the ranking and the count (the frozen-feature default's path);
* ``crossfit_knn`` — the product's detector with those shares (per-dataset weight by virtual errors).

Decision rule, written before the run (22 noisy dev cells × 3 seeds, paired over seeds): the best
candidate by mean ΔF1 becomes the default for networks trained in the scan — at the price of one
more training (about a quarter more time, against the ≤ 3 min bar of §5.2) — only if its ΔF1
interval lies above +0.01 (a gain worth a training), its ΔAUROC mean is ≥ 0, no cell's mean ΔF1 is
below −0.03, and on the two clean cells it flags on average at most 1.1 × crossfit's count. Else the
default stays, and the file says by how much each missed.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from cnn_allfolds_dev import cells, run_evidence, run_truth, scan  # scripts/, run as a script
from dev_cells import f1_at
from sklearn.metrics import roc_auc_score

from labeltrace.decide import count as C
from labeltrace.decide import detectors
from labeltrace.evaluate.metrics import interval_text, t_interval
from labeltrace.rundir import open_run
from labeltrace.score import probs as P

CANDIDATES = ("rank quarter", "quarter", "crossfit_knn")


def candidates(base: Path, own: Path) -> tuple[dict[str, tuple[np.ndarray, int]], np.ndarray]:
    """Each candidate's (score, flagged count) and the truth (all False on a clean cell)."""
    run, own_run = open_run(base), open_run(own)
    labels = run.column("given_label_id").astype(np.int64)
    assert np.array_equal(labels, own_run.column("given_label_id").astype(np.int64)), f"{base.name}: other labels"
    emb = own_run.recording().embedding
    assert emb is not None, f"{own}: no embedding"
    ev = run_evidence(run, features=emb)
    cf = detectors.detect("crossfit", ev)
    assert np.array_equal(cf.score, run.column("crossfit")), f"{base}: not the scan's crossfit"
    held, ins = detectors._crossfit_posteriors(ev)  # a network's: not mixed
    mh, mi = C.knn_mixed(held, ins, ev.knn_shares())
    mixed = P.self_confidence(mh if mi is None else (mh + mi) / 2, labels)
    n_cf = int(cf.flagged.sum())
    kn = detectors.detect("crossfit_knn", ev)
    out = {"crossfit": (cf.score, n_cf), "rank quarter": (mixed, n_cf),
           "quarter": (mixed, C.conservative_count(mh, mi, labels)), "crossfit_knn": (kn.score, int(kn.flagged.sum()))}
    return out, run_truth(run)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="cnn_allfolds_dev.py's --out (the default scans)")
    ap.add_argument("--own", required=True, help="cnn_knn_run_dev.py's --out (the --detector knn_vote scans)")
    ap.add_argument("--pneumonia", required=True)
    ap.add_argument("--breast", required=True)
    a = ap.parse_args()
    for name, data, noise in cells(argparse.Namespace(base=a.base, pneumonia=a.pneumonia, breast=a.breast)):
        if noise == "clean":
            for seed in (0, 1, 2):
                scan(data, noise, seed, Path(a.own) / "runs" / f"_{name}_clean_s{seed}", ["--detector", "knn_vote"])
    m: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for base in sorted((Path(a.base) / "runs").iterdir()):
        name, noise, _seed = base.name[1:].rsplit("_", 2)
        own = Path(a.own) / "runs" / base.name
        got, truth = candidates(base, own)
        r = m[(name, noise)]
        for n, (s, k) in got.items():
            r[f"flags {n}"].append(float(k))
            if truth.any():
                r[f"auroc {n}"].append(float(roc_auc_score(truth, -s)))
                r[f"f1 {n}"].append(f1_at(s, truth, k))
    report(m)


def report(m: dict[tuple[str, str], dict[str, list[float]]]) -> None:
    noisy = [k for k in m if m[k].get("auroc crossfit")]
    clean = [k for k in m if k not in noisy]
    names = ("crossfit", *CANDIDATES)
    print("# The CNN's crossfit posterior with the kNN shares of a run of its own (dev): the planned study\n")
    print("`python scripts/cnn_own_knn_dev.py --base /work/cache/cnn_knn --own /work/cache/cnn_knn_run` (3 seeds; "
          "the rule is in the script's docstring; mean over seeds)\n")  # fmt: skip
    print("| cell | noise | " + " | ".join(f"AUROC {n}" for n in names) + " | " + " | ".join(f"F1 {n}" for n in names)
          + " | " + " | ".join(f"flags {n}" for n in names) + " |")  # fmt: skip
    print("|---|---|" + "---|" * (3 * len(names)))
    for k in noisy:
        r = m[k]
        print(f"| {k[0]} | {k[1]} | " + " | ".join(f"{np.mean(r[f'auroc {n}']):.3f}" for n in names) + " | "
              + " | ".join(f"{np.mean(r[f'f1 {n}']):.3f}" for n in names) + " | "
              + " | ".join(f"{np.mean(r[f'flags {n}']):.1f}" for n in names) + " |")  # fmt: skip
    print("\nThe clean cells (original labels): flagged per seed, mean\n")
    for k in clean:
        print(f"- {k[0]}: " + ", ".join(f"{n} {np.mean(m[k][f'flags {n}']):.1f}" for n in names))
    print("\n| candidate | ΔAUROC | ΔF1 | worst cell ΔF1 | passes |\n|---|---|---|---|---|")
    best, best_d = None, -np.inf
    for n in CANDIDATES:
        da = [u - v for k in noisy for u, v in zip(m[k][f"auroc {n}"], m[k]["auroc crossfit"], strict=True)]
        df = [u - v for k in noisy for u, v in zip(m[k][f"f1 {n}"], m[k]["f1 crossfit"], strict=True)]
        worst = min(np.mean(m[k][f"f1 {n}"]) - np.mean(m[k]["f1 crossfit"]) for k in noisy)
        fi = t_interval(df)
        ok = fi[1] > 0.01 and np.mean(da) >= 0 and worst >= -0.03
        if clean:
            ok = ok and np.mean([np.mean(m[k][f"flags {n}"]) for k in clean]) <= 1.1 * np.mean(
                [np.mean(m[k]["flags crossfit"]) for k in clean])
        print(f"| {n} | {interval_text(*t_interval(da), '+.4f')} | {interval_text(*fi, '+.4f')} | {worst:+.3f} | "
              f"{'yes' if ok else 'no'} |")  # fmt: skip
        if ok and np.mean(df) > best_d:
            best, best_d = n, float(np.mean(df))
    print(f"\nRule: {'adopt ' + repr(best) if best else 'keep crossfit'} for networks trained in the scan.")


if __name__ == "__main__":
    main()
