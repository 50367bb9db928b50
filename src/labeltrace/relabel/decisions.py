"""The review decisions: an append-only SQLite table in ``RUN_DIR/reviews.db``.

Every decision is one row, committed in its own transaction (WAL journal, ``synchronous=FULL``:
a decision acknowledged to the browser survives a crash or a ``kill -9``). Nothing is ever
updated or deleted: a changed mind is a new row, and the *current* decision of a sample is its
latest row (highest ``seq``). Several processes and threads may write at once; each write is one
transaction that checks the reviewer's name against the names stored and then inserts (SQLite
serialises them), so no write can lose another.

Schema (``labeltrace.reviews/2``)::

    decisions(seq INTEGER PRIMARY KEY AUTOINCREMENT, sample_id INTEGER, kind TEXT,
              decision TEXT, reviewer TEXT, decided_at TEXT, source TEXT)
    meta(key TEXT PRIMARY KEY, value TEXT)

``kind`` is ``"label"`` (``decision`` = a class name), ``"unsure"``, ``"skip"`` or ``"exclude"``
(the image is of no class; ``decision`` repeats the kind); ``decided_at`` is ISO 8601 UTC; ``source`` is ``"app"``, ``"app-blind"`` / ``"app-blind-all"`` (a blind review, :mod:`labeltrace.review.blind`) or ``"labelstudio"``.

Several reviewers: each reviewer's latest row on a sample is their current view; their latest
*label* and *exclude* rows are the sample's votes (:meth:`ReviewStore.vote_counts`), which the consensus rule
stored in ``meta`` (key ``consensus``, :class:`~labeltrace.relabel.consensus.ConsensusRule`)
resolves — see :mod:`labeltrace.relabel.verdicts`.

A format-1 store (written before ``exclude`` existed, its ``CHECK`` refusing the kind) is upgraded
in place by the first writer that opens it (:func:`~labeltrace.relabel.store_file.upgraded_meta`, in
the transaction that reads its meta rows: two openers upgrade it once); a store that may only be
read is read as it is.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from labeltrace.relabel import reviews_sql as SQL
from labeltrace.relabel.arrays import decision_arrays, vote_arrays
from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.decision_checks import KINDS, Decision, check_decision, now_iso
from labeltrace.relabel.reviewers import (
    ReviewerNames,
    name_key,
    name_problem,
    spelling,
    stored_spelling,
)
from labeltrace.relabel.store_file import (
    check_meta,
    connect,
    ids_digest,
    may_write,
    still_bound,
    upgraded_meta,
)

__all__ = ["KINDS", "Decision", "ReviewStore", "now_iso"]

Kind = Literal["label", "unsure", "skip", "exclude"]


class ReviewStore:
    """Append-only decision log of one run.

    Parameters
    ----------
    path : path
        The SQLite file (created if missing).
    classes : sequence of str
        The run's class names; the store remembers them and refuses to open with others.
    num_samples : int
        N; sample ids must lie in ``[0, N)``.
    sample_ids : sequence of str, optional
        The samples' own ids (the run's ``external_id``), in sample-id order. The store keeps their
        digest and refuses to open for other samples, so a decision never lands on the image of
        another dataset of the same size and classes (a store written without them takes them on
        its first open with them).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, classes: Sequence[str], num_samples: int,
        sample_ids: Sequence[str] | None = None,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.classes = [str(c) for c in classes]
        self._class_set = set(self.classes)
        self.num_samples = int(num_samples)
        self._names = ReviewerNames()
        self._opened = False  # set once created or opened: from then on the file must stay
        self.read_only = False  # a run the user may only read (a shared, write-protected copy)
        digest = None if sample_ids is None else ids_digest(sample_ids)
        try:
            if self.path.is_file() and not may_write(self.path):
                raise sqlite3.OperationalError("attempt to write a readonly database")
            rows = self._create(digest)
        except sqlite3.OperationalError as exc:
            # a lock held too long by another writer is not a write-protected file
            if not self.path.is_file() or not any(w in str(exc) for w in ("readonly", "unable to open")):
                raise
            self.read_only = True  # its decisions are read; report and exports work, writes are refused
            with self._connect() as con:
                rows = dict(con.execute("SELECT key, value FROM meta").fetchall())
        self._samples = digest if digest is not None else rows.get("samples")  # checked at each write
        check_meta(self.path, rows, classes=self.classes, num_samples=self.num_samples, digest=digest)
        if digest is not None and rows and "samples" not in rows and not self.read_only:
            with self._connect() as con:  # written before stores kept the ids: bound to these from now on
                con.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('samples', ?)", (digest,))
        self._opened = True
        self._inode = self.path.stat().st_ino  # a file renamed into its place is another store

    def _create(self, digest: str | None) -> dict[str, str]:
        """Open (creating it when missing) the store file for writing; its meta rows as they were."""
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SQL.SCHEMA)
            con.execute("BEGIN IMMEDIATE")
            try:
                rows = upgraded_meta(con, self.path, classes=self.classes, num_samples=self.num_samples,
                                     digest=digest)  # fmt: skip
            except BaseException:
                con.execute("ROLLBACK")
                raise
            if not rows:
                con.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("format", SQL.FORMAT),
                        ("classes", json.dumps(self.classes)),
                        ("num_samples", str(self.num_samples)),
                    ],
                )
            if digest is not None and not rows:  # a new store: bound to these samples from the start
                con.execute("INSERT INTO meta (key, value) VALUES ('samples', ?)", (digest,))
            con.execute("COMMIT")
        return rows

    # ------------------------------------------------------------------ connection
    def _writable(self) -> None:
        if self.read_only:
            raise ValueError(f"{self.path} can only be read here (a write-protected file or folder): "
                             "decisions cannot be saved to it")

    def _still_bound(self, con: sqlite3.Connection) -> None:
        """In a write's transaction: :func:`~labeltrace.relabel.store_file.still_bound` (the ids'
        digest kept: one opened without ids takes the one another opener stored)."""
        self._samples = still_bound(con, self.path, classes=self.classes, num_samples=self.num_samples,
                                    samples=self._samples)  # fmt: skip

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        """A connection to this store's file (:func:`~labeltrace.relabel.store_file.connect`): read
        only, or — once opened — to the file it opened and no other."""
        return connect(self.path, read_only=self.read_only, inode=self._inode if self._opened else None)

    # ------------------------------------------------------------------ validation
    def validate(
        self, sample_id: Any, decision: Any, kind: Any = None, reviewer: Any = "",
        known: dict[str, list[str]] | None = None,
    ) -> tuple[int, str, str, str]:  # fmt: skip
        """Check one decision; returns ``(sample_id, kind, decision, reviewer)``.

        The reviewer name is read with its whitespace collapsed; a name that differs only in
        letter case from one already stored is refused, so that one person stays one vote (a name
        itself stored is fine, even where an older store holds two spellings; ``known``: the
        stored names by :func:`~labeltrace.relabel.reviewers.name_key`, when the caller has read
        them, else read once here).

        ``kind`` may be omitted when ``decision`` is unambiguous (a class name, or ``"unsure"`` /
        ``"skip"`` when no class has that name); ``"exclude"`` (the image is of no class) is only
        ever sent as the kind (the word alone names a class of that name). With kind
        ``"unsure"``, ``"skip"`` or ``"exclude"`` the decision must be that word (a class sent
        with them is refused, never dropped).

        Raises
        ------
        IndexError
            ``sample_id`` outside ``[0, N)``.
        ValueError
            Unknown class, unknown kind, ambiguous decision, a class sent with kind ``"unsure"`` /
            ``"skip"``, or bad reviewer name (too long, a control character, or another case of
            a stored name).
        """
        i, kind, decision = check_decision(sample_id, decision, kind, classes=self.classes,
                                           num_samples=self.num_samples, class_set=self._class_set)  # fmt: skip
        if not isinstance(reviewer, str):
            raise ValueError(f"sample {i}: reviewer name must be a string")
        known = self._known() if known is None else known
        problem = name_problem(reviewer, known)
        if problem is not None:  # the review app says it without the name; an import names the row's
            raise ValueError(f"sample {i}, reviewer {spelling(reviewer)!r}: {problem}")
        who = stored_spelling(reviewer, known)
        return i, kind, decision, who

    def stored_spelling(self, reviewer: str) -> str:
        """``reviewer`` as this store spells it (:func:`~labeltrace.relabel.reviewers.stored_spelling`)."""
        return stored_spelling(reviewer, self._known())

    def name_problem(self, reviewer: str, *, reveal: bool = True) -> str | None:
        """Why ``reviewer`` cannot sign a decision here, or None
        (:func:`~labeltrace.relabel.reviewers.name_problem`)."""
        return name_problem(reviewer, self._known(), reveal=reveal)

    def _known(self) -> dict[str, list[str]]:
        """The stored reviewer names (:class:`ReviewerNames`), read in a connection of their own."""
        with self._connect() as con:
            return self._names.read(con)

    # ------------------------------------------------------------------ writes
    def add(
        self,
        sample_id: int,
        decision: str,
        *,
        kind: str | None = None,
        reviewer: str = "",
        source: str = "app",
        decided_at: str | None = None,
    ) -> Decision:
        """Validate and commit one decision (its own transaction, in which the reviewer name is
        checked against the names stored: two writers cannot add two spellings); returns the row."""
        self._writable()
        at = decided_at or now_iso()
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                self._still_bound(con)
                i, k, dec, who = self.validate(sample_id, decision, kind, reviewer, self._names.read(con))
                seq = int(con.execute(SQL.INSERT, (i, k, dec, who, at, source)).lastrowid or 0)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        self._names.wrote(seq, who)
        return Decision(seq, i, k, dec, who, at, source)

    def add_many(
        self, rows: Iterable[dict[str, Any]], *, source: str, skip_duplicates: bool = True
    ) -> int:
        """Validate all rows first, then commit them in one transaction; returns rows written.

        Each row has ``sample_id, decision`` and optionally ``kind, reviewer, decided_at``. With
        ``skip_duplicates`` a row identical to a stored one (same sample, kind, decision,
        reviewer, time and source) is not written again, nor a row without a time that says what
        the latest row of its sample, reviewer and source says (it is stamped now): re-importing
        a file is harmless.
        """
        self._writable()
        n = 0
        stamp = now_iso()
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")  # every row checked in it, before any is written
            try:
                self._still_bound(con)
                checked = []
                known = {key: list(v) for key, v in self._names.read(con).items()}
                for r in rows:
                    i, k, dec, who = self.validate(
                        r["sample_id"], r["decision"], r.get("kind"), r.get("reviewer", ""), known
                    )
                    known.setdefault(name_key(who), [who])
                    checked.append((i, k, dec, who, r.get("decided_at") or None, source))
                for i, k, dec, who, at, src in checked:
                    row = (i, k, dec, who, at or stamp, src)
                    if skip_duplicates and (
                        con.execute(SQL.DUPLICATE, row).fetchone() if at else
                        (con.execute(SQL.SAME_AS_LATEST, (k, dec, i, who, src)).fetchone() or (0,))[0]
                    ):  # fmt: skip
                        continue
                    con.execute(SQL.INSERT, row)
                    n += 1
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return n

    # ------------------------------------------------------------------ reads
    def history(self, sample_id: int | None = None) -> list[Decision]:
        """All rows (of one sample, or of all), oldest first."""
        q = f"SELECT seq, {SQL.COLS} FROM decisions"
        args: tuple[Any, ...] = ()
        if sample_id is not None:
            q += " WHERE sample_id = ?"
            args = (int(sample_id),)
        with self._connect() as con:
            return [Decision(*r) for r in con.execute(q + " ORDER BY seq", args).fetchall()]

    def _latest(self, *, reviewer: str | None = None, per_reviewer: bool = False, sample_id: int | None = None,
                samples: Sequence[int] | None = None, cols: str = SQL.COLS_D) -> list[Any]:  # fmt: skip
        """Latest rows per sample (of one reviewer when given; of ``sample_id`` or ``samples`` alone when
        given), or per (sample, reviewer): as Decisions, or as tuples of ``cols`` when other columns are asked for."""
        conds: list[str] = []
        args: list[Any] = []
        if reviewer is not None:
            conds.append("reviewer = ?")
            args.append(self.stored_spelling(reviewer))
        if sample_id is not None:
            conds.append("sample_id = ?")
            args.append(int(sample_id))
        if samples is not None:
            conds.append(f"sample_id IN ({', '.join('?' * len(samples))})")
            args.extend(int(i) for i in samples)
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        q = SQL.LATEST.format(where=where, by=", reviewer" if per_reviewer else "", cols=cols)
        with self._connect() as con:
            rows = con.execute(q + " ORDER BY d.seq", args).fetchall()
        return [Decision(*r) for r in rows] if cols == SQL.COLS_D else rows

    def current(self, reviewer: str | None = None) -> dict[int, Decision]:
        """The current (latest) decision of every sample that has one — of ``reviewer`` alone
        when given."""
        return {d.sample_id: d for d in self._latest(reviewer=reviewer)}

    def current_arrays(self, reviewer: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(kind_code, label_id)`` per sample, shape (N,) each (of ``reviewer`` when given).

        ``kind_code``: -1 no decision, 0 label, 1 unsure, 2 skip, 3 exclude; ``label_id``: the decided
        class id for ``label`` rows, else -1.
        """
        # (sample_id, kind, decision) rows, no Decision objects: every review request reads them
        rows = self._latest(reviewer=reviewer, cols="d.sample_id, d.kind, d.decision")
        return decision_arrays(rows, self.num_samples, self.classes, KINDS)

    def views(self, sample_id: int | None = None) -> list[Decision]:
        """Each reviewer's latest row on one sample (on every sample when None), oldest first."""
        return self._latest(per_reviewer=True, sample_id=sample_id)

    def vote_arrays(self, samples: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(vote_ids, vote_labels, latest_kind)``: each reviewer's latest label or exclude decision
        as one vote (sample, class id — K for an exclude: :func:`~labeltrace.relabel.arrays.vote_arrays`),
        and (N,) the kind code of each sample's latest row (-1 none, 0 label, 1 unsure, 2 skip, 3
        exclude) — one read of the table, no Decision objects; of ``samples`` alone
        when given (a few hundred at most: one SQL parameter each)."""
        rows = self._latest(per_reviewer=True, samples=samples, cols="d.sample_id, d.kind, d.decision")
        return vote_arrays(rows, self.num_samples, self.classes, KINDS)

    def rows_since(self, seq: int, reviewer: str | None = None) -> list[tuple[int, str, str]]:
        """``(sample_id, kind, decision)`` of the rows stored after ``seq`` (of ``reviewer`` when
        given), oldest first: what changed since a reader last looked."""
        cond, args = ("AND reviewer = ?", [self.stored_spelling(reviewer)]) if reviewer is not None else ("", [])
        with self._connect() as con:
            return con.execute(f"SELECT sample_id, kind, decision FROM decisions WHERE seq > ? {cond} ORDER BY seq",
                               [int(seq), *args]).fetchall()  # fmt: skip

    def vote_counts(self) -> np.ndarray:
        """(N, K) int64: per sample and class, the reviewers whose latest row is that label
        (exclude votes, which name no class, are not counted here)."""
        votes = np.zeros((self.num_samples, len(self.classes)), dtype=np.int64)
        ids, labs, _ = self.vote_arrays()
        is_class = labs < len(self.classes)
        np.add.at(votes, (ids[is_class], labs[is_class]), 1)
        return votes

    def last_seq(self) -> int:
        """The highest ``seq`` stored (0 when none): every new decision changes it."""
        with self._connect() as con:
            return int(con.execute("SELECT COALESCE(MAX(seq), 0) FROM decisions").fetchone()[0])

    def reviewers(self) -> list[str]:
        """Every reviewer name stored, sorted."""
        with self._connect() as con:
            return sorted(r[0] for r in con.execute("SELECT DISTINCT reviewer FROM decisions"))

    # ------------------------------------------------------------------ the consensus rule
    def rule(self) -> ConsensusRule:
        """The consensus rule stored with the decisions (single-expert review when none)."""
        with self._connect() as con:
            row = con.execute("SELECT value FROM meta WHERE key = 'consensus'").fetchone()
        if row is None:
            return ConsensusRule()
        d = json.loads(row[0])
        return ConsensusRule(agree=int(d["agree"]), count_given=bool(d["count_given"]))

    def set_rule(self, rule: ConsensusRule) -> None:
        """Store ``rule``; the review app, the exports and the live queue all read it."""
        self._writable()
        value = json.dumps({"agree": rule.agree, "count_given": rule.count_given})
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('consensus', ?)",
                        (value,))  # fmt: skip

    def setting(self, key: str, make: Callable[[], str]) -> str:
        """The value stored under ``key`` with the decisions, stored first as ``make()`` when
        absent (two servers opening the store at once read one value)."""
        self._writable()
        with self._connect() as con:
            con.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, make()))
            return str(con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])
