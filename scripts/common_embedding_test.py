"""What the fold models' common embedding changed on the test cells it touches — the small CNN on
BreastMNIST, where ``crossfit_knn`` reads the network's embedding (a report; the embedding was
chosen on the dev cells, ``dev-cnn-allfolds.md``, and the default ``crossfit`` does not read it).

    python scripts/common_embedding_test.py > benchmarks/results/test-common-embedding.md

Reads ``benchmarks/results/test-breastmnist.csv`` as of ``AFTER`` (rerun after the change, on a
fresh cache; the CNN rows were rerun again since, at 20 epochs) and as of ``BEFORE`` (the first fold model's embedding; other trainings of the same
seeds: a CNN's training on this CPU differs between sessions in the second or third decimal, so
before → after mixes the change with that noise). The clean comparison is inside each run:
``crossfit_knn − crossfit``, paired over seeds, both read off the same cross-fitted recording.
"""

from __future__ import annotations

from collections import defaultdict

from committed import rows_at  # scripts/, run as a script

from labeltrace.evaluate.metrics import interval_text, t_interval

CSV = "benchmarks/results/test-breastmnist.csv"
BEFORE = "02bbe34"  # the last commit whose test rows used the first fold model's embedding
AFTER = "f75a517"  # the rerun with the common embedding (15 epochs)
MODEL = "small-cnn"


def main() -> None:
    after, before = (rows_at(c, "test-breastmnist.csv", MODEL) for c in (AFTER, BEFORE))
    print("# The CNN's common embedding on the BreastMNIST test cells (`crossfit_knn`)\n")
    print("`python scripts/common_embedding_test.py > benchmarks/results/test-common-embedding.md`; 5 seeds; "
          f"before = `git show {BEFORE}:{CSV}` (the first fold model's embedding), after = the rerun with the "
          "common one. Δ = `crossfit_knn − crossfit` inside each run, paired over seeds [95 % t-interval].\n")  # fmt: skip
    print("| labels | crossfit F1 before / after | crossfit_knn F1 before → after | ΔF1 before | ΔF1 after "
          "| crossfit_knn AUROC before → after | ΔAUROC before | ΔAUROC after |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    pooled: dict[tuple[str, str], list[float]] = defaultdict(list)
    for labels in dict.fromkeys(k[0] for k in after):
        cells = []
        for side, rows in (("before", before), ("after", after)):
            cf, kn = rows[(labels, "crossfit")], rows[(labels, "crossfit_knn")]
            seeds = sorted(set(cf) & set(kn))
            for m in ("f1", "auroc"):
                d = [kn[s][m] - cf[s][m] for s in seeds]
                pooled[(side, m)] += d
                cells.append((side, m, t_interval(d), sum(kn[s][m] for s in seeds) / len(seeds),
                              sum(cf[s][m] for s in seeds) / len(seeds)))  # fmt: skip
        c = {(side, m): (iv, k, f) for side, m, iv, k, f in cells}
        print(f"| {labels} | {c[('before', 'f1')][2]:.3f} / {c[('after', 'f1')][2]:.3f} | "
              f"{c[('before', 'f1')][1]:.3f} → {c[('after', 'f1')][1]:.3f} | {interval_text(*c[('before', 'f1')][0], '+.3f')} | "
              f"{interval_text(*c[('after', 'f1')][0], '+.3f')} | {c[('before', 'auroc')][1]:.3f} → {c[('after', 'auroc')][1]:.3f} | "
              f"{interval_text(*c[('before', 'auroc')][0], '+.3f')} | {interval_text(*c[('after', 'auroc')][0], '+.3f')} |")  # fmt: skip
    print("\nPooled over the 8 cells' seeds (40 pairs): `crossfit_knn − crossfit`\n\n| rows | ΔF1 | ΔAUROC |\n|---|---|---|")
    for side in ("before", "after"):
        print(f"| {side} | {interval_text(*t_interval(pooled[(side, 'f1')]), '+.4f')} | "
              f"{interval_text(*t_interval(pooled[(side, 'auroc')]), '+.4f')} |")


if __name__ == "__main__":
    main()
