"""The ``exclude`` decision (the image is of no class) in the decisions store, the consensus and
the verdicts: format-1 stores (their CHECK refusing the kind) upgraded in place, a vote that
needs the agreement a relabel needs, and an excluded sample that never indexes a class name."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from runfactory import decision_rows, make_run

from labeltrace.relabel import reviews_sql as SQL
from labeltrace.relabel.consensus import ConsensusRule, resolve
from labeltrace.relabel.decisions import ReviewStore
from labeltrace.relabel.verdicts import run_verdicts, unresolved_table, updated, verdicts
from labeltrace.rundir import open_run

#: what labeltrace wrote before ``exclude`` existed (format 1), verbatim
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id  INTEGER NOT NULL CHECK (sample_id >= 0),
    kind       TEXT    NOT NULL CHECK (kind IN ('label', 'unsure', 'skip')),
    decision   TEXT    NOT NULL,
    reviewer   TEXT    NOT NULL,
    decided_at TEXT    NOT NULL,
    source     TEXT    NOT NULL DEFAULT 'app'
);
CREATE INDEX IF NOT EXISTS decisions_by_sample ON decisions (sample_id, seq);
CREATE INDEX IF NOT EXISTS decisions_by_reviewer ON decisions (reviewer, sample_id, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def v1_store(path: Path, classes: list[str], n: int, rows: list[tuple], *, counter: int | None = None) -> None:
    """A format-1 ``reviews.db`` holding ``rows`` ``(sample_id, kind, decision, reviewer)``, as the
    code before ``exclude`` wrote it (WAL journal); ``counter``: its AUTOINCREMENT counter (rows
    once written past the last one kept, e.g. a transaction's that failed after the counter moved)."""
    import json

    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript(V1_SCHEMA)
    con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
        ("format", "labeltrace.reviews/1"), ("classes", json.dumps(classes)), ("num_samples", str(n))])
    con.executemany("INSERT INTO decisions (sample_id, kind, decision, reviewer, decided_at, source) "
                    "VALUES (?, ?, ?, ?, '2026-01-01T00:00:00.000+00:00', 'app')", rows)  # fmt: skip
    if counter is not None:
        con.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'decisions'", (counter,))
    con.close()


def _schema(path: Path) -> dict[str, str]:
    con = sqlite3.connect(path)
    try:
        return {n: s for n, s in con.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")}
    finally:
        con.close()


def test_a_format_1_store_is_upgraded_in_place_keeping_every_row_seq_and_index(tmp_path: Path) -> None:
    db = tmp_path / "reviews.db"
    rows = [(0, "label", "cat", "ada"), (1, "unsure", "unsure", "bob"), (0, "skip", "skip", "bob"),
            (2, "label", "dog", "ada")]  # fmt: skip
    v1_store(db, ["cat", "dog"], 3, rows, counter=9)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):  # what the old table does with the kind
        con = sqlite3.connect(db)
        con.execute("INSERT INTO decisions (sample_id, kind, decision, reviewer, decided_at) "
                    "VALUES (0, 'exclude', 'exclude', 'x', 'now')")  # fmt: skip
    con.close()
    before = {n for n in _schema(db)}
    st = ReviewStore(db, classes=["cat", "dog"], num_samples=3)
    after = _schema(db)
    assert set(after) == before and "decisions_v2" not in after  # the same tables and indexes
    assert "'exclude'" in after["decisions"]
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()[0] == SQL.FORMAT
    assert con.execute("SELECT seq, sample_id, kind, decision, reviewer FROM decisions ORDER BY seq").fetchall() == [
        (i + 1, *r) for i, r in enumerate(rows)]
    con.close()
    d = st.add(2, "exclude", kind="exclude", reviewer="bob")
    assert d.seq == 10  # after every seq ever handed out, not after the highest kept
    assert decision_rows(tmp_path)[-1] == (2, "exclude", "exclude", "bob")
    assert [h.seq for h in st.history(0)] == [1, 3]
    # opened again: nothing more to do, every row there
    assert len(ReviewStore(db, classes=["cat", "dog"], num_samples=3).history()) == 5


def test_an_older_labeltrace_refuses_an_upgraded_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The version before reads format 1 alone: with the marker bumped it refuses the file (no
    misreading an exclude as a decision it does not know)."""
    db = tmp_path / "reviews.db"
    v1_store(db, ["cat", "dog"], 3, [(0, "label", "cat", "ada")])
    ReviewStore(db, classes=["cat", "dog"], num_samples=3).add(1, "exclude", kind="exclude")
    monkeypatch.setattr(SQL, "FORMAT", "labeltrace.reviews/1")  # the older code's constants
    monkeypatch.setattr(SQL, "READABLE", ("labeltrace.reviews/1",))
    with pytest.raises(ValueError, match="unsupported reviews format 'labeltrace.reviews/2'"):
        ReviewStore(db, classes=["cat", "dog"], num_samples=3)


def test_a_store_of_a_newer_format_is_refused_and_a_read_only_format_1_store_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    db = tmp_path / "reviews.db"
    v1_store(db, ["cat", "dog"], 3, [(0, "label", "dog", "ada")])
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value = 'labeltrace.reviews/3' WHERE key = 'format'")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match=r"unsupported reviews format 'labeltrace.reviews/3' .*a newer labeltrace"):
        ReviewStore(db, classes=["cat", "dog"], num_samples=3)
    ro = tmp_path / "ro"
    ro.mkdir()
    v1_store(ro / "reviews.db", ["cat", "dog"], 3, [(0, "label", "dog", "ada")])

    def refused(self: ReviewStore, digest: object) -> None:  # a file this user may only read
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(ReviewStore, "_create", refused)
    st = ReviewStore(ro / "reviews.db", classes=["cat", "dog"], num_samples=3)
    assert st.read_only and [d.decision for d in st.history()] == ["dog"]  # read as it is
    with pytest.raises(ValueError, match="can only be read here"):
        st.add(1, "exclude", kind="exclude")
    assert "'exclude'" not in _schema(ro / "reviews.db")["decisions"]


def test_another_runs_format_1_store_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "reviews.db"
    v1_store(db, ["cat", "dog"], 3, [(0, "label", "dog", "ada")])
    with pytest.raises(ValueError, match="was written for 3 samples"):
        ReviewStore(db, classes=["cat", "fox"], num_samples=3)
    assert "'exclude'" not in _schema(db)["decisions"]


def _open_and_exclude(db: str, who: str, q: mp.Queue) -> None:
    try:
        st = ReviewStore(db, classes=["cat", "dog"], num_samples=50)
        for i in range(10):
            st.add(i, "exclude", kind="exclude", reviewer=who)
        q.put("ok")
    except BaseException as exc:  # noqa: BLE001 - the parent says what failed
        q.put(f"{type(exc).__name__}: {exc}")


def test_writers_opening_a_format_1_store_at_once_upgrade_it_once_and_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "reviews.db"
    v1_store(db, ["cat", "dog"], 50, [(i, "label", "cat", "ada") for i in range(20)])
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_open_and_exclude, args=(str(db), f"r{j}", q)) for j in range(3)]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert results == ["ok"] * 3
    rows = decision_rows(tmp_path)
    assert len(rows) == 50 and rows[:20] == [(i, "label", "cat", "ada") for i in range(20)]
    assert sorted(r[3] for r in rows[20:]) == sorted([f"r{j}" for j in range(3)] * 10)


def test_exclude_is_a_kind_never_a_class_and_a_class_named_exclude_stays_a_class(tmp_path: Path) -> None:
    st = ReviewStore(tmp_path / "reviews.db", classes=["cat", "dog"], num_samples=3)
    with pytest.raises(ValueError, match="unknown class 'exclude'.*pass kind 'exclude'"):
        st.add(0, "exclude")  # the word alone is no action
    with pytest.raises(ValueError, match="a 'exclude' decision carries no class"):
        st.add(0, "cat", kind="exclude")
    named = ReviewStore(tmp_path / "named.db", classes=["Exclude", "exclude", "keep"], num_samples=3)
    named.add(0, "exclude")  # the class, as before the kind existed
    named.add(1, "Exclude")
    named.add(2, "exclude", kind="exclude")
    assert decision_rows_of(tmp_path / "named.db") == [(0, "label", "exclude"), (1, "label", "Exclude"),
                                                       (2, "exclude", "exclude")]  # fmt: skip
    v = verdicts(named, np.array([2, 2, 2]), 3)
    assert v.final.tolist() == [1, 0, -1] and v.excluded.tolist() == [False, False, True]
    assert v.decision_text(named.classes).tolist() == ["exclude", "Exclude", "exclude"]
    assert v.status_text().tolist() == ["consensus", "consensus", "excluded"]
    assert v.changed.tolist() == [True, True, False]


def decision_rows_of(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT sample_id, kind, decision FROM decisions ORDER BY seq").fetchall()
    finally:
        con.close()


def test_an_exclude_vote_needs_the_agreement_a_relabel_needs() -> None:
    # columns: cat, dog, (exclude); given cat everywhere
    votes = np.array([[0, 0, 1], [0, 0, 2], [0, 1, 1], [1, 0, 1], [0, 0, 0], [0, 1, 2]])
    given = np.zeros(6, dtype=np.int64)
    r = resolve(votes, given, ConsensusRule(agree=2), excluding=True)
    assert r.resolved.tolist() == [False, True, False, False, False, True]
    assert r.excluded.tolist() == [False, True, False, False, False, True]
    assert r.label.tolist() == [-1, -1, -1, -1, -1, -1]
    assert r.disputed.tolist() == [False, False, True, True, False, False]  # a tie with a class: disputed
    one = resolve(votes, given, ConsensusRule(agree=1), excluding=True)
    assert one.excluded.tolist() == [True, True, False, False, False, True]
    counted = resolve(votes, given, ConsensusRule(agree=1, count_given=True), excluding=True)
    assert counted.excluded.tolist() == [False, True, False, False, False, True]  # the given label is a vote too
    assert counted.label[3] == 0 and counted.resolved[3]  # cat 2 (given + 1) beats exclude 1
    with pytest.raises(ValueError, match="given outside 0..1"):
        resolve(votes, np.full(6, 2), ConsensusRule(), excluding=True)  # never a given "no class"


def test_verdicts_of_a_run_with_excludes_unsure_and_skip(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    st = ReviewStore(rd / "reviews.db", classes=run.classes, num_samples=run.num_samples)
    st.set_rule(ConsensusRule(agree=2))
    given = run.column("given_label_id")
    other = run.classes[(int(given[2]) + 1) % 3]
    st.add(0, "exclude", kind="exclude", reviewer="ada")
    st.add(0, "exclude", kind="exclude", reviewer="bob")  # excluded
    st.add(1, "exclude", kind="exclude", reviewer="ada")  # one vote of two
    st.add(2, "exclude", kind="exclude", reviewer="ada")
    st.add(2, other, reviewer="bob")  # a tie: disputed
    st.add(3, "exclude", kind="exclude", reviewer="ada")
    st.add(3, "unsure", reviewer="ada")  # withdrawn: no vote
    st.add(4, "exclude", kind="exclude", reviewer="ada")
    st.add(4, "skip", reviewer="bob")  # a skip is no vote: ada's exclude stands, one of two
    v = run_verdicts(run)
    assert v.excluded.tolist()[:5] == [True, False, False, False, False]
    assert v.final[0] == -1 and (v.final[1:] == given[1:]).all()
    assert v.resolution.disputed.tolist()[:5] == [False, False, True, False, False]
    assert v.status_text().tolist()[:5] == ["excluded", "no consensus", "no consensus", "unsure", "no consensus"]
    assert not v.changed.any()
    assert v.without_consensus.tolist()[:5] == [False, True, True, True, True]
    t = unresolved_table(run, v, views=st.views())
    assert t.column("votes").to_pylist()[:4] == ["(exclude): ada", f"(exclude): ada; {other}: bob", "",
                                                 "(exclude): ada"]  # fmt: skip
    assert t.column("n_votes").to_pylist()[:4] == [1, 2, 0, 1]
    # resolving the decided samples again gives what resolving everything gives
    base = dataclasses.replace(verdicts(None, given, 3), rule=st.rule())
    again = updated(base, st, np.arange(5))
    for name in ("label", "resolved", "excluded", "disputed", "n_votes", "top", "second"):
        np.testing.assert_array_equal(getattr(again.resolution, name)[:5], getattr(v.resolution, name)[:5])
    assert st.vote_counts()[0].tolist() == [0, 0, 0]  # (N, K): class votes only


# --------------------------------------------------------------------------- live re-ranking
def test_label_propagation_leaves_an_excluded_sample_out() -> None:
    from labeltrace.relabel.propagation import LabelPropagation

    nb = np.array([[1, 2], [0, 2], [0, 1], [1, 2]])
    p0 = np.array([[0.7, 0.3], [0.6, 0.4], [0.5, 0.5], [0.2, 0.8]])
    y0 = np.array([0, 0, 1, 1])
    lp = LabelPropagation(nb, p0, y0)
    np.testing.assert_allclose(lp(np.array([0, -1, 1, 1])), p0)  # excluded: shifts nobody
    moved = lp(np.array([0, -1, 0, 1]))  # sample 2 relabelled: its neighbours move as without the exclude
    np.testing.assert_allclose(moved, lp(np.array([0, 0, 0, 1])))
    with pytest.raises(ValueError, match="labels outside 0..1"):
        lp(np.array([0, -2, 1, 1]))


def test_a_head_refit_trains_without_the_excluded_samples() -> None:
    from labeltrace.relabel.head import HeadConfig, HeadRetrainer

    g = np.random.default_rng(0)
    x = g.normal(size=(40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    rt = HeadRetrainer(x, num_classes=2, config=HeadConfig(epochs=3, seed=0))
    lab = y.copy()
    lab[[3, 17]] = -1
    post, sei = rt(lab)
    assert post.shape == (40, 2) and np.isfinite(sei).all()
    np.testing.assert_allclose(post[[3, 17]], 0.5)
    keep = np.setdiff1d(np.arange(40), [3, 17])
    alone = HeadRetrainer(x[keep], num_classes=2, config=HeadConfig(epochs=3, seed=0))(y[keep])
    np.testing.assert_allclose(post[keep], alone[0], rtol=1e-6)  # the same training as without them


def test_the_live_queue_settles_an_excluded_sample_and_refreshes_without_it() -> None:
    from labeltrace.relabel.campaign import Campaign
    from labeltrace.relabel.live import LiveQueue

    n = 6
    given = np.zeros(n, dtype=np.int64)
    p0 = np.tile([0.7, 0.3], (n, 1))
    c = Campaign(given, num_classes=2, budget=None, priority="cross_entropy", posterior=p0,
                 count_initial_label=False, update_every=2)  # fmt: skip
    seen: list[np.ndarray] = []

    def update(labels: np.ndarray) -> np.ndarray:
        seen.append(labels.copy())
        return p0

    lq = LiveQueue(np.arange(n), c, update, background=False)
    labels, resolved = given.copy(), np.zeros(n, dtype=bool)
    labels[[1, 4]], resolved[[1, 4]] = [-1, 1], True  # 1 excluded, 4 relabelled
    assert lq.sync(labels, resolved)
    assert seen[0].tolist() == [0, -1, 0, 0, 1, 0]
    assert c.settled[[1, 4]].all() and c.labels[1] == 0 and c.labels[4] == 1


def test_the_export_table_of_an_excluded_sample_names_no_class(tmp_path: Path) -> None:
    """Resolution.label of an excluded sample is -1: `run.classes[-1]` would have named the last
    class as its consensus and its final label."""
    from labeltrace.export.tables import review_table

    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    st = ReviewStore(rd / "reviews.db", classes=run.classes, num_samples=run.num_samples)
    st.add(5, "exclude", kind="exclude", reviewer="ada")
    t = review_table(run).to_pylist()
    row = next(r for r in t if r["id"] == 5)
    assert row["final_label"] is None and row["review_status"] == "excluded"
    assert row["review_decision"] == "exclude" and row["reviewer"] == "ada"
    assert all(r["final_label"] in run.classes for r in t if r["id"] != 5)
