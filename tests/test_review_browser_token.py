"""The review server's access token in a browser: it rode in every image URL (``<img
src=".../api/image/3?token=..."``: an ``<img>`` cannot send a header), so every reverse proxy's
access log, the browser's history and a ``Referer`` kept it. The printed link now carries it in the
fragment (never sent); the page sends it as a header, its images too (fetched, shown from object
URLs), and takes it out of the address bar."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import decision_rows, expect, images_loaded, launch, serve
from proxy_support import PREFIX, behind_proxy
from runfactory import make_run

from labeltrace.review import create_app

N = 30
TOKEN = "browser-token-test+0123/x"  # '+' and '/': quoted in a URL, a header sends them as they are
QUOTED = "browser-token-test%2B0123%2Fx"
#: every object URL the page makes and has not revoked (window.liveUrls)
COUNT_URLS = """(() => {
  const make = URL.createObjectURL.bind(URL), drop = URL.revokeObjectURL.bind(URL);
  window.liveUrls = new Set();
  URL.createObjectURL = (b) => { const u = make(b); window.liveUrls.add(u); return u; };
  URL.revokeObjectURL = (u) => { window.liveUrls.delete(u); drop(u); };
})();"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch()


def _leaks(log: list[str]) -> list[str]:
    return [e for e in log if TOKEN in e or QUOTED in e or "token=" in e]


def _object_urls_all_shown(page: object) -> None:
    """Every object URL not revoked is one an <img> of the page shows (none kept for images gone)."""
    js = ("() => { const shown = new Set([...document.images].map((i) => i.getAttribute('src'))); "
          "return [window.liveUrls.size, [...window.liveUrls].filter((u) => !shown.has(u)).length]; }")  # fmt: skip
    deadline = time.monotonic() + 15
    while True:
        live, unshown = page.evaluate(js)  # type: ignore[attr-defined]
        if live and not unshown:
            return
        assert time.monotonic() < deadline, f"{unshown} of {live} object URLs kept for images no longer shown"
        time.sleep(0.05)


def test_a_review_through_a_proxy_never_puts_the_token_in_a_url(tmp_path: Path, browser: object) -> None:
    rd = make_run(tmp_path, n=N, k=3, classes=["cat", "dog", "fox"], seed=31, embedding=True)
    log: list[str] = []
    for base in serve(behind_proxy(create_app(rd, token=TOKEN), log=log)):
        page = browser.new_page()  # type: ignore[attr-defined]
        page.add_init_script(COUNT_URLS)
        failed: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(f"{base}{PREFIX}/?reviewer=ada#token={QUOTED}")  # as `labeltrace review` prints it
        expect(page.locator("#position")).to_have_text(f"1 / {N}")
        assert page.url == f"{base}{PREFIX}/?reviewer=ada"  # out of the address bar (and history)
        images_loaded(page, "#image")
        images_loaded(page, "#neighbours img", 2)  # thumbnails
        page.locator("[data-zoom='4']").click()  # the full-resolution image
        expect(page.locator("#image")).to_have_attribute("data-src", re.compile(rf"^{PREFIX}/api/image/\d+\?full=true&view=[0-9a-f]+$"))
        images_loaded(page, "#image")
        page.keyboard.press("2")
        expect(page.locator("#position")).to_have_text(f"2 / {N}")
        page.locator(".cls", has_text="fox").click()
        expect(page.locator("#position")).to_have_text(f"3 / {N}")
        page.keyboard.press("u")
        expect(page.locator("#position")).to_have_text(f"4 / {N}")
        for _ in range(4):  # back and forth: images replaced, their object URLs revoked
            page.keyboard.press("ArrowLeft")
            page.keyboard.press("ArrowRight")
        expect(page.locator("#position")).to_have_text(f"4 / {N}")
        images_loaded(page, "#image")
        images_loaded(page, "#neighbours img", 2)
        _object_urls_all_shown(page)
        page.reload()  # the tab keeps its token
        expect(page.locator("#position")).to_have_text(f"4 / {N}")
        images_loaded(page, "#image")
        page.keyboard.press("1")
        expect(page.locator("#position")).to_have_text(f"5 / {N}")
        assert [r[2] for r in decision_rows(rd) if r[1] == "label"] == ["dog", "fox", "cat"]
        images = [e for e in log if "/api/image/" in e]
        assert any("thumb=true" in e for e in images) and any("full=true" in e for e in images), images
        assert not _leaks(log) and not failed, (_leaks(log), failed)
        assert "token" not in page.url and not failed
        page.close()


def test_an_old_query_token_link_still_opens_the_page_and_the_address_bar_loses_it(
    tmp_path: Path, browser: object
) -> None:
    rd = make_run(tmp_path, n=N, k=3, classes=["cat", "dog", "fox"], seed=32)
    log: list[str] = []
    for base in serve(behind_proxy(create_app(rd, token=TOKEN), log=log)):
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(f"{base}{PREFIX}/?token={QUOTED}&reviewer=ada&pos=2")  # printed by an older version
        expect(page.locator("#position")).to_have_text(f"3 / {N}")
        assert page.url == f"{base}{PREFIX}/?reviewer=ada&pos=2"
        images_loaded(page, "#image")
        page.keyboard.press("2")
        expect(page.locator("#position")).to_have_text(f"4 / {N}")
        page.reload()
        expect(page.locator("#position")).to_have_text(f"3 / {N}")
        images_loaded(page, "#image")
        # the link's own load carried it (its one request): none of the page's since
        assert _leaks(log) == [f"{PREFIX}/?token={QUOTED}&reviewer=ada&pos=2"], _leaks(log)
        assert [r[2] for r in decision_rows(rd)] == ["dog"]
        page.close()
        # a new tab without the token: the page says what to open, not a bare 401
        fresh = browser.new_page()  # type: ignore[attr-defined]
        fresh.goto(f"{base}{PREFIX}/")
        expect(fresh.locator("#status")).to_contain_text("needs its access token")
        fresh.close()


def test_the_printed_link_opened_in_a_tab_already_on_the_page_takes_its_token(tmp_path: Path, browser: object) -> None:
    # the page said "open the link `labeltrace review` printed" (no token, or the server restarted
    # with another one); the link differs from the address bar only in its fragment, so opening it
    # in the same tab is a same-document navigation: no load, only a hashchange
    rd = make_run(tmp_path, n=N, k=3, classes=["cat", "dog", "fox"], seed=33)
    for base in serve(create_app(rd, token=TOKEN)):
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(f"{base}/?reviewer=ada")
        expect(page.locator("#status")).to_contain_text("needs its access token")
        page.goto(f"{base}/?reviewer=ada#token={QUOTED}")  # pasted into the address bar
        expect(page.locator("#position")).to_have_text(f"1 / {N}")
        assert "token" not in page.url
        images_loaded(page, "#image")
        page.keyboard.press("2")
        expect(page.locator("#position")).to_have_text(f"2 / {N}")
        assert [r[2] for r in decision_rows(rd)] == ["dog"]
        page.close()
