"""Several reviewers on one page: names, what counts as done, what each request resolves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from runfactory import make_run

from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.runstore import run_store
from labeltrace.review import create_app
from labeltrace.rundir import open_run

LOCAL = "http://127.0.0.1"


def test_agree_above_one_needs_a_reviewer_name(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    c = TestClient(create_app(rd, consensus=ConsensusRule(agree=2)), base_url=LOCAL)
    first = c.get("/api/item/0").json()["id"]
    for who in ({}, {"reviewer": ""}, {"reviewer": "   "}):
        r = c.post("/api/decision", json={"sample_id": first, "decision": "cat", **who})
        assert r.status_code == 400 and "needs a reviewer name" in r.json()["detail"]
    assert run_store(open_run(rd)).history() == []
    assert c.post("/api/decision", json={"sample_id": first, "decision": "cat",
                                         "reviewer": "ada"}).status_code == 200  # fmt: skip
    # one vote of two: not done for a page without a name, nor for bob; done for ada
    assert c.get("/api/state").json()["reviewed"] == 0
    assert c.get("/api/state?reviewer=bob").json()["reviewed"] == 0
    assert c.get("/api/state?reviewer=ada").json()["reviewed"] == 1
    assert "every vote needs a name" in c.get("/").text  # the page asks before sending



def test_a_counted_given_label_needs_named_votes_too(tmp_path: Path) -> None:
    """agree=1 with count_given: a label other than the given one ties with it, so a second voice
    settles it; two people's nameless votes were one "anonymous" reviewer's, the second replacing
    the first, and the label never changed."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    c = TestClient(create_app(rd, consensus=ConsensusRule(agree=1, count_given=True)), base_url=LOCAL)
    assert c.get("/api/state").json()["rule"]["names"] is True
    run = open_run(rd)
    first = c.get("/api/item/0").json()["id"]
    other = run.classes[(int(run.column("given_label_id")[first]) + 1) % len(run.classes)]
    r = c.post("/api/decision", json={"sample_id": first, "decision": other})
    assert r.status_code == 400 and "needs a reviewer name" in r.json()["detail"]
    for who in ("ada", "bob"):
        assert c.post("/api/decision", json={"sample_id": first, "decision": other,
                                             "reviewer": who}).status_code == 200  # fmt: skip
    assert c.get("/api/state").json()["resolved"] == 1
    second = c.get("/api/item/1?reviewer=ada").json()["id"]
    assert c.post("/api/decision", json={"sample_id": second, "decision": "unsure", "kind": "unsure",
                                         "reviewer": "ada"}).status_code == 200  # fmt: skip
    # ada's unsure settles nothing: the sample stays open for bob (it closed it for every reviewer)
    assert c.get("/api/state?reviewer=bob").json()["reviewed"] == 1
    single = TestClient(create_app(make_run(tmp_path / "one", n=12, k=3, seed=1)), base_url=LOCAL)  # no name needed
    assert single.get("/api/state").json()["rule"]["names"] is False

def test_single_expert_review_still_takes_a_nameless_decision(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    c = TestClient(create_app(rd), base_url=LOCAL)
    first = c.get("/api/item/0").json()["id"]
    r = c.post("/api/decision", json={"sample_id": first, "decision": "cat"})
    assert r.status_code == 200 and r.json()["decision"]["reviewer"] == "anonymous"
    assert c.get("/api/state").json()["reviewed"] == 1


def test_a_request_resolves_the_votes_once_and_only_of_the_voted_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labeltrace.relabel.decisions import ReviewStore

    rd = make_run(tmp_path, n=30, k=3, seed=2)
    c = TestClient(create_app(rd, consensus=ConsensusRule(agree=2)), base_url=LOCAL)
    import labeltrace.relabel.verdicts as verdicts_mod

    calls: list[int] = []
    real = verdicts_mod.resolve

    def counted(votes: np.ndarray, *a: object, **kw: object) -> object:
        calls.append(int(np.asarray(votes).shape[0]))  # the samples resolved
        return real(votes, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(verdicts_mod, "resolve", counted)
    monkeypatch.setattr(ReviewStore, "vote_counts", lambda self: pytest.fail("an (N, K) vote matrix"))
    ids = [c.get(f"/api/item/{p}?peek=true").json()["id"] for p in range(3)]
    calls.clear()
    for i in ids:
        r = c.post("/api/decision", json={"sample_id": i, "decision": "cat", "reviewer": "ada"})
        assert r.status_code == 200
        assert calls == [1]  # once per decision, of the sample decided alone (not every decision again)
        calls.clear()
    c.get("/api/state")
    c.get("/api/item/0")
    assert calls == []  # no new decision: nothing resolved again


def test_a_features_file_of_the_wrong_shape_is_refused_at_startup(tmp_path: Path) -> None:
    import numpy as np

    from labeltrace.relabel.live import LiveConfig

    rd = make_run(tmp_path, n=12, k=3, seed=3)
    bad = tmp_path / "feats.npy"
    np.save(bad, np.zeros((10, 4), dtype=np.float32))
    for live in (None, LiveConfig()):
        with pytest.raises(ValueError, match=r"feats\.npy has shape \(10, 4\); expected \(12, D\)"):
            create_app(rd, features=bad, live=live)
    np.save(bad, np.zeros(12, dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(12,\); expected \(12, D\)"):
        create_app(rd, features=bad)
    np.save(bad, np.ones((12, 4), dtype=np.float32))
    c = TestClient(create_app(rd, features=bad), base_url=LOCAL)
    assert c.get("/api/context/0").status_code == 200


def test_a_reviewer_name_in_another_letter_case_is_refused(tmp_path: Path) -> None:
    """Under --agree 2, 'alice' then 'ALICE' settled a sample alone. A store that already holds two
    spellings (written before) keeps reading them as they are."""
    import pytest

    rd = make_run(tmp_path, n=12, k=3, seed=5)
    st = run_store(open_run(rd))
    cls = open_run(rd).classes[1]
    st.add(0, cls, reviewer="alice")
    with pytest.raises(ValueError, match=r"reviewer 'ALICE': this reviewer name differs only in letter case \(or in characters that show nothing\) from 'alice'"):
        st.add(0, cls, reviewer="  ALICE ")
    st.add(0, cls, reviewer=" alice ")  # the same spelling, whitespace collapsed: fine
    with pytest.raises(ValueError, match="differs only in letter case"):
        st.add_many([{"sample_id": 1, "decision": cls, "reviewer": "Bob"},
                     {"sample_id": 1, "decision": cls, "reviewer": "BOB"}], source="app")  # fmt: skip
    assert st.reviewers() == ["alice"] and st.vote_counts()[0].sum() == 1
    other = run_store(open_run(rd))  # another process's store, its name cache filled first
    other.add(4, cls, reviewer="dave")
    st.add(2, cls, reviewer="Carol")  # then written beside it: other's cache must be read again
    with pytest.raises(ValueError, match="from 'Carol'"):
        other.add(2, cls, reviewer="carol")
    client = TestClient(create_app(rd), base_url="http://127.0.0.1")
    r = client.post("/api/decision", json={"sample_id": 3, "decision": cls, "reviewer": "ALICE"})
    assert r.status_code == 400 and "letter case" in r.text



def test_one_name_in_two_unicode_forms_is_one_reviewer(tmp_path: Path) -> None:
    """'José' typed with a composed é and with e + a combining accent were two reviewers: under
    --agree 2 one person settled a sample alone."""
    import unicodedata

    rd = make_run(tmp_path, n=12, k=3, seed=5)
    st = run_store(open_run(rd))
    st.set_rule(ConsensusRule(agree=2))
    cls = open_run(rd).classes[1]
    st.add(0, cls, reviewer=unicodedata.normalize("NFC", "José"))
    st.add(0, cls, reviewer=unicodedata.normalize("NFD", "José"))
    with pytest.raises(ValueError, match="differs only in letter case"):
        st.add(0, cls, reviewer=unicodedata.normalize("NFD", "JOSÉ"))
    assert st.reviewers() == [unicodedata.normalize("NFC", "José")] and st.vote_counts()[0].sum() == 1
    # a store that holds the decomposed spelling first (as typed): either form is that reviewer
    rd2 = make_run(tmp_path / "nfd", n=12, k=3, seed=5)
    st2 = run_store(open_run(rd2))
    nfd, nfc = unicodedata.normalize("NFD", "Zoë"), unicodedata.normalize("NFC", "Zoë")
    st2.add(0, cls, reviewer=nfd)
    st2.add(1, cls, reviewer=nfc)
    st2.add(0, "unsure", reviewer=nfc)  # withdraws the vote given under the other form
    assert st2.reviewers() == [nfd] and set(st2.current(reviewer=nfc)) == {0, 1}
    assert st2.current(reviewer=nfc)[0].kind == "unsure"
    c = TestClient(create_app(rd2), base_url=LOCAL)
    item = next(c.get(f"/api/item/{p}?reviewer={nfc}&peek=true").json() for p in range(12)
                if c.get(f"/api/item/{p}?peek=true").json()["id"] == 1)  # fmt: skip
    assert item["decision"] is not None and item["decision"]["reviewer"] == nfd

def test_a_store_written_with_two_spellings_lets_each_stored_name_decide(tmp_path: Path) -> None:
    """A reviews.db from before names were checked holds 'alice' and 'ALICE': the second could no
    longer decide or withdraw her own vote, while a third spelling is still refused."""
    import sqlite3

    import pytest

    rd = make_run(tmp_path, n=12, k=3, seed=6)
    st = run_store(open_run(rd))
    cls = open_run(rd).classes[1]
    st.add(0, cls, reviewer="alice")
    with sqlite3.connect(rd / "reviews.db") as con:  # as an older version wrote it
        con.execute("INSERT INTO decisions (sample_id, kind, decision, reviewer, decided_at, source) "
                    "VALUES (1, 'label', ?, 'ALICE', '2025-01-01T00:00:00.000+00:00', 'app')", (cls,))  # fmt: skip
    st.add(1, "unsure", reviewer="ALICE")  # her own stored spelling: she can withdraw her vote
    assert st.vote_counts()[1].sum() == 0
    with pytest.raises(ValueError, match="from 'alice'"):
        st.add(2, cls, reviewer="Alice")


def test_two_servers_on_one_run_follow_the_rule_stored_last(tmp_path: Path) -> None:
    """A server read the stored rule once at start: after a second server on the same run stored
    agree=2, the first still took nameless votes and counted one vote as a settled sample."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    a = TestClient(create_app(rd), base_url=LOCAL)
    first = a.get("/api/item/0").json()["id"]
    assert a.post("/api/decision", json={"sample_id": first, "decision": "cat"}).status_code == 200
    assert a.get("/api/state").json()["reviewed"] == 1
    with pytest.warns(UserWarning, match="changes from 1 agreeing review.* to 2 agreeing reviews"):
        b = TestClient(create_app(rd, consensus=ConsensusRule(agree=2)), base_url=LOCAL)
    for c in (a, b):
        state = c.get("/api/state").json()
        assert state["rule"]["agree"] == 2 and state["rule"]["names"] is True and state["reviewed"] == 0
        r = c.post("/api/decision", json={"sample_id": first, "decision": "cat"})
        assert r.status_code == 400 and "needs a reviewer name" in r.json()["detail"]


@pytest.mark.parametrize("name", ["\x00x", "ada\u202eevil", "bo\x1bb", "\u2067eve",
                                  "ada\u200b", "\ufeffada", "a\u00adda"])  # a second vote under a look-alike
def test_a_reviewer_name_with_a_hidden_control_character_is_refused(tmp_path: Path, name: str) -> None:
    """NUL, escapes and bidirectional overrides were stored and written raw into the exports, where
    a name can print backwards or look like another."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    c = TestClient(create_app(rd), base_url=LOCAL)
    r = c.post("/api/decision", json={"sample_id": 0, "decision": "cat", "reviewer": name})
    assert r.status_code == 400 and "invisible character U+" in r.json()["detail"]
    store = run_store(open_run(rd))
    with pytest.raises(ValueError, match="invisible character"):
        store.add(0, "cat", reviewer=name)
    assert store.history() == []
    persian = "\u0645\u06cc\u200c\u0646\u0627"  # a name spelled with a zero-width non-joiner
    assert c.post("/api/decision", json={"sample_id": 0, "decision": "cat", "reviewer": persian}).status_code == 200


def test_find_walks_the_disputed_unsure_and_unresolved_samples_in_queue_order(tmp_path: Path) -> None:
    """An adjudicator goes from one open sample to the next: /api/find answers the next position
    after the one given, wrapping around, and how many there are."""
    rd = make_run(tmp_path, n=12, k=3, classes=["cat", "dog", "fox"], seed=1)
    c = TestClient(create_app(rd, consensus=ConsensusRule(agree=2)), base_url=LOCAL)
    ids = [c.get(f"/api/item/{p}?peek=true").json()["id"] for p in range(6)]
    assert c.get("/api/find?what=disputed").json() == {"position": None, "count": 0}

    def vote(pos: int, who: str, decision: str) -> None:
        kind = decision if decision in ("unsure", "skip") else "label"
        r = c.post("/api/decision", json={"sample_id": ids[pos], "decision": decision, "kind": kind, "reviewer": who})
        assert r.status_code == 200

    for pos, a, b in ((1, "cat", "dog"), (4, "fox", "cat"), (2, "fox", "fox")):  # disputed, disputed, resolved
        vote(pos, "ada", a)
        vote(pos, "bob", b)
    vote(3, "ada", "unsure")
    vote(5, "ada", "dog")  # one vote of two: short of votes
    find = lambda what, after: c.get(f"/api/find?what={what}&after={after}").json()  # noqa: E731
    assert find("disputed", -1) == {"position": 1, "count": 2}
    assert find("disputed", 1) == {"position": 4, "count": 2}
    assert find("disputed", 4) == {"position": 1, "count": 2}  # wraps around
    assert find("unsure", 0) == {"position": 3, "count": 1}
    assert find("unresolved", 1) == {"position": 3, "count": 4}  # 1, 3, 4, 5: not the resolved 2
    assert c.get("/api/find?what=open").status_code == 422
    blind = TestClient(create_app(rd, blind="model"), base_url=LOCAL)
    assert blind.get("/api/find?what=disputed").status_code == 403


def test_find_sends_two_adjudicators_to_different_disputed_samples(tmp_path: Path) -> None:
    """/api/find ignored the holds: the two reviewers settling disputes were both sent to the first
    disputed sample, where the second vote of the pair was wasted."""
    rd = make_run(tmp_path, n=12, k=3, classes=["cat", "dog", "fox"], seed=1)
    c = TestClient(create_app(rd, consensus=ConsensusRule(agree=2)), base_url=LOCAL)
    ids = [c.get(f"/api/item/{p}?peek=true").json()["id"] for p in range(6)]
    for pos in (1, 4):  # two disputed samples
        for who, label in (("ada", "cat"), ("bob", "dog")):
            r = c.post("/api/decision", json={"sample_id": ids[pos], "decision": label, "reviewer": who})
            assert r.status_code == 200
    find = lambda who: c.get(f"/api/find?what=disputed&after=-1&reviewer={who}").json()  # noqa: E731
    assert find("cy") == {"position": 1, "count": 2}
    assert c.get("/api/item/1?reviewer=cy").status_code == 200  # cy opens it: held for cy
    assert find("dee") == {"position": 4, "count": 2}  # dee is sent to the other one
    assert find("cy") == {"position": 1, "count": 2}  # cy's own hold does not send cy away
    assert c.get("/api/item/4?reviewer=dee").status_code == 200
    assert find("eve") == {"position": 1, "count": 2}  # both held: the first, as before
    on1 = c.get("/api/find?what=disputed&after=1&reviewer=cy").json()
    assert on1 == {"position": 4, "count": 2}  # from the one cy shows: the other, held or not (not back to 1)
    assert c.get("/api/find?what=disputed&after=-1").json() == {"position": 1, "count": 2}  # nameless


def test_a_decision_after_the_run_was_replaced_is_refused_not_misfiled(tmp_path: Path) -> None:
    import shutil

    from labeltrace.export.cleaned import export_labels

    rd = make_run(tmp_path, n=12, k=3, classes=["cat", "dog", "fox"], seed=1)
    c = TestClient(create_app(rd), base_url=LOCAL)
    assert c.post("/api/decision", json={"sample_id": 0, "decision": "dog"}).status_code == 200
    (rd / "reviews.db").rename(rd / "reviews.db.replaced-20260101T000000")
    other = make_run(tmp_path / "other", n=12, k=3, classes=["cat", "dog", "fox"], seed=2)
    shutil.copy(other / "samples.parquet", rd / "samples.parquet")  # "the new scan"
    run_store(open_run(rd))  # its store, opened by another command
    r = c.post("/api/decision", json={"sample_id": 1, "decision": "fox"})
    assert r.status_code == 409 and "scanned again since this review started" in r.json()["detail"]
    assert run_store(open_run(rd)).history() == []
    told: list[str] = []
    export_labels(rd, tmp_path / "clean.csv", report=told.append)
    assert any("reviews.db.replaced-20260101T000000" in t and "not part of this review or its exports" in t
               for t in told)  # fmt: skip


def test_a_server_whose_decisions_file_was_set_aside_answers_409_and_creates_nothing(tmp_path: Path) -> None:
    """The review found 500s (no such table) and an empty reviews.db left by every read."""
    rd = make_run(tmp_path, n=12, k=3, classes=["cat", "dog", "fox"], seed=1)
    c = TestClient(create_app(rd), base_url=LOCAL)
    assert c.post("/api/decision", json={"sample_id": 0, "decision": "dog"}).status_code == 200
    (rd / "reviews.db").rename(rd / "reviews.db.replaced-20260101T000000")
    for r in (c.get("/api/state"), c.get("/api/item/0"), c.post("/api/decision", json={"sample_id": 1, "decision": "fox"})):
        assert r.status_code == 409 and "scanned again since this review started" in r.json()["detail"]
    assert not (rd / "reviews.db").exists()


def test_a_server_on_a_scan_replaced_with_the_same_samples_answers_409(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`scan --force` of the same samples keeps reviews.db: the server went on showing the first
    scan's given label beside the second scan's posterior, and a decision made on that page was filed
    as a relabel of the second scan's label. Any later scan in the folder now stops the API; the
    page context cached for the first scan is not served for the second."""
    import os

    from labeltrace.review.context import ReviewContext

    rd = make_run(tmp_path, n=12, k=3, classes=["cat", "dog", "fox"], seed=1)
    c = TestClient(create_app(rd), base_url=LOCAL)
    assert c.post("/api/decision", json={"sample_id": 0, "decision": "dog"}).status_code == 200
    first = ReviewContext(open_run(rd)).load()
    assert c.get("/api/context/0").status_code == 200
    meta = (rd / "run.json").read_text()
    (rd / "run.json").unlink()  # the new scan, training: no run.json yet
    r = c.post("/api/decision", json={"sample_id": 1, "decision": "fox"})
    assert r.status_code == 409 and "scanned again since this review started" in r.json()["detail"]
    (rd / "run.json.tmp").write_text(meta.replace('"seed"', '"seed" ', 1))  # finished: written anew
    os.replace(rd / "run.json.tmp", rd / "run.json")
    for r in (c.get("/api/state"), c.get("/api/item/1"), c.get("/api/image/1"),
              c.post("/api/decision", json={"sample_id": 1, "decision": "fox"})):
        assert r.status_code == 409 and "scanned again since this review started" in r.json()["detail"]
    assert [d.sample_id for d in run_store(open_run(rd)).history()] == [0]
    built: list[int] = []
    real = ReviewContext._build
    monkeypatch.setattr(ReviewContext, "_build", lambda self: built.append(1) or real(self))
    again = ReviewContext(open_run(rd)).load()
    assert built == [1] and str(again["scan"]) != str(first["scan"])
    assert TestClient(create_app(rd), base_url=LOCAL).get("/api/state").status_code == 200  # a restarted server


def test_next_unsure_skips_samples_the_votes_settled(tmp_path: Path) -> None:
    """ada labels, bob then says unsure: the sample is settled (one vote), not open; 'Next unsure'
    pointed at it while the report and the export counted it settled."""
    rd = make_run(tmp_path, n=12, k=3, classes=["cat", "dog", "fox"], seed=1)
    c = TestClient(create_app(rd), base_url=LOCAL)
    first = c.get("/api/item/0?peek=true").json()["id"]
    c.post("/api/decision", json={"sample_id": first, "decision": "dog", "reviewer": "ada"})
    c.post("/api/decision", json={"sample_id": first, "decision": "unsure", "reviewer": "bob"})
    assert c.get("/api/item/0").json()["consensus"]["status"] == "resolved"
    assert c.get("/api/find?what=unsure").json() == {"position": None, "count": 0}


def test_a_decisions_file_replaced_under_the_server_is_not_read_as_its_own(tmp_path: Path) -> None:
    """Another store renamed into place (same classes and size, other samples): the old server
    served its decisions as this run's, and context answered 503 'features are missing'."""
    import shutil

    rd = make_run(tmp_path, n=12, k=3, classes=["cat", "dog", "fox"], seed=1)
    c = TestClient(create_app(rd), base_url=LOCAL)
    other = make_run(tmp_path / "other", n=12, k=3, classes=["cat", "dog", "fox"], seed=2)
    run_store(open_run(other)).add(9, "fox", reviewer="carol")
    shutil.copy(other / "reviews.db", rd / "incoming.db")
    (rd / "incoming.db").replace(rd / "reviews.db")
    for r in (c.get("/api/state"), c.get("/api/item/0"), c.get("/api/history/9"), c.get("/api/context/0")):
        assert r.status_code == 409, r.text


def test_every_export_and_the_report_warn_of_set_aside_decisions(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                                 ) -> None:  # fmt: skip
    """Only the review page and `review --export` said so: `export --to csv` (and parquet, Label
    Studio) and the report wrote a run without its set-aside decisions in silence."""
    from labeltrace.cli import main
    from labeltrace.export import export_run
    from labeltrace.report import write_report

    rd = make_run(tmp_path, n=12, k=3, classes=["cat", "dog", "fox"], seed=1)
    run_store(open_run(rd)).add(0, "dog", reviewer="ada")
    (rd / "reviews.db").rename(rd / "reviews.db.replaced-20260101T000000")
    said = "reviews.db.replaced-20260101T000000 in"
    for to in ("csv", "parquet", "labelstudio"):
        told: list[str] = []
        export_run(rd, to, warn=told.append)
        assert len([t for t in told if said in t and "not part of this review or its exports" in t]) == 1, to
    assert said in write_report(rd).read_text()
    assert main(["report", str(rd)]) == 0 and said in capsys.readouterr().err
    assert main(["export", str(rd), "--to", "csv"]) == 0 and said in capsys.readouterr().err


@pytest.mark.parametrize("rule", [ConsensusRule(), ConsensusRule(agree=2), ConsensusRule(agree=2, count_given=True)])
def test_the_server_resolving_only_new_decisions_agrees_with_resolving_them_all(tmp_path: Path,
                                                                               rule: ConsensusRule) -> None:  # fmt: skip
    """A review server resolves the samples decided since it last looked (every decision resolved
    again cost 1.2 s per decision at 100,000 decisions); its verdicts and each reviewer's latest
    kinds must equal the whole store resolved afresh, after every batch of decisions by several
    reviewers, several on one sample, labels, unsure and skip mixed."""
    from labeltrace.relabel.verdicts import verdicts
    from labeltrace.review.state import ReviewState

    rd = make_run(tmp_path, n=25, k=3, classes=["cat", "dog", "fox"], seed=3)
    run = open_run(rd)
    state = ReviewState(run, consensus=rule)
    rng = np.random.default_rng(7)
    who = ["ada", "bob", "cy"]
    for batch in range(12):
        for _ in range(int(rng.integers(1, 6))):
            choice = ["cat", "dog", "fox", "unsure", "skip"][int(rng.integers(5))]
            state.store.add(int(rng.integers(25)), choice, reviewer=who[int(rng.integers(3))])
        got, want = state.verdicts(), verdicts(state.store, run.column("given_label_id"), 3)
        for f in ("label", "resolved", "disputed", "n_votes", "top", "second"):
            assert np.array_equal(getattr(got.resolution, f), getattr(want.resolution, f)), (batch, f)
        assert np.array_equal(got.latest_kind, want.latest_kind), batch
        for r in who:
            assert np.array_equal(state.kinds_of(r), state.store.current_arrays(r)[0]), (batch, r)


def test_the_server_keeps_the_latest_kinds_of_a_bounded_number_of_reviewers(tmp_path: Path) -> None:
    """Every ?reviewer= a page sent kept an (N,) array for good."""
    from labeltrace.review.state import _KINDS_KEPT, ReviewState

    rd = make_run(tmp_path, n=12, k=3, classes=["cat", "dog", "fox"], seed=4)
    state = ReviewState(open_run(rd))
    for j in range(_KINDS_KEPT + 10):
        state.kinds_of(f"visitor{j}")
    assert len(state._kinds) == _KINDS_KEPT and f"visitor{_KINDS_KEPT + 9}" in state._kinds


@pytest.mark.parametrize("mark", ["\u200d", "\u200c", "\ufe0f", "\u034f", "\u3164"])
def test_a_name_with_a_character_that_shows_nothing_is_the_same_name(tmp_path: Path, mark: str) -> None:
    """Under --agree 2, "alice" and "alice" + U+200D (a joiner, allowed in names) settled a sample: one
    person, two votes."""
    rd = make_run(tmp_path, n=12, k=3, seed=2)
    c = TestClient(create_app(rd, consensus=ConsensusRule(agree=2)), base_url=LOCAL)
    first = c.get("/api/item/0?peek=true").json()["id"]
    assert c.post("/api/decision", json={"sample_id": first, "decision": "cat", "reviewer": "alice"}).status_code == 200
    r = c.post("/api/decision", json={"sample_id": first, "decision": "cat", "reviewer": f"alice{mark}"})
    assert r.status_code == 400 and "characters that show nothing" in r.json()["detail"]
    persian = "\u0645\u06cc\u200c\u0646\u0627"  # a joiner inside a name of its own: a name like any
    assert c.post("/api/decision", json={"sample_id": first, "decision": "cat", "reviewer": persian}).status_code == 200


def test_a_stored_name_with_a_hidden_character_still_signs(tmp_path: Path) -> None:
    """Names such as "bob" + U+200B were taken before they were refused: their reviewer, under
    that name or the plain one, must still be able to sign (neither was, for a while)."""
    import sqlite3

    rd = make_run(tmp_path, n=12, k=3, seed=3)
    store = run_store(open_run(rd))
    store.add(0, "cat", reviewer="ann")
    con = sqlite3.connect(store.path)
    con.execute("INSERT INTO decisions (sample_id, kind, decision, reviewer, decided_at, source) "
                "VALUES (1, 'label', 'cat', ?, '2026-12-01T00:00:00.000+00:00', 'app')", ("bob\u200b",))
    con.commit()
    con.close()
    store = run_store(open_run(rd))
    store.add(2, "cat", reviewer="bob\u200b")  # the stored spelling
    store.add(3, "cat", reviewer="bob")  # the plain one: no twin of a name no one may type any more
    with pytest.raises(ValueError, match="invisible character U\\+200B"):
        store.add(4, "cat", reviewer="eve\u200b")  # a new one is refused


def test_names_that_show_alike_are_one_name_whatever_their_form(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=4)
    store = run_store(open_run(rd))
    store.add(0, "cat", reviewer="Jos\u00e9")
    with pytest.raises(ValueError, match="characters that show nothing"):
        store.add(1, "cat", reviewer="Jose\u034f\u0301")  # a grapheme joiner between e and its accent
    with pytest.raises(ValueError, match="shows nothing"):
        store.add(1, "cat", reviewer="\u3164")  # a Hangul filler alone


def test_a_queue_written_again_while_the_server_runs_stops_its_answers(tmp_path: Path) -> None:
    """`labeltrace queue` rerun during a review rewrote queue.parquet: the server went on dealing the
    old order while the exports read the new one (an audit's finding). Now it refuses, as after a
    rescan; a server started after the new queue deals it."""
    from labeltrace.cli import main
    from labeltrace.relabel.order import review_order

    rd = make_run(tmp_path, n=12, k=3, classes=["cat", "dog", "fox"], seed=1)
    assert main(["queue", str(rd), "--method", "random", "--seed", "0", "--out", str(tmp_path / "q.csv")]) == 0
    c = TestClient(create_app(rd), base_url=LOCAL)
    first = c.get("/api/item/0").json()["id"]
    assert c.post("/api/decision", json={"sample_id": first, "decision": "dog"}).status_code == 200
    assert main(["queue", str(rd), "--method", "random", "--seed", "1", "--out", str(tmp_path / "q.csv")]) == 0
    for r in (c.get("/api/item/1"), c.post("/api/decision", json={"sample_id": 3, "decision": "fox"})):
        assert r.status_code == 409 and "queue was written again" in r.json()["detail"]
    assert [d.sample_id for d in run_store(open_run(rd)).history()] == [first]
    again = TestClient(create_app(rd), base_url=LOCAL)
    assert again.get("/api/item/1").json()["id"] == int(review_order(open_run(rd))[1])
