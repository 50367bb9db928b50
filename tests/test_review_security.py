"""Review server hardening (issue 11 §2, §5, §6): tokens, Origin, body size, no echo, strict types."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from runfactory import make_run

from labeltrace.cli import main
from labeltrace.review import create_app

TOKEN = "a-long-enough-test-token"
REMOTE = "http://192.0.2.10:8765"
LOCAL = "http://127.0.0.1:8765"


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path, n=30, k=3, seed=5)  # classes airplane, bird, cat


def stored(run_dir: Path) -> list[tuple]:
    if not (run_dir / "reviews.db").exists():
        return []
    con = sqlite3.connect(run_dir / "reviews.db")
    try:
        return con.execute("SELECT sample_id, decision FROM decisions ORDER BY seq").fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------- §2 tokens
@pytest.mark.parametrize(
    "bad", ["", " ", "short", "x" * 15, "sixteen chars!!\n", "with space inside!", "pässwörd-123456789€"]
)
def test_empty_or_short_token_is_refused(run_dir: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="at least 16"):
        create_app(run_dir, token=bad)


def test_serve_refuses_an_explicit_empty_token_on_any_host(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from labeltrace.review import serve

    started: list[object] = []
    monkeypatch.setattr("labeltrace.review.server._run", lambda app, sock, **kw: (sock.close(), started.append(kw)))
    for host in ("0.0.0.0", "127.0.0.1"):
        with pytest.raises(ValueError, match="at least 16"):
            serve(run_dir, host=host, token="")
    assert started == []
    # the command line: `--token "$UNSET_VAR"` is an error with the length it needs, never a server
    rc = main(["review", str(run_dir), "--host", "0.0.0.0", "--token", ""])
    err = capsys.readouterr().err
    assert rc == 2 and "at least 16 characters" in err and started == []
    # no token at all off loopback: one is generated (kept behaviour)
    serve(run_dir, host="0.0.0.0", port=0)
    assert len(started) == 1 and "token: " in capsys.readouterr().out


def test_the_printed_url_opens_the_page_whatever_the_token_and_a_public_host_is_warned_of(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token with '+' printed raw in the URL came back as spaces (401); on 0.0.0.0 nothing said
    that the server was reachable from the network over plain HTTP."""
    import re
    from urllib.parse import parse_qs, urlsplit

    from labeltrace.review import serve

    apps: list[object] = []
    monkeypatch.setattr("labeltrace.review.server._run", lambda app, sock, **kw: (sock.close(), apps.append(app)))
    token = "team+review#2024&x%y"
    serve(run_dir, token=token, port=0)
    out = capsys.readouterr().out
    url = urlsplit(re.search(r"open (\S+)", out).group(1))
    # the token in the fragment (never sent by a browser), as the page decodes it
    assert not url.query and parse_qs(url.fragment) == {"token": [token]}
    c = TestClient(apps[0], base_url=LOCAL)
    assert c.get(url.path).status_code == 200
    assert c.get("/api/state", headers={"X-Labeltrace-Token": parse_qs(url.fragment)["token"][0]}).status_code == 200
    assert "warning" not in out
    serve(run_dir, host="0.0.0.0", token=token, port=0)
    out = capsys.readouterr().out
    assert "warning: the review server listens on 0.0.0.0" in out and "plain HTTP" in out
    assert "open http://0.0.0.0" not in out


def test_the_token_is_refused_in_a_url_and_never_printed_in_one(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The token rode in URLs (the printed link's ?token=, the page's image URLs), whence every
    reverse proxy's access log, the browser's history and a Referer kept it; the API took it there."""
    from labeltrace.review import serve

    c = TestClient(create_app(run_dir, token=TOKEN), base_url=REMOTE)
    for path in ("/api/state", "/api/image/0", "/api/image/0?thumb=true", "/api/history/0"):
        sep = "&" if "?" in path else "?"
        r = c.get(f"{path}{sep}token={TOKEN}")
        assert r.status_code == 401 and "header X-Labeltrace-Token" in r.json()["detail"], path
        assert "?token= in a URL is not accepted" in r.json()["detail"] and TOKEN not in r.text
        assert c.get(path, headers={"X-Labeltrace-Token": TOKEN}).status_code == 200, path
    page = c.get("/")  # the page: no data of its own, the token read from the link's fragment
    assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
    assert "blob:" in page.headers["content-security-policy"]  # its images, fetched with the header
    assert c.post("/", json={}).status_code == 401  # the page alone, read
    monkeypatch.setattr("labeltrace.review.server._run", lambda app, sock, **kw: sock.close())
    serve(run_dir, token=TOKEN, port=0)
    out = capsys.readouterr().out
    assert f"/#token={TOKEN}" in out and "?token=" not in out and "never in a URL" in out


def test_a_refused_token_names_the_scheme(run_dir: Path) -> None:
    r = TestClient(create_app(run_dir, token=TOKEN), base_url=LOCAL).get("/api/state")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "X-Labeltrace-Token"


# --------------------------------------------------------------------------- §2 Origin
def test_cross_origin_posts_are_refused_even_with_a_valid_token(run_dir: Path) -> None:
    c = TestClient(create_app(run_dir, token=TOKEN), base_url=REMOTE)
    body = {"sample_id": 0, "decision": "cat"}
    tok = {"X-Labeltrace-Token": TOKEN}
    for extra in (
        {"Origin": "http://evil.example"},
        {"Origin": "http://192.0.2.10:9999"},  # same host, other port: another origin
        {"Origin": "https://192.0.2.10:8765"},  # other scheme
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": REMOTE, "Sec-Fetch-Site": "cross-site"},
    ):
        r = c.post("/api/decision", json=body, headers=tok | extra)
        assert r.status_code == 403, extra
        assert "origin" in r.json()["detail"].lower()
    assert stored(run_dir) == []
    # the page itself (same origin, as a browser sends it) and non-browser clients (no Origin)
    r = c.post(
        "/api/decision",
        json=body,
        headers=tok | {"Origin": REMOTE, "Sec-Fetch-Site": "same-origin"},
    )
    assert r.status_code == 200
    assert (
        c.post("/api/decision", json={"sample_id": 1, "decision": "bird"}, headers=tok).status_code
        == 200
    )
    # a cross-origin read of the API is refused too (reading an item marks it shown)
    assert c.get("/api/state", headers=tok | {"Origin": "http://evil.example"}).status_code == 403
    assert stored(run_dir) == [(0, "cat"), (1, "bird")]


def test_another_site_cannot_read_the_api_but_may_link_to_the_page(run_dir: Path) -> None:
    """An <img src=".../api/item/29"> on any site marked the whole live queue shown (no token
    on loopback), which froze its re-ranking: GETs were not checked for their origin."""
    c = TestClient(create_app(run_dir), base_url=LOCAL)
    for site in ("cross-site", "same-site"):
        for path in ("/api/item/3", "/api/state", "/api/image/0", "/api/history/0"):
            r = c.get(path, headers={"Sec-Fetch-Site": site})
            assert r.status_code == 403 and "cross-origin" in r.json()["detail"], (site, path)
    # the page itself: opened from a link on another site, or typed in; its own reads
    assert c.get("/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}).status_code == 200
    assert c.get("/api/item/3", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert c.get("/api/item/3").status_code == 200  # not a browser


def test_cross_site_form_post_to_localhost_is_refused_by_origin(run_dir: Path) -> None:
    """A page on another site posting a text/plain "simple" form to the local server: 403 by the
    Origin check itself, not by how the installed FastAPI happens to parse non-JSON bodies."""
    c = TestClient(create_app(run_dir), base_url=LOCAL)
    r = c.post(
        "/api/decision",
        content='{"sample_id": 0, "decision": "cat"}',
        headers={"Content-Type": "text/plain", "Origin": "http://evil.example"},
    )
    assert r.status_code == 403
    # the same body from the page itself still has to be JSON
    r = c.post(
        "/api/decision",
        content='{"sample_id": 0, "decision": "cat"}',
        headers={"Content-Type": "text/plain", "Origin": LOCAL},
    )
    assert r.status_code == 415
    assert stored(run_dir) == []
    # the Host check stays: no token, a non-loopback Host name is refused
    assert (
        TestClient(create_app(run_dir), base_url="http://evil.example").get("/").status_code == 403
    )


# --------------------------------------------------------------------------- §5 body size, no echo
def test_large_bodies_are_refused_before_parsing(run_dir: Path) -> None:
    c = TestClient(create_app(run_dir), base_url=LOCAL)
    big = "Q" * 200_000
    r = c.post("/api/decision", json={"sample_id": 0, "decision": big})
    assert r.status_code == 413 and big[:100] not in r.text and len(r.content) < 500

    def chunks():  # no Content-Length: the limit holds on the stream itself
        yield b'{"sample_id": 0, "decision": "'
        for _ in range(100):
            yield b"Q" * 4096
        yield b'"}'

    r = c.post("/api/decision", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and len(r.content) < 500
    r = c.post(
        "/api/decision",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": "99999999999"},
    )
    assert r.status_code == 413
    assert stored(run_dir) == []
    # a normal decision still goes through
    assert c.post("/api/decision", json={"sample_id": 0, "decision": "cat"}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"sample_id": "SECRET-VALUE-1234", "decision": "cat"},
        {"sample_id": 0, "decision": "SECRET-VALUE-1234"},
        {"sample_id": 0, "decision": "cat", "kind": "SECRET-VALUE-1234"},
        {"sample_id": 0, "decision": "cat", "reviewer": "SECRET-VALUE-1234" * 7},
        {"sample_id": 0, "decision": "cat", "SECRET-VALUE-1234": 1},
        {"sample_id": 0, "decision": ["SECRET-VALUE-1234"]},
        '{"sample_id": 0, "decision": "SECRET-VALUE-1234"',  # broken JSON
    ],
)
def test_error_responses_never_echo_the_input(run_dir: Path, body: object) -> None:
    c = TestClient(create_app(run_dir), base_url=LOCAL)
    if isinstance(body, str):
        r = c.post("/api/decision", content=body, headers={"Content-Type": "application/json"})
    else:
        r = c.post("/api/decision", json=body)
    assert r.status_code in (400, 422), r.text
    assert "SECRET" not in r.text
    assert r.json()["detail"]  # still says what is wrong
    assert stored(run_dir) == []


def test_error_messages_still_name_the_problem(run_dir: Path) -> None:
    c = TestClient(create_app(run_dir), base_url=LOCAL)
    r = c.post("/api/decision", json={"sample_id": 0, "decision": "zebra"})
    assert r.status_code == 400 and "airplane, bird, cat" in r.json()["detail"]
    r = c.post("/api/decision", json={"sample_id": 0, "decision": "cat", "kind": "maybe"})
    assert r.status_code == 400 and "label, unsure, skip" in r.json()["detail"]
    r = c.post("/api/decision", json={"sample_id": 0, "decision": "cat", "reviewer": "x" * 101})
    assert r.status_code == 400 and "100 characters" in r.json()["detail"]
    r = c.post("/api/decision", json={"sample_id": 0})
    assert r.status_code == 422 and "decision" in r.text
    assert c.get("/api/item/abc").status_code == 422 and "abc" not in c.get("/api/item/abc").text


# --------------------------------------------------------------------------- §6 strict types
@pytest.mark.parametrize(
    "body",
    [
        {"sample_id": True, "decision": "cat"},
        {"sample_id": False, "decision": "cat"},
        {"sample_id": "3", "decision": "cat"},
        {"sample_id": 3.0, "decision": "cat"},
        {"sample_id": [3], "decision": "cat"},
        {"sample_id": 3, "decision": 1},
        {"sample_id": 3, "decision": True},
        {"sample_id": 3, "decision": "cat", "kind": 0},
        {"sample_id": 3, "decision": "cat", "reviewer": 7},
        {"sample_id": 3, "decision": "cat", "reviewer": ["ada"]},
    ],
)
def test_decision_fields_have_strict_types(run_dir: Path, body: dict) -> None:
    c = TestClient(create_app(run_dir), base_url=LOCAL)
    assert c.post("/api/decision", json=body).status_code == 422
    assert stored(run_dir) == []
    assert c.post("/api/decision", json={"sample_id": 3, "decision": "cat"}).status_code == 200
    assert stored(run_dir) == [(3, "cat")]


def test_a_content_length_of_other_digits_is_refused_not_a_server_error() -> None:
    """'²'.isdigit() is true and int('²') raised: a 500 from another ASGI server (uvicorn's h11
    refuses the header first)."""
    from labeltrace.review.security import Guard

    async def app(scope, receive, send):  # noqa: ANN001, ANN202 - never reached
        raise AssertionError("passed the guard")

    scope = {"type": "http", "method": "POST", "path": "/api/decision", "scheme": "http",
             "headers": [(b"host", b"127.0.0.1:8765"), (b"content-type", b"application/json"),
                         (b"content-length", "²".encode("latin-1"))]}  # fmt: skip
    assert Guard(app, token=None)._refusal(scope)[0] == 413


def test_images_render_a_few_at_a_time_and_each_once() -> None:
    """A 6000 x 6000 image took ~720 MB to render, and nothing bounded how many rendered at once
    (four requests: 3.1 GB); two requests for one image both rendered it."""
    import threading
    import time

    from labeltrace.review.rendered import RENDERERS, RenderedImages

    cache, lock = RenderedImages(), threading.Lock()
    now, most, calls = [0], [0], []

    def render(key: int):  # noqa: ANN202
        def go() -> bytes:
            with lock:
                now[0] += 1
                most[0] = max(most[0], now[0])
                calls.append(key)
            time.sleep(0.05)  # long enough for the others to arrive (no time is asserted)
            with lock:
                now[0] -= 1
            return bytes([key])
        return go

    keys = [0, 1, 2, 3, 4, 5, 0, 0]
    got: dict[int, list[bytes]] = {}
    threads = [threading.Thread(target=lambda i=i, k=k: got.setdefault(i, []).append(cache.get(k, render(k))))
               for i, k in enumerate(keys)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] <= RENDERERS == 2
    assert sorted(calls) == [0, 1, 2, 3, 4, 5] and [got[i][0] for i in range(8)] == [bytes([k]) for k in keys]
