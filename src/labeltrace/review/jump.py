"""Where the review page's "go to" box leads: an expert told "look at sample 412" or
"chest/IM-0031.png" gets there instead of stepping through the queue.

What may be typed (surrounding spaces aside, otherwise matched exactly):

* ``pos 12`` / ``position 12`` — the queue position the page shows as ``12 / N`` (1-based);
* ``id 412`` / ``sample 412`` / ``#412`` — a sample id, as the page names samples;
* an external id (``chest/IM-0031.png``), a path, or a file name alone (``IM-0031.png``) when one
  sample has it (an accent composed or not: ``é`` or ``e`` + U+0301);
* a bare number — an external id or file name so spelled first (a manifest's ids may be numbers),
  else a sample id: when no sample so named is in the queue (the queue file left it out) or none
  is so named. Where both readings could apply — a sample is so named and the number is another
  sample's id — the answer's ``note`` says which was used (and how to ask for the other).

The answer is the position only (:func:`locate`): the page then asks for that item as for any move,
which shows it to the reviewer and holds it for them (:mod:`labeltrace.review.leases`) — the look-up
itself holds nothing. Under ``--blind-all`` (:mod:`labeltrace.review.blind`) the ids are those the
page sees (:class:`~labeltrace.review.blind.HiddenIds`), and no external id or file name is looked
up: a folder dataset's is ``<class>/<file>``, so trying ``cat/x.png`` and ``dog/x.png`` would tell the
given label of the image shown. No answer repeats what was typed (the page names it itself).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from labeltrace._checks import listing
from labeltrace.review.blind import HiddenIds
from labeltrace.review.state import ReviewState
from labeltrace.rundir import Run

__all__ = ["MAX_JUMP", "Names", "locate"]

#: the longest text a "go to" may send (an external id with its folders)
MAX_JUMP = 2048
_POS = re.compile(r"(?:pos|position)\s*(\d+)", re.IGNORECASE | re.ASCII)
_ID = re.compile(r"(?:(?:id|sample)\s*#?\s*|#)(\d+)", re.IGNORECASE | re.ASCII)
_SHOWN = 5  # the samples an ambiguous file name lists


class Names:
    """A run's external ids, paths and bare file names, each matched exactly in one vectorised pass
    (no per-sample Python objects kept: a million samples cost their Arrow columns alone); the
    file names are cut from them on first use."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._lock = threading.Lock()
        self._cols: list[pa.ChunkedArray] | None = None

    def _columns(self) -> list[pa.ChunkedArray]:
        with self._lock:
            if self._cols is None:
                t = self.run.samples
                # composed: a folder read on macOS names its files decomposed (e + U+0301), a keyboard types é
                named = [pc.utf8_normalize(pc.cast(t.column(c), pa.string()), form="NFC")
                         for c in ("external_id", "path") if c in t.column_names]  # fmt: skip
                self._cols = named + [pc.replace_substring_regex(c, pattern=r"^.*[\\/]", replacement="")
                                      for c in named]  # fmt: skip
            return self._cols

    def find(self, text: str) -> list[int]:
        """The samples whose external id, else path, else file name is ``text`` exactly (both in
        Unicode's composed form: the accents typed and those on disk may be spelled apart)."""
        text = unicodedata.normalize("NFC", text)
        for col in self._columns():
            hit = np.flatnonzero(pc.fill_null(pc.equal(col, text), False).to_numpy(zero_copy_only=False))
            if hit.size:
                return [int(i) for i in hit]
        return []


def locate(state: ReviewState, text: str, names: Names, hidden: HiddenIds | None = None) -> dict[str, Any]:
    """Where ``text`` (module docstring) leads: ``{"position", "id", "problem", "note"}`` — the queue
    position and the sample's id as the page knows it (``hidden``: a ``--blind-all`` page's), or
    None for both and why, in words that do not repeat ``text``; ``note``, which reading of a bare
    number was used where it could be read both as a name and as another sample's id (else None)."""
    text = text.strip()
    order = state.order()  # one snapshot: a live refresh may swap the order meanwhile
    total, n = int(order.size), state.run.num_samples

    def at(pos: int, note: str | None = None) -> dict[str, Any]:
        i = int(order[pos])
        return {"position": pos, "id": hidden.shown(i) if hidden is not None else i, "problem": None, "note": note}

    def no(problem: str) -> dict[str, Any]:
        return {"position": None, "id": None, "problem": problem, "note": None}

    def by_id(j: int) -> dict[str, Any]:
        if not 0 <= j < n:
            return no(f"no sample has that id (ids run from 0 to {n - 1}; a queue position: pos N)")
        pos = int(state.positions(order)[hidden.real(j) if hidden is not None else j])
        if pos < 0:
            return no(f"sample {j} is not in this review's queue ({total} of the run's {n} samples)")
        return at(pos)

    if not text:
        return no("type a queue position (pos 12), a sample id (412) or a file name")
    m = _POS.fullmatch(text)
    if m:
        p = int(m.group(1))
        return at(p - 1) if 1 <= p <= total else no(f"the queue's positions run from 1 to {total}")
    m = _ID.fullmatch(text)
    if m:
        return by_id(int(m.group(1)))
    number = int(text) if text.isdecimal() and text.isascii() else None  # a bare number: a name, else an id
    if hidden is None:
        found = names.find(text)
        positions = state.positions(order)
        queued = [i for i in found if positions[i] >= 0]
        if len(queued) == 1:
            j = queued[0]
            both = number is not None and 0 <= number < n and number != j  # the id names another sample
            return at(int(positions[j]), f"by external id or file name; sample id {number} is another sample: "
                                         f"type id {number} for it" if both else None)  # fmt: skip
        ext = state.run.samples.column("external_id")
        if len(queued) > 1:
            return no(f"{len(queued)} samples are named so: type a whole external id "
                      f"({listing((ext[i] for i in queued), limit=_SHOWN)}) or a sample id")  # fmt: skip
        if found:
            unqueued = f"sample {found[0]} ({ext[found[0]]})"
            if number is None or not 0 <= number < n or number == found[0]:
                return no(f"{unqueued} is not in this review's queue")
            r = by_id(number)  # the sample so named is left out: the number read as a sample id
            if r["position"] is None:
                return no(f"neither {unqueued}, so named, nor sample {number} is in this review's queue")
            return r | {"note": f"as a sample id: {unqueued}, so named, is not in this review's queue"}
    if number is not None:
        return by_id(number)
    if hidden is not None:
        return no("a blind review hiding the given label looks up no file name (a folder's names tell the "
                  "class): type a queue position (pos 12) or the id the page shows")  # fmt: skip
    return no("no sample has that position, id, external id or file name (matched exactly; a position: pos 12)")
