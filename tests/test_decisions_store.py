"""The decisions store's own input checks: a script (or an import) calls ``ReviewStore.add``
without the review app's checks in front of it, and a bad row must never reach the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from labeltrace.relabel.decisions import ReviewStore


def _store(tmp_path: Path, classes: tuple[str, ...] = ("cat", "dog", "fox")) -> ReviewStore:
    return ReviewStore(tmp_path / "reviews.db", classes=list(classes), num_samples=3)


def _rows(tmp_path: Path) -> list[tuple]:
    con = sqlite3.connect(tmp_path / "reviews.db")
    try:
        return con.execute("SELECT sample_id, kind, decision, reviewer FROM decisions ORDER BY seq").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((3, "cat"), {}, IndexError, r"unknown sample id 3: ids lie in \[0, 3\)"),
        ((-1, "cat"), {}, IndexError, r"unknown sample id -1"),
        ((True, "cat"), {}, ValueError, "sample_id must be an integer"),
        ((1.0, "cat"), {}, ValueError, "sample_id must be an integer"),
        ((0, "zebra"), {}, ValueError, r"sample 0: unknown class 'zebra'; classes are \['cat', 'dog', 'fox'\]"),
        ((0, 3), {}, ValueError, "sample 0: decision must be a string"),
        ((0, "cat"), {"kind": "maybe"}, ValueError, "sample 0: kind must be one of"),
        ((0, "cat"), {"kind": "unsure"}, ValueError, "a 'unsure' decision carries no class"),
        ((0, "cat"), {"reviewer": 7}, ValueError, "reviewer name must be a string"),
        ((0, "cat"), {"reviewer": "a\u202eb"}, ValueError, "control character U\\+202E"),
    ],
)
def test_a_bad_decision_is_refused_and_nothing_is_written(tmp_path: Path, args: tuple, kwargs: dict,
                                                          error: type, match: str) -> None:  # fmt: skip
    st = _store(tmp_path)
    with pytest.raises(error, match=match):
        st.add(*args, **kwargs)
    assert _rows(tmp_path) == []


def test_a_class_named_like_an_action_needs_its_kind(tmp_path: Path) -> None:
    st = _store(tmp_path, ("unsure", "sure", "skip"))
    for word in ("unsure", "skip"):
        with pytest.raises(ValueError, match=f"decision '{word}' is both a class name and a review action; pass kind"):
            st.add(0, word)
    assert _rows(tmp_path) == []
    st.add(0, "unsure", kind="label")
    st.add(1, "skip", kind="skip")
    st.add(np.int64(2), "sure")
    assert _rows(tmp_path) == [(0, "label", "unsure", "anonymous"), (1, "skip", "skip", "anonymous"),
                               (2, "label", "sure", "anonymous")]  # fmt: skip


def test_another_letter_case_of_a_stored_name_is_refused(tmp_path: Path) -> None:
    st = _store(tmp_path)
    st.add(0, "cat", reviewer="Ada")
    with pytest.raises(ValueError, match="differs only in letter case from 'Ada'"):
        st.add(1, "dog", reviewer="ADA")
    assert _rows(tmp_path) == [(0, "label", "cat", "Ada")]


def test_a_store_whose_file_was_replaced_refuses_to_write(tmp_path: Path) -> None:
    """A review server open while `scan --force` replaced the run: its next decision landed in the
    new run's file, on whatever sample now has that id (or failed in an empty file it created)."""
    from labeltrace.relabel.decisions import StoreReplaced

    old = ReviewStore(tmp_path / "reviews.db", classes=["cat", "dog"], num_samples=3, sample_ids=["a", "b", "c"])
    old.add(0, "cat")
    (tmp_path / "reviews.db").rename(tmp_path / "reviews.db.replaced-1")
    with pytest.raises(StoreReplaced, match="restart `labeltrace review`"):
        old.add(1, "dog")
    assert not (tmp_path / "reviews.db").exists()  # no empty store left behind
    new = ReviewStore(tmp_path / "reviews.db", classes=["cat", "dog"], num_samples=3, sample_ids=["a", "x", "c"])
    with pytest.raises(StoreReplaced, match="no longer the decisions file this review opened"):
        old.add(1, "dog")
    with pytest.raises(StoreReplaced):
        old.add_many([{"sample_id": 1, "decision": "dog"}], source="labelstudio")
    assert new.history() == []
    same = ReviewStore(tmp_path / "reviews.db", classes=["cat", "dog"], num_samples=3, sample_ids=["a", "x", "c"])
    assert same.add(1, "dog").decision == "dog"  # a store opened on this file writes


def test_bound_to_tells_the_samples_a_store_is_about(tmp_path: Path) -> None:
    from labeltrace.relabel.decisions import bound_to

    ReviewStore(tmp_path / "reviews.db", classes=["cat", "dog"], num_samples=2, sample_ids=["a", "b"])
    assert bound_to(tmp_path / "reviews.db", classes=["cat", "dog"], ids=["a", "b"])
    assert not bound_to(tmp_path / "reviews.db", classes=["cat", "dog"], ids=["b", "a"])
    assert not bound_to(tmp_path / "reviews.db", classes=["cat", "fox"], ids=["a", "b"])
    assert not bound_to(tmp_path / "reviews.db", classes=["cat", "dog"], ids=["a", "b", "c"])
    (tmp_path / "junk.db").write_text("not sqlite")
    assert not bound_to(tmp_path / "junk.db", classes=["cat", "dog"], ids=["a", "b"])
    assert not bound_to(tmp_path / "missing.db", classes=["cat", "dog"], ids=["a", "b"])
    assert not (tmp_path / "missing.db").exists()
