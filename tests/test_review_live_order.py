"""The review page's live order: which positions a re-ranking keeps, and where it starts."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from runfactory import make_run

from labeltrace.relabel.live import LiveConfig
from labeltrace.review import create_app
from labeltrace.rundir import open_run

LOCAL = "http://127.0.0.1"


def _ids(c: TestClient, n: int) -> list[int]:
    return [c.get(f"/api/item/{p}?peek=true").json()["id"] for p in range(n)]


def test_one_decision_at_the_end_of_the_queue_does_not_freeze_the_rest(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=60, k=3, seed=11, embedding=True)
    run = open_run(rd)
    given, classes = run.column("given_label"), run.classes
    app = create_app(rd, live=LiveConfig(method="propagation", every=3))
    c = TestClient(app, base_url=LOCAL)
    before = _ids(c, 60)
    last = before[-1]  # a script confirms the least suspicious sample, without looking at it
    assert c.post("/api/decision", json={"sample_id": last, "decision": given[last],
                                         "reviewer": "script"}).status_code == 200  # fmt: skip
    shown = []
    for p in range(3):  # a reviewer relabels the first three
        i = c.get(f"/api/item/{p}?reviewer=ann").json()["id"]
        shown.append(i)
        r = c.post("/api/decision", json={"sample_id": i, "reviewer": "ann",
                                          "decision": next(x for x in classes if x != given[i])})
        assert r.status_code == 200
    live = app.state.review.live
    assert live.wait(30) and live.version >= 1
    after = _ids(c, 60)
    assert after[:3] == shown and after[-1] == last  # shown and decided: kept in place
    assert sorted(after) == sorted(before) and after[3:-1] != before[3:-1]  # the rest re-ranked


def test_without_a_queue_file_a_refresh_that_changed_no_label_keeps_the_order(tmp_path: Path
                                                                              ) -> None:  # fmt: skip
    rd = make_run(tmp_path, n=60, k=3, seed=12, embedding=True)
    given = open_run(rd).column("given_label")
    assert not (rd / "queue.parquet").exists()
    app = create_app(rd, live=LiveConfig(method="propagation", every=2))
    c = TestClient(app, base_url=LOCAL)
    before = _ids(c, 60)
    for p in range(2):  # both confirm the given label: nothing the model sees changed
        i = c.get(f"/api/item/{p}?reviewer=ann").json()["id"]
        c.post("/api/decision", json={"sample_id": i, "decision": given[i], "reviewer": "ann"})
    live = app.state.review.live
    assert live.wait(30) and live.version == 1
    assert _ids(c, 60) == before


def test_a_refresh_that_lands_while_an_item_is_served_keeps_the_sample_shown(tmp_path: Path) -> None:
    # the served sample and its position are marked in one step: a re-ranking installed while the
    # page is built keeps the sample the reviewer sees where they see it (it had put another there)
    import threading

    rd = make_run(tmp_path, n=60, k=3, seed=11, embedding=True)
    given, classes = open_run(rd).column("given_label"), open_run(rd).classes
    app = create_app(rd, live=LiveConfig(method="propagation", every=3))
    c = TestClient(app, base_url=LOCAL)
    state = app.state.review
    live, go = state.live, threading.Event()
    update = live.updater
    live.updater = lambda labels: (go.wait(30), update(labels))[1]  # the refresh waits for `go`
    before = _ids(c, 60)
    for p in range(3):  # three relabels: the third starts a refresh, held back
        i = c.get(f"/api/item/{p}?reviewer=ann").json()["id"]
        c.post("/api/decision", json={"sample_id": i, "reviewer": "ann",
                                      "decision": next(x for x in classes if x != given[i])})  # fmt: skip
    assert live.refreshing
    history = state.store.history

    def history_after_the_refresh(i: int):  # type: ignore[no-untyped-def]
        go.set()
        assert live.wait(30)
        return history(i)

    state.store.history = history_after_the_refresh
    shown = c.get("/api/item/7?reviewer=ann").json()["id"]  # a position this refresh re-ranks
    assert live.version == 1 and shown == before[7]
    assert _ids(c, 60)[7] == shown  # where the reviewer saw it


def test_app_a_colleagues_look_far_ahead_leaves_the_live_order_moving(tmp_path: Path) -> None:
    """The page's reviewer names reach the live queue: bo opening position 40 once froze positions
    0-40 for ada, who walks the queue from the start."""
    run_dir = make_run(tmp_path, n=60, k=3, seed=11, embedding=True)
    app = create_app(run_dir, live=LiveConfig(method="head", every=2))
    c = TestClient(app, base_url=LOCAL)
    n = open_run(run_dir).num_samples
    before = _ids(c, n)
    assert c.get("/api/item/40?reviewer=bo").json()["id"] == before[40]
    classes, given = open_run(run_dir).classes, open_run(run_dir).column("given_label")
    for p in range(2):
        assert c.get(f"/api/item/{p}?reviewer=ada").json()["id"] == before[p]
        r = c.post("/api/decision", json={"sample_id": before[p], "reviewer": "ada",
                                          "decision": next(x for x in classes if x != given[before[p]])})
        assert r.status_code == 200 and r.json()["next"] == p + 1
    live = app.state.review.live
    assert live.wait(30) and live.version == 1 and live.start() == 2
    after = _ids(c, n)
    assert after[:3] == before[:3] and after[40] == before[40]  # shown (2: ada's next, held)
    assert after[3:40] != before[3:40]  # re-ranked after ada, not frozen up to bo's look
