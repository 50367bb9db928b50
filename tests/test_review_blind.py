"""Blind review (``labeltrace review --blind`` / ``--blind-all``): the server never sends what the
mode hides, and the decisions say they were blind reads."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from runfactory import make_run

from labeltrace.cli import main
from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.runstore import run_store
from labeltrace.review import create_app
from labeltrace.rundir import open_run

LOCAL = "http://127.0.0.1"
CLASSES = ["cat", "dog", "fox"]
MODEL_FIELDS = ("suggested_label", "suggested_prob", "score")


def _sources(rd: Path) -> list[tuple[int, str, str, str]]:
    con = sqlite3.connect(rd / "reviews.db")
    try:
        return con.execute("SELECT sample_id, decision, reviewer, source FROM decisions ORDER BY seq").fetchall()
    finally:
        con.close()


def _other(rd: Path, i: int) -> str:
    run = open_run(rd)
    return run.classes[(int(run.column("given_label_id")[i]) + 1) % len(run.classes)]


def test_without_blind_the_model_and_the_colleagues_are_shown(tmp_path: Path) -> None:
    """The control of the tests below: the same requests on a page that is not blind."""
    rd = make_run(tmp_path, n=12, k=3, classes=CLASSES, seed=1)
    c = TestClient(create_app(rd, consensus=ConsensusRule(agree=2)), base_url=LOCAL)
    it = c.get("/api/item/0?reviewer=bob").json()
    assert it["suggested_label"] in CLASSES and it["top"] and it["given_label"] in CLASSES
    c.post("/api/decision", json={"sample_id": it["id"], "decision": "dog", "reviewer": "ada"})
    assert [v["reviewer"] for v in c.get("/api/item/0?reviewer=bob").json()["views"]] == ["ada"]
    assert c.get(f"/api/history/{it['id']}").status_code == 200
    assert c.get(f"/api/context/{it['id']}").status_code == 200
    assert _sources(rd)[0][3] == "app"


def test_blind_hides_the_model_and_the_other_reviewers(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, classes=CLASSES, seed=1)
    c = TestClient(create_app(rd, consensus=ConsensusRule(agree=2), blind="model"), base_url=LOCAL)
    assert c.get("/api/state").json()["blind"] == "model"
    it = c.get("/api/item/0?reviewer=bob").json()
    i = it["id"]
    assert all(it[k] is None for k in MODEL_FIELDS) and it["top"] == []
    assert it["given_label"] == open_run(rd).classes[int(open_run(rd).column("given_label_id")[i])]
    # ada votes twice: bob's page shows neither her votes, nor their number, nor the consensus
    for label in ("dog", "fox"):
        assert c.post("/api/decision", json={"sample_id": i, "decision": label, "reviewer": "ada"}).status_code == 200
    seen = c.get("/api/item/0?reviewer=bob").json()
    assert seen["views"] == [] and seen["decision"] is None and seen["history"] == 0
    assert seen["consensus"]["status"] == "hidden" and seen["consensus"]["label"] is None
    assert "ada" not in json.dumps(seen)
    # bob's own vote is his to see; the entries counted are his only
    c.post("/api/decision", json={"sample_id": i, "decision": "cat", "reviewer": "bob"})
    mine = c.get("/api/item/0?reviewer=bob").json()
    assert mine["decision"]["decision"] == "cat" and mine["decision"]["reviewer"] == "bob"
    assert [v["reviewer"] for v in mine["views"]] == ["bob"] and mine["history"] == 1
    assert c.get(f"/api/context/{i}").status_code == 403
    assert c.get(f"/api/history/{i}").status_code == 403
    assert [s[3] for s in _sources(rd)] == ["app-blind"] * 3


def test_blind_all_hides_the_given_label_too(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, classes=CLASSES, seed=2)
    c = TestClient(create_app(rd, blind="all"), base_url=LOCAL)
    it = c.get("/api/item/0").json()
    assert it["given_label"] is None and all(it[k] is None for k in MODEL_FIELDS)
    r = c.post("/api/decision", json={"sample_id": it["id"], "decision": _other(rd, it["id"]), "reviewer": "ada"})
    assert r.status_code == 200 and "changed" not in r.json()  # it would give the given label away
    assert _sources(rd)[0][3] == "app-blind-all"


def test_a_blind_page_needs_a_name_and_sees_its_own_decisions_only(tmp_path: Path) -> None:
    """Nameless pages were all one "anonymous": a second reviewer's blind page showed the first's
    decisions as its own and skipped the samples they decided. A blind review takes named
    decisions only, and a page sees its own."""
    rd = make_run(tmp_path, n=12, k=3, classes=CLASSES, seed=3)
    c = TestClient(create_app(rd, blind="model"), base_url=LOCAL)
    first, second = (c.get(f"/api/item/{p}?peek=true").json()["id"] for p in (0, 1))
    r = c.post("/api/decision", json={"sample_id": first, "decision": "dog"})
    assert r.status_code == 400 and "a blind review needs a reviewer name" in r.json()["detail"]
    assert run_store(open_run(rd)).history() == []
    c.post("/api/decision", json={"sample_id": first, "decision": "dog", "reviewer": "bob"})
    c.post("/api/decision", json={"sample_id": second, "decision": "fox", "reviewer": "ada"})
    own = c.get("/api/item/0?reviewer=bob").json()
    assert own["decision"]["decision"] == "dog" and own["decision"]["reviewer"] == "bob"
    assert c.get("/api/item/1?reviewer=bob").json()["decision"] is None
    assert c.get("/api/item/0?reviewer=eve").json()["decision"] is None


def test_an_unknown_blind_mode_is_refused(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    with pytest.raises(ValueError, match="blind must be None, 'model' or 'all'"):
        create_app(rd, blind="labels")  # type: ignore[arg-type]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, object]]]:
    calls: list[dict[str, object]] = []
    monkeypatch.setattr("labeltrace.review.server.serve", lambda run_dir, **kw: calls.append(kw))
    yield calls


@pytest.mark.parametrize(("flag", "mode"), [([], None), (["--blind"], "model"), (["--blind-all"], "all")])
def test_the_cli_passes_the_blind_mode(tmp_path: Path, served: list[dict[str, object]], flag: list[str],
                                       mode: str | None) -> None:  # fmt: skip
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    assert main(["review", str(rd), *flag]) == 0
    assert served[-1]["blind"] == mode


def test_the_cli_refuses_both_blind_flags_and_blind_with_export(
    tmp_path: Path, served: list[dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    with pytest.raises(SystemExit):
        main(["review", str(rd), "--blind", "--blind-all"])
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["review", str(rd), "--blind", "--export", str(tmp_path / "clean.csv")]) == 2
    assert "--export serves no page" in capsys.readouterr().err
    assert served == []


HIDDEN_COUNTS = ("changed", "resolved", "disputed", "unresolved", "without_consensus")


def test_a_blind_page_learns_nothing_from_the_counts_or_the_order(tmp_path: Path) -> None:
    """A review of the blind mode: the POST's counts told bob that ada had voted the same or
    another class on the sample just decided, 'changed' gave away the hidden given label, the next
    position skipped the samples others had settled, and the caption named the class folder."""
    rd = make_run(tmp_path, n=12, k=3, classes=CLASSES, seed=4)
    c = TestClient(create_app(rd, consensus=ConsensusRule(agree=2), blind="all"), base_url=LOCAL)
    ids = [c.get(f"/api/item/{p}?peek=true&reviewer=bob").json()["id"] for p in range(4)]
    for i in ids[:3]:  # ada settles nothing alone, but her votes are there
        assert c.post("/api/decision", json={"sample_id": i, "decision": "dog", "reviewer": "ada"}).status_code == 200
    state = c.get("/api/state?reviewer=bob").json()
    assert not set(HIDDEN_COUNTS) & set(state) and state["warnings"] == [] and state["reviewed"] == 0
    r = c.post("/api/decision", json={"sample_id": ids[0], "decision": "dog", "reviewer": "bob"}).json()
    assert not set(HIDDEN_COUNTS) & set(r) and "seq" not in r["decision"]
    assert r["next"] == 1 and r["reviewed"] == 1  # bob's own decisions alone
    it = c.get("/api/item/1?reviewer=bob").json()
    assert it["external_id"] is None and it["rank"] is None and it["decision"] is None


def test_a_blind_single_expert_page_still_shows_the_samples_others_decided(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, classes=CLASSES, seed=5)
    c = TestClient(create_app(rd, blind="model"), base_url=LOCAL)
    ids = [c.get(f"/api/item/{p}?peek=true").json()["id"] for p in range(4)]
    for i in ids[1:4]:  # one vote settles a sample here: ada's decisions close them for a page that is not blind
        c.post("/api/decision", json={"sample_id": i, "decision": "fox", "reviewer": "ada"})
    assert c.get("/api/state?reviewer=bob").json()["resume"] == 0
    r = c.post("/api/decision", json={"sample_id": ids[0], "decision": "cat", "reviewer": "bob"}).json()
    assert r["next"] == 1
    open_page = TestClient(create_app(rd), base_url=LOCAL)  # the control: not blind, the settled are skipped
    assert open_page.get("/api/state").json()["resume"] == 4


def test_blind_all_hides_the_sample_ids_that_follow_the_class_folders(tmp_path: Path) -> None:
    """A folder dataset numbers its samples class folder by class folder: the id told the class."""
    import io

    from PIL import Image

    rd = make_run(tmp_path, n=30, k=3, classes=CLASSES, seed=6)
    run = open_run(rd)
    c = TestClient(create_app(rd, blind="all"), base_url=LOCAL)
    plain = TestClient(create_app(rd), base_url=LOCAL)
    shown = [c.get(f"/api/item/{p}?peek=true").json()["id"] for p in range(30)]
    real = [plain.get(f"/api/item/{p}?peek=true").json()["id"] for p in range(30)]
    assert sorted(shown) == list(range(30)) and shown != real  # a permutation (1 in 30! to be the same)
    # the image of a shown id is its sample's; a decision on it lands on the real sample
    got = Image.open(io.BytesIO(c.get(f"/api/image/{shown[0]}").content))
    want = Image.open(io.BytesIO(plain.get(f"/api/image/{real[0]}").content))
    assert (got.mode, got.size, got.tobytes()) == (want.mode, want.size, want.tobytes())
    r = c.post("/api/decision", json={"sample_id": shown[0], "decision": "dog", "reviewer": "ada"}).json()
    assert r["decision"]["sample_id"] == shown[0]
    assert [(d.sample_id, d.decision) for d in run_store(run).history()] == [(real[0], "dog")]
    assert c.get("/api/item/0?reviewer=ada").json()["decision"]["sample_id"] == shown[0]
    again = TestClient(create_app(rd, blind="all"), base_url=LOCAL)  # the server restarted: a page left open
    assert [again.get(f"/api/item/{p}?peek=true").json()["id"] for p in range(30)] == shown  # posts what it showed
    j = next(p for p in range(2, 30) if shown[p] != real[p])  # the permutation is drawn anew for each store
    missing = run.image_file(real[j])
    missing.rename(missing.with_suffix(".gone"))
    err = again.get(f"/api/image/{shown[j]}").json()["detail"]
    assert err.startswith(f"image of sample {shown[j]} ") and f"sample {real[j]} " not in err  # the real id: untold
    bad = c.post("/api/decision", json={"sample_id": shown[1], "decision": "zebra", "reviewer": "ada"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith(f"sample {shown[1]}:")


def test_a_blind_review_cannot_re_rank_live(tmp_path: Path) -> None:
    from labeltrace.relabel.live import LiveConfig

    rd = make_run(tmp_path, n=12, k=3, classes=CLASSES, seed=1)
    with pytest.raises(ValueError, match="a blind review cannot re-rank live"):
        create_app(rd, blind="model", live=LiveConfig(method="propagation", every=5))


def test_a_blind_page_is_not_told_a_colleagues_name(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, classes=CLASSES, seed=8)
    c = TestClient(create_app(rd, blind="model"), base_url=LOCAL)
    first = c.get("/api/item/0?peek=true").json()["id"]
    assert c.post("/api/decision", json={"sample_id": first, "decision": "dog", "reviewer": "Ada"}).status_code == 200
    r = c.post("/api/decision", json={"sample_id": first, "decision": "dog", "reviewer": "ADA"})
    assert r.status_code == 400 and "differs only in letter case (or in characters that show nothing) from a name with decisions" in r.json()["detail"]
    assert "Ada" not in r.json()["detail"]
    seen = TestClient(create_app(rd), base_url=LOCAL)  # not blind: the stored spelling is named, to be used
    r = seen.post("/api/decision", json={"sample_id": first, "decision": "dog", "reviewer": "ADA"})
    assert r.status_code == 400 and "'Ada'" in r.json()["detail"]


def test_a_blind_page_needs_a_name_of_its_own_and_says_so(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, classes=CLASSES, seed=9)
    c = TestClient(create_app(rd, blind="model"), base_url=LOCAL)
    assert c.get("/api/state").json()["rule"]["names"] is True  # the page marks the Reviewer box as needed
    first = c.get("/api/item/0?peek=true").json()["id"]
    for name in ("anonymous", "Anonymous"):  # how nameless decisions are stored: every nameless page's
        r = c.post("/api/decision", json={"sample_id": first, "decision": "dog", "reviewer": name})
        assert r.status_code == 400 and "a reviewer name of your own" in r.json()["detail"]
    assert run_store(open_run(rd)).history() == []


def test_a_page_opened_on_another_run_or_mode_saves_nothing_after_a_restart(tmp_path: Path) -> None:
    """The page sends the view it was opened on (X-Labeltrace-View, from /api/state): a server
    restarted in another blind mode, or on another run, where the same id may be another image,
    refused nothing — the decision landed on that other image (an audit's finding). A restart on
    the same run in the same mode keeps the view, and a request without the header is not checked."""
    rd = make_run(tmp_path / "a", n=12, k=3, classes=CLASSES, seed=2)
    other = make_run(tmp_path / "b", n=12, k=3, classes=CLASSES, seed=3)
    views = {}
    for name, app in [("open", create_app(rd)), ("again", create_app(rd)), ("blind", create_app(rd, blind="all")),
                      ("blind again", create_app(rd, blind="all")), ("other", create_app(other))]:
        views[name] = (TestClient(app, base_url=LOCAL), app)
    view = {k: c.get("/api/state").json()["view"] for k, (c, _) in views.items()}
    assert view["open"] == view["again"] and view["blind"] == view["blind again"]
    assert len({view["open"], view["blind"], view["other"]}) == 3
    page = {"X-Labeltrace-View": view["open"]}  # a page opened on the first server, not blind
    for k in ("blind", "other"):
        c = views[k][0]
        r = c.post("/api/decision", json={"sample_id": 5, "decision": "dog", "reviewer": "zoe"}, headers=page)
        assert r.status_code == 409 and "opened on another review" in r.json()["detail"]
        assert c.get("/api/item/0?reviewer=zoe", headers=page).status_code == 409
    assert _sources(rd) == [] and _sources(other) == []
    c = views["again"][0]
    assert c.post("/api/decision", json={"sample_id": 5, "decision": "dog", "reviewer": "zoe"},
                  headers=page).status_code == 200
    assert views["other"][0].post("/api/decision", json={"sample_id": 5, "decision": "dog", "reviewer": "zoe"}
                                  ).status_code == 200  # a script sends no view
    assert _sources(rd) == [(5, "dog", "zoe", "app")] and _sources(other) == [(5, "dog", "zoe", "app")]
