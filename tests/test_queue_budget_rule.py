"""`queue --budget` simulates the review under the consensus rule stored with the decisions."""

from __future__ import annotations

from pathlib import Path

import pytest
from runfactory import make_run

from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.preflight import preflight
from labeltrace.relabel.queue import write_queue
from labeltrace.relabel.runstore import run_store
from labeltrace.rundir import open_run


def test_the_budget_estimate_follows_the_stored_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                     ) -> None:  # fmt: skip
    rd = make_run(tmp_path, n=40, k=3, seed=8, crossfit=True)
    run = open_run(rd)
    single = write_queue(rd, tmp_path / "q.csv", method="cross_entropy", budget=12, repeats=20)
    assert single.rule == ConsensusRule()
    two = ConsensusRule(agree=2, count_given=True)
    run_store(run).set_rule(two)
    q = write_queue(rd, tmp_path / "q.csv", method="cross_entropy", budget=12, repeats=20)
    assert q.rule == two and q.estimate is not None
    want = preflight(q.posterior.probs, run.column("given_label_id"), budget=12, priority="cross_entropy",
                     rule=two, repeats=20)  # fmt: skip
    assert (q.estimate.fixed, q.estimate.broken, q.estimate.used) == (want.fixed, want.broken, want.used)
    from labeltrace.cli import main

    assert main(["queue", str(rd), "--out", str(tmp_path / "q.csv"), "--budget", "5"]) == 0
    assert "consensus: 2 agreeing reviews, more than any other label, the given label counts as one" in \
        capsys.readouterr().out


def test_the_budget_estimate_says_it_ignores_decisions_already_made(tmp_path: Path) -> None:
    """Re-run after 31 decisions, it still promised to fix as many, without a word."""
    rd = make_run(tmp_path, n=40, k=3, seed=8, crossfit=True)
    q = write_queue(rd, tmp_path / "q.csv", method="cross_entropy", budget=5, repeats=20)
    assert "already have a decision" not in (q.estimate_note or "")
    run = open_run(rd)
    st = run_store(run)
    st.add(0, run.classes[1], reviewer="ada")
    st.add(1, "unsure", reviewer="ada")
    q = write_queue(rd, tmp_path / "q.csv", method="cross_entropy", budget=5, repeats=20)
    assert "2 samples already have a decision" in (q.estimate_note or "")
