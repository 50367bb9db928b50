"""The frozen backbone's forward passes in bfloat16 against float32, on the frozen-feature dev cells.

    python scripts/extract_precision_dev.py --cache /work/cache/bench > benchmarks/results/dev-extract-precision.md

Each dev cell with the head on frozen EfficientNet-Lite0 features is run twice on the same noisy
labels, folds and seeds (the confusion noise drawn once, from the float32 features, as the bench
draws it): once on the float32 features (``labeltrace.models.inputs.prepare_inputs``, the default),
once on features extracted under ``torch.autocast`` to bfloat16 (``precision="bfloat16"``, their own
cache entry); the resolution is the float32 arm's in both. Every detector that reads the features
is scored: the default ``crossfit`` (cross-fitted head), the cleanlab recipe (logistic regression on
the features), ``single`` (one plain run) and the kNN vote. The extraction's seconds are measured
per dataset and resolution, alone on the machine: each arm twice into an empty cache, in the order
float32, bfloat16, bfloat16, float32, the faster of its two kept.

Decision rule, written before the runs: ``auto`` may take bfloat16 for the backbone (on a device
with native bfloat16) only once a test gate agrees; this study makes it a candidate if, over the
noisy dev cells' seeds, ``crossfit``'s paired ΔF1 has a 95 % t-interval whose lower end is at or
above −0.005, its ΔAUROC's at or above −0.003, no cell's mean ΔF1 is below −0.02, the clean cells
are flagged at most 5 % more often, and extraction at 224 px is at least 1.5 × faster. Dev cells
only (benchmarks/SPLIT.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from labeltrace.bench.cells import CellRunner
from labeltrace.bench.config import load_config
from labeltrace.bench.grid import expand, load_dataset
from labeltrace.evaluate.metrics import interval_text, t_interval
from labeltrace.models.inputs import prepare_inputs

DEV = Path(__file__).resolve().parents[1] / "benchmarks" / "configs" / "dev.toml"
DATASETS = ("pneumoniamnist-val", "breastmnist-val", "pneumoniamnist-train-rest", "cifar10n-dev-2k",
            "pneumoniamnist-val-224", "breastmnist-val-224", "cifar10n-dev-2k-224")  # fmt: skip
DETECTORS = ("crossfit", "cleanlab", "single", "knn_vote")
ARMS = ("float32", "bfloat16")


def parse(doc: str, datasets: tuple[str, ...]) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """``--cache``, ``--only`` (default ``datasets``) and ``--detectors`` (default every one the study
    scores; the rule reads ``crossfit`` alone) of a study's command line."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="the bench cache (features and trainings are kept there)")
    ap.add_argument("--only", default=",".join(datasets))
    ap.add_argument("--detectors", default=",".join(DETECTORS),
                    help="the detectors scored (default all; crossfit, whose rows the rule reads, always)")
    args = ap.parse_args()
    dets = tuple(d for d in DETECTORS if d == "crossfit" or d in args.detectors.split(","))
    unknown = set(args.detectors.split(",")) - set(DETECTORS)
    if unknown:
        ap.error(f"--detectors: {', '.join(sorted(unknown))} not among {', '.join(DETECTORS)}")
    return args.cache, tuple(args.only.split(",")), dets


def main() -> None:
    cache, only, dets = parse(__doc__, DATASETS)
    rows, seconds = paired_rows(DEV, "dev", cache, only, timing=True, detectors=dets)
    print("# The frozen backbone in bfloat16 against float32 (frozen-feature dev cells)\n")
    print("`python scripts/extract_precision_dev.py --cache /work/cache/bench > "
          "benchmarks/results/dev-extract-precision.md` (3 seeds; the same noisy labels, folds and resolution in "
          "both arms; Δ = bfloat16 − float32, paired over seeds; the decision rule is in the script's docstring)\n")  # fmt: skip
    report(rows, seconds, only)


def paired_rows(config: Path, split: str, cache: str, only: tuple[str, ...], *, timing: bool,
                detectors: tuple[str, ...] = DETECTORS) -> tuple[dict[tuple[str, str, str, str], list[dict[str, float]]], dict]:  # fmt: skip
    """Every frozen-feature cell of ``config`` (called ``split``; of the datasets ``only``) scored by
    ``detectors`` on float32 and on bfloat16 features (the bench's ``backbone_precision``), and (``timing``) each
    dataset's extraction seconds per arm. The resolution is the same in both: a fixed one, or
    ``auto``'s probe, which reads float32 features."""
    cfg = load_config(str(config))
    assert cfg.name == split, f"{split} cells only (benchmarks/SPLIT.md), not {cfg.name!r}"
    cfg = replace(cfg, cache_dir=cache)
    data, seconds = {}, {}
    rows: dict[tuple[str, str, str, str], list[dict[str, float]]] = defaultdict(list)
    for cell in expand(cfg):
        name = cell.dataset.name
        if name not in only or not cell.model.on_features:
            continue
        if name not in data:
            data[name] = load_dataset(cell.dataset, cfg.cache_path, log=lambda s: None)
        d = data[name]
        fixed = cell.dataset.resolution
        if timing and fixed is not None and (name, fixed, "float32") not in seconds:
            seconds |= timed(d.dataset(), name, fixed)  # before the bench's runner extracts anything
        for arm in ARMS:  # the bench's head on features extracted in the arm's precision (its backbone_precision);
            # the resolution is auto's probe on the float32 features in both, as labeltrace scan's
            model = replace(cell.model, backbone_precision=arm)
            run = CellRunner(replace(cell, model=model), d, cfg, log=lambda s: None)
            ev = run.evidence()
            for det in detectors:
                row = run.row(det, ev)
                rows[(name, cell.labels, det, arm)].append(
                    {"f1": row["f1"], "auroc": row["auroc"], "flagged": row["n_flagged"], "noisy": row["n_noisy"],
                     "seed": cell.seed, "r": int(run.resolution or d.base_resolution)})  # fmt: skip
    return rows, seconds


def timed(ds: object, name: str, r: int) -> dict[tuple[str, int, str], tuple[float, int]]:
    """Seconds of each arm's whole extraction (decoding included) into an empty cache, run in the order
    float32, bfloat16, bfloat16, float32; the faster of each arm's two (the first run pays the cold file
    cache)."""
    best: dict[str, float] = {}
    for arm in ("float32", "bfloat16", "bfloat16", "float32"):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            prepare_inputs(ds, "effnet-lite0", resolution=r, precision=arm, cache_dir=tmp)  # type: ignore[arg-type]
            best[arm] = min(best.get(arm, float("inf")), time.perf_counter() - t0)
    return {(name, r, arm): (s, len(ds)) for arm, s in best.items()}  # type: ignore[arg-type]


def report(rows: dict, seconds: dict, only: tuple[str, ...]) -> None:
    """The tables (extraction seconds where measured, detection per cell, pooled) and the rule's verdict."""
    speedup = extraction(seconds) if seconds else None
    detection(rows, only, speedup)


def extraction(seconds: dict) -> dict[int, list[float]]:
    """The extraction table; each resolution's speed-ups."""
    print("## Extraction (seconds, decoding included, alone on the 2-core machine, into an empty cache; "
          "the faster of two runs per arm)\n")  # fmt: skip
    print("| dataset | px | images | float32 s | bfloat16 s | speed-up |")
    print("|---|---|---|---|---|---|")
    speedup: dict[int, list[float]] = defaultdict(list)
    for (name, r, arm), (s, n) in sorted(seconds.items()):
        if arm == "float32" and (name, r, "bfloat16") in seconds:
            b = seconds[(name, r, "bfloat16")][0]
            speedup[r].append(s / b)
            print(f"| {name} | {r} | {n} | {s:.1f} | {b:.1f} | {s / b:.2f} × |")
    return speedup


def detection(rows: dict, only: tuple[str, ...], speedup: dict[int, list[float]] | None) -> None:
    """The per-cell and pooled tables, and the rule's verdict (its speed check where ``speedup`` was measured)."""
    print("\n## Detection\n")
    print("| dataset | labels | detector | F1 float32 | F1 bfloat16 | ΔF1 | AUROC float32 | AUROC bfloat16 | ΔAUROC "
          "| flagged float32 | flagged bfloat16 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    pooled: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    worst: dict[str, float] = {}
    for (name, lab, det, arm), a in sorted(rows.items()):
        if arm != "float32":
            continue
        b = rows[(name, lab, det, "bfloat16")]
        assert [x["seed"] for x in a] == [x["seed"] for x in b]
        noisy = a[0]["noisy"] > 0
        fa, fb = (np.array([x["f1"] for x in v]) for v in (a, b))
        ua, ub = (np.array([x["auroc"] for x in v]) for v in (a, b))
        na, nb = (np.array([x["flagged"] for x in v], float) for v in (a, b))
        if noisy:
            pooled[det]["f1"] += list(fb - fa)
            pooled[det]["auroc"] += list(ub - ua)
            worst[det] = min(worst.get(det, 0.0), float((fb - fa).mean()))
            cells = f"{fa.mean():.3f} | {fb.mean():.3f} | {(fb - fa).mean():+.4f} | {ua.mean():.3f} | {ub.mean():.3f} | {(ub - ua).mean():+.4f}"
        else:
            pooled[det]["clean_a"] += list(na)
            pooled[det]["clean_b"] += list(nb)
            cells = "| | | | |"
        print(f"| {name} | {lab} | {det} | {cells} | {na.mean():.1f} | {nb.mean():.1f} |")
    print("\n## Pooled over the noisy cells' seeds (95 % t-interval) and the clean cells' flags\n")
    print("| detector | ΔF1 | worst cell ΔF1 | ΔAUROC | flagged on clean cells, float32 → bfloat16 |")
    print("|---|---|---|---|---|")
    for det in (d for d in DETECTORS if d in pooled):
        p = pooled[det]
        f, u = (t_interval(np.array(p[k])) for k in ("f1", "auroc"))
        ca, cb = np.mean(p["clean_a"]) if p["clean_a"] else float("nan"), np.mean(p["clean_b"]) if p["clean_b"] else float("nan")
        print(f"| {det} | {interval_text(*f, '+.4f')} | {worst[det]:+.4f} | {interval_text(*u, '+.4f')} | "
              f"{ca:.1f} → {cb:.1f} |")  # fmt: skip
    print(f"\n{len(pooled['crossfit']['f1'])} noisy cell-seeds, {len(pooled['crossfit']['clean_a'])} clean; "
          f"datasets: {', '.join(only)}.\n")  # fmt: skip
    p = pooled["crossfit"]
    f, u = t_interval(np.array(p["f1"])), t_interval(np.array(p["auroc"]))
    clean = np.mean(p["clean_b"]) <= 1.05 * np.mean(p["clean_a"]) if p["clean_a"] else True
    checks = {"ΔF1 lower end ≥ −0.005": f[1] >= -0.005, "ΔAUROC lower end ≥ −0.003": u[1] >= -0.003,
              "no cell's mean ΔF1 below −0.02": worst["crossfit"] >= -0.02,
              "clean cells flagged at most 5 % more": bool(clean)}  # fmt: skip
    if speedup is not None:  # the dev study's rule; the test gate reads quality alone
        checks["224 px at least 1.5 × faster"] = min(speedup.get(224, [0.0])) >= 1.5
    verdict = ("a candidate for auto (a test gate decides)", "not a candidate") if speedup is not None else \
        ("the gate is passed", "the gate is not passed")  # fmt: skip
    print("**The rule (crossfit):** " + "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in checks.items())
          + f" — **{verdict[0] if all(checks.values()) else verdict[1]}**.")


if __name__ == "__main__":
    main()
