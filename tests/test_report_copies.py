"""The report's sections on copies under different labels, read with a review under way: each
copy's given label is shown plain (the suspects' struck-through "given" style read as "this label
is wrong", every copy's at once) and carries the review's decision, as a suspect's card does."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from runfactory import make_run

from labeltrace import rundir
from labeltrace.relabel.runstore import run_store
from labeltrace.report import write_report
from labeltrace.rundir import open_run


def _section(page: str, sid: str) -> str:
    start = page.index(f"<section id='{sid}'>")
    return page[start:page.index("</section>", start)]


def test_copies_show_their_labels_plain_and_the_reviews_decision(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=2, seed=0)
    run = open_run(rd)
    given, paths = run.column("given_label"), run.column("path")
    a, b = 0, next(i for i in range(1, 12) if given[i] != given[0])  # two samples under different labels
    rows = {"duplicate_group": [0, 0], "labels_differ": [True, True], "group_size": [2, 2], "id": [a, b],
            "external_id": [str(paths[a]), str(paths[b])], "path": [str(paths[a]), str(paths[b])],
            "given_label": [str(given[a]), str(given[b])]}  # fmt: skip
    pq.write_table(pa.table(rows), rd / rundir.DUPLICATES)
    pq.write_table(pa.table({**rows, "near_group": [0, 0], "closest": [0.99, 0.99]}), rd / rundir.NEAR_DUPLICATES)
    page = write_report(rd).read_text()
    for sid in ("duplicates", "near-duplicates"):
        section = _section(page, sid)
        assert 'class="given"' not in section  # struck through: "wrong"
        assert f"<b>{given[a]}</b>" in section and f"<b>{given[b]}</b>" in section
        assert "reviewed:" not in section
    run_store(open_run(rd)).add(a, str(given[b]), reviewer="ada")  # the review gives the copies one label
    page = write_report(rd).read_text()
    for sid in ("duplicates", "near-duplicates"):
        section = _section(page, sid)
        card = section[section.index(f'data-id="{a}"'):section.index(f'data-id="{b}"')]
        assert f"reviewed: {given[b]}" in card
        assert "reviewed:" not in section[section.index(f'data-id="{b}"'):]
