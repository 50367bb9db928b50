"""Reading a Label Studio export's annotations (JSON and JSON-MIN) back into decisions: what one
annotation, or one JSON-MIN entry, says, and its time."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from labeltrace._checks import listing
from labeltrace.data.validate import name_key

__all__ = ["LS_LABEL", "LS_REVIEW", "REVIEW_CHOICES", "annotation_says", "decision_of", "iso", "min_decision"]

LS_LABEL = "label"  # from_name of the class choice
LS_REVIEW = "review"  # from_name of the review control: its choices "unsure" and "exclude" (no class)


#: the review control's choices, each a decision kind, in the order they win when both are ticked
REVIEW_CHOICES = ("unsure", "exclude")


def iso(ts: Any) -> str | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        t = _dt.datetime.fromisoformat(ts)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    return t.astimezone(_dt.UTC).isoformat(timespec="milliseconds")


def _alike(label: Any, classes: set[str]) -> str:
    """`` (the class it may be written for)``: another Unicode form or spaces, or another case; "" for none."""
    twin = [c for c in sorted(classes) if isinstance(label, str) and name_key(c) == name_key(label)]
    cased = [c for c in sorted(classes) if isinstance(label, str) and c.casefold() == label.casefold()]
    return (f" ({ascii(label)}: the class {ascii(twin[0])} written another way)" if twin else
            f" (the class {cased[0]!r} in another case?)" if cased else "")  # fmt: skip


def _unknown(label: Any, classes: set[str], where: str) -> ValueError:
    """An unknown class named with the class it may be written for (another Unicode form, other
    spaces: the two print alike) and the classes (50 of a long list)."""
    return ValueError(f"{where}: unknown class {label!r}{_alike(label, classes)}; classes are "
                      f"{listing(map(repr, sorted(classes)), 50)}")  # fmt: skip


def decision_of(
    results: list[dict[str, Any]], classes: set[str], where: str
) -> tuple[str, str] | None:
    """(kind, decision) from an annotation's result list, or None when it holds no choice. A class
    ticked together with ``unsure`` is an unsure decision (the annotator doubted the class); the
    review control's ``exclude`` (the image is of no class) is an exclude decision, a class ticked
    with it too; ``unsure`` and ``exclude`` both (the control is single-choice: an edited export)
    is unsure — a doubt is never taken for a vote."""
    label: str | None = None
    said: set[str] = set()
    for r in results:
        if r.get("type") != "choices":
            continue
        vals = (r.get("value") or {}).get("choices") or []
        if r.get("from_name") == LS_REVIEW:
            said |= set(vals) & set(REVIEW_CHOICES)
        elif r.get("from_name") == LS_LABEL or (vals and set(vals) <= classes):
            if len(vals) != 1:
                raise ValueError(f"{where}: expected one class choice, got {vals}")
            if label is not None and str(vals[0]) != label:  # the last one was taken, unsaid
                raise ValueError(f"{where}: one annotation ticks two classes, {label!r} and {str(vals[0])!r}: "
                                 "decide the sample on the review page")  # fmt: skip
            label = str(vals[0])
        elif vals:  # a control the config labeltrace wrote has not: its choice was read as no answer
            raise ValueError(f"{where}: a choice {listing(map(repr, vals))} under the control "
                             f"{r.get('from_name')!r}, which the labeling config labeltrace wrote does not have "
                             f"(its controls: {LS_LABEL!r}, the classes; {LS_REVIEW!r}, "
                             f"{' or '.join(REVIEW_CHOICES)}): a project whose config was edited?"
                             + (_alike(str(vals[0]), classes) if len(vals) == 1 else ""))  # fmt: skip
    if label is not None and label not in classes:
        raise _unknown(label, classes, where)
    return _review_says(said, label)


def _review_says(said: set[str], label: str | None) -> tuple[str, str] | None:
    """The decision of the review control's choices ``said`` beside the class ``label``."""
    for action in REVIEW_CHOICES:  # unsure first: it wins over exclude
        if action in said:
            return action, action
    return None if label is None else ("label", label)


def annotation_says(annotation: dict[str, Any], classes: set[str], where: str) -> str | None:
    """What one annotation of a task says, to compare it with the task's others (None: nothing; an
    unreadable one is its own answer — only the latest annotation is imported, and checked)."""
    try:
        dec = decision_of(annotation.get("result") or [], classes, where)
    except ValueError:
        return "unreadable"
    return None if dec is None else "/".join(dec)


def min_decision(task: dict[str, Any], classes: set[str], where: str) -> tuple[str, str] | None:
    """JSON-MIN export: the control values are top-level keys of the task."""
    v = task.get(LS_LABEL)
    if isinstance(v, dict):
        v = v.get("choices")
    if isinstance(v, list):
        if len(v) != 1:
            raise ValueError(f"{where}: expected one class choice, got {v}")
        v = v[0]
    if v is not None and v not in classes:
        raise _unknown(v, classes, where)
    r = task.get(LS_REVIEW)
    vals = [r] if isinstance(r, str) else r if isinstance(r, list) else r.get("choices", []) if isinstance(r, dict) else []
    # unsure with a class ticked too: the annotator doubted it; exclude: no class (unsure wins over it)
    return _review_says({x for x in vals if isinstance(x, str)}, None if v is None else str(v))
