"""How often the scan's contradicted-class warning fires on the small-CNN dev scans (a description,
nothing is chosen from it; the threshold is "most", :data:`labeltrace.diagnostics.MOST`).

    python scripts/contradicted_dev.py --cnn /work/cache/cnn_knn > benchmarks/results/dev-contradicted.md

Reads the run directories of ``cnn_allfolds_dev.py`` (``labeltrace scan --model small-cnn``, 3
seeds per cell) and applies :func:`labeltrace.diagnostics.contradicted_classes` to each run's given
and suggested labels (the suggestion is the argmax of the posterior the warning reads). Prints, per
cell, in how many seeds it fires, the classes it names, and their share contradicted and wrong.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from cnn_allfolds_dev import run_truth  # scripts/, run as a script

from labeltrace.diagnostics import contradicted_classes
from labeltrace.rundir import open_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cnn", required=True, help="cnn_allfolds_dev.py's --out (the small-CNN scans)")
    a = ap.parse_args()
    cells: dict[str, list[tuple[list[str], list[float], list[float]]]] = defaultdict(list)
    for d in sorted((Path(a.cnn) / "runs").iterdir()):
        run = open_run(d)
        given = run.column("given_label_id").astype(np.int64)
        sugg = run.column("suggested_label_id").astype(np.int64)
        post = np.eye(len(run.classes))[sugg]  # the argmax is all the warning reads
        rows = contradicted_classes(post, given, list(run.classes))
        noisy = run_truth(run)
        ids = [run.classes.index(r["class"]) for r in rows]
        cells[d.name[1:].rsplit("_", 1)[0]].append(
            ([r["class"] for r in rows], [r["contradicted"] / r["samples"] for r in rows],
             [float(noisy[given == c].mean()) for c in ids]))  # fmt: skip
    print("# The contradicted-class warning on the small-CNN dev scans\n")
    print("`python scripts/contradicted_dev.py --cnn /work/cache/cnn_knn > benchmarks/results/dev-contradicted.md` "
          "(3 seeds per cell; a class is named when the scan's posterior contradicts more than half of its labels)\n")
    print("| cell | seeds it fires | classes named | share contradicted | share wrong |\n|---|---|---|---|---|")
    for cell, seeds in cells.items():
        fired = [s for s in seeds if s[0]]
        names = sorted({c for s in fired for c in s[0]})
        con = [x for s in fired for x in s[1]]
        wrong = [x for s in fired for x in s[2]]
        span = lambda v: f"{min(v):.2f}–{max(v):.2f}" if v else "–"
        print(f"| {cell} | {len(fired)}/{len(seeds)} | {', '.join(names) or '–'} | {span(con)} | {span(wrong)} |")


if __name__ == "__main__":
    main()
