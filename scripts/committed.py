"""The benchmark results as of a commit, for the test reports that pair rows a later rerun has
replaced in the working tree (each report names the commit its rows come from, so its one command
keeps printing the committed file)."""

from __future__ import annotations

import atexit
import csv
import functools
import io
import shutil
import subprocess
import tarfile
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: {(labels, detector): {seed: {"f1", "auroc"}}}
Rows = dict[tuple[str, str], dict[str, dict[str, float]]]


@functools.cache
def results_at(commit: str) -> Path:
    """A temporary copy of ``benchmarks/results`` as of ``commit`` (removed when the process ends)."""
    tar = subprocess.run(["git", "archive", commit, "benchmarks/results"], cwd=ROOT, check=True,
                         capture_output=True).stdout  # fmt: skip
    out = Path(tempfile.mkdtemp(prefix=f"results-{commit}-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(out, filter="data")
    return out / "benchmarks" / "results"


def rows_at(commit: str, name: str, model: str) -> Rows:
    """F1 and AUROC of ``model``'s rows in the test CSV ``name`` (e.g. ``test-breastmnist.csv``) as
    of ``commit``, by cell and detector, then seed."""
    out: Rows = defaultdict(dict)
    for r in csv.DictReader(io.StringIO((results_at(commit) / name).read_text())):
        if r["model"] == model:
            out[(r["labels"], r["detector"])][r["seed"]] = {"f1": float(r["f1"]), "auroc": float(r["auroc"])}
    return out


def pooled_lines(rows: Iterable[dict[str, str]], detectors: Sequence[str], *, after: str, before: str) -> list[str]:
    """Markdown: per detector, the change of F1 and AUROC from ``detector@before`` to
    ``detector@after`` (rows tagged by ``labeltrace.bench.paired.tagged_rows``), paired by dataset,
    label set and seed and pooled over all pairs (mean, 95 % t-interval)."""
    import numpy as np

    from labeltrace.evaluate.metrics import interval_text, t_interval

    by = {(r["dataset"], r["labels"], r["detector"], r["seed"]): r for r in rows}
    lines = ["| detector | pairs | ΔF1 | ΔAUROC |", "|---|---|---|---|"]
    for det in detectors:
        d: dict[str, list[float]] = defaultdict(list)
        for (ds, labels, name, seed), r in by.items():
            other = by.get((ds, labels, f"{det}@{before}", seed))
            if name == f"{det}@{after}" and other is not None:
                for m in ("f1", "auroc"):
                    d[m].append(float(r[m]) - float(other[m]))
        if d["f1"]:
            lines.append(f"| {det} | {len(d['f1'])} | " + " | ".join(
                interval_text(*t_interval(np.array(d[m])), "+.3f") for m in ("f1", "auroc")) + " |")  # fmt: skip
    return lines
