"""The review app's state, shared by all requests: the run, its (live) order, the decisions and
their consensus, and each sample's context. No web stack here; :mod:`labeltrace.review.app`
maps it to routes.

Positions a reviewer has been shown, and the decided samples' positions, keep their samples
when a live queue re-ranks; look-aheads (``peek``) do not count. A live queue
(:mod:`labeltrace.review.live_queue`) without a queue file (``labeltrace queue``) serves its own
ranking from the start (the default queue method on the run's posterior, what ``labeltrace
queue`` would write) rather than the scan's rank, so a re-ranking moves samples only when the
decisions changed what the model sees.

Who has done what: a sample is **done for reviewer X** when its votes settle it (the consensus
rule, to a class or as excluded), when X's own latest decision on it is a label, an *exclude* or
*unsure*, or — under single-expert
review (``agree == 1``) — when its latest decision, by anyone, is *unsure* and nobody voted a
label. Without a reviewer name the page falls back to "anyone": done when settled or — when one
vote settles a sample (``agree == 1`` without ``count_given``) — when the latest decision is a
label, an *exclude* or *unsure*; otherwise only a consensus makes a sample done for a page without a name (and such a page cannot decide: the
app asks for a name, or every nameless vote would count as one "anonymous" reviewer). *Skip* never makes a sample done. Progress, the resume
position and the next position after a decision all follow this.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from labeltrace.relabel.arrays import decision_arrays
from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.decisions import KINDS
from labeltrace.relabel.features import check_features_file
from labeltrace.relabel.live import LiveConfig, LiveQueue
from labeltrace.relabel.order import review_order
from labeltrace.relabel.posterior import queue_posterior
from labeltrace.relabel.queue import DEFAULT_METHOD, queue_meta
from labeltrace.relabel.runstore import run_store
from labeltrace.relabel.verdicts import Verdicts, updated, verdicts
from labeltrace.review.context import ReviewContext
from labeltrace.review.leases import Leases
from labeltrace.review.live_queue import live_queue
from labeltrace.rundir import QUEUE, Run

__all__ = ["ReviewState"]

_LABEL, _UNSURE, _SKIP, _EXCLUDE = (KINDS.index(k) for k in ("label", "unsure", "skip", "exclude"))
#: samples decided since the last look up to which they alone are resolved again (one SQL parameter
#: each); more (another process imported a file) and every decision is resolved again
_INCREMENTAL = 500
#: reviewers whose latest kinds are kept between requests (the most recently asked)
_KINDS_KEPT = 32


class ReviewState:
    """The run under review (module docstring).

    Parameters
    ----------
    run : the run.
    reviewer : default reviewer name of decisions that carry none.
    consensus : store this consensus rule with the decisions (None keeps the stored one).
    live : re-rank the queue as decisions arrive (None: a fixed order).
    features : an (N, D) ``.npy`` to use as the run's features (neighbours, live refreshes).
    log : told about background failures.
    """

    def __init__(
        self,
        run: Run,
        *,
        reviewer: str | None = None,
        consensus: ConsensusRule | None = None,
        live: LiveConfig | None = None,
        features: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.run = run
        # a blind review (labeltrace.review.blind): a sample is done for a reviewer by their own
        # decisions alone — the others' votes, which settle samples, must not move the page
        self.own_only = False
        if features is not None:  # at startup, not as a "features are missing" on the page later
            check_features_file(features, run.num_samples)
        self.classes = run.classes
        # the store keeps names whitespace-collapsed: compare with the same form
        self.reviewer = None if reviewer is None else (" ".join(reviewer.split()) or None)
        self.given = run.column("given_label_id").astype(np.int64)
        self.suggested = run.column("suggested_label_id").astype(np.int64)
        self.suggested_prob = run.column("suggested_prob").astype(np.float64)
        self.score = run.column("score").astype(np.float64)
        self.rank = run.column("rank").astype(np.int64)
        self.store = run_store(run)
        if consensus is not None:
            before = self.store.rule()
            if before != consensus and self.store.last_seq() > 0:
                warnings.warn(f"the consensus rule stored with this run's decisions changes from "
                              f"{before.describe()} to {consensus.describe()}; a review server still "
                              "running on it follows the new rule from its next request",
                              UserWarning, stacklevel=2)  # fmt: skip
            self.store.set_rule(consensus)
        self.context = ReviewContext(run, features=features)
        self.features = features
        self._static = review_order(run)
        self._positions: tuple[np.ndarray | None, np.ndarray] = (None, np.zeros(0, dtype=np.int64))
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._show_lock = threading.Lock()
        self._posterior: np.ndarray | None = None
        self.leases = Leases()  # the samples each reviewer has open: a team's next samples differ
        self._verdicts: tuple[int, Verdicts] | None = None
        self._kinds: dict[str, tuple[int, np.ndarray]] = {}  # per reviewer: (seq, latest kinds)
        self._queue = queue_meta(run.path / QUEUE) or {}
        self.method = self._queue.get("method", DEFAULT_METHOD)
        self.live = self._live(live, log) if live is not None else None
        if self.live is not None:
            self.sync()

    # ------------------------------------------------------------------ the model
    def base_posterior(self) -> np.ndarray | None:
        """The queue's posterior (the window the queue file names), or None without a recording."""
        with self._lock:
            if self._posterior is None:
                try:
                    self._posterior = queue_posterior(self.run, self._queue.get("posterior", "auto")).probs
                except ValueError:
                    return None
            return self._posterior

    def posterior(self) -> np.ndarray | None:
        """The posterior in use now: the live queue's latest, else the queue's."""
        if self.live is not None and self.live.campaign.posterior is not None:
            return self.live.campaign.posterior
        return self.base_posterior()

    def _live(self, config: LiveConfig, log: Callable[[str], None] | None) -> LiveQueue:
        post = self.base_posterior()
        if post is None:
            raise ValueError(f"{self.run.path}: live re-ranking needs the run's recorded posterior")
        live, self._static = live_queue(self.run, config, order=self._static, posterior=post, given=self.given,
                                        method=self.method, queue=self._queue, context=self.context,
                                        features=self.features, log=log)  # fmt: skip
        return live

    # ------------------------------------------------------------------ the order
    def order(self) -> np.ndarray:
        """Sample ids in review order now."""
        return self.live.order if self.live is not None else self._static

    def positions(self, order: np.ndarray | None = None) -> np.ndarray:
        """(N,) each sample's position in ``order`` (default :meth:`order`; -1 when not queued)."""
        order = self.order() if order is None else order
        key, pos = self._positions
        if key is not order:  # the cache holds the order itself: an id() could be a freed one's
            pos = np.full(self.run.num_samples, -1, dtype=np.int64)
            pos[order] = np.arange(order.size)
            self._positions = (order, pos)
        return pos

    # ------------------------------------------------------------------ decisions
    @property
    def rule(self) -> ConsensusRule:
        """The consensus rule stored with the decisions, read afresh: another server on the same
        run may have stored another since this one started."""
        return self.store.rule()

    def verdicts(self) -> Verdicts:
        """The decisions resolved now: resolved again only after a new decision or a new rule (of
        any process), so the several reads of one request, and the requests between decisions,
        share one."""
        seq, rule = self.store.last_seq(), self.store.rule()
        cached = self._verdicts
        if cached is not None and cached[1].rule == rule:
            if cached[0] == seq:
                return cached[1]
            if seq > cached[0]:  # the samples decided since: resolved again, the others kept
                touched = {r[0] for r in self.store.rows_since(cached[0])}
                if len(touched) <= _INCREMENTAL:
                    v = updated(cached[1], self.store, np.fromiter(touched, np.int64, len(touched)))
                    self._verdicts = (seq, v)
                    return v
        v = verdicts(self.store, self.given, len(self.classes))
        self._verdicts = (seq, v)
        return v

    def kinds_of(self, reviewer: str) -> np.ndarray:
        """(N,) kind codes of ``reviewer``'s latest decisions (:meth:`ReviewStore.current_arrays`),
        read again only after a new decision: a request asks for them several times."""
        seq = self.store.last_seq()
        cached = self._kinds.get(reviewer)
        if cached is not None and cached[0] == seq:
            return cached[1]
        if cached is not None and seq > cached[0]:  # the rows since: each sample's newest one, on a copy
            newest = {r[0]: r for r in self.store.rows_since(cached[0], reviewer)}
            code = decision_arrays(list(newest.values()), self.run.num_samples, self.classes, KINDS)[0]
            kinds = cached[1].copy()
            at = np.fromiter(newest, np.int64, len(newest))
            kinds[at] = code[at]
        else:
            kinds = self.store.current_arrays(reviewer)[0]
        kinds.flags.writeable = False  # shared by the readers of one request
        self._kinds.pop(reviewer, None)
        self._kinds[reviewer] = (seq, kinds)  # the most recent last; a page's every name kept would grow
        while len(self._kinds) > _KINDS_KEPT:
            self._kinds.pop(next(iter(self._kinds)), None)
        return kinds

    def done(self, v: Verdicts, reviewer: str | None) -> np.ndarray:
        """(N,) bool: samples done for ``reviewer`` (module docstring)."""
        r = v.resolution
        if reviewer is None:
            return v.reviewed
        mine = np.isin(self.kinds_of(reviewer), (_LABEL, _UNSURE, _EXCLUDE))  # a vote, or unsure
        if self.own_only:
            return mine
        closed = v.rule.one_vote_settles & (r.n_votes == 0) & (v.latest_kind == _UNSURE)
        return r.resolved | mine | closed

    def show(self, pos: int, reviewer: str | None = None, page: str | None = None, seq: int | None = None) -> int:
        """The sample at position ``pos``, shown to ``reviewer`` on ``page``: held for them, and a
        live re-ranking keeps it where it is and deals its most suspect samples to the positions
        after each active reviewer's (read and marked in one step; :meth:`LiveQueue.show`) — unless
        the page's request numbered ``seq`` was overtaken by a later one of it (:meth:`Leases.latest`:
        then the hold and the place stay where the later one put them)."""
        with self._show_lock:  # the check and the hold in one step: two requests of a page interleaved
            return self._show(pos, reviewer, page, seq)

    def show_resume(self, reviewer: str | None, page: str | None = None, seq: int | None = None
                    ) -> tuple[int, int]:  # fmt: skip
        """The position a page opens at (:meth:`progress`'s ``resume``, the last one when every one is
        done) and its sample, found and shown (:meth:`show`) in one step: two reviewers opening the
        page at once were both sent to the first free sample, read before either had it open."""
        with self._show_lock:
            order = self.order()
            pos = min(self._resume(self.verdicts(), reviewer, order), max(order.size - 1, 0))
            return pos, self._show(pos, reviewer, page, seq, order)

    def show_next(self, after: int, reviewer: str | None, order: np.ndarray, page: str | None = None,
                  seq: int | None = None) -> int:  # fmt: skip
        """:meth:`next_position` after ``after`` in ``order``, shown to ``reviewer`` when it lies in the
        queue (in one step, as :meth:`show_resume`: two reviewers deciding at once were sent to one
        sample)."""
        with self._show_lock:
            nxt = self.next_position(after, reviewer, order, page)
            if nxt < order.size:  # held for this page from now: a colleague deciding meanwhile is sent
                self._show(nxt, reviewer, page, seq, order)  # elsewhere; a live refresh keeps it at nxt
            return nxt

    def _show(self, pos: int, reviewer: str | None, page: str | None, seq: int | None,
              order: np.ndarray | None = None) -> int:  # fmt: skip
        latest = self.leases.latest(reviewer, page, seq)
        if self.live is not None:
            i = self.live.show(pos, reviewer, page, steer=latest)
        else:
            i = int((self._static if order is None else order)[pos])
        if latest:
            self.leases.take(i, reviewer, page)
        return i

    def leave(self, reviewer: str | None, page: str, seq: int | None = None) -> None:
        """``reviewer``'s ``page`` (a tab's id) was closed: it neither holds its sample nor steers a
        live re-ranking any longer — unless a later request of that page id (``seq``, the closing
        page's number) has come first: a reload's new page, whose hold stands."""
        with self._show_lock:
            if not self.leases.latest(reviewer, page, seq):
                return
            self.leases.leave(reviewer, page)
            if self.live is not None:
                self.live.leave(reviewer, page)

    def sync(self) -> None:
        """Pass the decisions to the live queue (a refresh starts when one is due)."""
        if self.live is None:
            return
        with self._sync_lock:  # two requests' verdicts reach the queue in the order they were read
            v = self.verdicts()
            # the decided samples keep their positions, wherever they are (one decision at the
            # end of the queue moves nothing else), as do the samples shown (LiveQueue.show);
            # an excluded sample's label is -1: the refresh leaves it out (LiveQueue.sync)
            self.live.sync(v.final, v.resolution.resolved, pinned=v.latest_kind >= 0)

    def progress(self, reviewer: str | None) -> dict[str, Any]:
        """Counts over the queue for ``reviewer`` and the first position not done for them (nor
        open on another reviewer's page: :meth:`_free` without a page — a resume does not pass the
        holds of the reviewer's other tabs or of nameless pages, which may be their own tab under
        an id it lost, closed and opened again)."""
        v = self.verdicts()
        order = self.order()
        done = self.done(v, reviewer)[order]
        if reviewer is None:
            skipped = v.latest_kind[order] == _SKIP
        else:
            skipped = self.kinds_of(reviewer)[order] == _SKIP
        r = v.resolution
        return {
            "total": int(order.size),
            "reviewed": int(done.sum()),
            "changed": int(v.changed[order].sum()),
            "excluded": int(v.excluded[order].sum()),
            "skipped": int((skipped & ~done).sum()),
            "resume": self._resume(v, reviewer, order),
            "resolved": int(r.resolved[order].sum()),
            "disputed": int(r.disputed[order].sum()),
            "unresolved": int(r.unresolved[order].sum()),  # label votes that do not settle it yet
            # every sample decided without a consensus (votes, or only unsure / skip): what
            # review --export lists in its .unresolved.csv
            "without_consensus": int(v.without_consensus.sum()),  # every sample, not the queue's
            "rule": {"agree": v.rule.agree, "count_given": v.rule.count_given,
                     "names": not v.rule.one_vote_settles, "text": v.rule.describe()},  # fmt: skip
            "live": self.live.status() if self.live is not None else None,
        }

    def _resume(self, v: Verdicts, reviewer: str | None, order: np.ndarray) -> int:
        """:meth:`progress`'s ``resume``: the first position not done for ``reviewer`` nor open on
        another reviewer's page, else the first not done, else ``order.size``."""
        pending = np.flatnonzero(~self.done(v, reviewer)[order])
        free = pending[self._free(v, reviewer, order)[pending]]  # not open on another reviewer's page
        return int(free[0]) if free.size else int(pending[0]) if pending.size else int(order.size)

    def next_position(self, after: int, reviewer: str | None, order: np.ndarray | None = None,
                      page: str | None = None) -> int:  # fmt: skip
        """The first position after ``after`` in ``order`` (default :meth:`order`) not done for
        ``reviewer`` — and not open on other reviewers' pages that give it the votes it needs
        (:mod:`labeltrace.review.leases`), nor on this reviewer's other tabs than ``page``, when
        there is such a one —, wrapping around to the start when every later one is done (a decision
        at the end of the queue left the page there, the earlier open samples unsaid); ``after + 1``
        when every other one is done."""
        v = self.verdicts()
        order = self.order() if order is None else order
        todo = ~self.done(v, reviewer)[order]
        todo[after] = False  # the sample just decided is not its own next (an unsure keeps it open)
        turn = np.roll(np.arange(order.size), -(after + 1))  # the positions after ``after``, then the start
        todo, free = todo[turn], self._free(v, reviewer, order, page)[turn]
        pick = np.flatnonzero(todo & free)
        if not pick.size:
            pick = np.flatnonzero(todo)
        return int(turn[pick[0]]) if pick.size else after + 1

    def _free(self, v: Verdicts, reviewer: str | None, order: np.ndarray, page: str | None = None) -> np.ndarray:
        """(len(order),) bool: :meth:`Leases.free` for the votes each sample still needs."""
        need = np.maximum(v.rule.agree - v.resolution.n_votes, 1)
        return self.leases.free(need, reviewer, page, blind=self.own_only)[order]

    def find(self, after: int, what: str, reviewer: str | None = None, page: str | None = None
             ) -> tuple[int | None, int]:  # fmt: skip
        """The first position after ``after`` (wrapping around to the start) whose sample is
        ``what`` — ``"disputed"`` (label votes that disagree), ``"unsure"`` (its latest decision,
        by anyone, is unsure, and no label votes settle it) or ``"unresolved"`` (decided without a consensus: what ``review
        --export`` lists in its .unresolved.csv) — and how many positions are; None when none.
        One that other reviewers' open pages give the votes it needs is passed over while
        another is left (:meth:`next_position`'s rule: two reviewers settling what the others
        left open were sent to the same sample)."""
        v = self.verdicts()
        r = v.resolution
        masks = {"disputed": r.disputed, "unsure": v.status_text() == "unsure",  # as the export's status says
                 "unresolved": v.without_consensus}  # fmt: skip
        if what not in masks:
            raise ValueError(f"what must be one of {', '.join(masks)}")
        order = self.order()
        hit = masks[what][order]
        hits = np.flatnonzero(hit)
        if not hits.size:
            return None, 0
        if hits.size > 1 and 0 <= after < hit.size:
            hit[after] = False  # another one, not the sample the page shows
        pick = np.flatnonzero(hit & self._free(v, reviewer, order, page))
        if not pick.size:  # held by others only when none is free
            pick = np.flatnonzero(hit)
        later = pick[pick > after]
        return int(later[0] if later.size else pick[0]), int(hits.size)
