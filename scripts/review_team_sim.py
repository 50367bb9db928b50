"""A team on one review page, simulated: how many samples do R reviewers settle with D decisions?

Each reviewer's page loads the sample it resumes at (``/api/state``, then ``/api/item``: shown),
reads it for a lognormal time (median 6 s, simulated — no waiting), posts a decision (the true
label, 10 % of the time a random one) and loads the ``next`` sample the answer names at once, as
``review.js`` does. A decision on a sample already settled when it is posted is wasted work (under
``--agree 1`` a disagreeing one turns it into a tie). Run on a synthetic run directory
(``tests/runfactory.make_run``)::

    python scripts/review_team_sim.py --reviewers 5 --agree 1

Measured 2026-12-06 (the defaults: N = 20,000, 400 decisions, seed 1; ``--agree 2`` beside):
before the review page's holds (:mod:`labeltrace.review.leases`, commit b6273e3; the commit
before it, 4862d68) five reviewers settled 106 samples under ``--agree 1``, 278 decisions wasted
(``--agree 2``: 95 settled, 197 wasted); with them 400, none wasted (``--agree 2``: 174 settled of
197 voted, none wasted — a tie waits for a third vote).
"""

from __future__ import annotations

import argparse
import heapq
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reviewers", type=int, default=5)
    p.add_argument("--agree", type=int, default=1)
    p.add_argument("--decisions", type=int, default=400)
    p.add_argument("--samples", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    from fastapi.testclient import TestClient
    from runfactory import make_run

    from labeltrace.relabel.consensus import ConsensusRule
    from labeltrace.review import create_app

    with tempfile.TemporaryDirectory() as tmp:
        rd = make_run(tmp, n=a.samples, k=5, with_files=False, epochs=8, seed=a.seed)
        c = TestClient(create_app(rd, consensus=ConsensusRule(agree=a.agree)), base_url="http://127.0.0.1")
        state = c.app.state.review  # type: ignore[attr-defined]
        truth = state.run.column("true_label_id").astype(int)
        rng = np.random.default_rng(a.seed)
        events: list[tuple[float, str, int]] = []
        for t0, who in sorted((rng.uniform(0, 30), f"r{j}") for j in range(a.reviewers)):  # pages open
            pos = c.get(f"/api/state?reviewer={who}").json()["resume"]
            c.get(f"/api/item/{pos}?reviewer={who}")
            heapq.heappush(events, (t0 + rng.lognormal(np.log(6), 0.5), who, pos))
        wasted = 0
        for _ in range(a.decisions):
            t, who, pos = heapq.heappop(events)
            i = c.get(f"/api/item/{pos}?reviewer={who}&peek=true").json()["id"]
            wasted += bool(state.verdicts().resolution.resolved[i])
            label = truth[i] if rng.random() > 0.1 else rng.integers(len(state.classes))
            nxt = c.post("/api/decision", json={"sample_id": i, "decision": state.classes[label],
                                                "reviewer": who}).json()["next"]  # fmt: skip
            c.get(f"/api/item/{nxt}?reviewer={who}")  # the page loads its next sample at once
            heapq.heappush(events, (t + rng.lognormal(np.log(6), 0.5), who, nxt))
        r = state.verdicts().resolution
        print(f"{a.reviewers} reviewers, --agree {a.agree}, {a.decisions} decisions on {a.samples:,} samples: "
              f"{int(r.resolved.sum())} settled, {int((r.n_votes > 0).sum())} voted, {wasted} decisions on samples "
              f"already settled when posted (ideal: {a.decisions // a.agree} settled)")


if __name__ == "__main__":
    main()
