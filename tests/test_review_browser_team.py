"""The review page in Chromium with a live order and with two reviewers (Playwright, headless).

Skipped like ``test_review_browser.py`` when Playwright or Chromium is missing.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import expect, launch, serve, until
from runfactory import SHAPES, csv_rows, make_run

from labeltrace.export.cleaned import export_labels, unresolved_path
from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.live import LiveConfig
from labeltrace.review import create_app
from labeltrace.rundir import open_run

TOKEN = "browser-team-token-0123"
N = 60


def _get(base: str, path: str) -> Any:
    req = urllib.request.Request(base + path, headers={"X-Labeltrace-Token": TOKEN})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _order(base: str) -> list[int]:
    return [_get(base, f"/api/item/{p}?peek=true")["id"] for p in range(N)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


def _run(tmp: Path, name: str) -> Path:
    return make_run(tmp, n=N, k=4, size=24, style="shapes", classes=list(SHAPES[:4]), name=name,
                    seed=9, embedding=True)  # fmt: skip


def _caption_id(page: Any) -> int:
    return int(page.locator("#caption").inner_text().split("·")[0].split()[1])


def test_live_order_changes_after_decisions(tmp_path: Path, browser: Any) -> None:
    rd = _run(tmp_path, "live")
    run = open_run(rd)
    app = create_app(rd, token=TOKEN, live=LiveConfig(method="propagation", every=2))
    for base in serve(app):
        before = _order(base)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/?token={TOKEN}&reviewer=Ada")
        expect(page.locator("#position")).to_have_text(f"1 / {N}")
        expect(page.locator("#live")).to_contain_text("re-ranked 0×")
        given = run.column("given_label_id")
        for p in range(2):  # two labels changed: the second one starts a re-ranking
            key = str(1 + (int(given[before[p]]) + 1) % 4)
            page.keyboard.press(key)
            expect(page.locator("#position")).to_have_text(f"{p + 2} / {N}")
        deadline = time.monotonic() + 30
        while _get(base, "/api/state")["live"]["version"] < 1:
            assert time.monotonic() < deadline, "the live queue did not re-rank"
            time.sleep(0.1)
        after = _order(base)
        # decided items stay, the one on screen stays where it was shown (shown before the
        # re-ranking: unchanged; after it: the re-ranked one); the rest moved
        assert after[:2] == before[:2] and after != before
        assert _caption_id(page) == after[2]
        q = next(p for p in range(3, N) if after[p] != before[p])
        page.keyboard.press("u")  # a third decision: the page learns the new order
        expect(page.locator("#position")).to_have_text(f"4 / {N}")
        expect(page.locator("#live")).to_contain_text("re-ranked 1×")
        for p in range(4, q + 1):
            page.keyboard.press("ArrowRight")
            expect(page.locator("#position")).to_have_text(f"{p + 1} / {N}")
        expect(page.locator("#caption")).to_contain_text(f"id {after[q]} ")
        assert _caption_id(page) != before[q]
        # the context beside the image: top classes, a trajectory, neighbours of both classes
        page.wait_for_selector(".nrow img")
        assert page.locator(".topbar").count() == 3
        assert page.locator("#trajectory svg polyline").count() == 2
        assert page.locator(".nrow[data-role=given] img").count() == 6
        assert not errors
        page.close()


def test_two_reviewers_reach_consensus(tmp_path: Path, browser: Any) -> None:
    rd = _run(tmp_path, "team")
    run = open_run(rd)
    classes = run.classes
    app = create_app(rd, token=TOKEN, consensus=ConsensusRule(agree=2))
    for base in serve(app):
        order = _order(base)
        given = run.column("given_label_id")
        other = [(int(given[i]) + 1) % 4 for i in order[:3]]
        ada = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        ada.goto(f"{base}/?token={TOKEN}&reviewer=Ada")
        expect(ada.locator("#position")).to_have_text(f"1 / {N}")
        for p in range(3):
            ada.keyboard.press(str(other[p] + 1))
            expect(ada.locator("#position")).to_have_text(f"{p + 2} / {N}")
        expect(ada.locator("#progress-text")).to_contain_text("0 resolved · 0 disputed · 3 waiting for votes (")

        bob = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        bob.goto(f"{base}/?token={TOKEN}&reviewer=Bob")
        expect(bob.locator("#position")).to_have_text(f"1 / {N}")  # not done for Bob yet
        expect(bob.locator("#votes")).to_contain_text(f"{classes[other[0]]}: Ada")
        expect(bob.locator("#votes")).to_contain_text("awaiting more reviews")
        bob.keyboard.press(str(other[0] + 1))  # agrees with Ada: settled
        expect(bob.locator("#position")).to_have_text(f"2 / {N}")
        bob.keyboard.press(str(int(given[order[1]]) + 1))  # disagrees: a dispute
        expect(bob.locator("#position")).to_have_text(f"3 / {N}")
        bob.keyboard.press("ArrowLeft")
        expect(bob.locator("#position")).to_have_text(f"2 / {N}")
        expect(bob.locator("#votes")).to_contain_text("reviewers disagree")
        expect(bob.locator("#progress-text")).to_contain_text("1 resolved · 1 disputed · 1 waiting for votes (")
        bob.keyboard.press("ArrowLeft")
        expect(bob.locator("#votes")).to_contain_text(f"consensus: {classes[other[0]]}")

    out = export_labels(rd)
    rows = csv_rows(out)
    assert rows[order[0]]["label"] == classes[other[0]]  # two agreeing reviews: relabelled
    assert rows[order[1]]["label"] == classes[given[order[1]]]  # disputed: kept
    assert rows[order[1]]["review_decision"] == "no consensus"
    listed = {int(r["id"]): r for r in csv_rows(unresolved_path(out))}
    assert set(listed) == {order[1], order[2]}
    assert "Ada" in listed[order[1]]["votes"] and "Bob" in listed[order[1]]["votes"]


def test_another_name_in_the_box_shows_that_reviewers_progress(tmp_path: Path, browser: Any) -> None:
    """The page kept the first name's progress and decisions after the name was changed (a shared
    machine, a colleague taking over): it reads them again for the new name."""
    rd = _run(tmp_path, "rename")
    app = create_app(rd, token=TOKEN, consensus=ConsensusRule(agree=2))
    for base in serve(app):
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(f"{base}/?token={TOKEN}&reviewer=Ada")
        expect(page.locator("#position")).to_have_text(f"1 / {N}")
        page.keyboard.press("1")
        expect(page.locator("#position")).to_have_text(f"2 / {N}")
        expect(page.locator("#progress-text")).to_contain_text(f"1 / {N} reviewed")
        page.keyboard.press("ArrowLeft")
        expect(page.locator("#current")).to_contain_text("Current decision")
        page.fill("#reviewer", "Bob")
        page.locator("#reviewer").dispatch_event("change")
        expect(page.locator("#progress-text")).to_contain_text(f"0 / {N} reviewed")
        expect(page.locator("#current")).to_have_text("No decision yet.")  # Ada's vote is hers, not Bob's
        page.close()


def test_a_key_pressed_right_after_a_new_name_moves_on_as_any_decision_does(tmp_path: Path, browser: Any) -> None:
    """A name typed (Enter) and a class key pressed at once: the page asked for the new name's
    progress and, when that answer came after the decision had moved the page on, showed the sample
    just decided again, and the count from before it (test_review_in_browser, on a loaded machine: '5 / 120',
    not '6 / 120')."""
    rd = _run(tmp_path, "rename-key")
    for base in serve(create_app(rd, token=TOKEN)):
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(f"{base}/?token={TOKEN}&reviewer=Ada")
        expect(page.locator("#position")).to_have_text(f"1 / {N}")
        state: list[Any] = []
        following: list[Any] = []
        page.route("**/api/state?*", lambda route: state.append(route))
        page.route(lambda url: "/api/item/1?" in url and "peek=" not in url, lambda route: following.append(route))
        page.fill("#reviewer", "Bob")
        page.keyboard.press("Enter")  # the name's progress: asked for, held back
        page.keyboard.press("1")
        expect(page.locator("#status")).to_have_text(re.compile("^saved: "))
        until(page, lambda: bool(state and following), "the name's progress and the next sample were not asked for")
        with page.expect_request_finished(lambda r: "/api/state?" in r.url):
            state[0].continue_()  # the name's answer comes first ...
        # ... and is read (this wait only orders the two answers as on CI; the page must end on the
        # next sample whichever it reads first)
        page.evaluate("() => new Promise((done) => setTimeout(done, 50))")
        following[0].continue_()  # then the next sample
        page.unroute_all()
        expect(page.locator("#position")).to_have_text(f"2 / {N}")
        expect(page.locator("#progress-text")).to_contain_text(f"1 / {N} reviewed")
        page.keyboard.press("ArrowLeft")  # the name's view of the sample decided
        expect(page.locator("#current")).to_contain_text("Current decision")
        expect(page.locator("#current")).to_contain_text("— Bob,")


def test_a_reviewers_two_tabs_each_keep_their_sample(tmp_path: Path, browser: Any) -> None:
    """A second tab ended the first one's hold: a colleague opening the page was sent to the sample
    still open in the first tab."""
    rd = _run(tmp_path, "tabs")
    for base in serve(create_app(rd, token=TOKEN)):
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        first, second = ctx.new_page(), ctx.new_page()
        first.goto(f"{base}/?token={TOKEN}&reviewer=Ada")
        expect(first.locator("#position")).to_have_text(f"1 / {N}")
        second.goto(f"{base}/?token={TOKEN}&reviewer=Ada")
        expect(second.locator("#position")).to_have_text(f"1 / {N}")  # a resume passes no tab of her own
        second.keyboard.press("ArrowRight")
        expect(second.locator("#position")).to_have_text(f"2 / {N}")
        bob = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        bob.goto(f"{base}/?token={TOKEN}&reviewer=Bob")
        expect(bob.locator("#position")).to_have_text(f"3 / {N}")  # past both of Ada's tabs
        kept = second.evaluate("sessionStorage.getItem('labeltrace.page')")
        second.reload()  # a reload is the same page: the same id, so no hold of a lost one lingers
        expect(second.locator("#position")).to_have_text(f"1 / {N}")
        assert kept and second.evaluate("sessionStorage.getItem('labeltrace.page')") == kept
        assert first.evaluate("sessionStorage.getItem('labeltrace.page')") != kept
        ctx.close()


def test_a_duplicated_tab_takes_an_id_of_its_own(tmp_path: Path, browser: Any) -> None:
    """"Duplicate tab" (or a link the page opens) copies the tab's sessionStorage, and with it the
    page id: two tabs held one sample between them and the second's next sample ended the first's
    hold, so a colleague was sent to the sample still open in the first. A copy made while the first
    tab is open takes a new id; a reload keeps its own."""
    rd = _run(tmp_path, "dup")
    for base in serve(create_app(rd, token=TOKEN)):
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        first = ctx.new_page()
        first.goto(f"{base}/?token={TOKEN}&reviewer=Ada")
        expect(first.locator("#position")).to_have_text(f"1 / {N}")
        mine = first.evaluate("sessionStorage.getItem('labeltrace.page')")
        with ctx.expect_page() as opened:
            first.evaluate("window.open(location.href)")  # the opener's sessionStorage is copied
        copy = opened.value
        expect(copy.locator("#position")).to_have_text(f"1 / {N}")  # a resume passes no tab of her own
        copy.keyboard.press("ArrowRight")
        expect(copy.locator("#position")).to_have_text(f"2 / {N}")
        bob = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        bob.goto(f"{base}/?token={TOKEN}&reviewer=Bob")
        expect(bob.locator("#position")).to_have_text(f"3 / {N}")  # both of Ada's tabs still hold theirs
        theirs = copy.evaluate("sessionStorage.getItem('labeltrace.page')")
        assert mine and theirs and theirs != mine
        first.reload()
        expect(first.locator("#position")).to_have_text(f"1 / {N}")
        assert first.evaluate("sessionStorage.getItem('labeltrace.page')") == mine  # a reload is the same page
        ctx.close()


def test_a_closed_tab_gives_its_sample_back(tmp_path: Path, browser: Any) -> None:
    """A closed tab held its sample for two minutes (and its live place steered the re-ranking for
    ten): a colleague opening the page then was sent past a sample nobody had open."""
    rd = _run(tmp_path, "closed")
    for base in serve(create_app(rd, token=TOKEN)):
        ada = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        ada.goto(f"{base}/?token={TOKEN}&reviewer=Ada")
        expect(ada.locator("#position")).to_have_text(f"1 / {N}")
        bob = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        bob.goto(f"{base}/?token={TOKEN}&reviewer=Bob")
        expect(bob.locator("#position")).to_have_text(f"2 / {N}")  # held while Ada's tab is open
        ada.close()
        deadline = time.monotonic() + 10
        while _get(base, "/api/state?reviewer=Cy")["resume"] != 0 and time.monotonic() < deadline:
            time.sleep(0.1)  # the closing tab's request arrives on its own time
        cy = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        cy.goto(f"{base}/?token={TOKEN}&reviewer=Cy")
        expect(cy.locator("#position")).to_have_text(f"1 / {N}")
        bob.reload()  # a reload leaves and comes back: Bob keeps his sample
        expect(bob.locator("#position")).to_have_text(f"2 / {N}")


def test_each_request_that_shows_a_sample_carries_the_tabs_next_number(tmp_path: Path, browser: Any) -> None:
    """The server keeps a tab's hold where its latest request put it (quick arrow keys, answered out
    of order, had left it on a sample passed over): the page numbers those requests, a reload's
    after the last page's."""
    import urllib.parse

    rd = _run(tmp_path, "seq")
    for base in serve(create_app(rd, token=TOKEN)):
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        sent: list[int] = []

        def seen(r: Any) -> None:
            url = urllib.parse.urlsplit(r.url)
            if "/api/item/" in url.path and "peek=true" not in url.query:
                sent.append(int(urllib.parse.parse_qs(url.query)["seq"][0]))
            elif url.path.endswith("/api/decision"):
                sent.append(int(json.loads(r.post_data)["seq"]))

        page.on("request", seen)
        page.goto(f"{base}/?token={TOKEN}&reviewer=Ada")
        expect(page.locator("#position")).to_have_text(f"1 / {N}")
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        expect(page.locator("#position")).to_have_text(f"4 / {N}")
        page.keyboard.press("1")
        expect(page.locator("#position")).to_have_text(f"5 / {N}")
        page.reload()
        expect(page.locator("#position")).to_have_text(f"1 / {N}")
        assert len(sent) >= 7 and sent == sorted(sent) and len(set(sent)) == len(sent), sent


def test_a_colleagues_votes_reach_the_progress_line(tmp_path: Path, browser: Any) -> None:
    """The progress line changed only with the page's own decisions: a reviewer whose colleague
    settled samples read the count from when they last decided."""
    rd = _run(tmp_path, "progress")
    for base in serve(create_app(rd, token=TOKEN)):
        ada = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        ada.clock.install()
        ada.goto(f"{base}/?token={TOKEN}&reviewer=Ada")
        expect(ada.locator("#position")).to_have_text(f"1 / {N}")
        expect(ada.locator("#progress-text")).to_contain_text(f"0 / {N} reviewed")
        bob = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        bob.goto(f"{base}/?token={TOKEN}&reviewer=Bob")
        expect(bob.locator("#position")).to_have_text(f"2 / {N}")
        bob.keyboard.press("1")
        expect(bob.locator("#progress-text")).to_contain_text(f"1 / {N} reviewed")
        ada.clock.fast_forward(16_000)
        expect(ada.locator("#progress-text")).to_contain_text(f"1 / {N} reviewed")
        expect(ada.locator("#position")).to_have_text(f"1 / {N}")  # the sample shown stays


def test_go_to_first_undecided_passes_a_sample_a_colleague_opened_since(tmp_path: Path, browser: Any) -> None:
    """The button went to the position read with the page's progress, which a colleague may have
    opened since: two reviewers on one sample."""
    rd = _run(tmp_path, "button")
    for base in serve(create_app(rd, token=TOKEN)):
        pages = {}
        for who in ("Ada", "Bob"):
            pages[who] = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            pages[who].goto(f"{base}/?token={TOKEN}&reviewer={who}")
        expect(pages["Bob"].locator("#position")).to_have_text(f"2 / {N}")
        pages["Bob"].keyboard.press("ArrowRight")  # sample 1 free again; Bob's page read its resume as 1
        expect(pages["Bob"].locator("#position")).to_have_text(f"3 / {N}")
        cy = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        cy.goto(f"{base}/?token={TOKEN}&reviewer=Cy")
        expect(cy.locator("#position")).to_have_text(f"2 / {N}")
        shown = lambda r: "/api/item/" in r.url and "peek" not in r.url  # noqa: E731
        with pages["Bob"].expect_response(shown):
            pages["Bob"].locator("#resume").click()
        pages["Bob"].evaluate("() => new Promise((done) => setTimeout(done, 50))")  # the answer shown
        expect(pages["Bob"].locator("#position")).to_have_text(f"3 / {N}")  # his own, not Cy's
        expect(cy.locator("#position")).to_have_text(f"2 / {N}")
