"""What the review app reads from a request: the decision body (strict JSON types), validation
errors without what the client sent, a reviewer name from a query, and why a decision cannot be
stored — in words that never repeat the submitted values."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, StringConstraints

from labeltrace._checks import listing
from labeltrace.relabel.decision_checks import INFERRED, KINDS
from labeltrace.relabel.reviewers import spelling
from labeltrace.review.state import ReviewState

__all__ = ["MAX_PAGE", "DecisionIn", "LeaveIn", "decision_problem", "validation_detail", "who"]


#: the longest page id a request may send (a page makes a UUID per tab: 36 characters)
MAX_PAGE = 64


class DecisionIn(BaseModel):
    """Body of ``POST /api/decision``: strict JSON types (no ``true`` or ``"3"`` for an id), no
    other fields."""

    model_config = ConfigDict(strict=True, extra="forbid")

    sample_id: StrictInt
    decision: StrictStr
    kind: StrictStr | None = None
    reviewer: StrictStr | None = None
    page: Annotated[StrictStr, StringConstraints(max_length=MAX_PAGE)] | None = None  # the tab: its own hold
    seq: Annotated[StrictInt, Field(ge=0)] | None = None  # the page's request number: a later one's hold stands


class LeaveIn(BaseModel):
    """Body of ``POST /api/leave``: the tab that was closed, and whose it was."""

    model_config = ConfigDict(strict=True, extra="forbid")

    page: Annotated[StrictStr, StringConstraints(min_length=1, max_length=MAX_PAGE)]
    reviewer: StrictStr | None = None
    seq: Annotated[StrictInt, Field(ge=0)] | None = None  # the closing page's number: a reload's later one stands


_LOCATIONS = {"body", "query", "path", "header", "cookie"}
_FIELDS = set(DecisionIn.model_fields) | {"pos", "sample_id", "to"}


def validation_detail(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's validation errors without what the client sent.

    The default handler returns each error's ``input`` (and ``ctx``); a key the client made up
    would also come back in ``loc``. Keep the message and type, and only the parts of ``loc``
    the app itself defines.
    """
    out = []
    for e in list(errors)[:10]:
        loc = [
            x if isinstance(x, int) or x in _LOCATIONS or x in _FIELDS else "(unknown field)"
            for x in e.get("loc", ())
        ]
        out.append({"loc": loc, "msg": str(e.get("msg", ""))[:200], "type": str(e.get("type", ""))})
    return out


def who(name: str | None) -> str | None:
    """A reviewer name from a query, spelled as decisions store it (:func:`spelling`); None when
    empty."""
    return spelling(name) if name is not None and name.strip() else None


def decision_problem(
    state: ReviewState, body: DecisionIn, reviewer: str, *, named: int | None = None, blind: bool = False
) -> tuple[int, str] | None:
    """Why a decision cannot be stored, in words that do not repeat the submitted values; they
    name the sample by ``named`` (default its id: a blind page knows it by another), and, for a
    ``blind`` page, no other reviewer."""
    n = state.run.num_samples
    if not 0 <= body.sample_id < n:
        return 404, f"unknown sample id: ids lie in [0, {n})"
    i, kind, decision = body.sample_id if named is None else named, body.kind, body.decision
    if kind is not None and kind not in KINDS:
        return 400, f"sample {i}: kind must be one of {', '.join(KINDS)}"
    if kind is None:  # "exclude" is never inferred from the word: it names a class called so, as it did
        if decision in INFERRED and decision in state.classes:
            return 400, (
                f"sample {i}: {decision!r} is both a class and a review action; send kind "
                f"'label' or {decision!r}"
            )
        kind = decision if decision in INFERRED else "label"
    if kind != "label" and decision != kind:
        return 400, f"sample {i}: a {kind!r} decision carries no class; send kind 'label' to record one"
    if kind == "label" and decision not in state.classes:
        return 400, (
            f"sample {i}: decision must be a class ({listing(state.classes, limit=50)}) or a "
            f"review action ({', '.join(INFERRED)}, or kind 'exclude' for an image of no class)"
        )
    problem = state.store.name_problem(reviewer, reveal=not blind)
    return None if problem is None else (400, f"sample {i}: {problem}")
