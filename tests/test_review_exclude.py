"""The review app's "exclude — not any class" decision: the API (a kind, never a class: a class may
be named ``exclude``), what the item and the progress say, a blind page, and live re-ranking."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from runfactory import decision_rows, make_run

from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.live import LiveConfig
from labeltrace.review import create_app
from labeltrace.rundir import open_run

LOCAL = "http://127.0.0.1"


def test_an_exclude_is_stored_shown_and_counted(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    c = TestClient(create_app(rd), base_url=LOCAL)
    i = c.get("/api/item/0").json()["id"]
    r = c.post("/api/decision", json={"sample_id": i, "decision": "exclude", "kind": "exclude", "reviewer": "ada"})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["decision"]["kind"] == "exclude" and j["excluded"] == 1 and j["changed"] == 0
    assert j["reviewed"] == 1 and j["next"] == 1  # an exclude is a vote: done, as a label is
    item = c.get("/api/item/0").json()
    assert item["decision"]["kind"] == "exclude"
    assert item["consensus"] == {"status": "resolved", "excluded": True, "label": None, "votes": 1,
                                 "text": ConsensusRule().describe()}  # fmt: skip
    assert item["views"] == [{"reviewer": "ada", "kind": "exclude", "decision": "exclude"}]
    assert c.get(f"/api/context/{i}").status_code == 200  # the neighbours of an excluded sample
    assert decision_rows(rd) == [(i, "exclude", "exclude", "ada")]


@pytest.mark.parametrize(("body", "says"), [
    ({"decision": "exclude"}, "or kind 'exclude' for an image of no class"),  # the word alone names a class
    ({"decision": "cat", "kind": "exclude"}, "a 'exclude' decision carries no class"),
    ({"decision": "exclude", "kind": "excluded"}, "kind must be one of label, unsure, skip, exclude"),
])
def test_an_exclude_sent_wrong_is_refused_in_words(tmp_path: Path, body: dict, says: str) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    c = TestClient(create_app(rd), base_url=LOCAL)
    r = c.post("/api/decision", json={"sample_id": 0, "reviewer": "ada"} | body)
    assert r.status_code == 400 and says in r.json()["detail"]
    assert decision_rows(rd) == []


def test_a_class_named_exclude_is_a_class_and_the_kind_excludes(tmp_path: Path) -> None:
    classes = ["exclude", "Exclude", "keep"]
    rd = make_run(tmp_path, n=12, k=3, classes=classes, seed=1)
    c = TestClient(create_app(rd), base_url=LOCAL)
    for i, body in enumerate([{"decision": "exclude"}, {"decision": "Exclude"}, {"decision": "exclude", "kind": "label"},
                              {"decision": "exclude", "kind": "exclude"}]):  # fmt: skip
        assert c.post("/api/decision", json={"sample_id": i, "reviewer": "ada"} | body).status_code == 200
    assert decision_rows(rd) == [(0, "label", "exclude", "ada"), (1, "label", "Exclude", "ada"),
                                 (2, "label", "exclude", "ada"), (3, "exclude", "exclude", "ada")]  # fmt: skip
    given = open_run(rd).column("given_label")
    pos = {c.get(f"/api/item/{p}?peek=true").json()["id"]: p for p in range(12)}
    labels = [c.get(f"/api/item/{pos[i]}?peek=true").json()["consensus"] for i in range(4)]
    assert [x["label"] for x in labels] == ["exclude", "Exclude", "exclude", None]
    assert [x["excluded"] for x in labels] == [False, False, False, True]
    assert c.get("/api/state").json()["excluded"] == 1
    assert c.get("/api/state").json()["changed"] == sum(given[i] != ["exclude", "Exclude", "exclude"][i]
                                                        for i in range(3))  # fmt: skip


def test_an_exclude_needs_the_agreement_a_relabel_needs_on_the_page(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    c = TestClient(create_app(rd, consensus=ConsensusRule(agree=2)), base_url=LOCAL)
    i = c.get("/api/item/0").json()["id"]
    other = next(x for x in open_run(rd).classes if x != open_run(rd).column("given_label")[i])
    c.post("/api/decision", json={"sample_id": i, "decision": "exclude", "kind": "exclude", "reviewer": "ada"})
    assert c.get("/api/item/0").json()["consensus"]["status"] == "awaiting"
    c.post("/api/decision", json={"sample_id": i, "decision": other, "reviewer": "bob"})
    assert c.get("/api/item/0").json()["consensus"]["status"] == "disputed"  # a tie with a class
    c.post("/api/decision", json={"sample_id": i, "decision": "exclude", "kind": "exclude", "reviewer": "cy"})
    assert c.get("/api/item/0").json()["consensus"] | {"text": ""} == {"status": "resolved", "excluded": True,
                                                                        "label": None, "votes": 3, "text": ""}
    assert c.get("/api/state").json()["excluded"] == 1


def test_a_blind_page_excludes_without_learning_the_consensus(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    c = TestClient(create_app(rd, blind="model"), base_url=LOCAL)
    i = c.get("/api/item/0?reviewer=ada").json()["id"]
    r = c.post("/api/decision", json={"sample_id": i, "decision": "exclude", "kind": "exclude", "reviewer": "ada"})
    assert r.status_code == 200 and "excluded" not in r.json() and "changed" not in r.json()
    item = c.get("/api/item/0?reviewer=ada").json()
    assert item["decision"]["kind"] == "exclude" and item["consensus"]["status"] == "hidden"
    assert "excluded" not in item["consensus"]


@pytest.mark.parametrize("method", ["propagation", "head"])
def test_live_re_ranking_goes_on_after_an_exclude(tmp_path: Path, method: str) -> None:
    rd = make_run(tmp_path, n=60, k=3, seed=11, embedding=True)
    app = create_app(rd, live=LiveConfig(method=method, every=2))  # type: ignore[arg-type]
    c = TestClient(app, base_url=LOCAL)
    classes, given = open_run(rd).classes, open_run(rd).column("given_label")
    first = c.get("/api/item/0").json()["id"]
    assert c.post("/api/decision", json={"sample_id": first, "decision": "exclude", "kind": "exclude",
                                         "reviewer": "ada"}).status_code == 200  # fmt: skip
    second = c.get("/api/item/1").json()["id"]
    other = next(x for x in classes if x != given[second])
    assert c.post("/api/decision", json={"sample_id": second, "decision": other, "reviewer": "ada"}).status_code == 200
    live = app.state.review.live
    assert live.wait(60) and live.version == 1 and live.error is None
    assert c.get("/api/item/0?peek=true").json()["id"] == first  # decided: kept where it is
    assert c.get("/api/state").json()["live"]["error"] is None
