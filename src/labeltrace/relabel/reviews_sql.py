"""The SQL of the review decisions store (``reviews.db``, format ``labeltrace.reviews/2``): its
schema and the statements :class:`~labeltrace.relabel.decisions.ReviewStore` runs.

Format 2 adds the decision kind ``exclude`` (the image is of no class). SQLite cannot alter a
``CHECK``, so a format-1 store (``kind IN ('label', 'unsure', 'skip')``) is upgraded in place when
a writer opens it (:data:`UPGRADE`: the table rebuilt in one transaction, every row, ``seq`` and
index kept, its ``AUTOINCREMENT`` counter too); an older labeltrace then refuses the file for its
format rather than reading a kind it does not know."""

from __future__ import annotations

FORMAT = "labeltrace.reviews/2"
#: the formats this version reads: format 1 (no ``exclude``) is upgraded by a writer, read as it is otherwise
READABLE = ("labeltrace.reviews/1", FORMAT)

_TABLE = """
CREATE TABLE {if_not} {name} (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id  INTEGER NOT NULL CHECK (sample_id >= 0),
    kind       TEXT    NOT NULL CHECK (kind IN ('label', 'unsure', 'skip', 'exclude')),
    decision   TEXT    NOT NULL,
    reviewer   TEXT    NOT NULL,
    decided_at TEXT    NOT NULL,
    source     TEXT    NOT NULL DEFAULT 'app'
);
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS decisions_by_sample ON decisions (sample_id, seq);
CREATE INDEX IF NOT EXISTS decisions_by_reviewer ON decisions (reviewer, sample_id, seq);
"""
SCHEMA = (_TABLE.format(if_not="IF NOT EXISTS", name="decisions") + _INDEXES
          + "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n")  # fmt: skip
#: the format-1 table rebuilt with the format-2 CHECK, inside the caller's transaction (one statement
#: each: ``sqlite3`` runs them one by one so that no ``executescript`` commits in between)
UPGRADE = (
    _TABLE.format(if_not="", name="decisions_v2"),
    "INSERT INTO decisions_v2 (seq, sample_id, kind, decision, reviewer, decided_at, source) "
    "SELECT seq, sample_id, kind, decision, reviewer, decided_at, source FROM decisions ORDER BY seq",
    "DROP TABLE decisions",
    "ALTER TABLE decisions_v2 RENAME TO decisions",
    *[s.strip() for s in _INDEXES.strip().split(";") if s.strip()],
)
COLS = "sample_id, kind, decision, reviewer, decided_at, source"
COLS_D = "d.seq, d.sample_id, d.kind, d.decision, d.reviewer, d.decided_at, d.source"
LATEST = (  # each sample's latest row, or each (sample, reviewer)'s: its columns ``cols`` (COLS_D, ...)
    "SELECT {cols} FROM decisions d JOIN (SELECT MAX(seq) AS seq FROM decisions {where} "
    "GROUP BY sample_id{by}) m ON d.seq = m.seq"
)
INSERT = f"INSERT INTO decisions ({COLS}) VALUES (?, ?, ?, ?, ?, ?)"
DUPLICATE = (
    "SELECT 1 FROM decisions WHERE sample_id=? AND kind=? AND decision=? AND reviewer=? "
    "AND decided_at=? AND source=? LIMIT 1"
)
#: a row without a time repeats the latest row of its sample, reviewer and source when it says the same
SAME_AS_LATEST = (
    "SELECT kind=? AND decision=? FROM decisions WHERE sample_id=? AND reviewer=? AND source=? "
    "ORDER BY seq DESC LIMIT 1"
)
