"""Reviewer names in the decisions store: one spelling per person.

A name is read with its whitespace collapsed (:func:`spelling`); :class:`ReviewerNames` caches the
names a store holds, by :func:`name_key` (Unicode's composed form, case-folded), so that a name
written in the other Unicode form of a stored one ("José" typed with a combining accent) is read as
the stored spelling, and one differing only in letter case can be refused, without a scan of the
table at every decision.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import unicodedata

__all__ = [
    "MAX_REVIEWER", "ReviewerNames", "case_twin", "hidden_character", "name_key", "name_problem",
    "same_name", "spelling", "stored_spelling",
]

MAX_REVIEWER = 100

#: characters that reorder or hide text: bidirectional embeddings, overrides and isolates
#: zero-width non-joiner and joiner: invisible, yet part of how some scripts spell names
_JOINERS = frozenset("\u200c\u200d")
#: Unicode's Default_Ignorable_Code_Point: characters shown as nothing at all
_IGNORABLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
                        "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]")


def spelling(reviewer: str) -> str:
    """``reviewer`` with its whitespace collapsed (``"anonymous"`` when empty)."""
    return " ".join(str(reviewer).split()) or "anonymous"


def hidden_character(name: str) -> str | None:
    """Why ``name`` cannot be a reviewer's name, or None: a control character (NUL, escape, ...) or
    an invisible format character — one that reverses or hides the text around it (U+202E, ...), a
    zero-width space (U+200B), a soft hyphen (U+00AD), a byte-order mark (U+FEFF) —, which would
    make two names look alike (one person casting two votes), or a name print backwards in the
    exports. Joiners (U+200C / U+200D) are allowed: some scripts spell names with them."""
    bad = next((c for c in name if c not in _JOINERS and unicodedata.category(c) in ("Cc", "Cf")), None)
    return None if bad is None else f"reviewer name has an invisible character U+{ord(bad):04X}; type it plainly"


def same_name(a: str, b: str) -> bool:
    """``a`` and ``b`` are one name written in two Unicode forms (or the same spelling)."""
    return unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b)


def name_key(name: str) -> str:
    """What two spellings of one name share: NFC, case-folded ("José" / "JOSÉ", either form),
    without the characters that show nothing (Unicode's default-ignorable ones: joiners,
    variation selectors, fillers), so that "alice" and "alice" + U+200D are one name."""
    bare = _IGNORABLE.sub("", unicodedata.normalize("NFC", name))
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", bare).casefold())


def stored_spelling(reviewer: str, known: dict[str, list[str]]) -> str:
    """``reviewer`` (whitespace collapsed) as a store spells it, ``known`` being its names by
    :func:`name_key`: a stored name written in the other Unicode form (composed / decomposed
    accents) is that stored name, else as given."""
    who = spelling(reviewer)
    return next((s for s in known.get(name_key(who), []) if same_name(s, who)), who)


def case_twin(reviewer: str, known: dict[str, list[str]]) -> str | None:
    """The stored name (of ``known``) that differs from ``reviewer`` only in letter case (the first
    stored), or None: none, or ``reviewer`` itself is stored (in either Unicode form). A stored
    name with a hidden character (written before such names were refused) is no one's twin."""
    who = stored_spelling(reviewer, known)
    spellings = [s for s in known.get(name_key(who), []) if hidden_character(s) is None or s == who]
    return None if not spellings or who in spellings else spellings[0]


def name_problem(reviewer: str, known: dict[str, list[str]], *, reveal: bool = True) -> str | None:
    """Why ``reviewer`` cannot sign a decision in a store holding the names ``known``, or None: too
    long, a hidden character, or another letter case of a stored name (one person is one vote).
    The words never repeat the name submitted (the review app sends them back to the page), and
    name the stored one only when ``reveal`` (a blind page learns no colleague's name)."""
    who = stored_spelling(reviewer, known)
    if len(who) > MAX_REVIEWER:
        return f"reviewer name longer than {MAX_REVIEWER} characters"
    hidden = None if who in known.get(name_key(who), []) else hidden_character(who)  # a stored name signs
    if hidden is not None:
        return hidden
    if not name_key(who):
        return "reviewer name shows nothing (only invisible characters); type it plainly"
    twin = case_twin(who, known)
    if twin is not None and not reveal:
        return ("this reviewer name differs only in letter case (or in characters that show nothing) from a name "
                "with decisions stored; type your name as you did before, or choose another (one person is one "
                "vote)")  # fmt: skip
    if twin is not None:  # the stored name, not the submitted one, is named
        return (f"this reviewer name differs only in letter case (or in characters that show nothing) from "
                f"{twin!r}, who has decisions stored; use that spelling (one person is one vote)")  # fmt: skip
    return None


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
