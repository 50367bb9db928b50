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
