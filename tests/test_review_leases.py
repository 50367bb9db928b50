"""A team on one review page: a sample open on one reviewer's page is not the next of another's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from runfactory import make_run

from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.review import create_app
from labeltrace.review.leases import Leases

LOCAL = "http://127.0.0.1"


def _page(c: TestClient, who: str) -> int:
    """A page opening: the position it resumes at, shown to ``who`` (held for them)."""
    pos = c.get(f"/api/state?reviewer={who}").json()["resume"]
    c.get(f"/api/item/{pos}?reviewer={who}")
    return int(pos)


def test_one_vote_each_reviewer_gets_another_sample(tmp_path: Path) -> None:
    """Everyone's next was the first sample not done, where the reviewer ahead already sat: five
    reviewers settled 106 samples with the 400 decisions that settle 400
    (scripts/review_team_sim.py)."""
    rd = make_run(tmp_path, n=20, k=3, seed=1)
    c = TestClient(create_app(rd), base_url=LOCAL)
    assert [_page(c, who) for who in ("ada", "bob", "cy")] == [0, 1, 2]
    ada = c.get("/api/item/0?peek=true").json()["id"]
    r = c.post("/api/decision", json={"sample_id": ada, "decision": "cat", "reviewer": "ada"}).json()
    assert r["next"] == 3  # 1 and 2 are open on bob's and cy's pages
    c.get("/api/item/3?reviewer=ada")
    bob = c.get("/api/item/1?peek=true").json()["id"]
    assert c.post("/api/decision", json={"sample_id": bob, "decision": "cat", "reviewer": "bob"}).json()["next"] == 4
    # the same reviewer again (a second tab, a reload) resumes where they are
    assert c.get("/api/state?reviewer=cy").json()["resume"] == 2


def test_two_votes_two_reviewers_share_a_sample(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=20, k=3, seed=2)
    c = TestClient(create_app(rd, consensus=ConsensusRule(agree=2)), base_url=LOCAL)
    assert [_page(c, who) for who in ("ada", "bob", "cy", "dee")] == [0, 0, 1, 1]


def test_when_every_later_sample_is_held_the_next_is_the_first_not_done(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=3, k=3, seed=3)
    c = TestClient(create_app(rd), base_url=LOCAL)
    assert [_page(c, who) for who in ("ada", "bob", "cy")] == [0, 1, 2]
    assert c.get("/api/state?reviewer=dee").json()["resume"] == 0  # all held: the first not done, as before


def test_a_blind_review_holds_nothing_back(tmp_path: Path) -> None:
    """Each blind reviewer reads every sample in the queue's order."""
    rd = make_run(tmp_path, n=20, k=3, seed=4)
    c = TestClient(create_app(rd, blind="model"), base_url=LOCAL)
    assert [_page(c, who) for who in ("ada", "bob")] == [0, 0]


def test_holds_lapse_and_move_with_the_page() -> None:
    now = [0.0]
    held = Leases(seconds=120, clock=lambda: now[0])
    held.take(5, "ada")
    assert held.held_by_others("bob", 8).tolist() == [0, 0, 0, 0, 0, 1, 0, 0]
    assert held.held_by_others("ada", 8).sum() == 0
    held.take(6, "ada")  # one page shows one sample: the earlier hold goes
    assert np.flatnonzero(held.held_by_others("bob", 8)).tolist() == [6]
    held.take(6, None)  # a nameless page's hold: a lone reviewer's (or every nameless page's), for no one
    assert held.held_by_others("bob", 8)[6] == 1 and held.held_by_others(None, 8)[6] == 1
    now[0] = 121.0  # walked away
    assert held.held_by_others("bob", 8).sum() == 0
    held.take(2, "ada")
    held.release(2, "ada")
    assert held.held_by_others("bob", 8).sum() == 0


def test_two_decisions_at_once_are_sent_to_two_samples(tmp_path: Path) -> None:
    """The hold was taken only when a page loaded its next sample: two decisions posted before
    either page loaded got the same next one."""
    rd = make_run(tmp_path, n=20, k=3, seed=5)
    c = TestClient(create_app(rd), base_url=LOCAL)
    assert [_page(c, who) for who in ("ada", "bob")] == [0, 1]
    ids = [c.get(f"/api/item/{p}?peek=true").json()["id"] for p in (0, 1)]
    nxt = [c.post("/api/decision", json={"sample_id": i, "decision": "cat", "reviewer": who}).json()["next"]
           for i, who in zip(ids, ("ada", "bob"), strict=True)]  # fmt: skip
    assert nxt == [2, 3]


def test_a_lone_reviewer_typing_a_name_resumes_where_they_were(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=20, k=3, seed=6)
    c = TestClient(create_app(rd), base_url=LOCAL)
    c.get("/api/item/0")  # the page opened before a name was typed: a nameless hold
    assert c.get("/api/state?reviewer=ada").json()["resume"] == 0


def test_a_reviewers_second_tab_keeps_the_first_tabs_hold() -> None:
    """A second tab ended the first one's hold: a colleague was sent to the sample still open there."""
    held = Leases(seconds=120, clock=lambda: 0.0)
    held.take(5, "ada", "tab-a")
    held.take(6, "ada", "tab-b")
    assert np.flatnonzero(held.held_by_others("bob", 8)).tolist() == [5, 6]
    assert held.held_by_others("bob", 8)[5] == 1  # one reviewer, however many tabs
    held.take(7, "ada", "tab-a")  # tab a moves on: its own earlier hold goes, tab b's stays
    assert np.flatnonzero(held.held_by_others("bob", 8)).tolist() == [6, 7]
    held.release(6, "ada")  # decided (from any tab): no longer held for ada
    assert np.flatnonzero(held.held_by_others("bob", 8)).tolist() == [7]


def test_the_page_id_reaches_the_holds_and_the_decisions_next_hold(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=20, k=3, seed=4)
    c = TestClient(create_app(rd), base_url=LOCAL)
    first = c.get("/api/item/0?reviewer=ada&page=a").json()["id"]
    c.get("/api/item/1?reviewer=ada&page=b")
    assert c.get("/api/state?reviewer=bob").json()["resume"] == 2  # both of ada's tabs held
    r = c.post("/api/decision", json={"sample_id": first, "decision": "cat", "reviewer": "ada", "page": "a"})
    assert r.status_code == 200 and r.json()["next"] == 2  # tab a's next: 2 (1 is tab b's, ada's own)
    assert c.get("/api/state?reviewer=bob").json()["resume"] == 3  # 1 and 2 held for ada's two tabs
    long = c.post("/api/decision", json={"sample_id": 3, "decision": "cat", "reviewer": "bob", "page": "x" * 65})
    assert long.status_code == 422


def test_one_reviewer_holds_samples_on_at_most_four_pages() -> None:
    """A script sending a new page id with every request held every sample it opened."""
    now = [0.0]
    held = Leases(seconds=120, clock=lambda: now[0])
    for k in range(6):
        now[0] = float(k)
        held.take(k, "bot", f"page-{k}")
    assert np.flatnonzero(held.held_by_others("bob", 8)).tolist() == [2, 3, 4, 5]  # the newest four


def test_a_tabs_next_passes_the_reviewers_other_tab_on_a_blind_review_too(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=20, k=3, seed=4)
    c = TestClient(create_app(rd, blind="model"), base_url=LOCAL)
    first = c.get("/api/item/0?reviewer=ada&page=a").json()["id"]
    c.get("/api/item/1?reviewer=ada&page=b")
    r = c.post("/api/decision", json={"sample_id": first, "decision": "cat", "reviewer": "ada", "page": "a"})
    assert r.status_code == 200 and r.json()["next"] == 2


def test_nameless_pages_that_say_their_id_are_sent_to_different_samples(tmp_path: Path) -> None:
    """A nameless team (one vote settles, no names needed) moved in lockstep: every page's next was
    the sample another page sat on. Pages that send their id now hold for one another, however
    many (the cap of 4 pages is one named reviewer's); a resume passes none of their holds (one of
    them may be the same person's tab under an id it lost)."""
    rd = make_run(tmp_path, n=20, k=3, seed=4)
    c = TestClient(create_app(rd), base_url=LOCAL)
    for pos, page in enumerate("abcdef"):  # six nameless pages, each on its own sample
        c.get(f"/api/item/{pos}?page={page}")
    assert c.get("/api/state").json()["resume"] == 0  # a resume: as before the ids
    first = c.get("/api/item/0?peek=true").json()["id"]
    r = c.post("/api/decision", json={"sample_id": first, "decision": "cat", "page": "a"})
    assert r.status_code == 200 and r.json()["next"] == 6  # past the five other pages' samples
    assert c.get("/api/find?what=disputed&page=a").json() == {"position": None, "count": 0}


def test_a_tab_that_lost_its_id_resumes_at_its_own_sample(tmp_path: Path) -> None:
    """Opened again without its id (a closed tab, storage blocked), a page skipped the sample it had
    left open: its old id's hold counted as another tab's for two minutes."""
    rd = make_run(tmp_path, n=20, k=3, seed=4)
    c = TestClient(create_app(rd), base_url=LOCAL)
    c.get("/api/item/0?reviewer=ada&page=old")
    assert c.get("/api/state?reviewer=ada&page=new").json()["resume"] == 0
    nameless = TestClient(create_app(make_run(tmp_path / "b", n=20, k=3, seed=4)), base_url=LOCAL)
    nameless.get("/api/item/0?page=gone")
    assert nameless.get("/api/state?page=new").json()["resume"] == 0


def test_a_closed_page_holds_nothing() -> None:
    """A closed tab's sample stayed held for two minutes: the team's next samples passed it."""
    held = Leases(seconds=120, clock=lambda: 0.0)
    held.take(5, "ada", "tab-1")
    held.take(6, "ada", "tab-2")
    held.take(7, "bob", "tab-1")  # another reviewer's page of the same id is apart
    held.leave("ada", "tab-1")
    assert np.flatnonzero(held.held_by_others("cy", 8)).tolist() == [6, 7]
    held.leave("ada", "tab-9")  # a page that holds nothing
    assert np.flatnonzero(held.held_by_others("cy", 8)).tolist() == [6, 7]


def test_the_page_says_it_left_and_its_sample_is_the_next_of_another(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=20, k=3, seed=5)
    c = TestClient(create_app(rd), base_url=LOCAL)
    c.get("/api/item/0?reviewer=ada&page=tab-a")
    assert c.get("/api/state?reviewer=bob").json()["resume"] == 1  # held for ada
    r = c.post("/api/leave", json={"page": "tab-a", "reviewer": "ada"})
    assert r.status_code == 204
    assert c.get("/api/state?reviewer=bob").json()["resume"] == 0
    for bad in ({}, {"page": ""}, {"page": "x" * 65}, {"page": 3}, {"page": "tab", "sample_id": 1}):
        assert c.post("/api/leave", json=bad).status_code == 422, bad


def test_a_pages_older_request_answered_late_moves_no_hold() -> None:
    held = Leases(seconds=120, clock=lambda: 0.0)
    assert held.latest("ada", "tab", 20) and held.latest("ada", "tab", 20)  # the same number again: a retry
    assert not held.latest("ada", "tab", 10)
    assert held.latest("ada", "tab-2", 10) and held.latest("bob", "tab", 10)  # numbers are each page's own
    assert held.latest("ada", "tab", None) and held.latest("ada", None, 1)  # a request with no number


def test_a_pages_numbers_are_forgotten_once_its_hold_would_lapse() -> None:
    """A clock set back across a reload must not leave the page holding nothing for good."""
    now = [0.0]
    held = Leases(seconds=120, clock=lambda: now[0])
    assert held.latest("ada", "tab", 5_000)
    now[0] = 121.0
    assert held.latest("ada", "tab", 10)


def test_quick_arrow_keys_answered_out_of_order_keep_the_hold_on_the_sample_shown(tmp_path: Path) -> None:
    """Two quick arrow keys sent two requests at once; answered out of order, the older one's hold
    landed on the sample passed over, and the one the page showed was held for no one: a colleague
    was sent to it."""
    rd = make_run(tmp_path, n=20, k=3, seed=6)
    c = TestClient(create_app(rd), base_url=LOCAL)
    c.get("/api/item/2?reviewer=ada&page=tab-a&seq=20")  # the latest key press, answered first
    c.get("/api/item/1?reviewer=ada&page=tab-a&seq=19")  # the one before it, answered late
    assert c.get("/api/state?reviewer=bob").json()["resume"] == 0
    c.get("/api/item/0?reviewer=bob&page=tab-b&seq=1")
    assert c.get("/api/state?reviewer=cy").json()["resume"] == 1  # 0 bob's, 2 ada's: 1 is nobody's
    nxt = c.post("/api/decision", json={"sample_id": c.get("/api/item/2?peek=true").json()["id"], "decision": "cat",
                                        "reviewer": "ada", "page": "tab-a", "seq": 18}).json()["next"]  # fmt: skip
    assert nxt == 3  # answered as ada's next, but a later request of her page stands: not held for her
    c.get("/api/item/1?reviewer=cy&page=tab-c&seq=1")
    assert c.get("/api/state?reviewer=dee").json()["resume"] == 3  # 2 settled by ada; 3 not held for her
    assert c.get("/api/item/1?reviewer=ada&page=tab-a&seq=-1").status_code == 422


def test_a_closing_pages_leave_that_arrives_after_its_reload_leaves_the_new_hold(tmp_path: Path) -> None:
    """A reload keeps the tab's id: the closing page's leave, arriving after the new page had asked
    for its sample, dropped the new page's hold."""
    rd = make_run(tmp_path, n=20, k=3, seed=7)
    c = TestClient(create_app(rd), base_url=LOCAL)
    c.get("/api/item/0?reviewer=ada&page=tab&seq=100")  # the page before the reload
    c.get("/api/item/0?reviewer=ada&page=tab&seq=5000")  # the reloaded page, answered first
    assert c.post("/api/leave", json={"page": "tab", "reviewer": "ada", "seq": 101}).status_code == 204
    assert c.get("/api/state?reviewer=bob").json()["resume"] == 1  # still held for ada
    assert c.post("/api/leave", json={"page": "tab", "reviewer": "ada", "seq": 5001}).status_code == 204
    assert c.get("/api/state?reviewer=bob").json()["resume"] == 0


def test_a_decision_at_the_end_of_the_queue_moves_on_to_the_first_open_sample_before_it(tmp_path: Path) -> None:
    """Deciding the last position left the page there, 'saved' alone, with earlier samples still
    open (a functional audit's finding); the next is the first one this reviewer has not decided."""
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    c = TestClient(create_app(rd), base_url=LOCAL)
    ids = [c.get(f"/api/item/{p}?peek=true").json()["id"] for p in range(12)]
    for p in (0, 1, 3, 11):  # 2 and 4-10 open
        r = c.post("/api/decision", json={"sample_id": ids[p], "decision": "cat", "reviewer": "ada"}).json()
    assert r["next"] == 2
    r = c.post("/api/decision", json={"sample_id": ids[11], "decision": "bird", "reviewer": "ada"}).json()
    assert r["next"] == 2  # decided again: still the first open one
    for p in (2, *range(4, 11)):
        r = c.post("/api/decision", json={"sample_id": ids[p], "decision": "cat", "reviewer": "ada"}).json()
    assert r["next"] == 11  # every other one done: after + 1, the page's end of the queue


def test_two_pages_opening_at_once_are_sent_to_different_samples(tmp_path: Path) -> None:
    """Both pages read the resume (/api/state) before either asked for its item: both were shown
    and held the same sample. The item asked for as a resume is found as it is held."""
    rd = make_run(tmp_path, n=20, k=3, seed=5)
    c = TestClient(create_app(rd), base_url=LOCAL)
    read = [c.get(f"/api/state?reviewer={who}").json()["resume"] for who in ("ada", "bob")]
    assert read == [0, 0]
    got = [c.get(f"/api/item/{pos}?reviewer={who}&page=p-{who}&seq=1&resume=true").json()
           for pos, who in zip(read, ("ada", "bob"), strict=True)]  # fmt: skip
    assert [it["position"] for it in got] == [0, 1]
    assert got[0]["id"] != got[1]["id"]
    assert got[1]["id"] == c.get("/api/item/1?peek=true").json()["id"]
    # a position asked for by name (an arrow key, ?pos=) is shown as asked, held or not
    assert c.get("/api/item/0?reviewer=cy&page=p-cy&seq=1").json()["position"] == 0


def test_a_resume_of_a_finished_queue_shows_the_last_sample(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=3, k=3, seed=6)
    c = TestClient(create_app(rd), base_url=LOCAL)
    for pos in range(3):
        it = c.get(f"/api/item/{pos}?peek=true").json()
        c.post("/api/decision", json={"sample_id": it["id"], "decision": it["given_label"], "reviewer": "ada"})
    assert c.get("/api/state?reviewer=ada").json()["resume"] == 3
    assert c.get("/api/item/0?reviewer=ada&resume=true").json()["position"] == 2
