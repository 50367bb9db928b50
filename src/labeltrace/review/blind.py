"""Blind review: what the review page may show a reviewer who must not be anchored.

An expert who sees the model's suggestion, or a colleague's vote, agrees with it more often than
one who does not (automation bias, anchoring); a read made without them is an independent second
opinion. ``labeltrace review --blind`` serves the page without them:

``model``
    hides the model's view of each sample — the suggested class and its probability, the top
    classes, the score and rank, the trajectory and the nearest examples, the scan's warnings —
    and every trace of the other reviewers: their decisions, the sample's consensus, the counts
    that a vote moves (changed, resolved, disputed, ...), the decisions' sequence numbers; and the
    page moves on by this reviewer's own decisions alone (a sample the others settled is still
    shown).
``all``
    hides the given label too — and what would tell it: its exact copies' given labels, the
    sample's external id (a folder dataset's is ``<class>/<file>``) and its id (a folder dataset numbers its samples class folder
    by class folder: the page sees a permutation of the ids drawn for each server,
    :class:`HiddenIds`): the reviewer names the class from the image alone.

Limits: a blind review cannot re-rank live (``--live`` is refused: the order would follow the
other reviewers' decisions); and what a page sees is what its reviewer *name* has decided — there
are no accounts, so a reviewer who types a colleague's name sees that colleague's decisions.

The server leaves these fields out of its answers (the page cannot show what it never receives),
refuses the context, history and find routes, and stores each decision with ``source``
``"app-blind"`` or ``"app-blind-all"`` so that blind reads can be told apart later. The queue
order stays the suspicion ranking: the reviewer still knows that the samples early in it are the
suspect ones.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal, overload

import numpy as np

__all__ = ["BLIND_MODES", "BlindMode", "blind_decision", "blind_item", "blind_progress", "decision_source"]

#: the progress fields a blind page keeps: its own counts and position, the rule, the live order
_PROGRESS_KEPT = ("total", "reviewed", "skipped", "resume", "rule", "live")

BlindMode = Literal["model", "all"]
BLIND_MODES: tuple[BlindMode, ...] = ("model", "all")


def check_mode(mode: str | None) -> BlindMode | None:
    """``mode`` when it is None or one of :data:`BLIND_MODES`, else ``ValueError``."""
    if mode is not None and mode not in BLIND_MODES:
        raise ValueError(f"blind must be None, 'model' or 'all', not {mode!r}")
    return mode  # type: ignore[return-value]


def decision_source(mode: BlindMode | None) -> str:
    """The ``source`` stored with a decision made on the page in ``mode``."""
    return "app" if mode is None else "app-blind" if mode == "model" else "app-blind-all"


def blind_item(item: dict[str, Any], mode: BlindMode, *, reviewer: str, own_history: int) -> dict[str, Any]:
    """A queue item (:meth:`~labeltrace.review.state.ReviewState.item`, asked for ``reviewer``,
    spelled as the store spells it) without what ``mode`` hides: only ``reviewer``'s own view and
    count of entries (``own_history``), no consensus, no model fields."""
    out = dict(item)
    out.update(suggested_label=None, suggested_prob=None, top=[], score=None, rank=None,
               decision=blind_decision(item["decision"]))  # fmt: skip
    copies = item.get("copies")
    if copies is not None:  # their given labels, not the labels the others' votes gave them
        out["copies"] = {**copies, "samples": [{**c, "label": None} for c in copies["samples"]]}
    if mode == "all":  # the copies' given labels, and their ids (a folder's are numbered class by class)
        out.update(given_label=None, external_id=None, copies=None)
    own = [v for v in item["views"] if v["reviewer"] == reviewer]
    out["views"] = own
    # the number of entries kept, and the consensus, would tell of the other reviewers' votes
    out["history"] = int(own_history)
    out["consensus"] = {"status": "hidden", "label": None, "votes": None, "text": item["consensus"]["text"]}
    out["blind"] = mode
    return out


@overload
def blind_decision(d: dict[str, Any]) -> dict[str, Any]: ...


@overload
def blind_decision(d: None) -> None: ...


def blind_decision(d: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored decision row without its sequence number (the number of decisions stored)."""
    return None if d is None else {k: v for k, v in d.items() if k != "seq"}


def blind_progress(progress: dict[str, Any]) -> dict[str, Any]:
    """The progress counts (:meth:`~labeltrace.review.state.ReviewState.progress`, asked for the
    page's own reviewer) without those the other reviewers' votes move, or that compare a
    decision with the given label."""
    return {k: v for k, v in progress.items() if k in _PROGRESS_KEPT}


class HiddenIds:
    """Sample ids as a ``--blind-all`` page sees them: a random permutation, drawn once for a
    store of decisions (:meth:`for_store`: its seed is kept with them, so a page left open while
    the server restarts still posts to the samples it showed). A folder dataset numbers its
    samples class folder by class folder, so the real ids would tell the given class; the page
    sends the ids it was shown, and the server maps them back."""

    def __init__(self, n: int, seed: int) -> None:
        self._shown = np.random.default_rng(seed).permutation(n)
        self._real = np.argsort(self._shown)

    @classmethod
    def for_store(cls, n: int, store: Any) -> HiddenIds:
        """The permutation of the decisions ``store`` (a :class:`~labeltrace.relabel.ReviewStore`)."""
        return cls(n, int(store.setting("blind_ids_seed", lambda: str(secrets.randbits(128)))))

    def shown(self, i: int) -> int:
        return int(self._shown[i])

    def real(self, j: int) -> int:
        return int(self._real[j])
