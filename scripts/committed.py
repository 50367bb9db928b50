"""The benchmark results as of a commit, for the test reports that pair rows a later rerun has
replaced in the working tree (each report names the commit its rows come from, so its one command
keeps printing the committed file)."""

from __future__ import annotations

import atexit
import functools
import io
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
