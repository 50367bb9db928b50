"""The review page for an expert on a laptop zoomed in, on the keyboard alone, or with a screen
reader (a review of its accessibility): each case lost a decision, recorded one not meant, or hid
the image or the decision from view."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    decision_rows,
    expect,
    images_loaded,
    launch,
    open_page,
    serve,
    settled,
    until,
)
from runfactory import make_run

from labeltrace.relabel.order import review_order
from labeltrace.review import create_app
from labeltrace.rundir import open_run

N = 40
CLASSES = ["cat", "dog", "fox"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch()


def _page(browser: object, base: str, query: str = "?reviewer=ada", at: int = 1, **kw: object) -> object:
    return open_page(browser, base, query, total=N, at=at, **kw)


def _js(page: object, code: str) -> object:
    return page.evaluate(code)  # type: ignore[attr-defined]


def test_enter_on_a_focused_class_button_after_a_key_decides_nothing(tmp_path: Path, browser: object) -> None:
    """A class button focused by Tab, a decision by key, then a stray Enter: the focused button
    clicked itself on the next sample, a vote nobody meant."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=11)
    for base in serve(create_app(rd)):
        page = _page(browser, base)
        page.locator(".cls", has_text="dog").focus()
        page.keyboard.press("3")
        expect(page.locator("#position")).to_have_text(f"2 / {N}", timeout=10000)
        page.keyboard.press("Enter")
        page.keyboard.press(" ")
        page.wait_for_timeout(300)  # type: ignore[attr-defined]
        assert [r[2] for r in decision_rows(rd)] == ["fox"]
        assert _js(page, "() => document.activeElement.id") == "item-head"  # where a screen reader reads on
        head = page.locator("#item-head").inner_text()
        item = open_run(rd).column("given_label")
        second = int(review_order(open_run(rd))[1])
        assert head == f"Sample {second}, 2 of {N}, given label {item[second]}" or head.startswith(
            f"Sample {second}, 2 of {N}, given label {item[second]}, suggested ")


def test_a_focused_slider_and_a_zoomed_image_keep_their_arrow_keys(tmp_path: Path, browser: object) -> None:
    """ArrowLeft on the focused Window slider moved to the previous sample instead of the value; a
    4x image could not be moved sideways by keyboard (ArrowRight went to the next sample)."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=12)
    for base in serve(create_app(rd)):
        page = _page(browser, base, "?reviewer=ada&pos=3", at=4)
        page.locator("#win").focus()
        page.keyboard.press("ArrowLeft")
        assert page.locator("#win").input_value() == "254"
        expect(page.locator("#position")).to_have_text(f"4 / {N}")
        page.locator("[data-zoom='4']").click()
        assert page.locator("[data-zoom='4']").get_attribute("aria-pressed") == "true"
        page.locator("#frame").focus()
        assert _js(page, "() => document.activeElement.id") == "frame"
        before = _js(page, "() => document.getElementById('frame').scrollLeft")
        page.keyboard.press("ArrowRight")
        # the browser's keyboard scroll is animated: on a loaded machine it ends well after 200 ms
        page.wait_for_function(  # type: ignore[attr-defined]
            "b => document.getElementById('frame').scrollLeft > b", arg=before, timeout=10000)
        expect(page.locator("#position")).to_have_text(f"4 / {N}")
        page.keyboard.press("Escape")
        page.keyboard.press("ArrowRight")
        expect(page.locator("#position")).to_have_text(f"5 / {N}")


def test_a_zoom_chosen_before_the_image_arrives_shows_its_middle(tmp_path: Path, browser: object) -> None:
    """4x pressed while the image was still on its way: the image, laid out as its alt text until
    then, came in at the top-left corner instead of centred as a zoom shows it (the scroll was set
    before there was anything to scroll)."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=14)
    for base in serve(create_app(rd)):
        page = browser.new_page()  # type: ignore[attr-defined]
        held: list[Any] = []
        page.route("**/api/image/**", lambda route: held.append(route))  # type: ignore[attr-defined]
        page.goto(f"{base}/?reviewer=ada")
        expect(page.locator("#position")).to_have_text(f"1 / {N}")
        page.locator("[data-zoom='4']").click()
        expect(page.locator("[data-zoom='4']")).to_have_attribute("aria-pressed", "true")
        # the zoomed image was asked for and is held back (the route's event reaches the test on its own time)
        until(page, lambda: any("full=true" in r.request.url for r in held), "the zoomed image was not asked for")
        for route in held:
            route.continue_()
        page.unroute("**/api/image/**")  # type: ignore[attr-defined]  # any not yet seen here goes on
        images_loaded(page, "#image")
        # centred by the image's load event, which comes after the image reads as loaded
        left, width, seen = settled(page, "() => { const f = document.getElementById('frame');"
                                    " return [f.scrollLeft, f.scrollWidth, f.clientWidth]; }",
                                    lambda v: v[1] > v[2] and abs(v[0] - (v[1] - v[2]) / 2) <= 1,
                                    "the zoomed image is not centred [scrollLeft, scrollWidth, clientWidth]")
        assert width > seen and abs(left - (width - seen) / 2) <= 1


def test_a_decision_not_saved_names_its_sample_and_stays_said_after_moving(tmp_path: Path, browser: object) -> None:
    """'NOT saved: ... press the key again' stayed on screen after moving on, without saying which
    sample: the key pressed again decided another one."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=13)
    first = int(review_order(open_run(rd))[0])
    for base in serve(create_app(rd)):
        # routed from the page's first request: a route added to an open page turns interception on mid-flight
        page = _page(browser, base, routes={"**/api/decision": lambda route: route.abort()})
        page.keyboard.press("2")
        expect(page.locator("#status")).to_contain_text(
            f"NOT saved (sample {first} (position 1)): the review server cannot be reached")
        page.keyboard.press("ArrowRight")
        expect(page.locator("#position")).to_have_text(f"2 / {N}")
        expect(page.locator("#status")).to_contain_text(f"Earlier, on sample {first} (position 1): NOT saved")
        assert decision_rows(rd) == []


def test_backspace_returns_to_the_sample_just_decided(tmp_path: Path, browser: object) -> None:
    """A mis-keyed decision mid-queue moved the page on to the next undecided sample; the arrows
    did not lead back to it and the message named an id the reviewer could not go to."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=14)
    for base in serve(create_app(rd)):
        page = _page(browser, base, "?reviewer=ada&pos=20", at=21)
        page.keyboard.press("1")
        expect(page.locator("#status")).to_contain_text("(position 21)")
        expect(page.locator("#position")).not_to_have_text(f"21 / {N}")
        page.keyboard.press("Backspace")
        expect(page.locator("#position")).to_have_text(f"21 / {N}")
        cat = page.locator(".cls", has_text="cat")
        assert cat.get_attribute("aria-pressed") == "true"
        assert page.locator(".cls", has_text="dog").get_attribute("aria-pressed") == "false"
        assert len(decision_rows(rd)) == 1


def test_single_key_shortcuts_can_be_turned_off_and_stay_off(tmp_path: Path, browser: object) -> None:
    """Digits and letters decided whenever no text box had the focus, with no way to turn them off
    (speech input and screen readers' browse mode type them)."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=15)
    for base in serve(create_app(rd)):
        page = _page(browser, base)
        page.locator("#shortcuts").uncheck()
        page.locator("#item-head").focus()
        for key in ("2", "u", "s"):
            page.keyboard.press(key)
        page.keyboard.press("ArrowRight")
        expect(page.locator("#position")).to_have_text(f"2 / {N}")
        page.reload()
        expect(page.locator("#position")).to_have_text(f"1 / {N}")
        assert not page.locator("#shortcuts").is_checked()
        page.keyboard.press("2")
        page.wait_for_timeout(300)  # type: ignore[attr-defined]
        assert decision_rows(rd) == []
        page.locator(".cls", has_text="dog").click()  # the buttons still decide
        page.wait_for_selector(".status.saved", timeout=10000)  # type: ignore[attr-defined]
        assert [r[2] for r in decision_rows(rd)] == ["dog"]


def test_a_refused_request_says_why_not_its_status_code(tmp_path: Path, browser: object) -> None:
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=16)
    for base in serve(create_app(rd)):
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(f"{base}/?reviewer={'x' * 101}")
        expect(page.locator("#status")).to_have_text(
            "could not start: reviewer: String should have at most 100 characters")


@pytest.mark.parametrize(("width", "height"), [(1164, 554), (1024, 500), (640, 304)])
def test_a_zoomed_laptop_shows_the_whole_image_and_the_page_does_not_scroll_sideways(
    tmp_path: Path, browser: object, width: int, height: int
) -> None:
    """At 110 % on a 1280x720 laptop (1164x554 CSS px in the window) the image was cut off; at 200 %
    the header ran off the right edge and the decision sat a screen below the image."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=17)
    for base in serve(create_app(rd, blind="all")):
        page = _page(browser, base, viewport={"width": width, "height": height})
        assert _js(page, "() => document.documentElement.scrollWidth <= window.innerWidth")
        box = page.locator("#reviewer").bounding_box()
        assert box is not None and box["x"] + box["width"] <= width
        img = page.locator("#image").bounding_box()
        assert img is not None and img["y"] + img["height"] <= height and img["height"] >= min(200, height - 160)
        first = page.locator(".cls").first.bounding_box()  # the decision comes right after the image
        assert first is not None and first["y"] < img["y"] + img["height"] + (200 if width < 960 else 0) + 1


def test_the_trajectory_has_a_text_alternative(tmp_path: Path, browser: object) -> None:
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=18)
    for base in serve(create_app(rd)):
        page = _page(browser, base)
        svg = page.locator("#trajectory svg")
        expect(svg).to_have_attribute("role", "img")
        label = svg.get_attribute("aria-label") or ""
        assert label.startswith("trajectory over ") and "p(given) from " in label and "signed entropy from " in label
        assert svg.locator("polyline[stroke-dasharray]").count() == 1  # the two lines differ without colour


def test_keys_work_after_the_shortcut_checkbox_was_clicked(tmp_path: Path, browser: object) -> None:
    """The clicked checkbox kept the focus and was taken for a text box: every key, arrows and
    Backspace included, did nothing until the reviewer clicked elsewhere."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=19)
    first = int(review_order(open_run(rd))[0])
    for base in serve(create_app(rd)):
        page = _page(browser, base)
        page.locator("#shortcuts").click()
        page.keyboard.press("ArrowRight")  # off: the arrows still move
        expect(page.locator("#position")).to_have_text(f"2 / {N}")
        page.locator("#shortcuts").click()  # on again, the focus still on it
        page.keyboard.press("ArrowLeft")
        expect(page.locator("#position")).to_have_text(f"1 / {N}")
        page.keyboard.press("2")
        page.wait_for_selector(".status.saved", timeout=10000)  # type: ignore[attr-defined]
        assert decision_rows(rd) == [(first, "label", "dog", "ada")]
        assert page.locator(".cls").first.get_attribute("aria-keyshortcuts") == "1"
        page.locator("#shortcuts").click()
        assert page.locator(".cls").first.get_attribute("aria-keyshortcuts") is None  # not said while off


def test_escape_leaves_a_focused_slider(tmp_path: Path, browser: object) -> None:
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=20)
    for base in serve(create_app(rd)):
        page = _page(browser, base)
        page.locator("#win").focus()
        page.keyboard.press("Escape")
        page.keyboard.press("ArrowRight")
        expect(page.locator("#position")).to_have_text(f"2 / {N}")


def test_a_clicked_decision_does_not_scroll_the_page_to_its_top(tmp_path: Path, browser: object) -> None:
    """The focus moved to the item's heading and scrolled it into view: on a zoomed laptop or a
    phone every tap took the class buttons off the screen."""
    classes = [f"class{j}" for j in range(12)]
    rd = make_run(tmp_path, n=N, k=12, classes=classes, seed=21)
    for base in serve(create_app(rd)):
        page = _page(browser, base, viewport={"width": 640, "height": 360})
        button = page.locator(".cls").nth(10)
        button.scroll_into_view_if_needed()
        before = _js(page, "() => window.scrollY")
        assert before > 0
        button.click()
        page.wait_for_selector(".status.saved", timeout=10000)  # type: ignore[attr-defined]
        assert _js(page, "() => window.scrollY") == before


def test_on_a_phone_the_decision_comes_before_the_models_view(tmp_path: Path, browser: object) -> None:
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=22)
    for base in serve(create_app(rd)):
        page = _page(browser, base, viewport={"width": 375, "height": 667})
        page.wait_for_selector("#trajectory svg")  # type: ignore[attr-defined]
        img, cls, ctx = (page.locator(s).first.bounding_box() for s in ("#image", ".cls", "#context"))
        assert img and cls and ctx and img["y"] < cls["y"] < ctx["y"]
