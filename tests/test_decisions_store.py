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
