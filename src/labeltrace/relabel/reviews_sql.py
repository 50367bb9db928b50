"""The SQL of the review decisions store (``reviews.db``, format ``labeltrace.reviews/1``): its
schema and the statements :class:`~labeltrace.relabel.decisions.ReviewStore` runs."""

from __future__ import annotations

FORMAT = "labeltrace.reviews/1"

SCHEMA = """
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
