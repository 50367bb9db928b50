"""`queue --budget` simulates the review under the consensus rule stored with the decisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from runfactory import make_run, rare_posterior

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


@pytest.mark.parametrize("rule", [ConsensusRule(), ConsensusRule(agree=2), ConsensusRule(agree=3, count_given=True)])
@pytest.mark.parametrize("budget", [1, 9, 400])
def test_preflight_replays_on_the_first_samples_what_the_whole_queue_would_do(rule, budget) -> None:
    """preflight simulates each repeat on the queue's first `budget` samples only (it had run every
    repeat over the whole queue: minutes at a million samples); the estimate is the same as
    campaigns over the whole queue, ties in the ranking included. Under single-expert review it
    draws the votes without stepping a campaign (156 s at a budget of 20,000): the same numbers."""
    from labeltrace.relabel.annotator import SimulatedAnnotator
    from labeltrace.relabel.campaign import Campaign
    from labeltrace.relabel.result import count_curves

    rng = np.random.default_rng(5)
    n, k = 300, 4
    p = rng.dirichlet(np.ones(k) * 0.7, n)
    p[:20] = p[20]  # tied priorities
    g = rng.integers(0, k, n)
    truth = p.argmax(axis=1)
    fixed, broken, used, samples = [], [], [], []
    for r in range(6):  # the campaign over the whole queue, as a review would run it
        c = Campaign(g, num_classes=k, budget=budget, priority="cross_entropy", posterior=p, seed=2,
                     annotator=SimulatedAnnotator(p, seed=2 + r), count_initial_label=rule.count_given,
                     agree=rule.agree)  # fmt: skip
        cur = count_curves(c.run(), truth=truth, ambiguous=np.zeros(n, bool), budget=budget)
        fixed.append(cur["fixed"][-1])
        used.append(c.relabels_used)
        samples.append(c.samples_reviewed)
        broken.append(int((g == truth).sum()) - (cur["correct"][-1] - cur["fixed"][-1]))
    e = preflight(p, g, budget=budget, rule=rule, repeats=6, seed=2)
    assert e.fixed == pytest.approx(np.mean(fixed), abs=0) and e.broken == pytest.approx(np.mean(broken), abs=0)
    assert (e.used, e.samples) == (np.mean(used), np.mean(samples))


def test_the_budget_estimate_says_when_the_model_learned_no_more_than_one_class(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """On 78 clean BreastMNIST labels, with held-out models no better than answering 'benign', the
    queue promised to fix 14 of '24 labels the model calls wrong' (a review)."""
    import labeltrace.diagnostics as diagnostics_mod

    rd = make_run(tmp_path, n=40, k=3, seed=8, crossfit=True)
    q = write_queue(rd, tmp_path / "q.csv", method="cross_entropy", budget=5, repeats=20)
    assert "than answering" not in (q.estimate_note or "")
    seen = {}

    def no_skill(suggested, given, classes):
        seen["args"] = (suggested, given)
        return 0.70, 0.73, "benign"

    monkeypatch.setattr(diagnostics_mod, "agreement", no_skill)
    q = write_queue(rd, tmp_path / "q.csv", method="cross_entropy", budget=5, repeats=20)
    assert "the model agrees with 70.0% of the given labels, no more than answering 'benign'" in q.estimate_note
    np.testing.assert_array_equal(seen["args"][0], q.posterior.probs.argmax(1))  # the queue's own posterior


def test_an_estimate_that_cannot_break_a_label_says_so_instead_of_0_to_0() -> None:
    """'to change 0 (95 % interval 0–0) right labels to wrong ones' was printed for every budget below
    the count the model disagrees with: the first B samples held no label the model agrees with, so
    its simulated reviewers could break none, whatever real reviewers do."""
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3) * 0.3, size=200)
    g = p.argmax(1).copy()
    g[:40] = (g[:40] + 1) % 3  # 40 labels the model calls wrong: the queue's first
    est = preflight(p, g, budget=30, repeats=20, seed=0)
    assert est.agreeing == 0 and est.broken == 0
    assert "changes no right label to a wrong one: what real reviewers' mistakes cost is not in it" in est.message()
    assert "interval 0–0" not in est.message()
    wide = preflight(p, g, budget=120, repeats=20, seed=0)
    assert wide.agreeing is not None and wide.agreeing > 0 and "right labels to wrong ones" in wide.message()
    assert est.sureness is not None and 1 / 3 <= est.sureness <= 1  # the reached samples' mean top probability
    near = np.full((200, 3), 1 / 3) + rng.uniform(0, 1e-3, (200, 3))
    flat = preflight(near / near.sum(1, keepdims=True), g, budget=30, repeats=20, seed=0)
    assert flat.sureness is not None and flat.sureness < 0.35  # a model that knows nothing: the queue warns


def test_a_model_unsure_of_the_samples_reached_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small CNN agreeing with 28 % of 1,500 CIFAR-10H labels: its estimate said 24 fixed for 100
    reviews (33.6 by the real votes), 319 broken for a full review (37), with no word of doubt."""
    from dataclasses import replace as dc_replace

    from labeltrace.relabel import queue as qmod

    rd = make_run(tmp_path, n=60, k=3, seed=2)
    sure = write_queue(rd, tmp_path / "q.csv", method="cross_entropy", budget=12, repeats=20)
    assert sure.estimate is not None and sure.estimate.sureness is not None
    assert "unsure" not in (sure.estimate_note or "") or sure.estimate.sureness < qmod.SURE
    real = qmod.preflight
    monkeypatch.setattr(qmod, "preflight", lambda *a, **k: dc_replace(real(*a, **k), sureness=0.31))
    q = write_queue(rd, tmp_path / "q2.csv", method="cross_entropy", budget=12, repeats=20)
    assert "the model is unsure of the samples the budget reaches (mean top probability 0.31)" in (q.estimate_note or "")


def test_a_budget_past_the_flagged_samples_says_the_runs_own_estimate_of_wrong_labels(tmp_path: Path) -> None:
    """On a nearly clean run the estimate said 'expected to fix 22 (15-29) of the 118 labels the
    model calls wrong' where the scan itself estimated about 5 wrong labels and flagged 4."""
    import json

    rd = make_run(tmp_path, n=60, k=3, seed=2)
    meta = json.loads((rd / "run.json").read_text())
    meta["noise_rate_estimate"] = 0.05
    (rd / "run.json").write_text(json.dumps(meta))
    q = write_queue(rd, tmp_path / "q.csv", method="cross_entropy", budget=59, repeats=5)
    assert q.estimate is not None
    assert f"(it estimates 3 wrong labels in all, against the {q.estimate.wrong:,} the model calls wrong)" in (
        q.estimate_note or "")


def test_a_budget_past_the_flagged_samples_says_when_the_scan_called_its_estimate_inflated(tmp_path: Path) -> None:
    """A clean rare-class set (15 pneumonia among 755 chest X-rays): the note read 'it estimates 334
    wrong labels in all, against the 15 the model calls wrong' with no word that the scan had found
    the 334 inflated by the class the model does not recognise."""
    import json

    from labeltrace.diagnostics import inflated_estimate

    post, given = rare_posterior(np.random.default_rng(1).uniform(0.001, 0.015, 15))
    words = inflated_estimate(post, given, ["normal", "pneumonia"])
    assert words is not None
    rd = make_run(tmp_path, n=60, k=3, seed=2)
    meta = json.loads((rd / "run.json").read_text())
    meta["noise_rate_estimate"] = 0.05
    q = write_queue(rd, tmp_path / "q.csv", method="cross_entropy", budget=59, repeats=5)
    assert "inflates" not in (q.estimate_note or "")  # no such warning in the run: nothing said
    meta["warnings"] = [*meta.get("warnings", []), words]
    (rd / "run.json").write_text(json.dumps(meta))
    q = write_queue(rd, tmp_path / "q2.csv", method="cross_entropy", budget=59, repeats=5)
    assert (f"(it estimates 3 wrong labels in all, against the {q.estimate.wrong:,} the model calls wrong; the scan "
            "warned that a class the model barely recognises inflates that estimate)") in (q.estimate_note or "")


def test_write_queue_refuses_settings_its_method_does_not_read(tmp_path: Path) -> None:
    """`write_queue(method="cross_entropy", gamma=0.9)` was accepted and recorded in the queue file though
    unread; gamma=5 or NaN too (the CLI refuses them outside [0, 1]); a seed without random or a budget,
    repeats without a budget, likewise; method="oracle" said it "needs true_dist=", a parameter
    write_queue has not. Each is refused before a file is written, as `labeltrace queue` refuses it."""
    rd = make_run(tmp_path, n=30, k=3, seed=8)
    out = tmp_path / "q.csv"
    refusals = [
        ({"gamma": 0.9}, "gamma is the ambiguity threshold of joint and sei_joint; method='cross_entropy' does "
                         "not read it (leave it out)"),
        ({"method": "joint", "gamma": 5}, "gamma must be a number in [0, 1]"),
        ({"method": "joint", "gamma": float("nan")}, "gamma must be a number in [0, 1]"),
        ({"seed": 3}, "method='cross_entropy' without budget reads none (leave it out)"),
        ({"repeats": 20}, "repeats is the number of simulated campaigns of the budget estimate"),
        ({"method": "oracle"}, "method must be one of cross_entropy, joint, random, sei, sei_joint; oracle needs "
                               "the true labels"),
        ({"method": "random", "seed": -1}, "seed must be an int >= 0, got -1"),
        ({"method": "random", "seed": 1.5}, "seed must be an int >= 0, got 1.5"),
    ]
    for kw, said in refusals:
        with pytest.raises(ValueError) as e:
            write_queue(rd, out, **kw)
        assert said in str(e.value), kw
    assert not out.exists() and not (rd / "queue.parquet").exists()
    for kw in ({"method": "joint", "gamma": 0.9}, {"method": "random", "seed": 3}, {"seed": 3, "budget": 5, "repeats": 20}):
        assert write_queue(rd, out, **kw).meta["seed"] == kw.get("seed", 0)
