"""What the review page shows of a sample: the queue item (labels, the decision shown, every
reviewer's view, the consensus) and its context (neighbours, trajectory), read from the
:class:`~labeltrace.review.state.ReviewState` shared by all requests."""

from __future__ import annotations

from typing import Any

import numpy as np

from labeltrace._checks import finite_or_none
from labeltrace.review.context import top_classes
from labeltrace.review.state import ReviewState

__all__ = ["context_of", "item"]


def item(state: ReviewState, pos: int, reviewer: str | None, *, shown: bool = False, page: str | None = None,
         seq: int | None = None, resume: bool = False) -> dict[str, Any]:  # fmt: skip
    """The queue item at ``pos``: labels, the decision shown, every reviewer's view.
    ``shown``: it is shown to a reviewer (:meth:`ReviewState.show`) on ``page`` (a tab's id; ``seq`` the
    request's number), not looked ahead at. ``resume`` (with ``shown``): the page opens at its
    resume, found when shown (:meth:`ReviewState.show_resume`), not at ``pos``."""
    order = state.order()
    if shown and resume:
        pos, i = state.show_resume(reviewer, page, seq)
    else:
        i = state.show(pos, reviewer, page, seq) if shown else int(order[pos])
    hist = state.store.history(i)
    me = None if reviewer is None else state.store.stored_spelling(reviewer)
    mine = [d for d in hist if me is None or d.reviewer == me]
    cur = mine[-1].to_dict() if mine else None
    views = state.store.views(i)
    v = state.verdicts()
    r = v.resolution
    post = state.posterior()
    sugg = int(post[i].argmax()) if post is not None else int(state.suggested[i])
    status = "resolved" if r.resolved[i] else "disputed" if r.disputed[i] else (
        "awaiting" if r.n_votes[i] else "open")  # fmt: skip
    return {
        "position": pos,
        "total": int(order.size),
        "id": i,
        "external_id": str(state.run.samples.column("external_id")[i].as_py()),
        "given_label": state.classes[state.given[i]],
        "suggested_label": state.classes[sugg],
        "suggested_prob": finite_or_none(post[i, sugg]) if post is not None
        else finite_or_none(state.suggested_prob[i]),
        "top": top_classes(post[i], state.classes) if post is not None else [],
        "score": finite_or_none(state.score[i]),
        "rank": int(state.rank[i]),
        "decision": cur,
        "history": len(hist),
        "views": [{"reviewer": d.reviewer, "kind": d.kind, "decision": d.decision}
                  for d in views],  # fmt: skip
        "consensus": {"status": status, "excluded": bool(r.excluded[i]),  # settled as of no class: no label
                      "label": state.classes[r.label[i]] if r.resolved[i] and not r.excluded[i] else None,
                      "votes": int(r.n_votes[i]), "text": v.rule.describe()},  # fmt: skip
    }

def context_of(state: ReviewState, i: int) -> dict[str, Any]:
    """Neighbours (given and suggested class) and the trajectory of sample ``i``."""
    post = state.posterior()
    v = state.verdicts()
    labels = np.where(v.excluded, -1, v.final)  # an excluded sample is no class's example
    sugg = int(post[i].argmax()) if post is not None else int(state.suggested[i])
    p = post if post is not None else np.eye(len(state.classes))[np.where(v.excluded, v.given, labels)]
    nb = state.context.neighbours(i, [int(state.given[i]), sugg], labels, p)
    return {
        "id": i,
        "neighbours": [{"label": state.classes[c], "role": role, "ids": nb[c]}
                       for c, role in ((int(state.given[i]), "given"), (sugg, "suggested"))
                       if c in nb and (role == "given" or c != state.given[i])],  # fmt: skip
        "trajectory": state.context.trajectory(i),
        "features": state.context.source,
    }
