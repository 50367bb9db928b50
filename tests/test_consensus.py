"""Several reviewers: the consensus rule, the store's votes, the export by consensus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from runfactory import csv_rows, make_run

from labeltrace.export.cleaned import export_labels, unresolved_path
from labeltrace.relabel.campaign import Campaign
from labeltrace.relabel.consensus import ConsensusRule, resolve, settles
from labeltrace.relabel.decisions import ReviewStore
from labeltrace.relabel.verdicts import final_labels, run_verdicts
from labeltrace.rundir import open_run


def test_rule_by_hand() -> None:
    # votes (N=5, K=3); given labels 0
    votes = np.array([[0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 2, 1], [1, 0, 0]])
    given = np.zeros(5, dtype=np.int64)
    one = resolve(votes, given, ConsensusRule(agree=1))
    assert one.resolved.tolist() == [False, True, False, True, True]
    assert one.label.tolist() == [-1, 1, -1, 1, 0]
    assert one.disputed.tolist() == [False, False, True, False, False]
    two = resolve(votes, given, ConsensusRule(agree=2))
    assert two.resolved.tolist() == [False, False, False, True, False]
    assert two.unresolved.tolist() == [False, True, True, False, True]
    # the given label as one vote: a change needs a second voice, a confirmation does not
    g = resolve(votes, given, ConsensusRule(agree=1, count_given=True))
    assert g.resolved.tolist() == [False, False, False, True, True]
    assert g.label.tolist() == [-1, -1, -1, 1, 0]
    assert settles(2, 1, 2) and not settles(2, 2, 1) and not settles(1, 0, 2)
    with pytest.raises(ValueError, match="agree"):
        ConsensusRule(agree=0)


def test_rule_refuses_what_is_not_a_flag_or_a_count() -> None:
    # "false" is a non-empty string, truthy: it was stored as count_given and counted the given label
    for bad in ("false", "no", 0, 1, None):
        with pytest.raises(ValueError, match="count_given must be True or False"):
            ConsensusRule(count_given=bad)  # type: ignore[arg-type]
    for bad_agree in (True, 1.5, "2"):
        with pytest.raises(ValueError, match="agree must be an integer"):
            ConsensusRule(agree=bad_agree)  # type: ignore[arg-type]
    # numpy's scalars are read as Python's: the rule is stored as JSON with the run's decisions
    rule = ConsensusRule(agree=np.int64(2), count_given=np.bool_(True))  # type: ignore[arg-type]
    assert rule == ConsensusRule(agree=2, count_given=True)
    assert type(rule.agree) is int and type(rule.count_given) is bool


def test_campaign_agree_asks_for_agreeing_votes() -> None:
    # single expert without the initial vote: agree=2 needs two equal votes
    c = Campaign(np.array([0, 0]), num_classes=3, budget=None, priority="random",
                 count_initial_label=False, agree=2)  # fmt: skip
    assert c.record(1, 2).settled_label == -1
    assert c.record(1, 1).settled_label == -1  # 1-1: a tie
    assert c.record(1, 2).settled_label == 2
    assert c.labels.tolist() == [0, 2]


def _store(run_dir: Path) -> ReviewStore:
    run = open_run(run_dir)
    return ReviewStore(run_dir / "reviews.db", classes=run.classes, num_samples=run.num_samples)


def test_votes_are_each_reviewers_latest_label(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    st = _store(rd)
    st.add(0, "bird", reviewer="ada")
    st.add(0, "cat", reviewer="ada")  # ada changed her mind: one vote, for cat
    st.add(0, "cat", reviewer="bob")
    st.add(1, "bird", reviewer="ada")
    st.add(1, "unsure", reviewer="ada")  # withdrawn
    st.add(2, "bird", reviewer="ada")
    st.add(2, "cat", reviewer="bob")
    v = st.vote_counts()
    assert v[0].tolist() == [0, 0, 2] and v[1].tolist() == [0, 0, 0] and v[2].tolist() == [0, 1, 1]
    assert [(d.reviewer, d.decision) for d in st.views(2)] == [("ada", "bird"), ("bob", "cat")]
    assert st.current(reviewer="ada")[1].kind == "unsure"
    assert st.reviewers() == ["ada", "bob"]
    assert st.rule() == ConsensusRule()
    st.set_rule(ConsensusRule(agree=2))
    assert _store(rd).rule() == ConsensusRule(agree=2)


def test_export_resolves_by_consensus_and_lists_the_rest(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=2)
    run = open_run(rd)
    given = list(run.column("given_label"))
    other = [next(c for c in run.classes if c != g) for g in given]
    st = _store(rd)
    st.set_rule(ConsensusRule(agree=2))
    st.add(0, other[0], reviewer="ada")
    st.add(0, other[0], reviewer="bob")  # two agree: relabelled
    st.add(1, other[1], reviewer="ada")
    st.add(1, given[1], reviewer="bob")  # a dispute: keeps its label, listed
    st.add(2, other[2], reviewer="ada")  # one vote of two: listed
    st.add(3, "unsure", reviewer="ada")
    st.add(4, "skip", reviewer="bob")
    final, dec = final_labels(run)
    assert final[0] == run.classes.index(other[0])
    gid = run.column("given_label_id")
    assert final[1] == gid[1] and final[2] == gid[2]
    assert dec[:4].tolist() == [other[0], "no consensus", "no consensus", "unsure"]
    assert run_verdicts(run).resolution.disputed.tolist()[:3] == [False, True, False]
    messages: list[str] = []
    out = export_labels(rd, report=messages.append)
    rows = csv_rows(out)
    assert rows[0]["label"] == other[0] and rows[1]["label"] == given[1]
    listed = csv_rows(unresolved_path(out))  # every sample with a decision and no consensus
    assert [int(r["id"]) for r in listed] == [1, 2, 3, 4]
    assert [r["status"] for r in listed] == ["no consensus", "no consensus", "unsure", "skip"]
    assert listed[0]["votes"] == "; ".join(sorted([f"{other[1]}: ada", f"{given[1]}: bob"]))
    assert [r["needs"] for r in listed] == ["1 more agreeing vote"] * 2 + ["2 agreeing label votes"] * 2
    assert messages and messages[0].startswith("4 samples without a consensus (2 agreeing reviews")
    assert "(2 of them only marked unsure or skipped)" in messages[0]


def test_cli_export_reports_the_unresolved(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:  # fmt: skip
    from labeltrace.cli import main

    rd = make_run(tmp_path, n=12, k=3, seed=4)
    st = _store(rd)
    st.add(0, "bird", reviewer="ada")
    st.add(0, "cat", reviewer="bob")
    out = tmp_path / "clean.csv"
    assert main(["review", str(rd), "--export", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 sample without a consensus (1 agreeing review, more than any other label)" in text
    assert str(unresolved_path(out)) in text
    assert "1 of 12 samples have a decision (a skip too), 0 labels changed: " in text  # a tie: decided, nothing changed
    st.add(1, "cat" if _given(rd, 1) != "cat" else "bird", reviewer="ada")
    assert main(["review", str(rd), "--export", str(out)]) == 0
    assert "2 of 12 samples have a decision (a skip too), 1 label changed\n" in capsys.readouterr().out
    assert main(["review", str(rd), "--export", str(out), "--agree", "2"]) == 2  # bad input: rc 2, one line
    assert "rule stored with the decisions" in capsys.readouterr().err


def test_current_arrays_read_each_samples_latest_decision(tmp_path: Path) -> None:
    """current_arrays is read at every review request (vectorised since); it must say what
    current() says, decision by decision, for everyone and for one reviewer."""
    rng = np.random.default_rng(3)
    classes = ["cat", "dog", "unsure-ish", "9"]
    st = ReviewStore(tmp_path / "r.db", classes=classes, num_samples=40)
    for _ in range(150):
        kind = ["label", "unsure", "skip"][rng.integers(0, 3)]
        st.add(int(rng.integers(0, 40)), classes[rng.integers(0, 4)] if kind == "label" else kind, kind=kind,
               reviewer=["ada", "bob"][rng.integers(0, 2)])  # fmt: skip
    for who in (None, "ada", "bob"):
        code, lab = st.current_arrays(who)
        want_code, want_lab = np.full(40, -1), np.full(40, -1)
        for i, d in st.current(who).items():
            want_code[i] = ["label", "unsure", "skip"].index(d.kind)
            want_lab[i] = classes.index(d.decision) if d.kind == "label" else -1
        np.testing.assert_array_equal(code, want_code)
        np.testing.assert_array_equal(lab, want_lab)
    assert (ReviewStore(tmp_path / "e.db", classes=classes, num_samples=3).current_arrays()[0] == -1).all()


def test_vote_arrays_read_once_agree_with_the_decision_objects(tmp_path: Path) -> None:
    """verdicts() read the table twice and built a Decision per row (1.4 s at 10^5 decisions); one
    columns read gives the same votes and latest kinds."""
    g = np.random.default_rng(11)
    classes = ["a", "b", "unsure"]  # a class named like an action: kind decides, not the word
    st = ReviewStore(tmp_path / "r.db", classes=classes, num_samples=30)
    for _ in range(200):
        kind = str(g.choice(["label", "label", "unsure", "skip"]))
        dec = str(g.choice(classes)) if kind == "label" else kind
        st.add(int(g.integers(0, 30)), dec, kind=kind, reviewer=str(g.choice(["ann", "bo", "cy"])))
    ids, labs, latest = st.vote_arrays()
    want = np.zeros((30, 3), dtype=np.int64)
    for d in st.views():  # each reviewer's latest row, as Decision objects
        if d.kind == "label":
            want[d.sample_id, classes.index(d.decision)] += 1
    got = np.zeros((30, 3), dtype=np.int64)
    np.add.at(got, (ids, labs), 1)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(latest, st.current_arrays()[0])
    assert {0, 1, 2} <= set(latest.tolist())  # every kind is somewhere the latest


def test_an_export_while_reviewers_decide_lists_the_votes_it_counted(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """`review --export` under live decisions wrote `votes: 3: rev0_1; 8: rev0_0` beside `n_votes 3`: the
    votes were counted from one read of the store and listed from a second."""
    rd = make_run(tmp_path, n=12, k=3, seed=2)
    run = open_run(rd)
    c = run.classes
    st = _store(rd)
    st.set_rule(ConsensusRule(agree=2))
    st.add(0, c[0], reviewer="ada")
    st.add(0, c[1], reviewer="bob")
    real_rule = ReviewStore.rule

    def rule_while_eve_decides(self: ReviewStore) -> ConsensusRule:  # read between the export's reads
        if not any(d.reviewer == "eve" for d in real_history(self)):
            self.add(0, c[2], reviewer="eve")
        return real_rule(self)

    real_history = ReviewStore.history
    monkeypatch.setattr(ReviewStore, "rule", rule_while_eve_decides)
    out = export_labels(rd)
    row = csv_rows(unresolved_path(out))[0]
    named = [who for part in row["votes"].split("; ") for who in part.split(": ")[1].split(", ")]
    assert int(row["n_votes"]) == len(named) == 2 and "eve" not in named


def _given(rd: Path, i: int) -> str:
    from labeltrace.rundir import open_run

    return str(open_run(rd).column("given_label")[i])


def test_an_export_with_nothing_unresolved_names_no_unresolved_list(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Every decided sample settled: the export still said '0 samples without a consensus ... listed
    in X.unresolved.csv', sending the curator to an empty file; now it names that list only when
    something is in it (the file itself stays, the header alone, as the excluded list does)."""
    from labeltrace.cli import main

    rd = make_run(tmp_path, n=12, k=3, seed=4)
    st = _store(rd)
    st.add(0, _given(rd, 0), reviewer="ada")  # one vote settles: a consensus
    out = tmp_path / "clean.csv"
    assert main(["review", str(rd), "--export", str(out)]) == 0
    text = capsys.readouterr().out
    assert "without a consensus" not in text and "unresolved" not in text
    assert csv_rows(unresolved_path(out)) == []  # the header alone: an older list is never left beside
    st.add(1, "unsure", reviewer="ada")
    assert main(["review", str(rd), "--export", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"1 sample without a consensus (1 agreeing review, more than any other label) keep their given label " \
           f"(1 of them only marked unsure or skipped); listed in {unresolved_path(out)}" in text
    assert [r["id"] for r in csv_rows(unresolved_path(out))] == ["1"]
