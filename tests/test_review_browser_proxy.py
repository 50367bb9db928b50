"""The review page in a browser behind a reverse proxy that serves it under a path
(``/labeltrace/``) and rewrites ``Host`` (nginx's default): the page fetched ``/api/...`` at the
site's root (404, "could not start"), and its decisions were refused as cross-origin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import decision_rows, expect, images_loaded, launch, serve
from proxy_support import PREFIX, behind_proxy
from runfactory import make_run

from labeltrace.review import create_app

N = 30
TOKEN = "proxy-browser-test-token"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch()


def test_the_review_page_works_under_a_proxys_path_prefix(tmp_path: Path, browser: object) -> None:
    rd = make_run(tmp_path, n=N, k=3, classes=["cat", "dog", "fox"], seed=21, embedding=True)
    for base in serve(behind_proxy(create_app(rd, token=TOKEN))):
        page = browser.new_page()  # type: ignore[attr-defined]
        failed: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(f"{base}{PREFIX}/?token={TOKEN}&reviewer=ada")
        expect(page.locator("#position")).to_have_text(f"1 / {N}")
        images_loaded(page, "#image")
        src = page.locator("#image").get_attribute("data-src") or ""  # fetched there, shown as a blob
        assert src.startswith(f"{PREFIX}/api/image/"), src
        expect(page.locator("#trajectory svg")).to_have_count(1)
        images_loaded(page, "#neighbours img", 2)
        page.keyboard.press("2")  # a key
        expect(page.locator("#position")).to_have_text(f"2 / {N}")
        page.locator(".cls", has_text="fox").click()  # a click
        expect(page.locator("#position")).to_have_text(f"3 / {N}")
        page.keyboard.press("u")
        expect(page.locator("#position")).to_have_text(f"4 / {N}")
        page.locator("#find [data-what='unsure']").click()
        expect(page.locator("#position")).to_have_text(f"3 / {N}")
        assert [r[2] for r in decision_rows(rd)] == ["dog", "fox", "unsure"]
        # opened without the prefix's slash (a proxy that does not redirect): the same folder
        page.goto(f"{base}{PREFIX}?token={TOKEN}&reviewer=ada&pos=5")
        expect(page.locator("#position")).to_have_text(f"6 / {N}")
        page.keyboard.press("1")
        expect(page.locator("#position")).to_have_text(f"7 / {N}")
        assert len(decision_rows(rd)) == 4 and not failed, failed
