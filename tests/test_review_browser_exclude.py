"""The review page's "Exclude (not any class)": its button and its key ``x`` (given up to a class
whose own key is x; typed into the class box of a many-class run it is a letter of a name), what
the page shows of an exclude, and a blind page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import decision_rows, expect, launch, open_page, serve
from runfactory import make_run

from labeltrace.relabel.order import review_order
from labeltrace.review import create_app
from labeltrace.rundir import open_run

N = 20


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch()


def _page(browser: object, base: str, query: str = "") -> object:
    return open_page(browser, base, query, total=N)


def test_the_x_key_and_the_button_exclude_and_the_page_says_so(tmp_path: Path, browser: object) -> None:
    rd = make_run(tmp_path, n=N, k=3, classes=["cat", "dog", "fox"], seed=4)
    order = review_order(open_run(rd))
    for base in serve(create_app(rd)):
        page = _page(browser, base, "?reviewer=ada")
        assert page.locator("#exclude").get_attribute("aria-keyshortcuts") == "x"
        page.keyboard.press("x")
        expect(page.locator("#position")).to_have_text(f"2 / {N}", timeout=10000)
        assert decision_rows(rd) == [(int(order[0]), "exclude", "exclude", "ada")]
        expect(page.locator("#progress-text")).to_contain_text("1 excluded")
        page.locator("#exclude").click()
        expect(page.locator("#position")).to_have_text(f"3 / {N}", timeout=10000)
        assert decision_rows(rd)[-1] == (int(order[1]), "exclude", "exclude", "ada")
        page.keyboard.press("Backspace")  # back to the sample just decided
        expect(page.locator("#position")).to_have_text(f"2 / {N}")
        expect(page.locator("#current")).to_contain_text("Current decision: (excluded: not any class) — ada")
        expect(page.locator("#exclude")).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#votes")).to_contain_text("Reviews: (excluded: not any class): ada "
                                                       "— consensus: excluded (not any class)")
        assert page.locator(".cls.chosen").count() == 0
        page.locator("#shortcuts").uncheck()  # single keys off: x does nothing
        page.keyboard.press("x")
        page.wait_for_timeout(300)  # type: ignore[attr-defined]
        assert len(decision_rows(rd)) == 2 and page.locator("#exclude").get_attribute("aria-keyshortcuts") is None


def test_a_class_whose_own_key_is_x_keeps_it(tmp_path: Path, browser: object) -> None:
    rd = make_run(tmp_path, n=N, k=2, classes=["o", "x"], seed=4)
    for base in serve(create_app(rd)):
        page = _page(browser, base, "?reviewer=ada")
        assert page.locator(".cls kbd").all_inner_texts() == ["o", "x"]
        assert not page.locator("#exclude kbd").is_visible() and not page.locator("#exclude-key").is_visible()
        assert page.locator("#exclude").get_attribute("aria-keyshortcuts") is None
        page.keyboard.press("x")
        expect(page.locator("#position")).to_have_text(f"2 / {N}", timeout=10000)
        assert decision_rows(rd) == [(int(review_order(open_run(rd))[0]), "label", "x", "ada")]
        page.locator("#exclude").click()  # the button still excludes
        expect(page.locator("#position")).to_have_text(f"3 / {N}", timeout=10000)
        assert decision_rows(rd)[-1][1:3] == ("exclude", "exclude")


def test_x_typed_into_the_class_box_is_a_letter_and_a_class_named_exclude_is_a_class(tmp_path: Path,
                                                                                     browser: object) -> None:  # fmt: skip
    classes = [f"species_{j:02d}" for j in range(12)] + ["exclude", "Xerus"]
    rd = make_run(tmp_path, n=N, k=len(classes), classes=classes, seed=5)
    for base in serve(create_app(rd)):
        page = _page(browser, base, "?reviewer=ada")
        box = page.locator("#class-filter")  # type: ignore[attr-defined]
        box.fill("")
        box.type("xer")
        assert box.input_value() == "xer" and decision_rows(rd) == []
        box.fill("exclu")
        box.press("Enter")  # the one class left: the class named exclude
        expect(page.locator("#position")).to_have_text(f"2 / {N}", timeout=10000)
        assert decision_rows(rd) == [(int(review_order(open_run(rd))[0]), "label", "exclude", "ada")]
        page.locator("#back").click()  # the box keeps the focus (and Backspace): the link goes back
        expect(page.locator("#current")).to_contain_text("Current decision: class exclude — ada")


def test_a_blind_page_excludes(tmp_path: Path, browser: object) -> None:
    rd = make_run(tmp_path, n=N, k=3, classes=["cat", "dog", "fox"], seed=4)
    for base in serve(create_app(rd, blind="model")):
        page = _page(browser, base, "?reviewer=ada")
        page.keyboard.press("x")
        expect(page.locator("#position")).to_have_text(f"2 / {N}", timeout=10000)
        assert decision_rows(rd)[0][1:] == ("exclude", "exclude", "ada")
        assert "excluded" not in page.locator("#progress-text").inner_text()
        page.keyboard.press("Backspace")
        expect(page.locator("#current")).to_contain_text("(excluded: not any class)")
        assert page.locator("#votes").inner_text() == ""
