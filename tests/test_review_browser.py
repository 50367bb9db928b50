"""The review page in a real browser (Playwright + Debian's Chromium, headless).

Needs ``pip install playwright`` (the Python package only; no ``playwright install``) and
``apt-get install -y chromium`` (``/usr/bin/chromium``); skipped otherwise. With
``LABELTRACE_SCREENSHOTS=1`` it also writes ``docs/report.png`` and ``docs/review.png``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import decision_rows, expect, launch, serve
from runfactory import SHAPES, make_run

from labeltrace.relabel.order import review_order
from labeltrace.report import write_report
from labeltrace.review import create_app
from labeltrace.rundir import open_run

DOCS = Path(__file__).resolve().parents[1] / "docs"
TOKEN = "browser-test-token"
N = 120


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(
        tmp_path_factory.mktemp("browser"),
        n=N,
        k=4,
        size=24,
        style="shapes",
        classes=list(SHAPES[:4]),
        name="shapes-demo",
        seed=7,
    )


@pytest.fixture(scope="module")
def server(run_dir: Path) -> Iterator[str]:
    yield from serve(create_app(run_dir, token=TOKEN))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch()


def _image_loaded(page: object) -> None:
    """Wait until the review image is decoded (polled: the page's CSP forbids string eval)."""
    deadline = time.monotonic() + 10
    js = (
        "() => { const i = document.getElementById('image'); return i.complete && i.naturalWidth; }"
    )
    while not page.evaluate(js):  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "review image did not load"
        time.sleep(0.05)


def _opened(browser: object, base: str) -> object:
    """A page on the first of 12 queue items, reviewer alice."""
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{base}/?token={TOKEN}&reviewer=alice")
    expect(page.locator("#position")).to_have_text("1 / 12")
    return page


def _saved(page: object, n_rows: int, run_dir: Path) -> None:
    page.wait_for_selector(".status.saved", timeout=10000)  # type: ignore[attr-defined]
    assert len(decision_rows(run_dir)) == n_rows  # "saved" shows only after the row is committed


def test_review_in_browser(run_dir: Path, server: str, browser: object) -> None:
    run = open_run(run_dir)
    order = review_order(run).tolist()
    given = list(run.column("given_label"))
    classes = run.classes
    page = browser.new_page(viewport={"width": 1280, "height": 760})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server}/?token={TOKEN}&reviewer=Dr.%20Ada")
    expect(page.locator("#position")).to_have_text(f"1 / {N}")
    _image_loaded(page)
    assert page.locator("#given").inner_text() == given[order[0]]
    assert page.locator("#progress-text").inner_text().startswith(f"0 / {N} reviewed")

    # a click on a class button
    page.locator(".cls", has_text=classes[1]).click()
    _saved(page, 1, run_dir)
    assert decision_rows(run_dir)[-1] == (order[0], "label", classes[1], "Dr. Ada")
    expect(page.locator("#position")).to_have_text(f"2 / {N}")
    # keyboard: 3 = third class, u = unsure, s = skip
    page.keyboard.press("3")
    expect(page.locator("#position")).to_have_text(f"3 / {N}")
    assert decision_rows(run_dir)[-1] == (order[1], "label", classes[2], "Dr. Ada")
    page.keyboard.press("u")
    expect(page.locator("#position")).to_have_text(f"4 / {N}")
    page.keyboard.press("s")
    expect(page.locator("#position")).to_have_text(f"5 / {N}")
    assert decision_rows(run_dir)[-2:] == [
        (order[2], "unsure", "unsure", "Dr. Ada"),
        (order[3], "skip", "skip", "Dr. Ada"),
    ]
    changed = sum(c != given[o] for o, c in ((order[0], classes[1]), (order[1], classes[2])))
    text = page.locator("#progress-text").inner_text()
    assert text.startswith(f"3 / {N} reviewed · {changed} label") and "1 skipped" in text

    # arrows move without deciding
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#position")).to_have_text(f"4 / {N}")
    assert "Current decision: (skipped)" in page.locator("#current").inner_text()
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#position")).to_have_text(f"3 / {N}")
    assert "Current decision: (unsure)" in page.locator("#current").inner_text()
    assert page.locator("#unsure.chosen").count() == 1
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#position")).to_have_text(f"5 / {N}")
    assert len(decision_rows(run_dir)) == 4

    # typing a name does not trigger shortcuts; the name is stored with the next decision
    page.fill("#reviewer", "Grace 1 u s")
    page.keyboard.press("Enter")
    assert len(decision_rows(run_dir)) == 4
    page.keyboard.press("1")
    expect(page.locator("#position")).to_have_text(f"6 / {N}")
    assert decision_rows(run_dir)[-1] == (order[4], "label", classes[0], "Grace 1 u s")

    # reload: resumes at the first undecided item (the skipped one, position 4)
    page.goto(f"{server}/?token={TOKEN}")
    expect(page.locator("#position")).to_have_text(f"4 / {N}")
    assert page.locator("#reviewer").input_value() == "Grace 1 u s"  # kept in localStorage
    assert page.locator("#progress-text").inner_text().startswith(f"4 / {N} reviewed")
    assert not errors

    # without the token nothing loads and nothing can be saved: the page alone (static, no data
    # of the run), saying what to open
    bare = browser.new_page()  # type: ignore[attr-defined]
    r = bare.goto(f"{server}/")
    assert r is not None and r.status == 200
    expect(bare.locator("#status")).to_contain_text("needs its access token")
    assert bare.locator(".cls").count() == 0 and bare.locator("#run").inner_text() == ""
    bare.close()

    if os.environ.get("LABELTRACE_SCREENSHOTS") == "1":  # the typical view: a decision just saved
        page.goto(f"{server}/?token={TOKEN}&reviewer=Dr.%20Ada&pos=6")
        expect(page.locator("#position")).to_have_text(f"7 / {N}")
        page.locator(".cls.is-suggested").click()
        expect(page.locator("#position")).to_have_text(f"8 / {N}")
        _image_loaded(page)
        page.wait_for_selector(".nrow img")  # the context beside the image
        page.mouse.move(0, 0)
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "review.png"), full_page=True)
    page.close()


def test_report_renders_in_browser(run_dir: Path, browser: object, tmp_path: Path) -> None:
    html = write_report(run_dir, tmp_path / "report.html", top=16)
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    # every image decoded, nothing fetched from anywhere but the file itself and data: URIs
    broken = page.evaluate(
        "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length"
    )
    assert broken == 0
    assert page.evaluate("document.images.length") == 16 + 3
    assert all(u.startswith(("file:", "data:")) for u in requests)
    assert re.match(r"labeltrace report", page.title())
    if os.environ.get("LABELTRACE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "report.png"), full_page=True)
    page.close()


def test_class_names_that_are_javascript_object_keys_review_like_any_other(
    tmp_path: Path, browser: object
) -> None:
    """A vote for a class named "constructor" broke the page's tally of votes (a plain object's
    built-in key): the item did not load, and a decision that was stored read "NOT saved"."""
    from labeltrace.relabel.runstore import run_store

    classes = ["constructor", "__proto__", "toString"]
    rd = make_run(tmp_path, n=12, k=3, size=16, style="shapes", classes=classes, seed=3)
    run = open_run(rd)
    first = int(review_order(run)[0])
    run_store(run).add(first, "constructor", kind="label", reviewer="alice")
    for base in serve(create_app(rd, token=TOKEN)):
        page = browser.new_page()  # type: ignore[attr-defined]
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/?token={TOKEN}&reviewer=bob&pos=0")
        expect(page.locator("#position")).to_have_text("1 / 12")
        expect(page.locator("#votes")).to_contain_text("constructor: alice")
        page.keyboard.press("3")
        _saved(page, 2, rd)
        assert decision_rows(rd)[-1] == (first, "label", "toString", "bob")
        expect(page.locator("#position")).to_have_text("2 / 12")
        assert "NOT saved" not in page.locator("#status").inner_text() and not errors
        page.close()


def test_a_key_pressed_while_a_decision_saves_is_reported_not_saved(
    tmp_path: Path, browser: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page ignored a decision key pressed while the previous decision was still saving, and
    then read "saved"; a key pressed while the page moved on after a save must not land on the
    sample just decided either."""
    import threading

    from labeltrace.relabel.decisions import ReviewStore
    from labeltrace.review import view
    from labeltrace.review.state import ReviewState

    rd = make_run(tmp_path, n=12, k=3, size=16, style="shapes", classes=list(SHAPES[:3]), seed=4)
    slow_add, slow_item = ReviewStore.add, view.item
    saving, showing = threading.Event(), threading.Event()  # held until the test has pressed its key

    def add(self: ReviewStore, *a: object, **kw: object) -> object:
        saving.wait(30)  # a busy database
        return slow_add(self, *a, **kw)

    monkeypatch.setattr(ReviewStore, "add", add)
    for base in serve(create_app(rd, token=TOKEN)):
        page = _opened(browser, base)
        page.keyboard.press("1")
        expect(page.locator("#status")).to_have_text(re.compile("saving"))
        page.keyboard.press("2")
        expect(page.locator("#status")).to_have_text(re.compile("still being saved"))
        saving.set()
        expect(page.locator("#status")).to_have_text(
            re.compile(r"saved: .* a key pressed meanwhile was NOT saved; press it again for sample \d+, shown now"),
            timeout=10000)  # fmt: skip
        assert len(decision_rows(rd)) == 1
        expect(page.locator("#position")).to_have_text("2 / 12")  # moved on, as after any decision
        page.close()
    monkeypatch.setattr(ReviewStore, "add", slow_add)

    def item(state: ReviewState, pos: int, reviewer: object, *, shown: bool = False, **kw: object) -> object:
        if shown and pos > 0:
            showing.wait(30)  # the next item is slow to come
        return slow_item(state, pos, reviewer, shown=shown, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(view, "item", item)
    rd2 = make_run(tmp_path / "two", n=12, k=3, size=16, style="shapes", classes=list(SHAPES[:3]), seed=5)
    for base in serve(create_app(rd2, token=TOKEN)):
        page = _opened(browser, base)
        page.keyboard.press("1")
        expect(page.locator("#status")).to_have_text(re.compile("^saved"))
        page.keyboard.press("2")  # while the next item loads: the first sample is still shown
        expect(page.locator("#status")).to_have_text(re.compile("is decided and the page is moving on"))
        showing.set()
        expect(page.locator("#position")).to_have_text("2 / 12", timeout=10000)
        expect(page.locator("#status")).to_have_text(re.compile("press it again for sample"))
        rows = decision_rows(rd2)
        assert len(rows) == 1 and rows[0][2] == SHAPES[0]  # the decision saved first stays
        page.close()


def test_holding_a_decision_key_decides_one_sample(tmp_path: Path, browser: object) -> None:
    """A held key repeated its keydown: each repeat decided the next sample shown."""
    rd = make_run(tmp_path, n=12, k=3, size=16, style="shapes", classes=list(SHAPES[:3]), seed=6)
    for base in serve(create_app(rd, token=TOKEN)):
        page = _opened(browser, base)
        page.keyboard.down("1")
        for _ in range(8):  # what the OS sends for a held key
            page.dispatch_event("body", "keydown", {"key": "1", "repeat": True})
            time.sleep(0.1)
        page.keyboard.up("1")
        expect(page.locator("#position")).to_have_text("2 / 12")
        time.sleep(0.5)
        assert len(decision_rows(rd)) == 1
        page.close()


def test_an_image_changed_since_the_scan_says_why_on_the_page(tmp_path: Path, browser: object) -> None:
    """A refused image was a broken icon, with the reason only on the server's console."""
    from PIL import Image

    from labeltrace import rundir
    from labeltrace.run_files import write_stamps

    rd = make_run(tmp_path, n=12, k=3, size=16, style="shapes", classes=list(SHAPES[:3]), seed=6)
    run = open_run(rd)
    write_stamps([run.image_file(i) for i in range(run.num_samples)], rd / rundir.IMAGE_FILES)
    first = int(review_order(run)[0])
    Image.fromarray(__import__("numpy").full((16, 16, 3), 9, "uint8")).save(run.image_file(first))
    for base in serve(create_app(rd, token=TOKEN)):
        page = _opened(browser, base)
        expect(page.locator("#status")).to_contain_text(f"image of sample {first} not shown: its file changed "
                                                        "since the scan")  # fmt: skip
        page.close()


def test_a_long_class_name_stays_inside_its_button(tmp_path: Path, browser: object) -> None:
    """A 90-character class name without a space ran out of its button, over the next one and out of
    the page (which then scrolled sideways): a click on the text it covered chose the other class."""
    classes = ["x" * 90 + "_long_class_name", "über-großes Ding", "cat"]
    rd = make_run(tmp_path, n=12, k=3, size=16, classes=classes, seed=3)
    for base in serve(create_app(rd)):
        page = browser.new_page(viewport={"width": 1200, "height": 900})  # type: ignore[attr-defined]
        page.goto(f"{base}/?reviewer=bob")
        expect(page.locator("#position")).to_have_text("1 / 12")
        spill = page.evaluate("""() => [...document.querySelectorAll('.cls')].map((b) => b.scrollWidth - b.clientWidth)""")
        assert spill == [0, 0, 0]
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.close()


def test_a_page_left_open_across_a_restart_in_another_mode_saves_nothing(tmp_path: Path, browser: object) -> None:
    """The page opened on a review, then the server restarted on the same port with --blind-all,
    where each id is another image: the key pressed saved the decision on that other image (an
    audit's finding). The page sends the view it was opened on; the new server refuses it, and the
    page says to reload. (The restart is the page's API requests sent to a second server.)"""
    rd = make_run(tmp_path, n=12, k=3, size=16, style="shapes", classes=list(SHAPES[:3]), seed=8)
    for first in serve(create_app(rd, token=TOKEN)):
        for second in serve(create_app(rd, token=TOKEN, blind="all")):
            page = _opened(browser, first)

            def restarted(route: object) -> None:  # the browser's origin is the first server's, as after a restart
                req = route.request  # type: ignore[attr-defined]
                headers = {k: v for k, v in req.all_headers().items() if k.lower() != "origin"}
                route.fulfill(response=route.fetch(url=req.url.replace(first, second), headers=headers))  # type: ignore[attr-defined]

            page.route("**/api/**", restarted)
            page.keyboard.press("1")
            expect(page.locator("#status")).to_have_text(re.compile(r"NOT saved.*opened on another review.*reload"))
            assert decision_rows(rd) == []  # (every other browser test saves with the view sent)
            page.unroute_all(behavior="wait")  # a request still being passed on finishes before the page goes
            page.close()


def test_the_pages_image_urls_name_the_view_it_was_opened_on(tmp_path: Path, browser: object) -> None:
    """The browser kept each image an hour under /api/image/<id>: after a restart on another run,
    scan or blind mode, where the id names another image, it showed the old one with the new run's
    labels (an audit's finding, in Chromium). The URL names the view now."""
    rd = make_run(tmp_path, n=12, k=3, size=16, style="shapes", classes=list(SHAPES[:3]), seed=8)
    for base in serve(create_app(rd, token=TOKEN)):
        asked: list[str] = []
        page = browser.new_page()  # type: ignore[attr-defined]
        page.on("request", lambda r: asked.append(r.url) if "/api/image/" in r.url else None)
        page.goto(f"{base}/?token={TOKEN}&reviewer=alice")
        expect(page.locator("#position")).to_have_text("1 / 12")
        page.wait_for_function("() => { const i = document.getElementById('image'); return i.complete && i.naturalWidth; }")
        view = page.request.get(f"{base}/api/state", headers={"X-Labeltrace-Token": TOKEN}).json()["view"]
        assert view and asked and all(f"view={view}" in u for u in asked), (view, asked)
        page.close()
