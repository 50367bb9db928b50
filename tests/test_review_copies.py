"""The review page's item names its exact copies (the scan's ``duplicate_group``): a copy filed
under another label — the strongest evidence a label is wrong — went unsaid on the page, told only
by the report and, after the review, by the export's warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from fastapi.testclient import TestClient
from runfactory import make_run

from labeltrace.relabel.runstore import run_store
from labeltrace.review import create_app
from labeltrace.review.copies import SHOWN
from labeltrace.rundir import open_run, write_table

LOCAL = "http://127.0.0.1"
N = 30


def _with_copies(rd: Path, groups: list[list[int]]) -> None:
    """The samples table with ``duplicate_group`` numbering ``groups`` (what a scan writes)."""
    run = open_run(rd)
    g = np.full(run.num_samples, -1, dtype=np.int64)
    for j, members in enumerate(groups):
        g[members] = j
    write_table(rd / "samples.parquet", run.samples.append_column("duplicate_group", pa.array(g)))


def _pairs(rd: Path) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two samples given different labels, and two given the same one."""
    given = open_run(rd).column("given_label_id")
    b = next(i for i in range(1, N) if given[i] != given[0])
    c, d = next((i, j) for i in range(1, N) for j in range(i + 1, N) if given[i] == given[j] and b not in (i, j))
    return (0, b), (c, d)


def _item(c: TestClient, i: int, who: str = "ada") -> dict:
    pos = int(c.app.state.review.positions()[i])  # type: ignore[attr-defined]
    return dict(c.get(f"/api/item/{pos}?reviewer={who}&peek=true").json())


def test_an_item_names_its_exact_copies_and_their_labels(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=N, k=3, seed=3)
    (a, b), (c, d) = _pairs(rd)
    _with_copies(rd, [[a, b], [c, d]])
    names = open_run(rd).column("given_label")
    cl = TestClient(create_app(rd), base_url=LOCAL)
    assert _item(cl, a)["copies"] == {"count": 1, "differ": True,
                                      "samples": [{"id": b, "given_label": names[b], "label": names[b]}]}  # fmt: skip
    assert _item(cl, c)["copies"] == {"count": 1, "differ": False,
                                      "samples": [{"id": d, "given_label": names[d], "label": names[d]}]}  # fmt: skip
    alone = next(i for i in range(N) if i not in (a, b, c, d))
    assert _item(cl, alone)["copies"] is None
    cl.post("/api/decision", json={"sample_id": b, "decision": names[a], "reviewer": "bob"})  # the copies agree now
    assert _item(cl, a)["copies"]["samples"] == [{"id": b, "given_label": names[b], "label": names[a]}]
    cl.post("/api/decision", json={"sample_id": d, "decision": "exclude", "kind": "exclude", "reviewer": "bob"})
    assert _item(cl, c)["copies"]["samples"][0]["label"] is None  # excluded: no class


def test_a_run_without_copies_says_none(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=3)  # no duplicate_group column: the scan found no copy
    assert TestClient(create_app(rd), base_url=LOCAL).get("/api/item/0").json()["copies"] is None


def test_a_large_group_lists_the_copies_under_other_labels_first(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=N, k=3, seed=4)
    given = open_run(rd).column("given_label_id")
    _with_copies(rd, [list(range(20))])
    item = _item(TestClient(create_app(rd), base_url=LOCAL), 0)["copies"]
    ids = [s["id"] for s in item["samples"]]
    other = [i for i in range(1, 20) if given[i] != given[0]]
    assert item["count"] == 19 and len(ids) == SHOWN and item["differ"] is True
    assert ids[: len(other)] == other[:SHOWN] and set(ids) <= set(range(1, 20))


def test_blind_pages_show_the_copies_as_the_mode_allows(tmp_path: Path) -> None:
    """--blind shows the given label, so the copies' given labels too — not the labels the other
    reviewers' votes gave them; --blind-all hides the given label, so the copies altogether (their
    given labels tell it, and their real ids a folder's class)."""
    rd = make_run(tmp_path, n=N, k=3, seed=3)
    (a, b), _ = _pairs(rd)
    _with_copies(rd, [[a, b]])
    names = open_run(rd).column("given_label")
    other = next(x for x in open_run(rd).classes if x != names[b])
    run_store(open_run(rd)).add(b, other, reviewer="bob")
    assert _item(TestClient(create_app(rd), base_url=LOCAL), a)["copies"]["samples"][0]["label"] == other
    cl = TestClient(create_app(rd, blind="model"), base_url=LOCAL)
    assert _item(cl, a)["copies"] == {"count": 1, "differ": True,
                                      "samples": [{"id": b, "given_label": names[b], "label": None}]}  # fmt: skip
    cl = TestClient(create_app(rd, blind="all"), base_url=LOCAL)
    assert all(cl.get(f"/api/item/{p}?reviewer=ada").json()["copies"] is None for p in range(N))
