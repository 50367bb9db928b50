"""Shared by the browser tests: where Chromium is, how to launch it, and a review server on a
free loopback port. Importing it skips the importing test module when Playwright or Chromium is
missing (``pip install playwright``; ``apt-get install -y chromium``)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runfactory import decision_rows  # noqa: F401 -- the browser tests' import of it

CHROMIUM = os.environ.get("LABELTRACE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu",
        "--disable-component-update", "--no-first-run"]  # fmt: skip

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
expect = sync_api.expect
if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
    pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)


def serve(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port; yields its base URL, then stops it."""
    import uvicorn

    # the socket bound here and handed over: a free port looked up and bound later could be taken between
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not th.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(timeout=10)
    sock.close()


def launch() -> Iterator[object]:
    """A headless Chromium under Playwright (a broken browser install skips, it does not fail)."""
    # expect()'s 5 s default ran out on a loaded 2-core machine (the trajectory's svg, drawn after
    # the item's fetch, while other jobs shared the cores): a slow page is not a wrong one
    sync_api.expect.set_options(timeout=15_000)
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        except Exception as exc:  # noqa: BLE001
            pytest.skip(f"chromium does not start under playwright: {exc}")
        yield b
        b.close()


def open_page(browser: Any, base: str, query: str = "", *, total: int, at: int = 1,
              routes: dict[str, Callable[[Any], None]] | None = None, **kw: Any) -> Any:
    """A new page of ``browser`` on the review page at ``base`` (``query`` after its ``/``), once it
    shows position ``at`` of ``total``; ``routes``: URL pattern -> handler, routed before the page
    loads (a route added to a page already open turns interception on while its requests are in
    flight); ``kw``: ``browser.new_page``'s (a viewport, a locale ...)."""
    page = browser.new_page(**kw)
    for pattern, handler in (routes or {}).items():
        page.route(pattern, handler)
    page.goto(f"{base}/{query}")
    expect(page.locator("#position")).to_have_text(f"{at} / {total}")
    return page


def images_loaded(page: Any, selector: str, count: int = 1) -> None:
    """Wait until ``count`` images matching ``selector`` are decoded (polled: the page's CSP forbids string eval)."""
    js = f"() => [...document.querySelectorAll({selector!r})].filter((i) => i.complete && i.naturalWidth).length"
    deadline = time.monotonic() + 15
    while page.evaluate(js) < count:
        assert time.monotonic() < deadline, f"{selector} did not load"
        time.sleep(0.05)


def settled(page: Any, js: str, ok: Callable[[Any], bool], what: str, arg: Any = None) -> Any:
    """``page.evaluate(js, arg)`` polled until ``ok`` holds of it (the page's own time, not a fixed
    wait: a loaded machine takes longer); its value then. Fails, saying ``what`` and the value last
    seen, after 15 s."""
    deadline = time.monotonic() + 15
    while not ok(value := page.evaluate(js, arg)):
        assert time.monotonic() < deadline, f"{what}: {value!r}"
        time.sleep(0.05)
    return value


def until(page: Any, done: Callable[[], bool], what: str) -> None:
    """Wait until ``done()`` (a state kept by the test, such as the requests a route held back),
    letting Playwright deliver its events meanwhile; fails, saying ``what``, after 15 s."""
    deadline = time.monotonic() + 15
    while not done():
        assert time.monotonic() < deadline, what
        page.wait_for_timeout(50)
