"""What ``--resolution auto`` changed on the test cells: the rows at the old fixed 96 px against
the rows with the probe's pick, paired over seeds (a report; nothing is chosen from it).

    python scripts/resolution_test.py > benchmarks/results/test-resolution.md

Reads ``benchmarks/results/test-96px/test-*.csv`` (the test rows before the default changed,
all at 96 px) and ``benchmarks/results/test-*.csv`` (``resolution = "auto"``) — for CIFAR-10N and
CIFAR-10H the rows kept in ``benchmarks/results/test-factor2/`` instead, written with the same
large-set count as the 96 px rows (``count.IN_SAMPLE_FACTOR`` 2, before the change
``scripts/large_count_test.py`` reports), so each pair differs by the resolution alone. Only the cells
where the probe took 224 px for at least one seed are listed (elsewhere the two are the same
trainings, read from the bench cache); the confusion noise reads the 96 px features in both, so
every pair has the same labels. All files as of ``ROWS``, the commit of this report: the
BreastMNIST and PneumoniaMNIST rows were rerun since (other changes, RESULTS §1).
"""

from __future__ import annotations

from collections import Counter

from committed import results_at  # scripts/, run as a script

from labeltrace.bench.paired import before_after, tagged_rows
from labeltrace.evaluate.metrics import interval_text

ROWS = "f82937e"  # the commit this report was written from
DETECTORS = ("crossfit", "cleanlab", "single")
METRICS = (("f1", "F1", ".3f"), ("auroc", "AUROC", ".3f"), ("n_flagged", "flagged", ".1f"),
           ("recall_at_200", "recall@200", ".3f"))


def main() -> None:
    res = results_at(ROWS)
    new = sorted(p for p in res.glob("test-*.csv") if not p.stem.endswith("_sei_epochs"))
    new = [res / "test-factor2" / p.name if (res / "test-factor2" / p.name).is_file() else p for p in new]
    kept = [p.name for p in new if p.parent.name == "test-factor2"]
    old = [res / "test-96px" / p.name for p in new]
    missing = [str(p) for p in old if not p.is_file()]
    if missing:
        raise SystemExit(f"no 96 px rows for {missing}")
    rows = tagged_rows(new, "auto", DETECTORS) + tagged_rows(old, "96", DETECTORS)
    px: dict[tuple[str, str, str], Counter[str]] = {}
    for r in rows:
        if r["detector"] == "crossfit@auto":
            res = r.get("resolution")  # absent: a row written before the bench recorded it
            px.setdefault((r["dataset"], r["labels"], r["model"]), Counter())["config" if res is None else res or "–"] += 1
    changed = {c for c, n in px.items() if n.get("224")}
    print("# `--resolution auto` on the test cells: 96 px → the probe's pick\n")
    print("`python scripts/resolution_test.py > benchmarks/results/test-resolution.md`; cells where the probe "
          "took 224 px for at least one seed; mean change, paired over seeds [95 % t-interval]. A report: "
          "the margin was chosen on the dev cells (`dev-resolution-probe.md`).\n")  # fmt: skip
    if kept:
        print(f"Rows with the large-set count before its factor changed (`test-factor2/`): {', '.join(kept)}.\n")
    print("| dataset | labels | model | 224 px seeds | detector | " + " | ".join(m[1] for m in METRICS) + " |")
    print("|---|---|---|---|---|" + "---|" * len(METRICS))
    means = before_after(rows, [m[0] for m in METRICS], DETECTORS, after="auto", before="96")
    cells = [c for c in dict.fromkeys((r["dataset"], r["labels"], r["model"]) for r in rows) if c in changed]
    for c in cells:
        for det in DETECTORS:
            vals = []
            for metric, _, f in METRICS:
                p = means.get((c, det, metric))
                vals.append("–" if p is None else interval_text(p["mean"], p["lo"], p["hi"], f"+{f}"))
            n224 = px[c]["224"]
            print(f"| {c[0]} | {c[1]} | {c[2]} | {n224}/{sum(px[c].values())} | {det} | "
                  + " | ".join(vals) + " |")
    stale = sorted({c[0] for c, n in px.items() if n.get("config")})
    if stale:
        print(f"\nNot rerun with `resolution = \"auto\"` yet (rows without a resolution column): {', '.join(stale)}.")


if __name__ == "__main__":
    main()
