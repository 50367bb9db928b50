"""A class name with a right-to-left override (U+202E, legal in a folder or manifest name) turned
the text after it around on the review page and in the report: the reviewer's name and the date,
the model's suggestion beside the given label. Checked where the text lands in Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import expect, launch, serve
from runfactory import make_run

from labeltrace.relabel.order import review_order
from labeltrace.relabel.runstore import run_store
from labeltrace.report import write_report
from labeltrace.review import create_app
from labeltrace.rundir import open_run

RLO = "\u202e"
CLASSES = [RLO + "dog", "cat", "fox"]
#: a name that closes its own isolation (U+2069) before its override: it escaped both (an audit's finding)
ESCAPING = ["\u2069" + RLO + "dog", "cat", "fox"]

#: the left edge of the first occurrence of ``what`` in the text of element ``sel``'s subtree
_LEFT = """([sel, what]) => {
  const walk = document.createTreeWalker(document.querySelector(sel), NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const k = n.data.indexOf(what);
    if (k < 0) continue;
    const r = document.createRange(); r.setStart(n, k); r.setEnd(n, k + what.length);
    return r.getBoundingClientRect().left;
  }
  return null;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch()


@pytest.mark.parametrize("classes", [CLASSES, ESCAPING])
def test_a_class_name_with_an_override_leaves_the_reviewer_and_date_in_order(tmp_path: Path, browser: object,
                                                                            classes: list[str]) -> None:  # fmt: skip
    rd = make_run(tmp_path, n=30, k=3, classes=classes, seed=5)
    run = open_run(rd)
    run_store(run).add(int(review_order(run)[0]), classes[0], reviewer="bob")
    for base in serve(create_app(rd)):
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(f"{base}/?pos=0&reviewer=bob")
        expect(page.locator("#current")).to_contain_text("bob")
        left = [page.evaluate(_LEFT, ["#current", w]) for w in ("Current", "bob", "UTC")]
        assert None not in left and left[0] < left[1] < left[2], left  # reversed: UTC left of bob
        votes = [page.evaluate(_LEFT, ["#votes", w]) for w in ("Reviews", "bob", "consensus")]
        assert None not in votes and votes[0] < votes[1] < votes[2], votes


@pytest.mark.parametrize("classes", [CLASSES, ESCAPING])
def test_a_class_name_with_an_override_leaves_the_suggestion_after_the_given_label(tmp_path: Path, browser: object,
                                                                                  classes: list[str]) -> None:  # fmt: skip
    rd = make_run(tmp_path, n=30, k=3, classes=classes, seed=5)
    run = open_run(rd)
    given, sugg = run.column("given_label_id"), run.column("suggested_label_id")
    assert ((given == 0) & (sugg != 0)).any()  # a card: "<RLO>dog → cat"
    report = write_report(rd, top=30, thumb_size=8)
    page = browser.new_page(viewport={"width": 1600, "height": 900})  # type: ignore[attr-defined]
    page.goto(report.resolve().as_uri())
    sides = page.evaluate("""() => [...document.querySelectorAll('.sus')].filter(c => {
        const g = c.querySelector('.given'); return g && g.textContent.includes('dog'); }).map(c => {
        const g = c.querySelector('.given').getBoundingClientRect(), s = c.querySelector('.sugg').getBoundingClientRect();
        return [g.left, s.left, g.top, s.top]; })""")
    # on one line the suggestion right of the given label; wrapped (a name shown with its controls'
    # code points is long), below it
    assert sides and all((gt == st and gl < sl) or st > gt for gl, sl, gt, st in sides), sides


def test_a_right_to_left_path_copied_from_the_report_or_the_page_is_the_path(tmp_path: Path,
                                                                             browser: object) -> None:  # fmt: skip
    """The isolation was by characters (U+2068 ... U+2069) written around the name: a Hebrew folder
    name copied from a report card or the review page's caption took them into a shell, which then
    found no such file. Now an element isolates it (``<bdi>``), and the text is the path."""
    rd = make_run(tmp_path, n=30, k=3, classes=["כלב", "cat", "fox"], kind="folder", seed=5)
    run = open_run(rd)
    hebrew = {str(e) for e in run.column("external_id") if str(e).startswith("כלב/")}
    page = browser.new_page(viewport={"width": 1600, "height": 900})  # type: ignore[attr-defined]
    page.goto(write_report(rd, top=30, thumb_size=8).resolve().as_uri())
    shown = set(page.locator(".sus .file").all_inner_texts())
    assert hebrew & shown and not any(c in t for t in shown for c in "\u2068\u2069")
    first = str(run.column("external_id")[int(review_order(run)[0])])
    for base in serve(create_app(rd)):
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(f"{base}/?pos=0&reviewer=bob")
        expect(page.locator("#caption")).to_contain_text(first)
        assert page.locator("#caption bdi").inner_text() == first
