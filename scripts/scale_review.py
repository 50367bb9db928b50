"""What the review stage costs at scale: one review request with many decisions stored, and
``labeltrace queue --budget``'s pre-flight estimate on a large queue (synthetic runs and posteriors).

    python scripts/scale_review.py app --n 100000 --k 10 --decisions 10000 --work /tmp/scale-review
    python scripts/scale_review.py preflight --n 100000 --k 10 --budget 1000

``app`` builds a run of ``n`` samples (``tests/runfactory.make_run``, once per ``--work``), stores
``--decisions`` decisions of one reviewer, then times ``GET /api/state``, ``GET /api/item`` and
``POST /api/decision`` through FastAPI's test client (mean of 5 after one warm-up). ``preflight``
times :func:`labeltrace.relabel.preflight.preflight` (200 repeats) on a random softmax posterior.
Run it alone on the machine: the times are the point. Run from the repository root with
``PYTHONPATH=src:tests``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def _time(f, reps: int = 5) -> float:
    f()  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        r = f()
        assert getattr(r, "status_code", 200) == 200, r.text[:200]
    return (time.perf_counter() - t0) / reps


def app(n: int, k: int, decisions: int, work: Path) -> None:
    from fastapi.testclient import TestClient
    from runfactory import make_run

    from labeltrace.review import create_app

    run_dir = work / f"run-{n}-{k}" / "run"
    if not (run_dir / "run.json").exists():
        make_run(run_dir.parent, n=n, k=k, with_files=False, epochs=8)
    for f in ("reviews.db", "reviews.db-wal", "reviews.db-shm"):
        (run_dir / f).unlink(missing_ok=True)
    a = create_app(run_dir)
    c = TestClient(a, base_url="http://127.0.0.1")
    classes = a.state.review.classes
    a.state.review.store.add_many([{"sample_id": i, "decision": classes[i % k], "reviewer": "ada"}
                                   for i in range(decisions)], source="app")  # fmt: skip
    nxt = iter(range(decisions + 1, n))
    rows = {
        "GET /api/state": lambda: c.get("/api/state", params={"reviewer": "ada"}),
        "GET /api/item": lambda: c.get(f"/api/item/{decisions + 5}", params={"reviewer": "ada"}),
        "POST /api/decision": lambda: c.post("/api/decision", json={"sample_id": next(nxt), "decision": classes[0],
                                                                    "reviewer": "ada"}),  # fmt: skip
    }
    for name, f in rows.items():
        print(f"| {n:,} | {k} | {decisions:,} | {name} | {_time(f) * 1e3:.0f} ms |")


def preflight(n: int, k: int, budget: int) -> None:
    from labeltrace.relabel.preflight import preflight as run

    rng = np.random.default_rng(0)
    p = np.exp(rng.normal(size=(n, k)) * 2)
    p /= p.sum(axis=1, keepdims=True)
    y = rng.integers(0, k, n)
    t0 = time.perf_counter()
    run(p, y, budget=budget)
    print(f"| {n:,} | {k} | {budget:,} | preflight, 200 repeats | {time.perf_counter() - t0:.1f} s |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("app", "preflight"))
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--decisions", type=int, default=10_000)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/scale-review"))
    a = ap.parse_args()
    if a.what == "app":
        app(a.n, a.k, a.decisions, a.work)
    else:
        preflight(a.n, a.k, a.budget)


if __name__ == "__main__":
    main()
