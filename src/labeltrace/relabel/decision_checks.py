"""One decision: its stored row (:class:`Decision`), and its own checks, before any reviewer or
store is involved: a sample id in range, a decision that is a class or a review action, and its
kind."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["INFERRED", "KINDS", "Decision", "check_decision", "now_iso"]

#: what a decision is: a class (``label``), or one of the review actions — ``exclude``: the image
#: is of no class (a vote, as a label is, for "no class"). Appended last: the kind codes of the
#: others (their position here) are what they were.
KINDS: tuple[str, ...] = ("label", "unsure", "skip", "exclude")
#: the actions a decision without a kind may name by their word (when no class has that name);
#: ``exclude`` is never inferred from the word: a client that sent a class named ``exclude``
#: without a kind before the kind existed still records that class
INFERRED: tuple[str, ...] = ("unsure", "skip")


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Decision:
    """One stored decision row."""

    seq: int
    sample_id: int
    kind: str
    decision: str
    reviewer: str
    decided_at: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_decision(sample_id: Any, decision: Any, kind: Any = None, *, classes: Sequence[str], num_samples: int,
                   class_set: AbstractSet[str] | None = None) -> tuple[int, str, str]:  # fmt: skip
    """``(sample_id, kind, decision)`` of a decision about one of ``num_samples`` samples and
    ``classes`` (:meth:`~labeltrace.relabel.decisions.ReviewStore.validate` says what is refused,
    with ``IndexError`` for an id out of range and ``ValueError`` otherwise). ``class_set``: the
    classes as a set, when the caller checks many decisions."""
    class_set = set(classes) if class_set is None else class_set
    if isinstance(sample_id, bool) or not isinstance(sample_id, (int, np.integer)):
        raise ValueError(f"sample_id must be an integer, got {sample_id!r}")
    i = int(sample_id)
    if not 0 <= i < num_samples:
        raise IndexError(f"unknown sample id {i}: ids lie in [0, {num_samples})")
    if not isinstance(decision, str):
        raise ValueError(f"sample {i}: decision must be a string, got {decision!r}")
    if kind is None:
        if decision in INFERRED and decision in class_set:
            raise ValueError(
                f"sample {i}: decision {decision!r} is both a class name and a review action; "
                "pass kind"
            )
        kind = decision if decision in INFERRED else "label"
    if kind not in KINDS:
        raise ValueError(f"sample {i}: kind must be one of {KINDS}, got {kind!r}")
    if kind == "label":
        if decision not in class_set:
            hint = " (to say the image is of no class, pass kind 'exclude')" if decision == "exclude" else ""
            raise ValueError(
                f"sample {i}: unknown class {decision!r}; classes are {list(classes)}{hint}"
            )
    elif decision != kind:
        raise ValueError(
            f"sample {i}: a {kind!r} decision carries no class; got decision {decision!r} "
            f"(send kind 'label' to record a class)"
        )
    return i, kind, decision
