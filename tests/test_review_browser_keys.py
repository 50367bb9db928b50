"""The review page's keys and focus, as an expert uses them for an hour (a review of the page in a
browser): each case recorded a decision the reviewer did not mean, or showed one as theirs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import decision_rows, expect, launch, open_page, serve, until
from runfactory import make_run

from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.order import review_order
from labeltrace.relabel.runstore import run_store
from labeltrace.review import create_app
from labeltrace.rundir import open_run

N = 40
DIGITS = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch()


def _page(browser: object, base: str, query: str = "") -> object:
    return open_page(browser, base, query, total=N)


def test_digit_classes_are_chosen_by_their_own_digit(tmp_path: Path, browser: object) -> None:
    """On classes named 0-9 (the digits example), key 5 chose class '4' and class '9' had no key."""
    rd = make_run(tmp_path, n=N, k=10, classes=DIGITS, seed=3)
    for base in serve(create_app(rd)):
        page = _page(browser, base, "?reviewer=ada")
        assert page.locator(".cls kbd").all_inner_texts() == DIGITS
        first = int(review_order(open_run(rd))[0])
        page.keyboard.press("5")
        page.wait_for_selector(".status.saved", timeout=10000)  # type: ignore[attr-defined]
        assert decision_rows(rd) == [(first, "label", "5", "ada")]
        assert page.locator("#keys").inner_text() == "a class's own name"


@pytest.mark.parametrize("classes", [
    [str(d) for d in range(11)],  # a manifest's integer labels 0..10 (grades, counts)
    sorted(str(d) for d in range(1, 13)),  # class folders 1..12, read in sorted order: 1, 10, 11, 12, 2, ...
    [f"{d:03d}" for d in range(12)],  # codes 000..011: key 2 chose '001'
])
def test_digit_named_classes_beyond_ten_keep_their_own_digit(tmp_path: Path, browser: object,
                                                             classes: list[str]) -> None:
    """Eleven or more classes named by numbers took the keys by position: key 2 decided class '1'
    (or, in a folder's order, '10'), while a button named 2 stood beside it."""
    rd = make_run(tmp_path, n=N, k=len(classes), classes=classes, seed=3)
    for base in serve(create_app(rd)):
        page = _page(browser, base, "?reviewer=ada")
        keys = dict(zip(page.locator(".cls span:not(.tag)").all_inner_texts(),
                        [b.get_attribute("aria-keyshortcuts") for b in page.locator(".cls").all()], strict=True))
        assert {c: k for c, k in keys.items() if k} == {c: str(int(c)) for c in classes if int(c) < 10}
        first = int(review_order(open_run(rd))[0])
        page.keyboard.press("2")
        page.wait_for_selector(".status.saved", timeout=10000)  # type: ignore[attr-defined]
        assert decision_rows(rd) == [(first, "label", classes[[int(c) for c in classes].index(2)], "ada")]
        assert page.locator("#keys").inner_text() == "a class's own digit"


@pytest.mark.parametrize(("classes", "expected"), [
    (["0", "1", "2", "3", "4", "ungradable"], {"0": "0", "1": "1", "2": "2", "3": "3", "4": "4", "ungradable": "5"}),
    (["1", "2", "3", "unknown"], {"1": "1", "2": "2", "3": "3", "unknown": "4"}),
    (["1", "10", "11", "2", "other"], {"1": "1", "2": "2", "other": "3"}),
])
def test_a_name_beside_number_classes_takes_a_digit_left(tmp_path: Path, browser: object, classes: list[str],
                                                         expected: dict[str, str]) -> None:  # fmt: skip
    """Grades 0-4 and "ungradable": the numbers took their own digits and "ungradable" no key at all,
    to be clicked on every sample of a campaign; it takes the first digit no number claims (a number
    such as 10 none: typed as 1 then 0 it must not choose twice)."""
    rd = make_run(tmp_path, n=N, k=len(classes), classes=classes, seed=3)
    for base in serve(create_app(rd)):
        page = _page(browser, base, "?reviewer=ada")
        keys = dict(zip(page.locator(".cls span:not(.tag)").all_inner_texts(),
                        [b.get_attribute("aria-keyshortcuts") for b in page.locator(".cls").all()], strict=True))
        assert {c: k for c, k in keys.items() if k} == expected
        first = int(review_order(open_run(rd))[0])
        page.keyboard.press(expected[classes[-1]])
        page.wait_for_selector(".status.saved", timeout=10000)  # type: ignore[attr-defined]
        assert decision_rows(rd) == [(first, "label", classes[-1], "ada")]
        assert page.locator("#keys").inner_text() == "a number's own digit, the others a digit left"


def test_enter_after_a_click_does_not_decide_the_next_sample(tmp_path: Path, browser: object) -> None:
    """The clicked button kept the focus: Enter (or Space) clicked it again on the next sample."""
    rd = make_run(tmp_path, n=N, k=3, classes=["cat", "dog", "fox"], seed=4)
    for base in serve(create_app(rd)):
        page = _page(browser, base, "?reviewer=ada")
        page.locator(".cls", has_text="dog").click()
        expect(page.locator("#position")).to_have_text(f"2 / {N}", timeout=10000)
        page.keyboard.press("Enter")
        page.keyboard.press(" ")
        page.wait_for_timeout(300)  # type: ignore[attr-defined]
        assert [r[2] for r in decision_rows(rd)] == ["dog"]
        expect(page.locator("#position")).to_have_text(f"2 / {N}")


def test_a_missing_name_does_not_take_the_next_keys_as_the_name(tmp_path: Path, browser: object) -> None:
    """Under --agree 2 a key without a name focused the name box: the next keys '3' '4' became the
    reviewer '34', and the key after was stored as their vote."""
    rd = make_run(tmp_path, n=N, k=3, classes=["cat", "dog", "fox"], seed=5)
    for base in serve(create_app(rd, consensus=ConsensusRule(agree=2))):
        page = _page(browser, base)
        page.keyboard.press("1")
        expect(page.locator("#status")).to_have_text(
            "NOT saved: type your name in the Reviewer box (top) first, then press Enter — one vote cannot settle "
            "a sample here, so every vote needs a name")
        page.keyboard.press("3")
        page.keyboard.press("2")
        assert page.locator("#reviewer").input_value() == "" and decision_rows(rd) == []
        assert page.evaluate("() => document.activeElement.id") != "reviewer"  # type: ignore[attr-defined]
        assert "needed" in (page.locator("#reviewer").get_attribute("class") or "")


def test_another_reviewers_decision_is_not_shown_as_the_pages_own(tmp_path: Path, browser: object) -> None:
    """A page without a name showed 'Current decision: dog — bob' and highlighted 'dog' under 'Your
    decision'."""
    rd = make_run(tmp_path, n=N, k=3, classes=["cat", "dog", "fox"], seed=6)
    run = open_run(rd)
    run_store(run).add(int(review_order(run)[0]), "dog", reviewer="bob")
    for base in serve(create_app(rd)):
        page = _page(browser, base, "?pos=0")
        expect(page.locator("#current")).to_contain_text("Latest decision, by bob (not yours): dog")
        assert page.locator(".cls.chosen").count() == 0
        bob = _page(browser, base, "?pos=0&reviewer=bob")
        expect(bob.locator("#current")).to_contain_text("Current decision: dog — bob")
        assert "dog" in bob.locator(".cls.chosen").inner_text()


def test_a_server_out_of_reach_is_said_in_words_and_arrows_move_from_the_item_shown(tmp_path: Path,
                                                                                   browser: object) -> None:  # fmt: skip
    """'could not load item: Failed to fetch', and after it the arrows counted from the item that
    failed: once the server was back, the next arrow skipped an item."""
    rd = make_run(tmp_path, n=N, k=3, classes=["cat", "dog", "fox"], seed=7)
    refused: list[str] = []  # the item requests refused while the server is out of reach
    out = [False]

    def item(route: Any) -> None:  # routed from the page's first request on, refused once the server is "gone"
        if out[0]:
            refused.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    for base in serve(create_app(rd)):
        page = open_page(browser, base, "?reviewer=ada", total=N, routes={"**/api/item/**": item})
        out[0] = True
        page.keyboard.press("ArrowRight")  # type: ignore[attr-defined]
        until(page, lambda: any("/api/item/1?" in u and "peek=" not in u for u in refused),
              "ArrowRight asked for no item")
        expect(page.locator("#status")).to_contain_text("could not load item: the review server cannot be reached")
        expect(page.locator("#position")).to_have_text(f"1 / {N}")
        out[0] = False
        page.keyboard.press("ArrowRight")  # type: ignore[attr-defined]
        expect(page.locator("#position")).to_have_text(f"2 / {N}")


def test_the_end_of_the_queue_says_what_is_left_without_a_consensus(tmp_path: Path, browser: object) -> None:
    """It read 'Every item in the queue has a decision' with a sample only marked unsure."""
    rd = make_run(tmp_path, n=N, k=3, classes=["cat", "dog", "fox"], seed=8)
    run = open_run(rd)
    store = run_store(run)
    order = [int(i) for i in review_order(run)]
    store.add(order[0], "unsure", reviewer="ada")
    store.add_many([{"sample_id": i, "decision": "dog", "reviewer": "ada"} for i in order[1:]], source="app")
    for base in serve(create_app(rd)):
        page = _page(browser, base, "?reviewer=ada&pos=0")
        expect(page.locator("#done")).to_contain_text(
            "Every item in the queue has a decision. 1 sample has decisions without a consensus (unsure, disputed, "
            "or short of votes): the export keeps their given labels and lists them in its .unresolved.csv.")


def test_a_blind_page_shows_neither_the_model_nor_the_colleagues(tmp_path: Path, browser: object) -> None:
    """--blind-all: no suggestion, no context, no given label, no other reviewer's vote; the keys
    still decide."""
    rd = make_run(tmp_path, n=N, k=3, classes=["cat", "dog", "fox"], seed=6)
    first = int(review_order(open_run(rd))[0])
    run_store(open_run(rd)).add(first, "fox", reviewer="bob")
    for base in serve(create_app(rd, blind="all", consensus=ConsensusRule(agree=2))):
        page = _page(browser, base, "?reviewer=ada")
        for box in ("#suggested-box", "#given-box", "#context"):
            expect(page.locator(box)).to_be_hidden()
        expect(page.locator("#blind")).to_have_text("blind · given label, model and other reviewers hidden")
        assert page.locator(".cls .tag").all_inner_texts() == ["", "", ""]
        expect(page.locator("#current")).to_have_text("No decision yet.")
        assert page.locator("#votes").inner_text() == "" and "score" not in page.locator("#caption").inner_text()
        page.keyboard.press("2")
        page.wait_for_selector(".status.saved", timeout=10000)  # type: ignore[attr-defined]
        assert decision_rows(rd)[-1] == (first, "label", "dog", "ada")


def test_next_disputed_goes_to_the_disputed_sample(tmp_path: Path, browser: object) -> None:
    rd = make_run(tmp_path, n=N, k=3, classes=["cat", "dog", "fox"], seed=7)
    order = review_order(open_run(rd))
    store = run_store(open_run(rd))
    for who, label in (("ada", "cat"), ("bob", "dog")):
        store.add(int(order[5]), label, reviewer=who)
    for base in serve(create_app(rd, consensus=ConsensusRule(agree=2))):
        page = _page(browser, base, "?reviewer=cy")
        page.locator("#find [data-what=disputed]").click()
        expect(page.locator("#position")).to_have_text(f"6 / {N}")
        expect(page.locator("#status")).to_have_text("1 sample is disputed; this is the next.")
        page.locator("#find [data-what=unsure]").click()
        expect(page.locator("#status")).to_have_text("No sample in the queue is unsure.")
        assert decision_rows(rd) == [(int(order[5]), "label", "cat", "ada"), (int(order[5]), "label", "dog", "bob")]


def test_zoom_and_window_level_and_a_key_after_the_slider(tmp_path: Path, browser: object) -> None:
    """Zoom fetches the image at its own resolution; window / level maps grey values linearly; a
    class key pressed after touching a slider still decides (a focused input took every key)."""
    rd = make_run(tmp_path, n=N, k=3, classes=["cat", "dog", "fox"], seed=8)
    first = int(review_order(open_run(rd))[0])
    for base in serve(create_app(rd)):
        page = _page(browser, base, "?reviewer=ada")
        page.locator("[data-zoom='4']").click()
        expect(page.locator("#image")).to_have_attribute("data-src", re.compile(r"full=true&view=[0-9a-f]+$"))  # fetched, shown as a blob
        assert page.evaluate("() => document.getElementById('image').style.width") == "2048px"  # type: ignore[attr-defined]
        page.locator("#win").fill("51")  # window 51 around level 127.5: grey 102-153 spread over 0-255
        funcs = page.evaluate(  # type: ignore[attr-defined]
            "() => [...document.querySelectorAll('#wl feFuncR')].map(f => [f.getAttribute('slope'), f.getAttribute('intercept')])")
        slope, intercept = (float(x) for x in funcs[0])
        assert slope == pytest.approx(5.0) and intercept == pytest.approx(-2.0)  # 102 -> 0, 153 -> 1
        assert page.evaluate("() => document.getElementById('image').style.filter") == 'url("#wl")'  # type: ignore[attr-defined]
        page.locator("#lev").focus()
        page.keyboard.press("2")
        page.wait_for_selector(".status.saved", timeout=10000)  # type: ignore[attr-defined]
        assert decision_rows(rd) == [(first, "label", "dog", "ada")]
        # the next sample starts whole in the frame, with the window kept
        expect(page.locator("#position")).to_have_text(f"2 / {N}")
        assert "full=true" not in (page.locator("#image").get_attribute("data-src") or "")
        assert page.locator("#win").input_value() == "51"
        page.locator("#wl-reset").click()
        assert page.evaluate("() => document.getElementById('image').style.filter") == ""  # type: ignore[attr-defined]


SPECIES = [f"species_{j:03d}" for j in range(118)] + ["Ursus arctos", "Ursus maritimus"]


def _species_page(tmp_path: Path, browser: object) -> Iterator[tuple[Path, object, object]]:
    """(run, page, class box) of a 120-class run's review page, reviewer ada on its first sample."""
    rd = make_run(tmp_path, n=N, k=len(SPECIES), classes=SPECIES, seed=5)
    for base in serve(create_app(rd)):
        page = _page(browser, base, "?reviewer=ada")
        yield rd, page, page.locator("#class-filter")  # type: ignore[attr-defined]


def test_a_class_among_many_is_found_by_typing_part_of_its_name(tmp_path: Path, browser: object) -> None:
    """120 classes: keys for the first ten only, and a grid of buttons three screens long to scroll
    through for the others. A box keeps the buttons whose names hold what is typed; Enter chooses
    the one left; the next sample shows every button again."""
    classes = SPECIES
    for rd, page, box in _species_page(tmp_path, browser):
        assert box.is_visible()
        box.fill("ursus")
        assert page.locator(".cls:visible span:not(.tag)").all_inner_texts() == ["Ursus arctos", "Ursus maritimus"]
        box.press("Enter")  # two left: nothing chosen
        assert decision_rows(rd) == []
        box.fill("MARIT")
        first = int(review_order(open_run(rd))[0])
        box.press("Enter")
        page.wait_for_selector(".status.saved", timeout=10000)  # type: ignore[attr-defined]
        assert decision_rows(rd) == [(first, "label", "Ursus maritimus", "ada")]
        expect(page.locator("#position")).to_have_text(f"2 / {N}")
        assert box.input_value() == "" and page.locator(".cls:visible").count() == len(classes)
    small = make_run(tmp_path / "small", n=N, k=3, classes=["cat", "dog", "fox"], seed=5)
    for base in serve(create_app(small)):
        assert not _page(browser, base, "?reviewer=ada").locator("#class-filter").is_visible()


def test_the_class_box_escape_and_an_input_methods_enter(tmp_path: Path, browser: object) -> None:
    """Escape emptied the box (the browser's own action on a search box) but left the buttons it had
    hidden hidden, on this sample and the next; an input method's Enter, which commits the text
    composed (a class named in Chinese or Japanese), chose the one class left."""
    for rd, page, box in _species_page(tmp_path, browser):
        box.fill("ursus")
        assert page.locator(".cls:visible").count() == 2
        box.press("Escape")
        assert box.input_value() == "" and page.locator(".cls:visible").count() == len(SPECIES)
        box.fill("marit")
        box.focus()
        box.dispatch_event("keydown", {"key": "Enter", "isComposing": True, "keyCode": 229, "bubbles": True})
        # a decision empties the box at once (the page keeps the focus in it since Enter may choose)
        assert box.input_value() == "marit" and decision_rows(rd) == []
        first = int(review_order(open_run(rd))[0])
        box.press("Enter")  # the Enter that is the reviewer's
        page.wait_for_selector(".status.saved", timeout=10000)  # type: ignore[attr-defined]
        assert decision_rows(rd) == [(first, "label", "Ursus maritimus", "ada")]


def test_after_enter_chooses_a_class_the_next_letters_go_to_the_box(tmp_path: Path, browser: object) -> None:
    """Enter chose the one class left and left the box: the next name typed for the next sample
    ran as shortcuts — 'species_005' skipped two samples at its two s and chose the tenth class at 0."""
    for rd, page, box in _species_page(tmp_path, browser):
        box.fill("marit")
        first = int(review_order(open_run(rd))[0])
        box.press("Enter")
        page.wait_for_selector(".status.saved", timeout=10000)  # type: ignore[attr-defined]
        expect(page.locator("#position")).to_have_text(f"2 / {N}")
        page.keyboard.type("species_005")  # type: ignore[attr-defined]
        assert box.input_value() == "species_005"
        assert page.locator(".cls:visible span:not(.tag)").all_inner_texts() == ["species_005"]
        assert decision_rows(rd) == [(first, "label", "Ursus maritimus", "ada")]
        second = int(review_order(open_run(rd))[1])
        box.press("Enter")
        expect(page.locator("#position")).to_have_text(f"3 / {N}")
        assert decision_rows(rd)[-1] == (second, "label", "species_005", "ada")
