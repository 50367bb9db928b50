"""What the large-set counts' factors changed on the test cells with N ≥ 5,000, paired over seeds
(a report; nothing is chosen from it): crossfit's in-sample factor 2 → 2.5 (``dev-large-count.md``)
and the one-training cap 3 → 3.5 × the run's rate (``single``; ``dev-single-counts.md``), both
chosen on the dev cells.

    python scripts/large_count_test.py > benchmarks/results/test-large-count.md

Reads ``benchmarks/results/test-factor2/test-*.csv`` (the rows of CIFAR-10N and CIFAR-10H before
the change) and the same files in ``benchmarks/results/`` (recomputed from the same cached
trainings with ``labeltrace bench ... --recompute-scores``): every pair has the same labels,
trainings and scores, and differs only by how many are flagged. The tags: ``before`` / ``after``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from labeltrace.bench.paired import before_after
from labeltrace.evaluate.metrics import interval_text

RES = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
DETECTORS = ("crossfit", "crossfit_knn", "single")
METRICS = (("f1", "F1", "+.3f"), ("precision", "precision", "+.3f"), ("recall", "recall", "+.3f"),
           ("n_flagged", "flagged", "+.1f"))  # fmt: skip


def _rows(path: Path, tag: str) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return [r | {"detector": f"{r['detector']}@{tag}"} for r in csv.DictReader(fh) if r["detector"] in DETECTORS]


def main() -> None:
    old = sorted(p for p in (RES / "test-factor2").glob("test-*.csv") if not p.stem.endswith("_sei_epochs"))
    rows = [r for p in old for r in _rows(p, "before") + _rows(RES / p.name, "after")]
    print("# The large-set counts' factors on the test cells: crossfit 2 → 2.5, single 3 → 3.5\n")
    print("`python scripts/large_count_test.py > benchmarks/results/test-large-count.md`; mean change, paired "
          "over seeds [95 % t-interval], and the mean flagged before → after. A report: the factors were chosen "
          "on the dev cells (`dev-large-count.md`, `dev-single-counts.md`).\n")  # fmt: skip
    print("| dataset | labels | true | detector | flagged before → after | " + " | ".join(f"Δ {m[1]}" for m in METRICS) + " |")
    print("|---|---|---|---|---|" + "---|" * len(METRICS))
    diffs = before_after(rows, [m[0] for m in METRICS], DETECTORS, after="after", before="before")
    cells = list(dict.fromkeys((r["dataset"], r["labels"], r["model"]) for r in rows))
    for c in cells:
        for det in DETECTORS:
            mine = [r for r in rows if (r["dataset"], r["labels"], r["model"]) == c]
            flags = {t: [float(r["n_flagged"]) for r in mine if r["detector"] == f"{det}@{t}"] for t in ("before", "after")}
            true = [float(r["n_noisy"]) for r in mine if r["detector"] == f"{det}@after"]
            vals = []
            for metric, _, f in METRICS:
                p = diffs.get((c, det, metric))
                vals.append("–" if p is None else interval_text(p["mean"], p["lo"], p["hi"], f))
            mean = lambda v: sum(v) / len(v)  # noqa: E731
            print(f"| {c[0]} | {c[1]} | {mean(true):.0f} | {det} | {mean(flags['before']):.0f} → {mean(flags['after']):.0f} | "
                  + " | ".join(vals) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
