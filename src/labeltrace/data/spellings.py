"""Class names written two ways: one integer in two spellings ("1", "01", "+1", "١", "1.0"), one
name in two Unicode forms, with other spaces or an invisible character (refused; one alone warned), or in two letter cases (warned).
:func:`labeltrace.data.validate.parse_labels` checks a manifest's labels with them, the folder
reader its class folders."""

from __future__ import annotations

import re
import unicodedata
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from labeltrace._checks import listing
from labeltrace.data.errors import DataError, DataWarning

__all__ = ["check_spellings", "invisible", "name_key", "number_key"]

#: any spelling of an integer (sign, leading zeros, non-ASCII digits, a decimal point and zeros as a
#: float column writes it: "1.0"): two spellings of one number in a label column are refused
_NUMBER_RE = re.compile(r"^[+-]?\d+(\.0*)?$")


#: zero-width joiners: some scripts spell words with them (kept, as in reviewer names)
_JOINERS = frozenset("\u200c\u200d")


def invisible(name: str) -> str | None:
    """The first invisible character of ``name`` — a control character or a format one (a zero-width
    space U+200B, a soft hyphen, a byte-order mark, a direction mark; not the joiners U+200C/U+200D)
    — or None."""
    return next((c for c in name if _hidden(c)), None)


def _hidden(c: str) -> bool:
    """A control or format character that is not white space (a tab is a space to :func:`name_key`)
    nor a joiner."""
    return c not in _JOINERS and unicodedata.category(c) in ("Cc", "Cf") and not c.isspace()


def name_key(name: str, *, compat: bool = True) -> str:
    """What a class name reads as, runs of white space as one space (a no-break space is one) and
    invisible characters (:func:`invisible`: "cat\\u200b" is "cat") left out: in Unicode's
    compatibility form (NFKC: NFC and NFD "café", a full-width "Ｔ" and "T", but also "2" and "²",
    "ﬁ" and "fi") or, ``compat=False``, its canonical form (NFC: "café" alone). Two names with one
    key are one class written two ways."""
    seen = "".join(c for c in name if not _hidden(c))
    return " ".join(unicodedata.normalize("NFKC" if compat else "NFC", seen).split())


def number_key(name: str) -> int | None:
    """The integer a class name spells in any way ("1", "01", "+1", "١", "1.0"), else None."""
    return int(name.split(".")[0]) if _NUMBER_RE.match(name) else None


def check_spellings(raw: Sequence[Any], row_name: Any) -> None:
    """Labels that are one class written two ways are refused naming the rows: two spellings of one
    integer ("1", "01", "+1", "١", "1.0") or of one name (:func:`name_key`: NFC vs NFD "café", a
    no-break or a double space, a full-width letter, as a spreadsheet or an input method leaves them); read as two classes
    or merged silently, either way some images would carry the wrong class. Names that differ only
    in letter case ("benign", "Benign") can be two classes (EMNIST's letters): they are read as
    such, with a warning naming the rows."""
    texts = {v for v in raw if isinstance(v, str)}
    groups: dict[Any, set[str]] = {}
    for v in texts:
        number = number_key(v)
        key = ("int", number) if number is not None else ("name", name_key(v))
        groups.setdefault(key, set()).add(v)
    cases: dict[str, set[str]] = {}
    for key, spelt in groups.items():
        if key[0] == "name":
            cases.setdefault(key[1].lower(), set()).update(spelt)
    case_twins = [sorted(vs) for vs in cases.values() if len(vs) > 1]
    numbers = {int(v) for v in raw if isinstance(v, (int, np.integer)) and not isinstance(v, bool)}
    for i in numbers:  # a Parquet column mixing 1 and "01"
        if ("int", i) in groups:
            groups[("int", i)].add(str(i))
    clash = {key: sorted(vs) for key, vs in groups.items() if len(vs) > 1}
    hidden = sorted({v for v in texts if invisible(v) is not None} - {v for vs in clash.values() for v in vs})
    first: dict[str, int] = {}
    if clash or case_twins or hidden:
        for k, v in enumerate(raw):
            first.setdefault(str(v) if not isinstance(v, str) else v, k)
    if hidden:  # alone, a class of its own that looks like another name: said (a twin is refused below)
        warnings.warn("labels with an invisible character are read as written: "
                      + listing(f"{ascii(v)} ({row_name(first[v])})" for v in hidden)
                      + "; if that is not meant, retype them", DataWarning, stacklevel=4)  # fmt: skip
    if case_twins and not clash:
        warnings.warn("labels that differ only in letter case are read as different classes: "
                      + listing(" / ".join(f"{v!r} ({row_name(first[v])})" for v in vs) for vs in case_twins)
                      + "; if each pair is one class, write it one way (a classes.txt beside the manifest, "
                      "labeltrace scan --classes FILE or classes=[...] listing them all says they are meant)",
                      DataWarning, stacklevel=4)  # fmt: skip
    if clash:
        raise DataError(
            "labels that write one class two ways (" + ("numbers with a sign, leading zeros, a decimal point or other digits"
            if any(key[0] == "int" for key in clash) else "the same name in two Unicode forms, with other spaces or an invisible character") + "): "
            + listing(" / ".join(f"{ascii(v)} ({row_name(first[v])})" for v in sorted(vs, key=first.__getitem__))
                      for vs in clash.values())
            + "; write each class one way (or, if they are different classes, list every name in a classes.txt "
            "beside the manifest, labeltrace scan --classes FILE, or classes=[...])"
        )
