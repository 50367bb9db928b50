"""Review app: persistence, history, resume, token, traversal, validation, concurrency, kill -9."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from runfactory import csv_rows, make_run

from labeltrace.export.cleaned import export_labels
from labeltrace.relabel.decisions import ReviewStore
from labeltrace.relabel.order import review_order
from labeltrace.review import create_app
from labeltrace.review.app import is_loopback
from labeltrace.rundir import open_run, write_json, write_table

SRC = str(Path(__file__).resolve().parents[1] / "src")
LOCAL = "http://127.0.0.1"


def client(run_dir: Path, **kw: object) -> TestClient:
    return TestClient(create_app(run_dir, **kw), base_url=LOCAL)  # type: ignore[arg-type]


def db_rows(run_dir: Path) -> list[tuple]:
    con = sqlite3.connect(run_dir / "reviews.db")
    try:
        return con.execute(
            "SELECT sample_id, kind, decision, reviewer FROM decisions ORDER BY seq"
        ).fetchall()
    finally:
        con.close()


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path, n=30, k=3, seed=5)


def test_decision_committed_and_history_kept(run_dir: Path) -> None:
    c = client(run_dir)
    run = open_run(run_dir)
    first = int(np.argmin(run.column("rank")))
    item = c.get("/api/item/0").json()
    assert item["id"] == first and item["decision"] is None
    assert item["given_label"] == run.column("given_label")[first]
    r = c.post("/api/decision", json={"sample_id": first, "decision": "bird", "reviewer": "ada"})
    assert r.status_code == 200 and r.json()["saved"] is True
    assert db_rows(run_dir) == [(first, "label", "bird", "ada")]  # on disk as soon as answered
    c.post("/api/decision", json={"sample_id": first, "decision": "cat", "reviewer": "bob"})
    c.post("/api/decision", json={"sample_id": first, "decision": "unsure", "reviewer": "ada"})
    assert db_rows(run_dir) == [
        (first, "label", "bird", "ada"),
        (first, "label", "cat", "bob"),
        (first, "unsure", "unsure", "ada"),
    ]
    hist = c.get(f"/api/history/{first}").json()
    assert [h["decision"] for h in hist] == ["bird", "cat", "unsure"]
    item = c.get("/api/item/0").json()
    assert item["decision"]["kind"] == "unsure" and item["history"] == 3
    con = sqlite3.connect(run_dir / "reviews.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_progress_changed_and_resume(run_dir: Path) -> None:
    c = client(run_dir, reviewer="default-name")
    run = open_run(run_dir)
    order = review_order(run)
    given = run.column("given_label")
    other = {g: next(x for x in run.classes if x != g) for g in run.classes}
    c.post(
        "/api/decision", json={"sample_id": int(order[0]), "decision": str(given[order[0]])}
    )  # confirm
    c.post(
        "/api/decision", json={"sample_id": int(order[1]), "decision": other[given[order[1]]]}
    )  # change
    c.post("/api/decision", json={"sample_id": int(order[2]), "decision": "skip"})
    c.post("/api/decision", json={"sample_id": int(order[3]), "decision": "unsure"})
    s = c.get("/api/state").json()
    assert (s["reviewed"], s["changed"], s["skipped"], s["total"]) == (3, 1, 1, 30)
    assert s["resume"] == 2  # skipped items stay pending
    # the skip and the unsure have no consensus: what the export lists as unresolved (it said 0)
    assert (s["without_consensus"], s["unresolved"]) == (2, 0)
    c.post("/api/decision", json={"sample_id": int(order[2]), "decision": run.classes[0]})
    assert client(run_dir).get("/api/state").json()["resume"] == 4  # a new app resumes from the db
    assert db_rows(run_dir)[0][3] == "default-name"


def test_queue_parquet_order(run_dir: Path) -> None:
    ids = np.array([7, 3, 11, 0], dtype=np.int64)
    write_table(
        run_dir / "queue.parquet",
        pa.table(
            {
                "id": ids,
                "priority": [0.1, 0.9, 0.5, 0.7],
                "rank": np.array([4, 1, 3, 2], dtype=np.int64),
            }
        ),
    )
    c = client(run_dir)
    assert c.get("/api/state").json()["total"] == 4
    assert [c.get(f"/api/item/{p}").json()["id"] for p in range(4)] == [3, 0, 11, 7]
    assert c.get("/api/item/4").status_code == 404
    write_table(
        run_dir / "queue.parquet", pa.table({"id": [1, 1], "priority": [0.0, 0.0], "rank": [1, 2]})
    )
    with pytest.raises(ValueError, match=r"repeated sample ids \[1\]"):
        create_app(run_dir)


def test_validation(run_dir: Path) -> None:
    c = client(run_dir)
    r = c.post("/api/decision", json={"sample_id": 0, "decision": "zebra"})
    assert r.status_code == 400 and "airplane, bird, cat" in r.json()["detail"]
    assert "zebra" not in r.text  # errors never echo the input
    assert c.post("/api/decision", json={"sample_id": 30, "decision": "cat"}).status_code == 404
    assert c.post("/api/decision", json={"sample_id": -1, "decision": "cat"}).status_code == 404
    assert (
        c.post(
            "/api/decision", json={"sample_id": 0, "decision": "cat", "kind": "maybe"}
        ).status_code
        == 400
    )
    assert (
        c.post(
            "/api/decision", json={"sample_id": 0, "decision": "cat", "reviewer": "x" * 101}
        ).status_code
        == 400
    )
    assert c.post("/api/decision", json={"sample_id": "abc", "decision": "cat"}).status_code == 422
    # a cross-site "simple" form post (text/plain) is not accepted as a decision
    r = c.post(
        "/api/decision",
        content='{"sample_id": 0, "decision": "cat"}',
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code >= 400
    assert c.get("/api/image/30").status_code == 404
    assert c.get("/api/history/99").status_code == 404
    assert not (run_dir / "reviews.db").exists() or db_rows(run_dir) == []


def test_class_named_like_an_action_needs_kind(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=20, k=3, classes=["skip", "cat", "dog"])
    c = client(rd)
    assert c.post("/api/decision", json={"sample_id": 0, "decision": "skip"}).status_code == 400
    assert (
        c.post(
            "/api/decision", json={"sample_id": 0, "decision": "skip", "kind": "label"}
        ).status_code
        == 200
    )
    assert (
        c.post(
            "/api/decision", json={"sample_id": 1, "decision": "skip", "kind": "skip"}
        ).status_code
        == 200
    )
    assert db_rows(rd) == [(0, "label", "skip", "anonymous"), (1, "skip", "skip", "anonymous")]


def test_token_required_when_set(run_dir: Path) -> None:
    app = create_app(run_dir, token="s3cret-token-0123")
    c = TestClient(app, base_url="http://192.0.2.10:8765")  # any host once a token is set
    for path in ("/api/state", "/api/item/0", "/api/image/0", "/api/history/0"):
        assert c.get(path).status_code == 401, path
    # the page itself: static, no data of the run; it reads the token from the link's fragment
    assert c.get("/").status_code == 200 and "<script>" in c.get("/").text
    assert c.get("/api/state", headers={"X-Labeltrace-Token": "wrong"}).status_code == 401
    assert c.post("/api/decision", json={"sample_id": 0, "decision": "cat"}).status_code == 401
    assert not (run_dir / "reviews.db").exists() or db_rows(run_dir) == []
    assert c.get("/api/state", headers={"X-Labeltrace-Token": "s3cret-token-0123"}).status_code == 200
    assert c.get("/?token=s3cret-token-0123").status_code == 200  # a link printed by an older version
    r = c.get("/api/image/0", headers={"X-Labeltrace-Token": "s3cret-token-0123"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    r = c.post(
        "/api/decision",
        json={"sample_id": 0, "decision": "cat"},
        headers={"X-Labeltrace-Token": "s3cret-token-0123"},
    )
    assert r.status_code == 200


def test_without_token_only_loopback_hosts(run_dir: Path) -> None:
    app = create_app(run_dir)
    assert TestClient(app, base_url="http://127.0.0.1:8765").get("/api/state").status_code == 200
    assert TestClient(app, base_url="http://localhost:8765").get("/api/state").status_code == 200
    assert TestClient(app, base_url="http://evil.example:8765").get("/api/state").status_code == 403
    assert TestClient(app, base_url="http://10.0.0.5").get("/").status_code == 403
    assert (
        is_loopback("127.0.0.1")
        and is_loopback("::1")
        and is_loopback("[::1]")
        and is_loopback("localhost")
    )
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


def test_page_served(run_dir: Path) -> None:
    r = client(run_dir).get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "__JS__" not in r.text and "decide(" in r.text and "X-Labeltrace-Token" in r.text
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_traversal_blocked(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=20, k=3)
    secret = tmp_path / "secret.png"
    secret.write_bytes((rd.parent / "data" / open_run(rd).column("path")[0]).read_bytes())
    root = open_run(rd).data_root
    (root / "link.png").symlink_to(secret)
    t = pq.read_table(rd / "samples.parquet")
    paths = t.column("path").to_pylist()
    paths[1] = "../secret.png"
    paths[2] = "../../../../../../etc/passwd"
    paths[3] = "/etc/passwd"
    paths[4] = "link.png"
    paths[5] = "%2e%2e/secret.png"
    write_table(
        rd / "samples.parquet", t.set_column(t.column_names.index("path"), "path", pa.array(paths))
    )
    c = client(rd)
    assert c.get("/api/image/0").status_code == 200
    for i in (1, 2, 3, 4):
        r = c.get(f"/api/image/{i}")
        assert r.status_code == 403 and "outside the folders the scan read" in r.json()["detail"], i
        assert str(root) not in r.text, i  # the server's own paths stay on the server
    assert (
        c.get("/api/image/5").status_code == 404
    )  # a literal '%2e%2e' folder does not exist: no decoding
    for crafted in (
        "/api/image/..%2F..%2Fetc%2Fpasswd",
        "/api/image/%2e%2e",
        "/api/image/%2e%2e%2fsecret.png",
        "/api/image/../../etc/passwd",
        "/api/image/0%2F..%2F..%2Fsecret.png",
        "/api/image/1.5",
    ):
        r = c.get(crafted)
        assert r.status_code in (404, 422), crafted
        assert b"root:" not in r.content and r.headers["content-type"] != "image/png"


def test_concurrent_clients_lose_nothing(run_dir: Path) -> None:
    app = create_app(run_dir)
    clients = [TestClient(app, base_url=LOCAL), TestClient(create_app(run_dir), base_url=LOCAL)]
    classes = open_run(run_dir).classes
    errors: list[str] = []

    def work(w: int) -> None:
        for j in range(15):
            sid = (2 * j + w) % 30
            r = clients[w].post(
                "/api/decision",
                json={"sample_id": sid, "decision": classes[j % 3], "reviewer": f"tab{w}"},
            )
            if r.status_code != 200:
                errors.append(r.text)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = db_rows(run_dir)
    assert len(rows) == 30
    want = {((2 * j + w) % 30, classes[j % 3], f"tab{w}") for w in range(2) for j in range(15)}
    assert {(r[0], r[2], r[3]) for r in rows} == want
    assert clients[0].get("/api/state").json()["reviewed"] == 30


def test_store_refuses_other_classes(run_dir: Path) -> None:
    ReviewStore(run_dir / "reviews.db", classes=["a", "b"], num_samples=30)
    with pytest.raises(ValueError, match="classes"):
        ReviewStore(run_dir / "reviews.db", classes=["a", "c"], num_samples=30)


# --------------------------------------------------------------------------- export_labels
def _decide(run_dir: Path, decisions: dict[int, str]) -> None:
    c = client(run_dir)
    for sid, d in decisions.items():
        assert c.post("/api/decision", json={"sample_id": sid, "decision": d}).status_code == 200


def test_export_labels_folder(run_dir: Path) -> None:
    run = open_run(run_dir)
    given = list(run.column("given_label"))
    new = next(c for c in run.classes if c != given[4])
    _decide(run_dir, {4: given[4], 2: "bird", 6: "unsure", 8: "skip"})
    _decide(run_dir, {4: new})  # a changed mind: the latest decision counts
    out = export_labels(run_dir)
    assert out == run_dir / "labels_cleaned.csv"
    rows = csv_rows(out)
    assert [r["path"] for r in rows] == list(run.column("path"))
    want = list(given)
    want[2], want[4] = "bird", new
    assert [r["label"] for r in rows] == want
    dec = {i: r["review_decision"] for i, r in enumerate(rows) if r["review_decision"]}
    assert dec == {2: "bird", 4: new, 6: "unsure", 8: "skip"}


@pytest.mark.parametrize("label_ints", [False, True])
def test_export_labels_manifest_csv(tmp_path: Path, label_ints: bool) -> None:
    rd = make_run(tmp_path, n=24, k=3, kind="manifest", label_ints=label_ints)
    src = Path(open_run(rd).meta["data"]["source"])
    before = src.read_bytes()
    _decide(rd, {0: "cat", 5: "unsure", 9: "airplane"})
    out = export_labels(rd)
    assert src.read_bytes() == before  # the original is never touched
    orig = csv_rows(src)
    rows = csv_rows(out)
    assert list(rows[0].keys()) == ["path", "label", "site", "review_decision", "review_status"]
    assert len(rows) == len(orig)
    for k, (o, r) in enumerate(zip(orig, rows, strict=True)):
        assert (r["path"], r["site"]) == (o["path"], o["site"])
        if k == 0:
            assert r["label"] == ("2" if label_ints else "cat") and r["review_decision"] == "cat"
        elif k == 9:
            assert (
                r["label"] == ("0" if label_ints else "airplane")
                and r["review_decision"] == "airplane"
            )
        else:
            assert r["label"] == o["label"]
            assert r["review_decision"] == ("unsure" if k == 5 else "")
            assert r["review_status"] == ("unsure" if k == 5 else "")
    with pytest.raises(ValueError, match="original manifest"):
        export_labels(rd, src)
    with pytest.raises(ValueError, match=r"\.csv"):
        export_labels(rd, tmp_path / "x.parquet")


def test_export_labels_manifest_parquet(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=24, k=3, kind="manifest", label_ints=True)
    meta = json.loads((rd / "run.json").read_text())
    src = Path(meta["data"]["source"])
    pq_path = src.with_suffix(".parquet")
    t = pacsv.read_csv(src)
    pq.write_table(t, pq_path)
    meta["data"]["source"] = str(pq_path)
    write_json(rd / "run.json", meta)
    _decide(rd, {3: "bird", 4: "skip"})
    out = export_labels(rd)
    assert out.suffix == ".parquet"
    got = pq.read_table(out)
    assert got.column_names == t.column_names + ["review_decision", "review_status"]
    assert got.schema.field("label").type == t.schema.field("label").type
    labels = t.column("label").to_pylist()
    labels[3] = 1
    assert got.column("label").to_pylist() == labels
    dec = got.column("review_decision").to_pylist()
    assert dec[3] == "bird" and dec[4] == "skip" and dec.count(None) == 22


def test_export_labels_arrays(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=20, k=3, with_files=False)
    given = open_run(rd).column("given_label_id")
    _decide(rd, {1: "cat", 2: "unsure"})
    out = export_labels(rd)
    arr = np.load(out)
    want = given.copy()
    want[1] = 2
    assert arr.dtype == np.int64 and np.array_equal(arr, want)
    side = csv_rows(out.with_suffix(".csv"))
    assert side[1]["review_decision"] == "cat" and side[2]["review_decision"] == "unsure"
    assert side[2]["label_id"] == str(given[2])
    assert np.array_equal(
        np.load(export_labels(make_run(tmp_path / "b", n=20, k=3, with_files=False))),
        open_run(tmp_path / "b" / "run").column("given_label_id"),
    )


# --------------------------------------------------------------------------- kill -9
def _start(run_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A review server of ``run_dir`` in a subprocess, on the port it took itself (``port=0``, the
    one it prints): a free port looked up here and bound there a moment later could be taken between
    by another process (a parallel test, a CI neighbour), which the requests below would then reach."""
    code = f"from labeltrace.review import serve; serve({str(run_dir)!r}, port=0)"
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    fd, name = tempfile.mkstemp(prefix="server-", suffix=".log", dir=run_dir.parent)
    log = Path(name)
    with os.fdopen(fd, "wb") as fh:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=fh, stderr=fh)
    deadline = time.monotonic() + 60  # a loaded 2-core CI machine imports torch slowly
    port = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text(errors='replace')}")
        if port is None:  # printed once the port is bound, before uvicorn serves it (a token on loopback too)
            found = re.search(r"^open http://127\.0\.0\.1:(\d+)/#token=(\S+)$", log.read_text(errors="replace"), re.M)
            port = int(found[1]) if found else None
            if found:
                _TOKENS[port] = urllib.parse.unquote(found[2])
        try:
            if port is not None:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/state",
                                             headers={"X-Labeltrace-Token": _TOKENS[port]})  # fmt: skip
                with urllib.request.urlopen(req, timeout=1) as r:
                    if r.status == 200:
                        return proc, port
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not start: {log.read_text(errors='replace')}")


_TOKENS: dict[int, str] = {}  # each started server's port: the token it printed


def _get(port: int, path: str) -> urllib.request.Request:
    return urllib.request.Request(f"http://127.0.0.1:{port}/{path}", headers={"X-Labeltrace-Token": _TOKENS[port]})


def _post(port: int, body: dict) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/decision",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Labeltrace-Token": _TOKENS[port]},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
        return json.loads(r.read())


def test_kill_9_keeps_every_acknowledged_decision(run_dir: Path) -> None:
    proc, port = _start(run_dir)
    acked = []
    try:
        for j in range(12):
            acked.append(
                _post(
                    port,
                    {
                        "sample_id": j,
                        "decision": ["airplane", "bird", "cat", "unsure"][j % 4],
                        "reviewer": "kill9",
                    },
                )["decision"]
            )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    proc, port = _start(run_dir)  # restart on the same run: every acknowledged decision is there
    try:
        with urllib.request.urlopen(_get(port, "api/state"), timeout=5) as r:
            state = json.loads(r.read())
        assert state["reviewed"] == 12
        for d in acked:
            with urllib.request.urlopen(_get(port, f"api/history/{d['sample_id']}"), timeout=5) as r:
                assert json.loads(r.read()) == [d]
    finally:
        proc.kill()
        proc.wait()
    assert [(r[0], r[2]) for r in db_rows(run_dir)] == [
        (d["sample_id"], d["decision"]) for d in acked
    ]


def test_serve_generates_a_token_off_loopback(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from labeltrace.review import serve

    seen: dict[str, Any] = {}

    def run(app: object, sock: socket.socket, **kw: object) -> None:
        seen.update(app=app, bound=sock.getsockname()[:2], **kw)
        sock.close()

    monkeypatch.setattr("labeltrace.review.server._run", run)
    serve(run_dir, host="0.0.0.0", port=0)  # 0: a free port, the one printed
    out = capsys.readouterr().out
    token = out.split("token: ")[1].split()[0]
    assert len(token) >= 24 and f"#token={token}" in out and "?token=" not in out
    port = seen["bound"][1]
    assert seen["bound"][0] == "0.0.0.0" and port > 0 and f":{port}/#token=" in out
    assert (seen["host"], seen["port"]) == ("0.0.0.0", port)
    c = TestClient(seen["app"], base_url=f"http://192.0.2.1:{port}")
    assert c.get("/api/state").status_code == 401
    assert c.get("/api/state", headers={"X-Labeltrace-Token": token}).status_code == 200
    serve(run_dir, port=0)  # loopback: a token too (every user of a shared machine reaches 127.0.0.1)
    out = capsys.readouterr().out
    local = out.split("#token=")[1].split()[0]
    assert len(local) >= 24 and local != token and f"open http://127.0.0.1:{seen['port']}/#token={local}\n" in out
    assert seen["bound"][0] == "127.0.0.1"
    c = TestClient(seen["app"], base_url=f"http://127.0.0.1:{seen['port']}")
    assert c.get("/api/state").status_code == 401
    assert c.get("/api/state", headers={"X-Labeltrace-Token": local}).status_code == 200


def test_a_port_in_use_is_an_error_before_any_url(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`review` printed its URL, then uvicorn failed to bind: the URL shown was another program's."""
    from labeltrace.cli import main

    with socket.create_server(("127.0.0.1", 0)) as other:
        taken = other.getsockname()[1]
        assert main(["review", str(run_dir), "--port", str(taken)]) == 2
    out, err = capsys.readouterr()
    assert "open http" not in out
    assert f"error: cannot listen on 127.0.0.1 port {taken}: Address already in use; " \
        "another program (or another review server) listens there: choose another --port (0 picks a free one)" in err


def test_state_carries_the_scans_contradicted_class_warnings(run_dir: Path) -> None:
    assert client(run_dir).get("/api/state").json()["warnings"] == []  # none in the run (or a run from before)
    meta = json.loads((run_dir / "run.json").read_text())
    meta["contradicted_classes"] = [{"class": "cat", "samples": 10, "contradicted": 8, "suggested": "dog"}]
    write_json(run_dir / "run.json", meta)
    (w,) = client(run_dir).get("/api/state").json()["warnings"]
    assert w.startswith("class 'cat': the models contradict 8 of its 10 labels (80%), most often suggesting 'dog'")
    page = client(run_dir).get("/").text
    assert 'id="warnings"' in page and "textContent = s.warnings" in page  # shown as text, never as HTML
    meta["warnings"] = ["crossfit flags 41 of 60 samples (68%)"]  # the scan's other warnings (run.json)
    write_json(run_dir / "run.json", meta)
    assert client(run_dir).get("/api/state").json()["warnings"][1] == "crossfit flags 41 of 60 samples (68%)"


def test_one_reviewer_across_routes(tmp_path: Path) -> None:
    """The app's default reviewer is stored whitespace-collapsed, and the item view finds that
    reviewer's decision; a decision sent with an empty name is the default reviewer's, as a GET
    with an empty name is, never "anonymous"."""
    rd = make_run(tmp_path, n=20, k=3, seed=2)
    c = client(rd, reviewer="Ada  Lovelace")
    first = c.get("/api/item/0").json()["id"]
    assert c.post("/api/decision", json={"sample_id": first, "decision": "bird"}).status_code == 200
    assert c.get("/api/item/0").json()["decision"]["decision"] == "bird"
    r = c.post("/api/decision", json={"sample_id": first, "decision": "cat", "reviewer": "  "})
    assert r.json()["decision"]["reviewer"] == "Ada Lovelace"
    assert c.get("/api/item/0?reviewer=").json()["decision"]["decision"] == "cat"
    assert [row[3] for row in db_rows(rd)] == ["Ada Lovelace", "Ada Lovelace"]


def test_an_action_with_a_class_is_refused_not_dropped(run_dir: Path) -> None:
    """kind "skip" / "unsure" with a class as the decision would store the action and lose the
    class: refused, naming the sample, in the app and in the store."""
    c = client(run_dir)
    for kind in ("skip", "unsure"):
        r = c.post("/api/decision", json={"sample_id": 4, "decision": "bird", "kind": kind})
        assert r.status_code == 400 and "sample 4" in r.json()["detail"] and "bird" not in r.text
    assert not (run_dir / "reviews.db").exists() or db_rows(run_dir) == []
    store = ReviewStore(run_dir / "reviews.db", classes=open_run(run_dir).classes, num_samples=30)
    with pytest.raises(ValueError, match="sample 4: a 'skip' decision carries no class"):
        store.add(4, "bird", kind="skip")
    assert store.add(4, "skip", kind="skip").decision == "skip"


def test_decisions_never_land_on_another_datasets_images(tmp_path: Path) -> None:
    """A reviews.db carried over to a run of other images (same count, same classes) is refused,
    naming the problem; a store written before it kept the ids takes them on at its next open."""
    a, b = make_run(tmp_path / "a", n=20, k=3, seed=1), make_run(tmp_path / "b", n=20, k=3, seed=2)
    assert open_run(a).classes == open_run(b).classes
    assert list(open_run(a).column("external_id")) != list(open_run(b).column("external_id"))
    c = client(a)
    first = c.get("/api/item/0").json()["id"]
    assert c.post("/api/decision", json={"sample_id": first, "decision": "bird"}).status_code == 200
    (b / "reviews.db").write_bytes((a / "reviews.db").read_bytes())
    with pytest.raises(ValueError, match="holds decisions about other samples"):
        create_app(b)
    with pytest.raises(ValueError, match="other samples"):
        export_labels(b, tmp_path / "out")
    legacy = tmp_path / "legacy.db"  # written without ids: takes run a's at its first open with them
    ReviewStore(legacy, classes=open_run(a).classes, num_samples=20)
    (a / "reviews.db").unlink()
    (a / "reviews.db").write_bytes(legacy.read_bytes())
    assert client(a).get("/api/item/0").status_code == 200
    (b / "reviews.db").write_bytes((a / "reviews.db").read_bytes())
    with pytest.raises(ValueError, match="other samples"):
        create_app(b)


def test_a_timeless_row_repeats_only_when_it_changes_the_latest(run_dir: Path) -> None:
    """Rows without a time are stamped at import: one that says what the reviewer's latest row
    says is a repeat; one that goes back to an older answer is a new decision and is kept."""
    store = ReviewStore(run_dir / "reviews.db", classes=open_run(run_dir).classes, num_samples=30)
    rows = [{"sample_id": 3, "decision": "cat", "reviewer": "ls"}]
    assert store.add_many(rows, source="import") == 1 and store.add_many(rows, source="import") == 0
    assert store.add_many([{"sample_id": 3, "decision": "bird", "reviewer": "ls"}], source="import") == 1
    assert store.add_many(rows, source="import") == 1  # back to cat: the latest is bird, so it counts
    assert [d.decision for d in store.history(3)] == ["cat", "bird", "cat"]
    assert store.current()[3].decision == "cat"


def test_positions_and_next_follow_the_order_they_are_given(run_dir: Path) -> None:
    """A decision's position and the next one come from one snapshot of the order (a live
    refresh may swap it in between); each order gets its own positions, never a cached other's."""
    st = create_app(run_dir).state.review
    mine = np.arange(30)[::-1].copy()
    assert st.positions(mine)[29] == 0 and st.positions(mine)[0] == 29
    fresh = np.arange(30)
    assert st.positions(fresh)[0] == 0 and st.positions()[int(st.order()[0])] == 0
    assert st.next_position(0, None, mine) == 1


def test_full_serves_a_large_image_at_its_own_resolution(tmp_path: Path) -> None:
    """Zooming in on a large scan (an X-ray) needs its pixels, not the 512 px display copy."""
    import io

    from PIL import Image

    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (900, 1200, 3), dtype=np.uint8)).save(run.image_file(0))
    Image.fromarray(rng.integers(0, 256, (3000, 1500, 3), dtype=np.uint8)).save(run.image_file(1))
    c = TestClient(create_app(rd), base_url="http://127.0.0.1")

    def size(url: str) -> tuple[int, int]:
        r = c.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        return Image.open(io.BytesIO(r.content)).size

    assert size("/api/image/0") == (512, 384)
    assert size("/api/image/0?full=true") == (1200, 900)
    assert size("/api/image/1?full=true") == (1024, 2048)  # capped at 2048 px
    assert size("/api/image/2?full=true") == size("/api/image/2") == (512, 512)  # 8 px: enlarged as for display


def test_listen_takes_ipv4_clients_on_every_ipv6_interface_and_names_an_unknown_host(tmp_path: Path) -> None:
    """--host :: stopped answering IPv4 clients (the socket was IPv6-only); an unknown host read
    'Unknown error -2'."""
    from labeltrace.review.server import listen

    if socket.has_ipv6 and socket.has_dualstack_ipv6():
        try:
            sock = listen("::", 0)
        except OSError:
            pytest.skip("no IPv6 on this machine")
        with sock, socket.create_connection(("127.0.0.1", sock.getsockname()[1]), timeout=5):
            pass
    with pytest.raises(OSError, match=r"cannot listen on no-such-host\.invalid port 0: (?!Unknown error).+; check "):
        listen("no-such-host.invalid", 0)


def test_a_server_that_cannot_take_its_port_stores_no_rule(run_dir: Path) -> None:
    """`review --agree 3` on a port in use failed, but had already stored its rule, which the
    server running there then followed."""
    from labeltrace.cli import main

    with socket.create_server(("127.0.0.1", 0)) as other:
        assert main(["review", str(run_dir), "--port", str(other.getsockname()[1]), "--agree", "3"]) == 2
    from labeltrace.relabel.runstore import run_store

    assert run_store(open_run(run_dir)).rule().agree == 1


def test_the_server_starts_without_torch_or_matplotlib(run_dir: Path) -> None:
    """The review server imported torch (through the live loop's head) and matplotlib (through the
    report package, for its image helpers) at start: ~5 s before the page could be served. They are
    imported where a head trains or a plot is drawn; asserted on the modules a fresh process loads."""
    code = ("import sys\nfrom labeltrace.review import create_app\n"
            f"app = create_app({str(run_dir)!r}, reviewer='ann')\n"
            "print(sorted(m for m in ('torch', 'matplotlib', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_the_server_builds_the_page_context_before_the_first_request(run_dir: Path, monkeypatch) -> None:
    """The first /api/context without an embedding decoded every image inside that request (minutes
    at 100k samples) after the page had opened: the server builds it in the background at start."""
    from labeltrace import rundir
    from labeltrace.review import server

    started: list[threading.Thread] = []
    warm = server.warm_context
    monkeypatch.setattr(server, "warm_context", lambda ctx: started.append(warm(ctx)) or started[-1])
    monkeypatch.setattr(server, "_run", lambda app, sock, **kw: sock.close())
    assert not (run_dir / rundir.REVIEW_CONTEXT).exists()
    server.serve(run_dir, port=0)
    assert len(started) == 1
    started[0].join(timeout=60)
    assert (run_dir / rundir.REVIEW_CONTEXT).is_file()  # built with no request made
    started.clear()
    server.serve(run_dir, port=0, blind="all")  # a blind page asks for no context: none built
    assert started == []


def test_an_image_is_decoded_once_and_again_when_its_file_changes(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Every request decoded the whole file again: a quarter of a second for a large X-ray, for
    each thumbnail and each reviewer."""
    import labeltrace.review.app as review_app

    rd = make_run(tmp_path, n=12, k=3, seed=4)
    calls: list[int] = []
    real = review_app.load_rgb
    monkeypatch.setattr(review_app, "load_rgb", lambda run, i: calls.append(i) or real(run, i))
    c = client(rd)
    first = c.get("/api/image/3").content
    assert c.get("/api/image/3").content == first and calls == [3]  # kept
    c.get("/api/image/3?thumb=true")
    assert calls == [3, 3]  # another size: rendered once more
    f = open_run(rd).image_file(3)
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file touched since
    c.get("/api/image/3")
    assert calls == [3, 3, 3]


def test_rendered_images_keep_the_most_recent_within_their_bytes() -> None:
    from labeltrace.review.rendered import RenderedImages

    kept = RenderedImages(max_bytes=10)
    made: list[str] = []

    def render(key: str, data: bytes) -> bytes:
        return kept.get(key, lambda: made.append(key) or data)

    render("a", b"aaaa")
    render("b", b"bbbb")
    render("a", b"????")  # kept: not rendered again, and now the most recent
    render("c", b"cccc")  # 12 bytes: the least recent, b, goes
    assert made == ["a", "b", "c"] and render("a", b"????") == b"aaaa"
    render("b", b"bbbb")
    assert made == ["a", "b", "c", "b"]
    render("big", b"x" * 11)  # larger than all it may keep: served, not kept
    render("big", b"x" * 11)
    assert made[-2:] == ["big", "big"]


def test_a_decision_while_torch_is_still_importing_in_another_thread_is_saved(
        run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """`review --live --live-method head` imports torch in its refit thread; a decision posted
    meanwhile found the half-initialised module in sys.modules and failed ('partially initialized
    module 'torch' has no attribute 'Tensor'')."""
    import types

    c = client(run_dir)
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))  # what another thread's import leaves
    r = c.post("/api/decision", json={"sample_id": 0, "decision": "cat", "reviewer": "ada"})
    assert r.status_code == 200, r.text
    assert db_rows(run_dir) == [(0, "label", "cat", "ada")]


def test_serve_prints_the_public_url_behind_a_proxy(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Behind a reverse proxy the printed link was the server's own address (127.0.0.1:8765), which
    no reviewer can open; --public-url prints the one they can, with the token."""
    from labeltrace.cli import main
    from labeltrace.review import serve

    monkeypatch.setattr("labeltrace.review.server._run", lambda app, sock, **kw: sock.close())
    tok = "proxy-token-0123456789"
    serve(run_dir, port=0, token=tok, public_url="https://hospital.example/labeltrace")
    out = capsys.readouterr().out
    assert f"open https://hospital.example/labeltrace/#token={tok}  (through the proxy; the server itself listens on http://127.0.0.1:" in out
    for bad in ("hospital.example/labeltrace/", "ftp://h/x/", "https:///x", "https://h/x/?a=1", "https://h/x/#t"):
        with pytest.raises(ValueError, match="--public-url"):
            serve(run_dir, port=0, token=tok, public_url=bad)
    assert capsys.readouterr().out == ""  # refused before anything is printed
    assert main(["review", str(run_dir), "--port", "0", "--token", tok, "--public-url", "https://h.example:8443"]) == 0
    assert f"open https://h.example:8443/#token={tok}  (through" in capsys.readouterr().out


def test_the_public_url_is_a_link_a_reviewer_can_open() -> None:
    """--public-url took a port that is no number ('https://h:abc/', 'https://h:99999/') and an address
    without a host ('https://:8443/') and printed them as the link; a path with a space printed a
    link that ends at the space in a terminal; a broken IPv6 address said only 'Invalid IPv6 URL'."""
    from labeltrace.review.server import check_public_url

    for bad in ("https://h.example:abc/", "https://h.example:99999/", "https://h.example:0/", "https://:8443/",
                "https://[::1/x/", "https://my host/x/"):
        with pytest.raises(ValueError, match="--public-url must be an http:// or https:// address"):
            check_public_url(bad)
    assert check_public_url("https://h.example/label trace") == "https://h.example/label%20trace/"
    assert check_public_url("https://h.example/a%20b/é") == "https://h.example/a%20b/%C3%A9/"  # %XX kept
    assert check_public_url("https://[2001:db8::1]:8443/lt") == "https://[2001:db8::1]:8443/lt/"
    assert check_public_url(" http://h.example ") == "http://h.example/"


def test_the_token_can_come_from_the_environment_not_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A --token is in every user's `ps`; LABELTRACE_TOKEN is not."""
    from labeltrace.cli import build_parser

    monkeypatch.setenv("LABELTRACE_TOKEN", "t" * 20)
    assert build_parser().parse_args(["review", "R"]).token == "t" * 20
    assert build_parser().parse_args(["review", "R", "--token", "u" * 20]).token == "u" * 20
    monkeypatch.delenv("LABELTRACE_TOKEN")
    assert build_parser().parse_args(["review", "R"]).token is None
