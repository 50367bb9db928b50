"""Reviewer names in the decisions store: one spelling per person.

A name is read with its whitespace collapsed (:func:`spelling`); :class:`ReviewerNames` caches the
names a store holds, by :func:`name_key` (Unicode's composed form, case-folded), so that a name
written in the other Unicode form of a stored one ("José" typed with a combining accent) is read as
the stored spelling, and one differing only in letter case can be refused, without a scan of the
table at every decision.
"""

from __future__ import annotations

import sqlite3
import threading
import unicodedata

__all__ = ["ReviewerNames", "hidden_character", "name_key", "same_name", "spelling"]

#: characters that reorder or hide text: bidirectional embeddings, overrides and isolates
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def spelling(reviewer: str) -> str:
    """``reviewer`` with its whitespace collapsed (``"anonymous"`` when empty)."""
    return " ".join(str(reviewer).split()) or "anonymous"


def hidden_character(name: str) -> str | None:
    """Why ``name`` cannot be a reviewer's name, or None: a control character (NUL, escape, ...) or
    one that reverses or hides the text around it (U+202E, ...), which would make two names look
    alike, or a name print backwards in the exports. Joiners (U+200C / U+200D) are allowed: some
    scripts spell names with them."""
    bad = next((c for c in name if unicodedata.category(c) == "Cc" or c in _BIDI), None)
    return None if bad is None else f"reviewer name has an invisible control character U+{ord(bad):04X}; type it plainly"


def same_name(a: str, b: str) -> bool:
    """``a`` and ``b`` are one name written in two Unicode forms (or the same spelling)."""
    return unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b)


def name_key(name: str) -> str:
    """What two spellings of one name share: NFC, case-folded ("José" / "JOSÉ", either form)."""
    return unicodedata.normalize("NFC", name).casefold()


class ReviewerNames:
    """The reviewer names of one store, by :func:`name_key`, each name's spellings by first use;
    read again only when another writer added rows (this store's own writes keep it current).
    Thread-safe: the cache is replaced, never changed in place."""

    def __init__(self) -> None:
        self._cache: tuple[int, dict[str, list[str]]] = (-1, {})  # (last seq read, names)
        self._lock = threading.Lock()

    def read(self, con: sqlite3.Connection) -> dict[str, list[str]]:
        """The names, read through ``con`` (inside its transaction when it has one)."""
        seq = int(con.execute("SELECT COALESCE(MAX(seq), 0) FROM decisions").fetchone()[0])
        with self._lock:
            if self._cache[0] == seq:
                return self._cache[1]
        rows = con.execute("SELECT reviewer FROM decisions GROUP BY reviewer ORDER BY MIN(seq)").fetchall()
        known: dict[str, list[str]] = {}
        for (name,) in rows:
            known.setdefault(name_key(name), []).append(name)
        with self._lock:
            self._cache = (seq, known)
        return known

    def wrote(self, seq: int, name: str) -> None:
        """After this store's own single-row write ``seq``: the cache takes ``name`` when no other
        writer came between (else the next :meth:`read` reads the table again)."""
        with self._lock:
            last, known = self._cache
            if last == seq - 1:
                spellings = known.get(name_key(name), [])
                new = spellings if name in spellings else [*spellings, name]
                self._cache = (seq, {**known, name_key(name): new})
