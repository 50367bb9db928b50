"""A curator's journey on the review page (a review of the page in a browser): told "look at
sample 412" or "chest/IM-0031.png", shown a sample with an exact copy under another label, opening
the page before typing a name — each case the page could not serve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from browser_support import decision_rows, expect, launch, open_page, serve
from runfactory import make_run

from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.order import review_order
from labeltrace.relabel.runstore import run_store
from labeltrace.review import create_app
from labeltrace.rundir import open_run, write_table

N = 30
CLASSES = ["cat", "dog", "fox"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch()


def test_the_go_to_box_shows_the_sample_named_and_its_keys_decide_nothing(tmp_path: Path, browser: object) -> None:
    """The page only stepped through the queue. Now a position, a sample id or a file name typed in
    the "go to" box shows that sample; letters typed there never decide, and what matches nothing
    is said with what was typed, the box keeping the focus to mend it."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=21)
    run = open_run(rd)
    order = review_order(run)
    for base in serve(create_app(rd)):
        page = open_page(browser, base, "?reviewer=ada", total=N)
        box = page.locator("#jump")
        box.focus()
        page.keyboard.type("x1us2 ")  # type: ignore[attr-defined]
        page.keyboard.press("ArrowRight")  # type: ignore[attr-defined]
        assert decision_rows(rd) == [] and page.locator("#position").inner_text() == f"1 / {N}"
        box.fill(str(int(order[9])))
        page.keyboard.press("Enter")  # type: ignore[attr-defined]
        expect(page.locator("#position")).to_have_text(f"10 / {N}")
        expect(page.locator("#status")).to_have_text(
            f"Went to “{int(order[9])}”: sample {int(order[9])}, position 10.")
        assert box.input_value() == "" and page.evaluate("() => document.activeElement.id") != "jump"  # type: ignore[attr-defined]
        page.keyboard.press("2")  # type: ignore[attr-defined]  # the keys decide the sample gone to
        expect(page.locator("#position")).to_have_text(f"11 / {N}")
        assert decision_rows(rd) == [(int(order[9]), "label", "dog", "ada")]
        name = str(run.column("external_id")[int(order[20])]).split("/")[-1]
        box.fill(name)
        page.locator("#jump-go").click()
        expect(page.locator("#position")).to_have_text(f"21 / {N}")
        box.fill("pos 3")
        page.keyboard.press("Enter")  # type: ignore[attr-defined]
        expect(page.locator("#position")).to_have_text(f"3 / {N}")
        box.fill("chest/IM-0031.png")
        page.keyboard.press("Enter")  # type: ignore[attr-defined]
        expect(page.locator("#status")).to_contain_text("Go to “chest/IM-0031.png”: no sample has that position")
        assert page.evaluate("() => document.activeElement.id") == "jump"  # type: ignore[attr-defined]
        page.keyboard.press("1")  # type: ignore[attr-defined]  # typed into the box, not a decision
        assert len(decision_rows(rd)) == 1 and page.locator("#position").inner_text() == f"3 / {N}"
        page.close()  # type: ignore[attr-defined]


def test_an_exact_copy_under_another_label_is_said_on_the_item(tmp_path: Path, browser: object) -> None:
    """The scan's exact copies under different labels showed in the report, not on the page where
    the sample is decided; now the item names them (a link to each) with their labels."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=22)
    run = open_run(rd)
    order = review_order(run)
    given = run.column("given_label")
    a = int(order[0])
    b = next(int(i) for i in order[5:] if given[i] != given[a])
    g = np.full(N, -1, dtype=np.int64)
    g[[a, b]] = 0
    write_table(rd / "samples.parquet", run.samples.append_column("duplicate_group", pa.array(g)))
    for base in serve(create_app(rd)):
        page = open_page(browser, base, "?reviewer=ada", total=N)
        box = page.locator("#copies")
        expect(box).to_have_text("⚠ Exact copy of this image (the same pixels) under another label — at least one "
                                 f"label is wrong: sample {b} (given {given[b]})")  # fmt: skip
        box.get_by_role("button", name=f"sample {b}").click()
        pos = int(np.flatnonzero(order == b)[0]) + 1
        expect(page.locator("#position")).to_have_text(f"{pos} / {N}")
        expect(box).to_contain_text(f"sample {a} (given {given[a]})")
        page.keyboard.press("ArrowRight")  # type: ignore[attr-defined]
        expect(page.locator("#position")).to_have_text(f"{pos + 1} / {N}")
        expect(box).to_be_hidden()
        page.close()  # type: ignore[attr-defined]


def test_a_name_typed_after_the_page_opened_resumes_that_reviewers_own_place(tmp_path: Path, browser: object) -> None:
    """A page opened before its reviewer typed a name resumed at the nameless place (the first
    sample without a consensus) and stayed there once the name was typed — on samples ada had
    already voted on, which she then had to step past. A page that has not moved from where it
    opened now goes to the named reviewer's own place (and gives up its nameless hold); one the
    reviewer moved stays where they took it."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=23)
    order = review_order(open_run(rd))
    st = run_store(open_run(rd))
    for p in range(3):  # one vote of the two each needs: not settled, but done for ada
        st.add(int(order[p]), "cat", reviewer="ada")
    app = create_app(rd, consensus=ConsensusRule(agree=2))
    leases = app.state.review.leases
    for base in serve(app):
        page = open_page(browser, base, "", total=N)
        assert leases.held_by_others(None, N, "another-page")[order[0]] == 1  # held for the nameless pages
        page.fill("#reviewer", "ada")
        page.keyboard.press("Enter")  # type: ignore[attr-defined]
        expect(page.locator("#position")).to_have_text(f"4 / {N}")
        expect(page.locator("#current")).to_have_text("No decision yet.")
        for _ in range(100):  # its nameless hold is given up (a request the page sends on its own)
            if leases.held_by_others(None, N, "another-page")[order[0]] == 0:
                break
            page.wait_for_timeout(50)  # type: ignore[attr-defined]
        assert leases.held_by_others(None, N, "another-page")[order[0]] == 0
        page.close()  # type: ignore[attr-defined]
        page = open_page(browser, base, "", total=N)
        page.keyboard.press("ArrowRight")  # type: ignore[attr-defined]
        expect(page.locator("#position")).to_have_text(f"2 / {N}")
        page.fill("#reviewer", "ada")
        page.keyboard.press("Enter")  # type: ignore[attr-defined]
        expect(page.locator("#current")).to_contain_text("Current decision: cat")  # her vote, where she went
        assert page.locator("#position").inner_text() == f"2 / {N}"
        page.close()  # type: ignore[attr-defined]


def test_a_go_to_whose_sample_moved_before_it_was_fetched_goes_where_it_is_now(tmp_path: Path, browser: object) -> None:
    """A live re-ranking between the look-up and the item's fetch moves the sample: the page found
    another sample at the position answered and looked it up again — then, told the new position,
    stayed on the wrong sample without a word (it only went on when the position had not changed)."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=24)
    order = review_order(open_run(rd))
    target = int(order[12])
    for base in serve(create_app(rd)):
        answers: list[str] = []

        def stale_first(route: object) -> None:  # the first answer: where the sample was before a re-ranking
            answers.append("stale")
            if len(answers) == 1:
                route.fulfill(json={"position": 5, "id": target, "problem": None})  # type: ignore[attr-defined]
            else:
                route.continue_()  # type: ignore[attr-defined]

        # routed from the page's first request (no go-to request comes before the box is used)
        page = open_page(browser, base, "?reviewer=ada", total=N, routes={"**/api/jump?**": stale_first})
        page.locator("#jump").fill(f"id {target}")
        page.keyboard.press("Enter")  # type: ignore[attr-defined]
        expect(page.locator("#status")).to_have_text(f"Went to “id {target}”: sample {target}, position 13.")
        expect(page.locator("#position")).to_have_text(f"13 / {N}")
        assert len(answers) == 2
        page.close()  # type: ignore[attr-defined]


def test_a_key_pressed_while_a_go_to_loads_is_said_not_saved(tmp_path: Path, browser: object) -> None:
    """`g`, `pos 4`, Enter and a class key at once: the key went into the box, which the page then
    cleared, and the status said only "Went to ..." (a functional audit's finding)."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=26)
    for base in serve(create_app(rd)):
        held: list[object] = []
        page = open_page(browser, base, "?reviewer=ada", total=N,
                         routes={"**/api/jump?**": lambda route: held.append(route)})  # answered once the key is in
        page.locator("#jump").fill("pos 4")
        page.keyboard.press("Enter")  # type: ignore[attr-defined]
        for _ in range(100):
            if held:
                break
            page.wait_for_timeout(20)  # type: ignore[attr-defined]
        page.keyboard.press("2")  # type: ignore[attr-defined]  # the look-up still out: typed into the box
        held[0].continue_()  # type: ignore[attr-defined]
        expect(page.locator("#position")).to_have_text(f"4 / {N}")
        expect(page.locator("#status")).to_contain_text("A key pressed while it loaded went into the Go to box and "
                                                        "was NOT saved: press it again.")
        assert decision_rows(rd) == []
        page.close()  # type: ignore[attr-defined]


def test_clearing_a_name_the_server_gives_keeps_the_pages_hold(tmp_path: Path, browser: object) -> None:
    """A server started with --reviewer speaks for a nameless page under that name: clearing the box
    filled with it changes the page's name but not whose hold it is. The page gave up "the hold
    under the earlier name" after taking the new one — the same hold, so the sample shown was no
    longer held and a colleague's next landed on it."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=25)
    order = review_order(open_run(rd))
    app = create_app(rd, reviewer="bob")
    leases = app.state.review.leases
    for base in serve(app):
        page = open_page(browser, base, "", total=N)
        assert page.locator("#reviewer").input_value() == "bob"
        assert leases.held_by_others("cy", N)[order[0]] == 1
        seen = page.evaluate("() => performance.getEntriesByType('resource').length")  # type: ignore[attr-defined]
        page.fill("#reviewer", "")
        page.keyboard.press("Enter")  # type: ignore[attr-defined]
        page.locator("#reviewer").blur()  # the change event
        for _ in range(100):  # the item asked for again, and whatever the page sends after it
            done = page.evaluate(  # type: ignore[attr-defined]
                f"() => performance.getEntriesByType('resource').slice({seen}).filter((e) => e.name.includes('/api/item/')).length")
            if done:
                break
            page.wait_for_timeout(50)  # type: ignore[attr-defined]
        page.wait_for_timeout(500)  # type: ignore[attr-defined]  # a leave, if one is sent, has arrived
        assert page.locator("#position").inner_text() == f"1 / {N}"
        assert leases.held_by_others("cy", N)[order[0]] == 1  # still bob's: the page shows it
        page.close()  # type: ignore[attr-defined]


def test_the_g_key_puts_the_focus_in_the_go_to_box(tmp_path: Path, browser: object) -> None:
    """The "go to" box could be reached with the mouse or by tabbing only: g puts the focus there now
    (the help lists it; the g is not typed into the box, and decides nothing), Enter goes, and the keys
    decide again; with single-key shortcuts off g does nothing."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=26)
    order = review_order(open_run(rd))
    for base in serve(create_app(rd)):
        page = open_page(browser, base, "?reviewer=ada", total=N)
        expect(page.locator("#jump-key")).to_be_visible()
        expect(page.locator(".help")).to_contain_text("g go to")
        assert page.locator("#jump").get_attribute("aria-keyshortcuts") == "g"
        page.keyboard.press("g")  # type: ignore[attr-defined]
        assert page.evaluate("() => document.activeElement.id") == "jump"  # type: ignore[attr-defined]
        assert page.locator("#jump").input_value() == "" and decision_rows(rd) == []
        page.keyboard.type(f"id {int(order[6])}")  # type: ignore[attr-defined]
        page.keyboard.press("Enter")  # type: ignore[attr-defined]
        expect(page.locator("#position")).to_have_text(f"7 / {N}")
        page.keyboard.press("2")  # type: ignore[attr-defined]  # the box left: keys decide again
        expect(page.locator("#position")).to_have_text(f"8 / {N}")
        assert decision_rows(rd) == [(int(order[6]), "label", "dog", "ada")]
        page.keyboard.press("G")  # type: ignore[attr-defined]
        assert page.evaluate("() => document.activeElement.id") == "jump"  # type: ignore[attr-defined]
        page.keyboard.press("Escape")  # type: ignore[attr-defined]
        assert page.evaluate("() => document.activeElement.id") != "jump"  # type: ignore[attr-defined]
        page.locator("#shortcuts").uncheck()
        page.keyboard.press("g")  # type: ignore[attr-defined]
        assert page.evaluate("() => document.activeElement.id") != "jump"  # type: ignore[attr-defined]
        assert page.locator("#jump").get_attribute("aria-keyshortcuts") is None
        page.close()  # type: ignore[attr-defined]


def test_a_class_whose_own_key_is_g_keeps_it(tmp_path: Path, browser: object) -> None:
    rd = make_run(tmp_path, n=N, k=2, classes=["f", "g"], seed=27)
    for base in serve(create_app(rd)):
        page = open_page(browser, base, "?reviewer=ada", total=N)
        assert not page.locator("#jump-key").is_visible()
        assert page.locator("#jump").get_attribute("aria-keyshortcuts") is None
        page.keyboard.press("g")  # type: ignore[attr-defined]
        expect(page.locator("#position")).to_have_text(f"2 / {N}")
        assert decision_rows(rd) == [(int(review_order(open_run(rd))[0]), "label", "g", "ada")]
        page.close()  # type: ignore[attr-defined]


def test_a_bare_number_read_as_a_sample_id_says_so(tmp_path: Path, browser: object) -> None:
    """A number a sample outside the queue is named by led nowhere; it goes to that sample id now, and
    the status says how the number was read."""
    rd = make_run(tmp_path, n=N, k=3, classes=CLASSES, seed=28)
    run = open_run(rd)
    ext = [str(x) for x in run.column("external_id")]
    ext[4] = "9"
    t = run.samples
    write_table(rd / "samples.parquet", t.set_column(t.column_names.index("external_id"), "external_id", pa.array(ext)))
    write_table(rd / "queue.parquet", pa.table({"id": np.array([5, 2, 9], dtype=np.int64), "priority": [0.9, 0.5, 0.1],
                                                "rank": np.array([1, 2, 3])}))  # fmt: skip
    for base in serve(create_app(rd)):
        page = open_page(browser, base, "?reviewer=ada", total=3)
        page.locator("#jump").fill("9")
        page.keyboard.press("Enter")  # type: ignore[attr-defined]
        expect(page.locator("#position")).to_have_text("3 / 3")
        expect(page.locator("#status")).to_have_text("Went to “9”: sample 9, position 3 (as a sample id: sample 4 "
                                                     "(9), so named, is not in this review's queue).")  # fmt: skip
        page.close()  # type: ignore[attr-defined]
