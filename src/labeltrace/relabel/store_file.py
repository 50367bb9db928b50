"""The decisions file's binding to a run: which classes, how many samples and which sample ids
(in order) its decisions are about. A store checks it when it opens the file and again in each
write (a new scan may replace the file under a running review); a new scan with ``--force``
asks whether the file fits it (:func:`bound_to`). A store's every connection to the file
(:func:`connect`) is read only, or to the file it opened and no other."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from labeltrace.relabel import reviews_sql as SQL

__all__ = ["StoreReplaced", "bound_to", "check_meta", "connect", "existing_connect", "ids_digest", "may_write",
           "read_only_connect", "still_bound", "upgraded_meta"]


class StoreReplaced(ValueError):
    """The ``reviews.db`` a store was opened on has been replaced or removed since (a new scan
    with ``--force`` set it aside): a decision written now would land on another run's samples."""


def ids_digest(ids: Sequence[str]) -> str:
    """SHA-256 of the ids in order (each as str)."""
    h = hashlib.sha256()
    for x in ids:
        h.update(str(x).encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def may_write(path: Path) -> bool:
    """Whether this process may write the store file and create its write-ahead log beside it."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def _uri(path: str | os.PathLike[str], mode: str) -> str:
    """An SQLite URI of ``path`` (any character in it escaped) opened in ``mode`` (``ro``, ``rw``)."""
    return "file:" + urllib.request.pathname2url(str(Path(path).resolve())) + f"?mode={mode}"


def existing_connect(path: str | os.PathLike[str], **kw: object) -> sqlite3.Connection:
    """``path`` opened for reading and writing, never created (a missing file is an error)."""
    return sqlite3.connect(_uri(path, "rw"), uri=True, **kw)  # type: ignore[call-overload]


def read_only_connect(path: str | os.PathLike[str], **kw: object) -> sqlite3.Connection:
    """``path`` opened read only (any character in the path escaped). A write-ahead-log database
    in a folder the user may not write needs its ``-wal`` / ``-shm`` files, which SQLite deletes
    at the last close: without a ``-wal`` file nothing is pending, and the file is read as
    immutable."""
    uri = _uri(path, "ro")
    try:
        con = sqlite3.connect(uri, uri=True, **kw)  # type: ignore[call-overload]
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        return con
    except sqlite3.OperationalError:
        if Path(f"{path}-wal").exists():
            raise
        return sqlite3.connect(uri + "&immutable=1", uri=True, **kw)  # type: ignore[call-overload]


@contextmanager
def connect(path: Path, *, read_only: bool = False, inode: int | None = None) -> Iterator[sqlite3.Connection]:
    """A connection to the store file ``path`` in autocommit mode (each write an explicit
    transaction), closed on exit. ``read_only``: :func:`read_only_connect`. Otherwise the file a
    store opened (``inode``; None while it opens or creates it) is opened again, never created:
    never an empty store created where one was, nor another store read as this one
    (:class:`StoreReplaced`); writes are ``synchronous=FULL`` with a 30 s busy timeout."""
    if read_only:
        con = read_only_connect(path, timeout=30.0, isolation_level=None)
        try:
            yield con
        finally:
            con.close()
        return
    if inode is not None:
        try:
            same = path.stat().st_ino == inode
        except OSError:
            same = False
        if not same:
            raise StoreReplaced(
                f"{path} is gone or replaced since this review opened it (the run was scanned again "
                "with --force?): nothing was saved; restart `labeltrace review` on the run"
            )
        con = existing_connect(path, timeout=30.0, isolation_level=None)
    else:
        con = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA busy_timeout=30000")
        yield con
    finally:
        con.close()


def check_meta(path: Path, rows: dict[str, str], *, classes: list[str], num_samples: int,
               digest: str | None) -> None:  # fmt: skip
    """Refuse (``ValueError``) a store's meta rows written for other classes, another size or other
    samples (``digest`` None: the ids are not checked); empty ``rows`` (a new store) pass."""
    if not rows:
        return
    if rows.get("format") not in SQL.READABLE:
        raise ValueError(f"{path}: unsupported reviews format {rows.get('format')!r} (this labeltrace reads "
                         f"{' and '.join(SQL.READABLE)}: a newer labeltrace wrote it?)")  # fmt: skip
    stored = json.loads(rows.get("classes", "[]"))
    if stored != classes or int(rows.get("num_samples", -1)) != num_samples:
        raise ValueError(f"{path} was written for {rows.get('num_samples')} samples and classes {stored}, but the "
                         f"run has {num_samples} samples and classes {classes}")  # fmt: skip
    if digest is not None and rows.get("samples", digest) != digest:
        raise ValueError(
            f"{path} holds decisions about other samples: the run's sample ids differ from those it was "
            "written for (same count and classes), so its decisions would land on the wrong images; move it "
            "away to review this run afresh"
        )


def still_bound(con: sqlite3.Connection, path: Path, *, classes: list[str], num_samples: int,
                samples: str | None) -> str | None:  # fmt: skip
    """Inside a write's transaction: the file is still the one a store opened (its classes, size and
    sample ids ``samples``), else :class:`StoreReplaced`. Returns the ids' digest to keep (a store
    opened without ids takes the one another opener stored)."""
    try:
        rows = dict(con.execute("SELECT key, value FROM meta").fetchall())
        if not rows:
            raise ValueError("no meta rows")
        samples = rows.get("samples") if samples is None else samples
        check_meta(path, rows, classes=classes, num_samples=num_samples, digest=samples)
    except (sqlite3.OperationalError, ValueError) as exc:
        raise StoreReplaced(
            f"{path} is no longer the decisions file this review opened (the run was scanned again, or the "
            "file replaced): nothing was saved; restart `labeltrace review` on the run"
        ) from exc
    return samples


def bound_to(path: str | os.PathLike[str], *, classes: Sequence[str], ids: Sequence[str],
             held_ids: Sequence[str] | None = None) -> bool:  # fmt: skip
    """Whether the store file ``path`` holds decisions about exactly these samples (``ids``, in
    order) and ``classes``. Read only; False when unreadable. A store written before stores kept
    the ids is about the samples of the scan whose folder holds it: ``held_ids`` (that scan's ids,
    when known) stand in for its own; without them its samples are unknown (a dataset of the same
    size and classes, reordered or another, would inherit its decisions): False."""
    try:
        con = read_only_connect(path)
        try:
            rows = dict(con.execute("SELECT key, value FROM meta").fetchall())
        finally:
            con.close()
        digest = ids_digest(ids)
        check_meta(Path(path), rows, classes=[str(c) for c in classes], num_samples=len(ids), digest=digest)
    except (sqlite3.Error, ValueError):  # not a store, its meta unreadable, or another run's
        return False
    kept = rows.get("samples")
    if kept is None and held_ids is not None:  # an older store: the ids of the scan it was made with
        kept = ids_digest(held_ids)
    return kept == digest


def upgraded_meta(con: sqlite3.Connection, path: Path, *, classes: list[str], num_samples: int,
                  digest: str | None) -> dict[str, str]:  # fmt: skip
    """In a writer's open transaction (``BEGIN IMMEDIATE``): the file's meta rows, a format-1 store's
    (one about these ``classes`` and samples, never another run's: :func:`check_meta`) upgraded to
    the current format first — the decisions table rebuilt with the format-2 ``CHECK``
    (:data:`~labeltrace.relabel.reviews_sql.UPGRADE`), every row, ``seq`` and index kept, and the
    ``AUTOINCREMENT`` counter continuing after every ``seq`` ever handed out."""
    rows = dict(con.execute("SELECT key, value FROM meta").fetchall())
    if rows.get("format") != SQL.READABLE[0]:
        return rows
    check_meta(path, rows, classes=classes, num_samples=num_samples, digest=digest)
    counter = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'decisions'").fetchone()
    for statement in SQL.UPGRADE:
        con.execute(statement)
    con.execute("DELETE FROM sqlite_sequence WHERE name IN ('decisions', 'decisions_v2')")
    top = con.execute("SELECT MAX(seq) FROM decisions").fetchone()[0]
    last = max([int(x) for x in (counter[0] if counter else None, top) if x is not None], default=None)
    if last is not None:  # the next seq continues after every seq ever handed out
        con.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('decisions', ?)", (last,))
    con.execute("UPDATE meta SET value = ? WHERE key = 'format'", (SQL.FORMAT,))
    return rows | {"format": SQL.FORMAT}
