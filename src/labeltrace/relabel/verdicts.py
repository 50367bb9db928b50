"""What the review decisions amount to: consensus labels, open disputes, the final labels.

Every reviewer's latest label decision on a sample is one vote; the store's
:class:`~labeltrace.relabel.consensus.ConsensusRule` resolves the votes
(:func:`labeltrace.relabel.consensus.resolve`). A resolved sample takes its consensus label;
every other sample keeps its given label — those with votes but no consensus are *unresolved*
and listed by :func:`unresolved_table` (the export writes them beside the cleaned labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from labeltrace.relabel.consensus import ConsensusRule, Resolution, resolve
from labeltrace.relabel.decisions import KINDS, ReviewStore, open_store
from labeltrace.rundir import Run

__all__ = ["NO_CONSENSUS", "Verdicts", "final_labels", "run_verdicts", "unresolved_table",
           "verdicts"]  # fmt: skip

NO_CONSENSUS = "no consensus"
"""``review_decision`` of a sample whose votes do not settle it yet."""


@dataclass(frozen=True, eq=False)
class Verdicts:
    """The decisions of a run resolved under its consensus rule (arrays of length N).

    Attributes
    ----------
    rule : the consensus rule applied.
    given : given labels.
    votes : (N, K) reviewer votes (each reviewer's latest label decision).
    resolution : the rule's verdict per sample.
    latest_kind : kind code of each sample's latest row (-1 none, 0 label, 1 unsure, 2 skip).
    """

    rule: ConsensusRule
    given: np.ndarray
    votes: np.ndarray
    resolution: Resolution
    latest_kind: np.ndarray

    @property
    def final(self) -> np.ndarray:
        """(N,) int64 labels: the consensus where resolved, the given label elsewhere."""
        r = self.resolution
        return np.where(r.resolved, r.label, self.given).astype(np.int64)

    @property
    def changed(self) -> np.ndarray:
        """(N,) bool: resolved to another label than the given one."""
        return self.resolution.resolved & (self.resolution.label != self.given)

    def decision_text(self, classes: list[str]) -> np.ndarray:
        """(N,) object: the consensus class name, ``"no consensus"``, ``"unsure"``, ``"skip"``
        (the latest row, when nobody voted a label) or ``""``."""
        k = len(classes)
        names = np.asarray(list(classes) + ["", "unsure", "skip", NO_CONSENSUS], dtype=object)
        r = self.resolution
        code = self.latest_kind
        idx = np.where(code == KINDS.index("unsure"), k + 1,
                       np.where(code == KINDS.index("skip"), k + 2, k))  # fmt: skip
        idx = np.where(r.unresolved, k + 3, idx)
        idx = np.where(r.resolved, r.label, idx)
        return names[idx]


def verdicts(store: ReviewStore | None, given: np.ndarray, num_classes: int) -> Verdicts:
    """Resolve the decisions of ``store`` (None: nobody reviewed yet) for the ``given`` labels."""
    g = np.asarray(given, dtype=np.int64)
    if store is None:
        votes = np.zeros((g.size, num_classes), dtype=np.int64)
        kind = np.full(g.size, -1, dtype=np.int8)
        rule = ConsensusRule()
    else:
        votes = store.vote_counts()
        kind = store.current_arrays()[0]
        rule = store.rule()
    return Verdicts(rule=rule, given=g, votes=votes, resolution=resolve(votes, g, rule),
                    latest_kind=kind)  # fmt: skip


def run_verdicts(run: Run) -> Verdicts:
    """:func:`verdicts` of a run's ``reviews.db``."""
    return verdicts(open_store(run), run.column("given_label_id"), len(run.classes))


def final_labels(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """``(label_id, review_decision)``: labels after the consensus relabels, and the decision
    text (:meth:`Verdicts.decision_text`)."""
    v = run_verdicts(run)
    return v.final, v.decision_text(run.classes)


def _needs(top: int, second: int, agree: int) -> str:
    """What settles a sample whose leading class has ``top`` votes, the runner-up ``second``."""
    if top >= agree:
        return "a tie-break vote"
    n = agree - top
    return f"{n} more agreeing vote{'s' if n > 1 else ''}"


def unresolved_table(run: Run, v: Verdicts | None = None) -> pa.Table:
    """One row per sample with votes but no consensus: ``id, external_id, given_label, votes``
    (``"cat: ada, bob; dog: eve"``), ``n_votes`` and ``needs`` (what would settle it)."""
    v = run_verdicts(run) if v is None else v
    ids = np.flatnonzero(v.resolution.unresolved)
    store = open_store(run)
    text = []
    for i in ids.tolist():
        by: dict[str, list[str]] = {}
        for d in store.views(i) if store is not None else []:
            if d.kind == "label":
                by.setdefault(d.decision, []).append(d.reviewer)
        text.append("; ".join(f"{c}: {', '.join(who)}" for c, who in sorted(by.items())))
    r = v.resolution
    needs = [_needs(t, s, v.rule.agree) for t, s in zip(r.top[ids].tolist(), r.second[ids].tolist(),
                                                         strict=True)]  # fmt: skip
    classes = np.asarray(run.classes, dtype=object)
    return pa.table({
        "id": pa.array(ids.astype(np.int64)),
        "external_id": run.samples.column("external_id").take(pa.array(ids)),
        "given_label": pa.array(classes[v.given[ids]].tolist(), pa.string()),
        "votes": pa.array(text, pa.string()),
        "n_votes": pa.array(r.n_votes[ids]),
        "needs": pa.array(needs, pa.string()),
    })  # fmt: skip
