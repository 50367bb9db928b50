"""The decisions store's own input checks: a script (or an import) calls ``ReviewStore.add``
without the review app's checks in front of it, and a bad row must never reach the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from runfactory import decision_rows

from labeltrace.relabel.decisions import ReviewStore


def _store(tmp_path: Path, classes: tuple[str, ...] = ("cat", "dog", "fox")) -> ReviewStore:
    return ReviewStore(tmp_path / "reviews.db", classes=list(classes), num_samples=3)


def _rows(tmp_path: Path) -> list[tuple]:
    return decision_rows(tmp_path)


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
        ((0, "cat"), {"reviewer": "a\u202eb"}, ValueError, "invisible character U\\+202E"),
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
    with pytest.raises(ValueError, match=r"differs only in letter case \(or in characters that show nothing\) from 'Ada'"):
        st.add(1, "dog", reviewer="ADA")
    assert _rows(tmp_path) == [(0, "label", "cat", "Ada")]


def test_a_store_whose_file_was_replaced_refuses_to_write(tmp_path: Path) -> None:
    """A review server open while `scan --force` replaced the run: its next decision landed in the
    new run's file, on whatever sample now has that id (or failed in an empty file it created)."""
    from labeltrace.relabel.store_file import StoreReplaced

    old = ReviewStore(tmp_path / "reviews.db", classes=["cat", "dog"], num_samples=3, sample_ids=["a", "b", "c"])
    old.add(0, "cat")
    (tmp_path / "reviews.db").rename(tmp_path / "reviews.db.replaced-1")
    with pytest.raises(StoreReplaced, match="restart `labeltrace review`"):
        old.add(1, "dog")
    assert not (tmp_path / "reviews.db").exists()  # no empty store left behind
    new = ReviewStore(tmp_path / "reviews.db", classes=["cat", "dog"], num_samples=3, sample_ids=["a", "x", "c"])
    with pytest.raises(StoreReplaced, match="gone or replaced since this review opened it"):
        old.add(1, "dog")
    with pytest.raises(StoreReplaced):  # reads too: another store's decisions are not this review's
        old.history()
    with pytest.raises(StoreReplaced):
        old.add_many([{"sample_id": 1, "decision": "dog"}], source="labelstudio")
    assert new.history() == []
    same = ReviewStore(tmp_path / "reviews.db", classes=["cat", "dog"], num_samples=3, sample_ids=["a", "x", "c"])
    assert same.add(1, "dog").decision == "dog"  # a store opened on this file writes


def test_bound_to_tells_the_samples_a_store_is_about(tmp_path: Path) -> None:
    from labeltrace.relabel.store_file import bound_to

    ReviewStore(tmp_path / "reviews.db", classes=["cat", "dog"], num_samples=2, sample_ids=["a", "b"])
    assert bound_to(tmp_path / "reviews.db", classes=["cat", "dog"], ids=["a", "b"])
    assert not bound_to(tmp_path / "reviews.db", classes=["cat", "dog"], ids=["b", "a"])
    assert not bound_to(tmp_path / "reviews.db", classes=["cat", "fox"], ids=["a", "b"])
    assert not bound_to(tmp_path / "reviews.db", classes=["cat", "dog"], ids=["a", "b", "c"])
    (tmp_path / "junk.db").write_text("not sqlite")
    assert not bound_to(tmp_path / "junk.db", classes=["cat", "dog"], ids=["a", "b"])
    assert not bound_to(tmp_path / "missing.db", classes=["cat", "dog"], ids=["a", "b"])
    assert not (tmp_path / "missing.db").exists()


def test_a_store_opened_without_ids_writes_after_another_bound_them(tmp_path: Path) -> None:
    """The review found the write check refusing a store opened without sample ids once another
    opener (review, export, report) had stored the ids."""
    first = ReviewStore(tmp_path / "reviews.db", classes=["cat", "dog"], num_samples=2)
    first.add(0, "cat")
    ReviewStore(tmp_path / "reviews.db", classes=["cat", "dog"], num_samples=2, sample_ids=["a", "b"])
    assert first.add(1, "dog").decision == "dog"


def test_bound_to_reads_odd_paths_old_stores_and_damaged_meta(tmp_path: Path) -> None:
    from labeltrace.relabel.store_file import bound_to

    odd = tmp_path / "run #1 ?50%"
    odd.mkdir()
    ReviewStore(odd / "reviews.db", classes=["cat", "dog"], num_samples=2, sample_ids=["a", "b"])
    assert bound_to(odd / "reviews.db", classes=["cat", "dog"], ids=["a", "b"])
    # a store written before stores kept the ids: its samples unknown, never taken for these
    ReviewStore(tmp_path / "old.db", classes=["cat", "dog"], num_samples=2)
    assert not bound_to(tmp_path / "old.db", classes=["cat", "dog"], ids=["a", "b"])
    con = sqlite3.connect(tmp_path / "old.db")
    con.execute("UPDATE meta SET value = '[broken' WHERE key = 'classes'")
    con.commit()
    con.close()
    assert not bound_to(tmp_path / "old.db", classes=["cat", "dog"], ids=["a", "b"])


def test_a_store_that_cannot_be_written_is_read_and_refuses_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:  # fmt: skip
    """A run the user may only read (a shared copy): the report and the exports read its decisions;
    opening the store for writing failed them all with 'attempt to write a readonly database'."""
    _store(tmp_path).add(0, "dog", reviewer="ada")

    def refused(self: ReviewStore, digest: object) -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(ReviewStore, "_create", refused)
    st = _store(tmp_path)
    assert st.read_only and [(d.sample_id, d.decision) for d in st.history()] == [(0, "dog")]
    with pytest.raises(ValueError, match="can only be read here"):
        st.add(1, "cat")
    assert len(_rows(tmp_path)) == 1


def test_a_write_protected_run_folder_is_read(tmp_path: Path) -> None:
    """Read in a process that cannot override file permissions (root drops its capabilities
    through setpriv; the test was skipped as root before)."""
    import os
    import shutil
    import stat
    import subprocess
    import sys

    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv: permissions cannot be enforced")
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    _store(tmp_path).add(0, "dog", reviewer="ada")
    mode = tmp_path.stat().st_mode
    os.chmod(tmp_path / "reviews.db", stat.S_IRUSR)
    os.chmod(tmp_path, stat.S_IRUSR | stat.S_IXUSR)
    code = (f"from labeltrace.relabel.decisions import ReviewStore; "
            f"st = ReviewStore({str(tmp_path / 'reviews.db')!r}, classes=['cat', 'dog', 'fox'], num_samples=3); "
            f"print(st.read_only, st.current()[0].decision)")  # fmt: skip
    try:
        r = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})  # fmt: skip
    finally:
        os.chmod(tmp_path, mode)
        os.chmod(tmp_path / "reviews.db", stat.S_IRUSR | stat.S_IWUSR)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["True", "dog"]


def test_report_and_exports_of_a_write_protected_run(tmp_path: Path) -> None:
    """A colleague's run on a shared drive: report and exports failed with 'attempt to write a
    readonly database' once they read the review. Run in a process that cannot override file
    permissions (root drops its capabilities through setpriv)."""
    import os
    import shutil
    import subprocess
    import sys

    from runfactory import make_run

    from labeltrace.relabel.runstore import run_store
    from labeltrace.rundir import open_run

    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv: permissions cannot be enforced")
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    rd = make_run(tmp_path / "shared", n=12, k=3, classes=["cat", "dog", "fox"], seed=1)
    run_store(open_run(rd)).add(0, "dog", reviewer="ada")
    out = tmp_path / "mine"
    out.mkdir()
    code = (f"from labeltrace.report.html import write_report; from labeltrace.export import export_run; "
            f"write_report({str(rd)!r}, out={str(out / 'r.html')!r}); "
            f"export_run({str(rd)!r}, 'csv', out={str(out / 'x.csv')!r}); "
            f"export_run({str(rd)!r}, 'labelstudio', out={str(out / 'ls.json')!r})")  # fmt: skip
    subprocess.run(["chmod", "-R", "a-w", str(tmp_path / "shared")], check=True)
    try:
        r = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})  # fmt: skip
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(tmp_path / "shared")], check=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "<b>1</b> of 12 samples reviewed" in (out / "r.html").read_text(encoding="utf-8")
    assert "dog" in (out / "x.csv").read_text(encoding="utf-8")


def test_a_lock_held_by_another_writer_is_not_a_write_protected_store(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    _store(tmp_path).add(0, "dog")

    def locked(self: ReviewStore, digest: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(ReviewStore, "_create", locked)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _store(tmp_path)


def test_the_review_page_refuses_a_store_it_could_not_save_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:  # fmt: skip
    from runfactory import make_run

    from labeltrace.relabel.runstore import run_store
    from labeltrace.review import create_app
    from labeltrace.rundir import open_run

    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run_store(open_run(rd))
    monkeypatch.setattr("labeltrace.relabel.decisions.may_write", lambda path: False)
    with pytest.raises(ValueError, match="can only be read here .*: the review page could save no decision"):
        create_app(rd)
