"""The review server deployed as a hospital's IT runs it: behind a reverse proxy that serves it
under a path (``https://host/labeltrace/``), ends HTTPS and rewrites ``Host``, reached by several
reviewers. The page called ``/api/...`` at the site's root (404 under a prefix), the Origin
check refused every decision a proxy relayed, and a server without a token answered anyone the
proxy relayed (its ``Host`` named the loopback server)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from proxy_support import PREFIX, UPSTREAM, behind_proxy
from runfactory import decision_rows, make_run
from starlette.applications import Starlette
from starlette.routing import Mount

from labeltrace.review import create_app
from labeltrace.review.app import _page
from labeltrace.review.security import route_path

TOKEN = "a-long-enough-test-token"
SITE = "https://hospital.example"
PAGE = {"Origin": SITE, "Sec-Fetch-Site": "same-origin"}  # what a browser sends from the page itself


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path, n=30, k=3, seed=5)  # classes airplane, bird, cat


def stored(run_dir: Path) -> list[tuple]:
    """(sample id, decision) of every stored decision, oldest first."""
    return [(r[0], r[2]) for r in decision_rows(run_dir)] if (run_dir / "reviews.db").exists() else []


def test_the_page_calls_the_api_beside_itself_not_at_the_site_root(run_dir: Path) -> None:
    """fetch("/api/state") from https://host/labeltrace/ went to https://host/api/state: 404, and
    the page said "could not start: HTTP 404"."""
    assert not re.search(r"""["'`]/api/""", _page()), "an absolute /api/ URL in the review page"
    c = TestClient(behind_proxy(create_app(run_dir, token=TOKEN)), base_url=SITE)
    tok = {"X-Labeltrace-Token": TOKEN}
    assert c.get(f"{PREFIX}/", headers=tok).status_code == 200
    assert c.get(f"{PREFIX}/api/state", headers=tok | PAGE).json()["total"] == 30
    assert c.get("/api/state", headers=tok | PAGE).status_code == 404  # the site's root is not the app


@pytest.mark.parametrize(
    ("host", "base"),
    [
        (UPSTREAM, SITE),  # nginx's default: Host is the upstream's address
        (None, SITE),  # Host forwarded ($host), HTTPS ended at the proxy without X-Forwarded-Proto
        (None, "https://hospital.example:8443"),  # $host drops the port the browser used
    ],
)
def test_the_pages_own_decisions_pass_a_proxy_that_rewrites_host_or_scheme(
    run_dir: Path, host: str | None, base: str
) -> None:
    """Origin (https://hospital.example) compared with the Host and scheme the app saw refused
    every decision: "NOT saved ... cross-origin request refused"."""
    proxied = behind_proxy(create_app(run_dir, token=TOKEN), host=host)
    c = TestClient(proxied, base_url=base)
    tok = {"X-Labeltrace-Token": TOKEN}
    page = {"Origin": base, "Sec-Fetch-Site": "same-origin"}
    r = c.post(f"{PREFIX}/api/decision", json={"sample_id": 0, "decision": "cat"}, headers=tok | page)
    assert r.status_code == 200, r.text
    assert c.get(f"{PREFIX}/api/item/1", headers=tok | {"Sec-Fetch-Site": "same-origin"}).status_code == 200
    # another site, through the same proxy, still cannot
    for extra in ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
                  {"Origin": "https://wiki.hospital.example", "Sec-Fetch-Site": "same-site"}):  # fmt: skip
        r = c.post(f"{PREFIX}/api/decision", json={"sample_id": 1, "decision": "cat"}, headers=tok | extra)
        assert r.status_code == 403 and "cross-origin" in r.json()["detail"], extra
        assert c.get(f"{PREFIX}/api/item/2", headers=tok | extra).status_code == 403
    assert stored(run_dir) == [(0, "cat")]


def test_without_sec_fetch_site_the_origin_is_still_compared_with_host(run_dir: Path) -> None:
    """An older browser sends Origin alone: it must name the Host, as before."""
    c = TestClient(create_app(run_dir, token=TOKEN), base_url="http://192.0.2.10:8765")
    tok = {"X-Labeltrace-Token": TOKEN}
    body = {"sample_id": 0, "decision": "cat"}
    assert c.post("/api/decision", json=body, headers=tok | {"Origin": "http://evil.example"}).status_code == 403
    assert c.post("/api/decision", json=body, headers=tok | {"Origin": "http://192.0.2.10:8765"}).status_code == 200


@pytest.mark.parametrize(
    "relayed",
    [{"X-Forwarded-For": "10.0.0.7"}, {"Forwarded": "for=10.0.0.7;proto=https"},
     {"X-Forwarded-Host": "hospital.example"}, {"X-Real-IP": "10.0.0.7"}],  # fmt: skip
)
def test_a_server_without_a_token_refuses_what_a_proxy_relays(run_dir: Path, relayed: dict[str, str]) -> None:
    """`labeltrace review RUN` (127.0.0.1, no token) behind nginx, whose Host is the upstream's
    127.0.0.1:8765: the loopback check passed and anyone the proxy reached read the images and
    decided samples."""
    c = TestClient(behind_proxy(create_app(run_dir), forwarded=relayed), base_url=SITE)
    for path in ("/", "/api/state", "/api/image/0"):
        r = c.get(f"{PREFIX}{path}", headers={"Sec-Fetch-Site": "same-origin"})
        assert r.status_code == 403 and "--token" in r.json()["detail"], (relayed, path)
    r = c.post(f"{PREFIX}/api/decision", json={"sample_id": 0, "decision": "cat"}, headers=PAGE)
    assert r.status_code == 403 and stored(run_dir) == []
    # with a token, the proxy may relay; locally, without a proxy, no token is needed
    tc = TestClient(behind_proxy(create_app(run_dir, token=TOKEN), forwarded=relayed), base_url=SITE)
    assert tc.get(f"{PREFIX}/api/state", headers={"X-Labeltrace-Token": TOKEN}).status_code == 200
    assert TestClient(create_app(run_dir), base_url="http://127.0.0.1:8765").get("/api/state").status_code == 200


def test_an_app_mounted_under_a_prefix_keeps_its_api_checks(run_dir: Path) -> None:
    """create_app() mounted in another Starlette app at /labeltrace: the Guard read the full path
    (/labeltrace/api/item/3), not the app's own, and let another site read the API."""
    outer = Starlette(routes=[Mount(PREFIX, app=create_app(run_dir))])
    c = TestClient(outer, base_url="http://127.0.0.1:8765")
    for site in ("cross-site", "same-site"):
        r = c.get(f"{PREFIX}/api/item/3", headers={"Sec-Fetch-Site": site})
        assert r.status_code == 403 and "cross-origin" in r.json()["detail"], site
    assert c.get(f"{PREFIX}/api/item/3", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert c.get(f"{PREFIX}/", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200  # a link to the page


@pytest.mark.parametrize(
    ("path", "root", "inside"),
    [("/labeltrace/api/x", "/labeltrace", "/api/x"), ("/labeltrace", "/labeltrace", "/"),
     ("/labeltrace/api/x", "/labeltrace/", "/api/x"), ("/labeltraceX/api/x", "/labeltrace", "/labeltraceX/api/x"),
     ("/api/x", "", "/api/x")],  # fmt: skip
)
def test_route_path_strips_only_the_root_path(path: str, root: str, inside: str) -> None:
    assert route_path({"path": path, "root_path": root}) == inside
