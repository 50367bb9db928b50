"""The review page's "go to" (``GET /api/jump``): an expert told "look at sample 412" or
"chest/IM-0031.png" could only step through the queue to find it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from runfactory import make_run

from labeltrace.relabel.order import review_order
from labeltrace.review import create_app
from labeltrace.rundir import open_run, write_table

LOCAL = "http://127.0.0.1"
N = 20


@pytest.fixture()
def rd(tmp_path: Path) -> Path:
    return make_run(tmp_path, n=N, k=3, seed=7)


def _jump(c: TestClient, to: str) -> dict:
    r = c.get("/api/jump", params={"to": to})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_position_an_id_an_external_id_and_a_file_name_lead_to_their_sample(rd: Path) -> None:
    c = TestClient(create_app(rd), base_url=LOCAL)
    run = open_run(rd)
    order = review_order(run)
    pos_of = {int(i): p for p, i in enumerate(order.tolist())}
    i = int(order[7])
    ext = str(run.column("external_id")[i])
    assert _jump(c, "pos 8") == {"position": 7, "id": i, "problem": None, "note": None}  # the page's "8 / 20"
    assert _jump(c, " Position 8 ")["position"] == 7
    for to in (str(i), f"id {i}", f"sample {i}", f"#{i}", ext, ext.split("/")[-1]):
        assert _jump(c, to) == {"position": pos_of[i], "id": i, "problem": None, "note": None}, to
    assert c.get(f"/api/item/{_jump(c, ext)['position']}").json()["external_id"] == ext


def test_what_matches_nothing_says_why_without_repeating_it(rd: Path) -> None:
    c = TestClient(create_app(rd), base_url=LOCAL)
    for to, why in (("nope/<b>x</b>.png", "no sample has that position, id, external id or file name"),
                    ("pos 0", "positions run from 1 to 20"), ("pos 21", "positions run from 1 to 20"),
                    (str(N), "no sample has that id (ids run from 0 to 19"), ("", "type a queue position")):  # fmt: skip
        r = _jump(c, to)
        assert r["position"] is None and why in r["problem"], (to, r)
        assert "<b>" not in r["problem"]
    assert c.get("/api/jump", params={"to": "x" * 3000}).status_code == 422  # a bounded look-up


def test_a_file_name_two_samples_share_asks_for_the_whole_id(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=2)
    run = open_run(rd)
    ext = [str(x) for x in run.column("external_id")]
    ext[3], ext[8] = "a/same.png", "b/same.png"
    t = run.samples
    write_table(rd / "samples.parquet", t.set_column(t.column_names.index("external_id"), "external_id", pa.array(ext)))
    c = TestClient(create_app(rd), base_url=LOCAL)
    r = _jump(c, "same.png")
    assert r["position"] is None and r["problem"] == ("2 samples are named so: type a whole external id "
                                                      "(a/same.png, b/same.png) or a sample id")  # fmt: skip
    assert _jump(c, "b/same.png")["id"] == 8


def test_a_sample_the_queue_file_leaves_out_is_named_as_such(rd: Path) -> None:
    write_table(rd / "queue.parquet", pa.table({"id": np.array([5, 2, 9], dtype=np.int64),
                                                "priority": [0.9, 0.5, 0.1], "rank": np.array([1, 2, 3])}))  # fmt: skip
    c = TestClient(create_app(rd), base_url=LOCAL)
    assert _jump(c, "9")["position"] == 2
    r = _jump(c, "id 4")
    assert r["position"] is None and r["problem"] == "sample 4 is not in this review's queue (3 of the run's 20 samples)"
    ext = str(open_run(rd).column("external_id")[4])
    assert _jump(c, ext)["problem"] == f"sample 4 ({ext}) is not in this review's queue"


def test_a_jump_holds_nothing_until_the_page_shows_it(rd: Path) -> None:
    """The look-up is not a move: the sample is held (a colleague's next passes it) once the page
    asks for the item, as after any move."""
    c = TestClient(create_app(rd), base_url=LOCAL)
    first = c.get("/api/item/0?peek=true").json()["id"]
    r = _jump(c, "pos 2")
    assert c.post("/api/decision", json={"sample_id": first, "decision": "cat", "reviewer": "bob"}).json()["next"] == 1
    c.get(f"/api/item/{r['position']}?reviewer=ada&page=A&seq=1")  # ada's page shows it: held for her
    assert c.post("/api/decision", json={"sample_id": first, "decision": "cat", "reviewer": "cy"}).json()["next"] == 2


def test_blind_all_looks_up_the_ids_the_page_sees_and_no_file_name(rd: Path) -> None:
    """Under --blind-all the page sees permuted ids and no external id: a jump by the real id, or
    by a folder's class/file name, would tell the class of the image shown (cat/x.png matched,
    dog/x.png not). A shown id leads to its sample; a name is refused, whether it exists or not."""
    c = TestClient(create_app(rd, blind="all"), base_url=LOCAL)
    it = c.get("/api/item/6?reviewer=ada").json()
    assert it["external_id"] is None
    r = _jump(c, str(it["id"]))
    assert r == {"position": 6, "id": it["id"], "problem": None, "note": None}
    assert c.get(f"/api/item/{r['position']}?reviewer=ada").json()["id"] == it["id"]
    real = int(review_order(open_run(rd))[6])
    ext = str(open_run(rd).column("external_id")[real])
    for to in (ext, ext.split("/")[-1], "nope.png"):
        r = _jump(c, to)
        assert r["position"] is None and "looks up no file name" in r["problem"], to
    assert _jump(c, "pos 7")["id"] == it["id"]


def test_blind_model_jumps_by_file_name(rd: Path) -> None:
    """--blind shows the given label and the file name: a jump by it tells nothing more."""
    c = TestClient(create_app(rd, blind="model"), base_url=LOCAL)
    i = int(review_order(open_run(rd))[4])
    assert _jump(c, str(open_run(rd).column("external_id")[i])) == {"position": 4, "id": i, "problem": None,
                                                                     "note": None}  # fmt: skip


def test_a_name_typed_in_the_other_unicode_form_is_found(rd: Path) -> None:
    """A folder read on macOS names its files in decomposed form (e + U+0301); the reviewer types the
    composed é of a keyboard: the two look the same, and the name was said to match nothing."""
    import unicodedata

    run = open_run(rd)
    ext = [str(x) for x in run.column("external_id")]
    ext[6] = unicodedata.normalize("NFD", "cat/café-6.png")
    t = run.samples
    write_table(rd / "samples.parquet", t.set_column(t.column_names.index("external_id"), "external_id", pa.array(ext)))
    c = TestClient(create_app(rd), base_url=LOCAL)
    for to in ("cat/café-6.png", "café-6.png", unicodedata.normalize("NFD", "café-6.png")):
        assert _jump(c, to)["id"] == 6, to


def _named(rd: Path, names: dict[int, str]) -> None:
    """Give samples external ids (a manifest's ids may be numbers)."""
    run = open_run(rd)
    ext = [str(x) for x in run.column("external_id")]
    for i, name in names.items():
        ext[i] = name
    t = run.samples
    write_table(rd / "samples.parquet", t.set_column(t.column_names.index("external_id"), "external_id", pa.array(ext)))


def _queue(rd: Path, ids: list[int]) -> None:
    write_table(rd / "queue.parquet", pa.table({"id": np.array(ids, dtype=np.int64),
                                                "priority": np.linspace(1, 0, len(ids)),
                                                "rank": np.arange(1, len(ids) + 1)}))  # fmt: skip


def test_a_bare_number_whose_named_sample_is_left_out_goes_to_that_sample_id(rd: Path) -> None:
    """A bare number was read as an external id first, and when the sample so named was outside the
    queue the answer stopped there ("sample 4 (9) is not in this review's queue"), though sample 9
    was queued; it falls back to the sample id now, and says which reading it used."""
    _named(rd, {4: "9", 6: "25"})
    _queue(rd, [5, 2, 9, 12])
    c = TestClient(create_app(rd), base_url=LOCAL)
    assert _jump(c, "9") == {"position": 2, "id": 9, "problem": None,
                             "note": "as a sample id: sample 4 (9), so named, is not in this review's queue"}  # fmt: skip
    assert _jump(c, "id 9")["note"] is None and _jump(c, "id 9")["position"] == 2  # no name looked up
    r = _jump(c, "25")  # named so, left out, and no sample has id 25: the name's answer
    assert r["position"] is None and r["problem"] == "sample 6 (25) is not in this review's queue"
    assert _jump(c, "12") == {"position": 3, "id": 12, "problem": None, "note": None}  # named by none: an id
    _queue(rd, [5, 2, 12])
    c = TestClient(create_app(rd), base_url=LOCAL)
    r = _jump(c, "9")
    assert r["position"] is None and r["problem"] == ("neither sample 4 (9), so named, nor sample 9 is in this "
                                                      "review's queue")  # fmt: skip


def test_a_bare_number_read_as_a_name_says_the_id_is_another_sample(rd: Path) -> None:
    """Both readings apply — sample 4 is named 9 and sample 9 exists: the name wins (as before), and
    the answer says so and how to reach sample 9; a name that is its own sample's id needs no note."""
    _named(rd, {4: "9", 7: "7"})
    _queue(rd, [9, 4, 7])
    c = TestClient(create_app(rd), base_url=LOCAL)
    assert _jump(c, "9") == {"position": 1, "id": 4, "problem": None,
                             "note": "by external id or file name; sample id 9 is another sample: type id 9 for it"}  # fmt: skip
    assert _jump(c, "id 9")["id"] == 9 and _jump(c, "7") == {"position": 2, "id": 7, "problem": None, "note": None}
    blind = TestClient(create_app(rd, blind="all"), base_url=LOCAL)  # no name looked up: the shown id alone
    shown = blind.get("/api/item/1?reviewer=ada").json()["id"]
    assert _jump(blind, str(shown)) == {"position": 1, "id": shown, "problem": None, "note": None}
