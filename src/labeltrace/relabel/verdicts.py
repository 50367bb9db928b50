"""What the review decisions amount to: consensus labels, open disputes, the final labels.

Every reviewer's latest label or *exclude* decision on a sample is one vote (an exclude votes
for "no class", one column beside the classes); the store's
:class:`~labeltrace.relabel.consensus.ConsensusRule` resolves the votes
(:func:`labeltrace.relabel.consensus.resolve`). A resolved sample takes its consensus label, or
is *excluded* (its final label -1: it has none; never a class id, so nothing indexes class names
with it); every other sample keeps its given label — those with a decision but no consensus
(votes that do not settle it, or only *unsure* / *skip*) are listed by :func:`unresolved_table`
(the export writes them beside the cleaned labels).

Only the samples with votes are resolved (the work grows with the decisions, not with N × K):
a sample nobody voted on is never resolved, whatever the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa

from labeltrace.relabel.arrays import vote_arrays
from labeltrace.relabel.consensus import ConsensusRule, Resolution, resolve
from labeltrace.relabel.decisions import KINDS, Decision, ReviewStore
from labeltrace.relabel.runstore import open_store
from labeltrace.rundir import Run

__all__ = ["EXCLUDE_VOTES", "NO_CONSENSUS", "Verdicts", "final_labels", "run_verdicts", "unresolved_table", "updated",
           "verdicts"]  # fmt: skip

NO_CONSENSUS = "no consensus"
"""``review_decision`` of a sample whose votes do not settle it yet."""
EXCLUDE_VOTES = "(exclude)"
"""How :func:`unresolved_table` lists the exclude votes (brackets: no class name is taken for them)."""


@dataclass(frozen=True, eq=False)
class Verdicts:
    """The decisions of a run resolved under its consensus rule (arrays of length N).

    Attributes
    ----------
    rule : the consensus rule applied.
    given : given labels.
    num_classes : K.
    resolution : the rule's verdict per sample (from each reviewer's latest label or exclude
        decision as one vote).
    latest_kind : kind code of each sample's latest row (-1 none, 0 label, 1 unsure, 2 skip, 3
        exclude).
    """

    rule: ConsensusRule
    given: np.ndarray
    num_classes: int
    resolution: Resolution
    latest_kind: np.ndarray

    @property
    def final(self) -> np.ndarray:
        """(N,) int64 labels: the consensus where resolved, -1 where excluded (no class), the
        given label elsewhere. Index class names with it only where ``~excluded``."""
        r = self.resolution
        return np.where(r.resolved, r.label, self.given).astype(np.int64)

    @property
    def excluded(self) -> np.ndarray:
        """(N,) bool: settled as of no class (the exclude votes lead under the rule)."""
        return self.resolution.excluded

    @property
    def without_consensus(self) -> np.ndarray:
        """(N,) bool: decided (any row) but not settled — what ``review --export`` lists in its
        .unresolved.csv."""
        return (self.latest_kind >= 0) & ~self.resolution.resolved

    @property
    def reviewed(self) -> np.ndarray:
        """(N,) bool: reviewed, as the review page without a reviewer's name counts them (its
        "5 / 120 reviewed", and the report's count): settled by the votes (to a class or as
        excluded) or — when one vote settles a sample — its latest decision a label, an exclude or
        *unsure*. A *skip* never makes a sample reviewed, nor votes short of the rule's."""
        r = self.resolution
        if not self.rule.one_vote_settles:
            return r.resolved.copy()
        return r.resolved | np.isin(self.latest_kind, [KINDS.index(k) for k in ("label", "unsure", "exclude")])

    @property
    def skipped(self) -> np.ndarray:
        """(N,) bool: not :attr:`reviewed` and skipped by the latest decision (the page's "1 skipped")."""
        return (self.latest_kind == KINDS.index("skip")) & ~self.reviewed

    @property
    def changed(self) -> np.ndarray:
        """(N,) bool: resolved to another class than the given one (an excluded sample is not
        relabelled: :attr:`excluded`)."""
        r = self.resolution
        return r.resolved & ~r.excluded & (r.label != self.given)

    def decision_text(self, classes: list[str]) -> np.ndarray:
        """(N,) object: the consensus class name, ``"exclude"`` (settled as of no class: its
        :meth:`status_text` says ``"excluded"``), ``"no consensus"``, ``"unsure"``, ``"skip"``
        (the latest row, when nobody voted) or ``""``."""
        k = len(classes)
        names = np.asarray(list(classes) + ["", "unsure", "skip", NO_CONSENSUS, "exclude"], dtype=object)
        r = self.resolution
        code = self.latest_kind
        idx = np.where(code == KINDS.index("unsure"), k + 1,
                       np.where(code == KINDS.index("skip"), k + 2, k))  # fmt: skip
        idx = np.where(r.unresolved, k + 3, idx)
        idx = np.where(r.resolved, np.where(r.excluded, k + 4, r.label), idx)
        return names[idx]

    def status_text(self) -> np.ndarray:
        """(N,) object: what :meth:`decision_text` is — ``"consensus"`` (a class name, even one
        named ``unsure``, ``skip`` or ``exclude``), ``"excluded"`` (settled as of no class),
        ``"no consensus"``, ``"unsure"``, ``"skip"`` (the actions) or ``""`` (no decision)."""
        names = np.asarray(["", "unsure", "skip", NO_CONSENSUS, "consensus", "excluded"], dtype=object)
        code = self.latest_kind
        idx = np.where(code == KINDS.index("unsure"), 1, np.where(code == KINDS.index("skip"), 2, 0))
        idx = np.where(self.resolution.unresolved, 3, idx)
        r = self.resolution
        return names[np.where(r.resolved, np.where(r.excluded, 5, 4), idx)]


def verdicts(store: ReviewStore | None, given: np.ndarray, num_classes: int, *,
             views: list[Decision] | None = None) -> Verdicts:  # fmt: skip
    """Resolve the decisions of ``store`` (None: nobody reviewed yet) for the ``given`` labels;
    from ``views`` (:meth:`ReviewStore.views`, read once by a caller that lists them too) when given."""
    g = np.asarray(given, dtype=np.int64)
    if store is None:
        s, labs = np.zeros(0, np.int64), np.zeros(0, np.int64)
        kind = np.full(g.size, -1, dtype=np.int8)
        rule = ConsensusRule()
    else:
        s, labs, kind = (store.vote_arrays() if views is None else vote_arrays(
            [(d.sample_id, d.kind, d.decision) for d in views], store.num_samples, store.classes, KINDS))
        rule = store.rule()
    k = int(num_classes)
    if s.size:  # K + 1 columns: the classes, and "no class" (the exclude votes)
        voted, inv = np.unique(s, return_inverse=True)
        votes = np.zeros((voted.size, k + 1), dtype=np.int64)
        np.add.at(votes, (inv, labs), 1)
    else:
        voted, votes = np.zeros(0, dtype=np.int64), np.zeros((0, k + 1), dtype=np.int64)
    return Verdicts(rule=rule, given=g, num_classes=k,
                    resolution=_scatter(resolve(votes, g[voted], rule, excluding=True), voted, g.size, rule),
                    latest_kind=kind)  # fmt: skip


def updated(v: Verdicts, store: ReviewStore, samples: np.ndarray) -> Verdicts:
    """``v`` with ``samples`` resolved again from ``store``'s rows now, every other sample as in
    ``v``: a decision changes the verdict of its own sample alone, so a review server resolves the
    samples decided since it last looked, not every stored decision again (which grew with the
    decisions: 1.2 s per decision at 100,000 of them)."""
    ids = np.unique(np.asarray(samples, dtype=np.int64))
    s, labs, kind = store.vote_arrays(ids.tolist())
    votes = np.zeros((ids.size, v.num_classes + 1), dtype=np.int64)
    np.add.at(votes, (np.searchsorted(ids, s), labs), 1)
    part, r = resolve(votes, v.given[ids], v.rule, excluding=True), v.resolution

    def patch(full: np.ndarray, x: np.ndarray) -> np.ndarray:
        out = full.copy()
        out[ids] = x
        return out

    latest = patch(v.latest_kind, kind[ids])
    return Verdicts(rule=v.rule, given=v.given, num_classes=v.num_classes, latest_kind=latest,
                    resolution=Resolution(**{f.name: patch(getattr(r, f.name), getattr(part, f.name))
                                             for f in fields(Resolution)}))  # fmt: skip


def _scatter(part: Resolution, ids: np.ndarray, n: int, rule: ConsensusRule) -> Resolution:
    """The resolution of the samples ``ids`` spread over all ``n``; the others have no votes:
    unresolved, their leading count the given label's vote when it counts."""
    def full(x: np.ndarray, fill: int | bool) -> np.ndarray:
        out = np.full(n, fill, dtype=x.dtype)
        out[ids] = x
        return out

    return Resolution(label=full(part.label, -1), resolved=full(part.resolved, False),
                      disputed=full(part.disputed, False), n_votes=full(part.n_votes, 0),
                      top=full(part.top, int(rule.count_given)), second=full(part.second, 0),
                      excluded=full(part.excluded, False))  # fmt: skip


def run_verdicts(run: Run, *, views: list[Decision] | None = None) -> Verdicts:
    """:func:`verdicts` of a run's ``reviews.db`` (from ``views`` read from it, when given)."""
    return verdicts(open_store(run), run.column("given_label_id"), len(run.classes), views=views)


def final_labels(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """``(label_id, review_decision)``: labels after the consensus relabels (-1 where excluded),
    and the decision text (:meth:`Verdicts.decision_text`)."""
    v = run_verdicts(run)
    return v.final, v.decision_text(run.classes)


def _needs(top: int, second: int, n_votes: int, rule: ConsensusRule) -> str:
    """What settles a sample whose leading class has ``top`` votes, the runner-up ``second``."""
    if n_votes == 0:  # only unsure / skip so far
        n = max(rule.agree - int(rule.count_given), 1)
        return "a label vote" if n == 1 else f"{n} agreeing label votes"
    if top >= rule.agree:
        return "a tie-break vote"
    n = rule.agree - top
    return f"{n} more agreeing vote{'s' if n > 1 else ''}"


def unresolved_table(run: Run, v: Verdicts | None = None, *, views: list[Decision] | None = None) -> pa.Table:
    """One row per sample with a decision but no consensus: ``id, external_id, given_label,
    status`` (``no consensus`` — votes that do not settle it —, or ``unsure`` / ``skip`` when its
    latest decision says so and no vote stands), ``votes`` (``"cat: ada, bob; dog: eve"``; the
    exclude votes as :data:`EXCLUDE_VOTES`),
    ``n_votes`` and ``needs`` (what would settle it). Give ``v`` with the ``views`` it was resolved
    from (:func:`run_verdicts`), or neither: votes stored between two reads would make ``votes``
    contradict ``n_votes``."""
    store = open_store(run)
    if v is None:
        views = store.views() if store is not None else []
        v = run_verdicts(run, views=views)
    r = v.resolution
    ids = np.flatnonzero(v.without_consensus)
    by: dict[int, dict[str, list[str]]] = {}
    for d in (views if views is not None else store.views()) if store is not None and ids.size else []:
        if d.kind in ("label", "exclude"):
            what = d.decision if d.kind == "label" else EXCLUDE_VOTES
            by.setdefault(d.sample_id, {}).setdefault(what, []).append(d.reviewer)
    text = ["; ".join(f"{c}: {', '.join(who)}" for c, who in sorted(by.get(i, {}).items()))
            for i in ids.tolist()]  # fmt: skip
    needs = [_needs(t, s, n, v.rule) for t, s, n in zip(r.top[ids].tolist(), r.second[ids].tolist(),
                                                         r.n_votes[ids].tolist(), strict=True)]  # fmt: skip
    classes = np.asarray(run.classes, dtype=object)
    return pa.table({
        "id": pa.array(ids.astype(np.int64)),
        "external_id": run.samples.column("external_id").take(pa.array(ids)),
        "given_label": pa.array(classes[v.given[ids]].tolist(), pa.string()),
        "status": pa.array(v.status_text()[ids].tolist(), pa.string()),
        "votes": pa.array(text, pa.string()),
        "n_votes": pa.array(r.n_votes[ids]),
        "needs": pa.array(needs, pa.string()),
    })  # fmt: skip
