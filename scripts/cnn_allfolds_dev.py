"""The planned study of the CNN's common embedding (issue 12 §3), dev cells only: should a
cross-fitted network's recording keep the concatenation of all fold models' L2-normalised
embeddings, and should the default then read the kNN label shares in it?

    python scripts/cnn_allfolds_dev.py --out /work/cache/cnn_knn --base /work/cache/cnn_score \\
        --pneumonia /work/shared/data/medmnist/pneumoniamnist_modified.npz \\
        --breast /work/shared/data/medmnist/breastmnist.npz > benchmarks/results/dev-cnn-allfolds.md

Why: ``results/dev-cnn-knn.md`` (exploratory, 15 of these cells) found the kNN vote far better in
the five fold models' common space than in the first fold model's embedding (what ``labeltrace
scan`` keeps now), and ``crossfit_knn`` in it above ``crossfit`` on F1. That look chose its
question after seeing numbers; this study was written before it ran on the 7 cells the look did
not see, with the rule below. Its scans ran in this process with ``cnn_knn_dev.py``'s two patches
of that time (the recording's embedding became the concatenation); since the rule adopted it, the
scan keeps it itself (``labeltrace.train.embedding``) and the scans below are plain. ``--out`` may
hold that look's scans (the same trainings: checked against ``--base``, ``cnn_score_dev.py``'s
scans made before the change, by crossfit's AUROC).

Every candidate is read off the same recording, by the product's own detectors:

* ``crossfit`` — the default now (a network's posterior, not mixed);
* ``crossfit + kNN quarter`` — the default with the frozen-feature path switched on: both of
  crossfit's posteriors mixed 3:1 with the kNN label shares in the common space (``count.KNN_WEIGHT``),
  the ranking and the count read the mixture (so the count moves: the clean cells matter);
* ``crossfit_knn`` — the mixture with the per-dataset weight of virtual implanted errors, cut at
  crossfit's count;
* ``knn_vote`` in the common space against the first fold model's embedding (``--base``).

Decision rule, written before the runs on the unseen cells (22 noisy cells x 3 seeds, paired):

A. The recording keeps the common embedding (``knn_vote`` and ``crossfit_knn`` of every
   cross-fitted network read it) if ``knn_vote``'s ΔAUROC interval lies above 0 and
   ``crossfit_knn``'s mean ΔF1 is ≥ 0, each against the first fold model's embedding.
B. A candidate replaces ``crossfit`` for networks trained in the scan if against it: its ΔF1
   interval lies above 0; its ΔAUROC interval's upper end is ≥ 0; no cell's mean ΔF1 is below
   −0.03; on the 7 unseen cells alone its mean ΔF1 is ≥ 0 and no cell's is below −0.03; and on
   the two clean cells (digits, PneumoniaMNIST val, original labels) it flags on average at most
   1.1 x as many. If both pass, the larger mean ΔF1.

Cells: ``cnn_score_dev.py --study window``'s 22 (digits, PneumoniaMNIST / BreastMNIST val,
PneumoniaMNIST's other 1,882 training images; symmetric and confusion noise 0.1-0.4) and the two
clean ones; unseen by the exploratory look: digits symmetric 0.4 and the six PneumoniaMNIST
train-rest cells. Seeds 0-2, ``labeltrace scan --model small-cnn`` at its defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from cnn_folds_dev import pneumonia_rest
from sklearn.metrics import roc_auc_score

from labeltrace import cli
from labeltrace.decide import detectors
from labeltrace.decide.evidence import Evidence
from labeltrace.evaluate.metrics import interval_text, t_interval
from labeltrace.rundir import Run, open_run

SEEDS = (0, 1, 2)
CANDIDATES = ("crossfit + kNN quarter", "crossfit_knn")
NOISY = ("symmetric:0.1", "symmetric:0.2", "symmetric:0.4", "confusion:0.1", "confusion:0.2", "confusion:0.3",
         "confusion:0.4")  # fmt: skip
UNSEEN = {("digits", "symmetric:0.4")} | {("pneumoniamnist-train-rest", n) for n in NOISY}


def cells(a: argparse.Namespace) -> list[tuple[str, list[str], str]]:
    rest = [str(pneumonia_rest(Path(a.base)))]
    sets = {"digits": ["--example", "digits"], "pneumoniamnist-val": [a.pneumonia, "--split", "val"],
            "breastmnist-val": [a.breast, "--split", "val"], "pneumoniamnist-train-rest": rest}  # fmt: skip
    noisy = {"digits": ("symmetric:0.1", "symmetric:0.2", "symmetric:0.4", "confusion:0.1", "confusion:0.2",
                        "confusion:0.4"),
             "pneumoniamnist-val": ("symmetric:0.1", "symmetric:0.2", "confusion:0.1", "confusion:0.2",
                                    "confusion:0.3", "confusion:0.4"),
             "breastmnist-val": ("symmetric:0.1", "symmetric:0.2", "confusion:0.1", "confusion:0.2"),
             "pneumoniamnist-train-rest": ("symmetric:0.1", "symmetric:0.2", "confusion:0.1", "confusion:0.2",
                                           "confusion:0.3", "confusion:0.4")}  # fmt: skip
    c = [(name, sets[name], n) for name, ns in noisy.items() for n in ns]
    return c + [("digits", sets["digits"], "clean"), ("pneumoniamnist-val", sets["pneumoniamnist-val"], "clean")]


def scan(data: list[str], noise: str, seed: int, run_dir: Path, extra: Sequence[str] = ()) -> None:
    """One ``labeltrace scan --model small-cnn`` (its recording keeps the common embedding), with
    ``extra`` options."""
    if (run_dir / "run.json").is_file():
        return
    noise_args = [] if noise == "clean" else ["--noise", noise]
    with contextlib.redirect_stdout(io.StringIO()):  # the scan's own summary
        rc = cli.main(["scan", *data, "--out", str(run_dir), *noise_args, "--seed", str(seed),
                       "--model", "small-cnn", "--quiet", "--force", *extra])  # fmt: skip
    assert rc == 0, f"{run_dir.name}: scan failed"


def run_evidence(run: Run, *, features: np.ndarray | None = None, frozen: bool = False) -> Evidence:
    """The detectors' evidence from a cross-fitted scan's recording: its labels, its held-out run,
    ``features`` (default: the embedding it kept); ``frozen`` switches on the frozen-feature path
    (the default's kNN mixing, ``count.KNN_WEIGHT``)."""
    rec = run.recording()
    return Evidence(run.column("given_label_id").astype(np.int64), rec.num_classes, held_out=rec.runs[0],
                    features=rec.embedding if features is None else features, features_frozen=frozen)  # fmt: skip


def run_truth(run: Run) -> np.ndarray:
    """Which given labels are wrong (all False on a scan without injected noise)."""
    if "is_noisy" not in run.samples.column_names:
        return np.zeros(run.num_samples, bool)
    return run.column("is_noisy").astype(bool)


def read(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each candidate's (score, flagged), by the product's detectors on the run's recording."""
    run = open_run(run_dir)
    plain = run_evidence(run)
    out = {n: detectors.detect(n, plain) for n in ("crossfit", "crossfit_knn", "knn_vote")}
    out["crossfit + kNN quarter"] = detectors.detect("crossfit", run_evidence(run, frozen=True))
    assert np.array_equal(out["crossfit"].score, run.column("crossfit")), f"{run_dir}: not the scan's crossfit"
    return {n: (d.score, d.flagged) for n, d in out.items()}


def f1(flagged: np.ndarray, truth: np.ndarray) -> float:
    return 2 * float((flagged & truth).sum()) / (float(flagged.sum()) + float(truth.sum()))


def parse_args(doc: str) -> argparse.Namespace:
    """The options of this study and of ``cnn_knn_dev.py``: where the scans go and what they read."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--base", required=True, help="cnn_score_dev.py's --out (the first fold model's embedding)")
    ap.add_argument("--pneumonia", required=True)
    ap.add_argument("--breast", required=True)
    return ap.parse_args()


def scanned(out: str, cell_list: list[tuple[str, list[str], str]],
            extra: Sequence[str] = ()) -> Iterator[tuple[str, str, str, Path]]:  # fmt: skip
    """Every cell's scan for each seed, run first where ``out`` lacks it: (name, noise, tag, run dir)."""
    for name, data, noise in cell_list:
        for seed in SEEDS:
            tag = f"_{name}_{noise.replace(':', '')}_s{seed}"
            scan(data, noise, seed, Path(out) / "runs" / tag, extra)
            yield name, noise, tag, Path(out) / "runs" / tag


def main() -> None:
    a = parse_args(__doc__)
    m: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for name, noise, tag, run_dir in scanned(a.out, cells(a)):
        got = read(run_dir)
        r = m[(name, noise)]
        if noise == "clean":
            for n in ("crossfit", *CANDIDATES):
                r[f"flags {n}"].append(float(got[n][1].sum()))
            continue
        truth = run_truth(open_run(run_dir))
        old = json.loads((Path(a.base) / "runs" / tag / "run.json").read_text())["noise"]["per_detector"]
        assert abs(old["crossfit"]["auroc"] - roc_auc_score(truth, -got["crossfit"][0])) < 1e-9, \
            f"{tag}: not the same training as --base"  # fmt: skip
        for n, (s, fl) in got.items():
            r[f"auroc {n}"].append(float(roc_auc_score(truth, -s)))
            r[f"f1 {n}"].append(f1(fl, truth))
            r[f"flags {n}"].append(float(fl.sum()))
        for n in ("knn_vote", "crossfit_knn"):
            r[f"auroc {n} fold 0"].append(old[n]["auroc"])
            r[f"f1 {n} fold 0"].append(old[n]["f1"])
    report(m)


def _paired(m: dict, keys: list, x: str, y: str) -> list[float]:
    return [u - v for k in keys for u, v in zip(m[k][x], m[k][y], strict=True)]


def report(m: dict[tuple[str, str], dict[str, list[float]]]) -> None:
    noisy = [k for k in m if k[1] != "clean"]
    unseen = [k for k in noisy if k in UNSEEN]
    names = ("crossfit", *CANDIDATES, "knn_vote")
    print("# The CNN's common embedding (all five fold models), on the dev cells: the planned study\n")
    print("`python scripts/cnn_allfolds_dev.py --out /work/cache/cnn_knn --base /work/cache/cnn_score --pneumonia "
          ".../pneumoniamnist_modified.npz --breast .../breastmnist.npz` (3 seeds; `labeltrace scan --model "
          "small-cnn`; mean over seeds; the rule is in the script's docstring; * = a cell the exploratory "
          "look, `dev-cnn-knn.md`, did not see)\n")  # fmt: skip
    print("| cell | noise | " + " | ".join(f"AUROC {n}" for n in names) + " | " + " | ".join(f"F1 {n}" for n in names)
          + " | knn_vote F1 fold 0 | " + " | ".join(f"flags {n}" for n in names[:3]) + " |")  # fmt: skip
    print("|---|---|" + "---|" * (2 * len(names) + 4))
    for k in noisy:
        r = m[k]
        print(f"| {k[0]}{' *' if k in unseen else ''} | {k[1]} | "
              + " | ".join(f"{np.mean(r[f'auroc {n}']):.3f}" for n in names) + " | "
              + " | ".join(f"{np.mean(r[f'f1 {n}']):.3f}" for n in names) + f" | {np.mean(r['f1 knn_vote fold 0']):.3f} | "
              + " | ".join(f"{np.mean(r[f'flags {n}']):.1f}" for n in names[:3]) + " |")  # fmt: skip
    print("\nThe clean cells (original labels): flagged per seed, mean\n")
    print("| cell | " + " | ".join(names[:3]) + " |\n|---|---|---|---|")
    clean = [k for k in m if k[1] == "clean"]
    for k in clean:
        print(f"| {k[0]} | " + " | ".join(f"{np.mean(m[k][f'flags {n}']):.1f}" for n in names[:3]) + " |")
    print("\nA. The recording's embedding: the common space against the first fold model's (22 cells x 3 seeds)\n")
    print("| detector | ΔAUROC | ΔF1 |\n|---|---|---|")
    da = {n: t_interval(_paired(m, noisy, f"auroc {n}", f"auroc {n} fold 0")) for n in ("knn_vote", "crossfit_knn")}
    dfa = {n: t_interval(_paired(m, noisy, f"f1 {n}", f"f1 {n} fold 0")) for n in ("knn_vote", "crossfit_knn")}
    for n, d in da.items():
        print(f"| {n} | {interval_text(*d, '+.4f')} | {interval_text(*dfa[n], '+.4f')} |")
    a_ok = da["knn_vote"][1] > 0 and dfa["crossfit_knn"][0] >= 0
    print(f"\nRule A: {'adopt' if a_ok else 'do not adopt'} the common embedding.\n")
    print("B. Against the default `crossfit`, paired over seeds (worst cell: the lowest per-cell mean ΔF1)\n")
    print("| candidate | ΔAUROC (22 cells) | ΔF1 (22 cells) | worst cell | ΔF1 (7 unseen) | worst unseen | "
          "clean flags / crossfit's | passes |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    best, best_df = None, -np.inf
    for n in CANDIDATES:
        dA, dF = t_interval(_paired(m, noisy, f"auroc {n}", "auroc crossfit")), t_interval(_paired(m, noisy, f"f1 {n}", "f1 crossfit"))
        cell = {k: float(np.mean(np.subtract(m[k][f"f1 {n}"], m[k]["f1 crossfit"]))) for k in noisy}
        du = t_interval(_paired(m, unseen, f"f1 {n}", "f1 crossfit"))
        ratio = np.mean([np.mean(m[k][f"flags {n}"]) for k in clean]) / np.mean([np.mean(m[k]["flags crossfit"]) for k in clean])
        ok = (dF[1] > 0 and dA[2] >= 0 and min(cell.values()) >= -0.03 and du[0] >= 0
              and min(cell[k] for k in unseen) >= -0.03 and ratio <= 1.1)  # fmt: skip
        if ok and dF[0] > best_df:
            best, best_df = n, dF[0]
        print(f"| {n} | {interval_text(*dA, '+.4f')} | {interval_text(*dF, '+.4f')} | {min(cell.values()):+.4f} | "
              f"{interval_text(*du, '+.4f')} | {min(cell[k] for k in unseen):+.4f} | {ratio:.2f} | {'yes' if ok else 'no'} |")
    print(f"\nRule B: {'adopt ' + repr(best) if best else 'keep crossfit'} for networks trained in the scan.")


if __name__ == "__main__":
    main()
