"""The live review queue: re-ranked in the background as decisions arrive.

The review app serves samples in queue order. With a live queue, every ``every`` settled
samples the model's posterior is refreshed from the corrected labels and the samples *not yet
reached* are re-ranked — by the same machinery as the simulator's active loop: a
:class:`~labeltrace.relabel.campaign.Campaign` holds the ranking (each consensus label is
recorded as one settling vote), its :attr:`~labeltrace.relabel.campaign.Campaign.update_due`
says when a refresh is due, and the refresh is an ``update_posterior`` callable
(:class:`~labeltrace.relabel.propagation.LabelPropagation`, or a head refit
:class:`~labeltrace.relabel.head.HeadRetrainer`) whose result
:meth:`~labeltrace.relabel.campaign.Campaign.set_posterior` installs.

The refresh runs in a background thread, so no decision waits for it; the order in use until
it finishes stays valid. The samples a reviewer has been shown and the samples already decided
(``pinned``) never move: a re-ranking reorders only the other samples, among the other positions,
so the page's position numbers and the *previous* key keep their meaning. The other positions
take the new ranking from where the reviewers are: each reviewer active in the last
:data:`ACTIVE` seconds (whose tab has not said it closed: :meth:`LiveQueue.leave`) is at the
position they were last shown, and the most suspect samples are
dealt in turn to the free positions right after each such place (the first to the first free
position after each reviewer, then the second ...), so every reviewer's next samples are live
picks; free positions behind every such reviewer (ones a jump, a link or a find passed over) get
the rest. So one look far down the queue moves nothing before it — it had frozen every position
before it for everyone, as a decision there (a script's, another tool's) still does not — and a
reviewer who jumped and walked on from there is served the live picks ahead of them. Each page
(browser tab) that sends its id has a place of its own; pages that send none share one per name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from labeltrace.relabel.arrays import unpack_update
from labeltrace.relabel.campaign import Campaign, UpdateFn
from labeltrace.relabel.head import HeadConfig, HeadRetrainer
from labeltrace.relabel.propagation import LabelPropagation, neighbour_graph

__all__ = ["ACTIVE", "LiveConfig", "LiveQueue", "TimedUpdate", "build_updater"]

#: the most pages (browser tabs) of one named viewer whose places count: the newest (a script sending
#: a new page id with every request would otherwise deal the picks behind every place it passed)
PAGES = 4
#: how long after a reviewer was last shown a sample their place still steers where a re-ranking
#: puts the most suspect samples (ten minutes: a reviewer reading, not one who left)
ACTIVE = 600.0


@dataclass(frozen=True)
class LiveConfig:
    """How a live queue refreshes.

    Attributes
    ----------
    method : ``"propagation"`` (corrected labels shift their neighbours' posteriors, milliseconds;
        :mod:`labeltrace.relabel.propagation`) or ``"head"`` (retrain a head on the features
        with the corrected labels, seconds to minutes).
    every : settled samples between refreshes.
    k, strength : the neighbours and ``λ`` of label propagation.
    """

    method: Literal["propagation", "head"] = "propagation"
    every: int = 20
    k: int = 10
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in ("propagation", "head"):
            raise ValueError(f"live method must be 'propagation' or 'head', got {self.method!r}")
        if isinstance(self.every, bool) or int(self.every) != self.every or self.every < 1:
            raise ValueError(f"live re-ranking needs every >= 1 decision, got {self.every!r}")


class TimedUpdate:
    """An ``update_posterior`` that counts its calls and their wall time (``calls``,
    ``seconds``)."""

    def __init__(self, update: UpdateFn) -> None:
        self.update = update
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, labels: np.ndarray) -> Any:
        t0 = time.perf_counter()
        try:
            return self.update(labels)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - t0


def build_updater(
    config: LiveConfig,
    features: np.ndarray,
    *,
    posterior: np.ndarray,
    labels: np.ndarray,
    sei: np.ndarray | None = None,
    head: HeadConfig = HeadConfig(),
    neighbours: np.ndarray | None = None,
) -> TimedUpdate:
    """The refresh of ``config.method`` — what the simulator's active loop and the review app's
    live queue both call.

    ``features`` are standardised (N, D); ``posterior`` / ``sei`` the model's output on
    ``labels``, which label propagation starts from (``neighbours``: a precomputed
    :func:`~labeltrace.relabel.propagation.neighbour_graph`, else computed here); ``head`` the
    head a refit trains (its ``folds`` say in-sample or cross-fitted).
    """
    if config.method == "propagation":
        nb = neighbour_graph(features, k=config.k) if neighbours is None else neighbours
        return TimedUpdate(LabelPropagation(nb, posterior, labels, strength=config.strength,
                                            sei=sei))  # fmt: skip
    k = int(np.asarray(posterior).shape[1])
    return TimedUpdate(HeadRetrainer(features, num_classes=k, config=head))


class LiveQueue:
    """A review order that re-ranks itself in the background (module docstring).

    Parameters
    ----------
    order : (Q,) sample ids in the initial review order (a subset of 0..N-1).
    campaign : the ranking state, built on the given labels with ``budget=None``,
        ``count_initial_label=False``, ``update_every`` set and no ``update_posterior``.
    updater : ``labels (N,) -> posterior`` or ``(posterior, sei)``: the refresh.
    background : refresh in a thread (the app); False refreshes inside :meth:`sync` (tests,
        scripts).
    log : told when a refresh fails (the queue then keeps its order).
    clock : seconds, monotonic (tests pass their own): when each reviewer was last shown a sample.

    Attributes
    ----------
    version : refreshes installed so far; ``seconds`` their total time; ``error`` the last
        failure, or None.
    """

    def __init__(
        self,
        order: np.ndarray,
        campaign: Campaign,
        updater: UpdateFn,
        *,
        background: bool = True,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if campaign.update_every is None or campaign.update_posterior is not None:
            raise ValueError("a live queue's campaign needs update_every and no update_posterior")
        self._order = np.asarray(order, dtype=np.int64).copy()
        self.members = np.zeros(campaign.num_samples, dtype=bool)
        self.members[self._order] = True
        self.campaign = campaign
        self.updater = updater
        self.background = bool(background)
        self.log = log
        self.pinned = np.zeros(campaign.num_samples, dtype=bool)  # decided: kept where they are
        self.shown = np.zeros(campaign.num_samples, dtype=bool)  # shown to a reviewer: kept too
        self._clock = clock
        self._places: dict[tuple[str | None, str | None], tuple[float, int]] = {}  # (viewer, page) -> (when, pos)
        self.version = 0
        self.seconds = 0.0
        self.error: str | None = None
        self._labels = campaign.labels.copy()
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._running = False  # set and cleared under the lock: a decision never sees a refresh ending

    # ------------------------------------------------------------------ reads
    @property
    def order(self) -> np.ndarray:
        """(Q,) the current review order (a new array after each re-ranking; do not modify)."""
        return self._order

    @property
    def refreshing(self) -> bool:
        """A refresh is running."""
        return self._running

    def status(self) -> dict[str, Any]:
        """What the page shows: refreshes so far, whether one runs, decisions until the next."""
        c = self.campaign
        every = int(c.update_every or 0)
        return {"version": self.version, "refreshing": self.refreshing, "every": every,
                "settled": int(c.relabels_used), "error": self.error,
                "until_next": c.until_update}  # fmt: skip

    # ------------------------------------------------------------------ writes
    def sync(self, labels: np.ndarray, resolved: np.ndarray, reached: int = 0,
             pinned: np.ndarray | None = None) -> bool:  # fmt: skip
        """Take in the decisions so far and start a refresh when one is due.

        ``labels`` (N,) are the current labels (consensus where resolved, given elsewhere; -1
        where a consensus excluded the sample: it is settled with the label it had, and the
        refresh is given -1 there, which leaves it out — :class:`LabelPropagation` and
        :class:`HeadRetrainer` mask it), ``resolved`` (N,) the samples that have a consensus, ``reached`` a number of leading
        positions shown by other means than :meth:`show` (their samples keep their place; 0:
        none), ``pinned`` (N,) bool the samples with a decision (they keep their position wherever
        it is; default: the resolved ones). Returns whether a refresh started.
        """
        with self._lock:
            c = self.campaign
            res = np.asarray(resolved, dtype=bool)
            new = np.flatnonzero(res & ~c.settled)
            labs = np.asarray(labels, dtype=np.int64)[new]
            labs = np.where(labs < 0, c.labels[new], labs)  # excluded: settled, with the label it had
            c.settle_all(new, labs)  # one vote settles each (no initial vote)
            self._labels = np.asarray(labels, dtype=np.int64).copy()
            self.pinned |= res if pinned is None else np.asarray(pinned, dtype=bool)
            self.shown[self._order[: max(int(reached), 0)]] = True
            if not c.update_due or self.refreshing:
                return False
            snapshot, as_of = self._labels.copy(), c.relabels_used
            if not self.background:
                self._refresh(snapshot, as_of)
                return True
            self._running = True
            self._thread = threading.Thread(target=self._refreshes, args=(snapshot, as_of), daemon=True,
                                            name="labeltrace-live-rerank")  # fmt: skip
            self._thread.start()
            return True

    def show(self, pos: int, viewer: str | None = None, page: str | None = None, *, steer: bool = True) -> int:
        """The sample at position ``pos``, now shown to ``viewer`` (a reviewer's name; None for a
        nameless page) on ``page`` (a browser tab's id; None when the page sends none): it keeps
        its position, and that page's place steers the next re-ranking (module docstring). One
        step under the lock, so a refresh cannot install a new order between the reading and the
        marking (the reviewer would be shown a sample the new order had moved). ``steer=False``: an
        older request of the page answered late — the sample stays where it is, the page's place
        where its latest request put it."""
        with self._lock:
            pos = int(pos)
            i = int(self._order[pos])
            self.shown[i] = True
            if not steer:
                return i
            now = self._clock()
            for who in [w for w, (t, _) in self._places.items() if now - t >= ACTIVE]:
                del self._places[who]  # gone: no longer steers, and the map holds the active ones only
            self._places.pop((viewer, page), None)  # re-inserted: the map runs oldest first
            self._places[(viewer, page)] = (now, pos)
            mine = [k for k in self._places if k[0] == viewer] if viewer is not None else []
            for k in mine[: max(0, len(mine) - PAGES)]:  # a named viewer's oldest pages beyond PAGES
                del self._places[k]
            return i

    def leave(self, viewer: str | None, page: str) -> None:
        """``page`` of ``viewer`` was closed: its place no longer steers a re-ranking (it had for
        :data:`ACTIVE` seconds, the most suspect samples dealt behind a reviewer who had gone)."""
        with self._lock:
            self._places.pop((viewer, page), None)

    def places(self) -> np.ndarray:
        """The positions the reviewers active in the last :data:`ACTIVE` seconds were last shown,
        sorted, each once: where a re-ranking deals its most suspect samples."""
        with self._lock:
            now = self._clock()
            return np.unique(np.array([p for t, p in self._places.values() if now - t < ACTIVE], dtype=np.int64))

    def start(self) -> int:
        """The earliest of :meth:`places` (0 when no reviewer is active)."""
        at = self.places()
        return int(at[0]) if at.size else 0

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running refresh; True when none runs any more."""
        th = self._thread
        if th is not None:
            th.join(timeout)
        return not self.refreshing

    def _refreshes(self, labels: np.ndarray, as_of: int) -> None:
        """The background thread: a refresh, then another at once while the decisions settled
        during the last one make one due (they had waited for the next decision to arrive)."""
        try:
            while True:
                done = self._refresh(labels, as_of)
                with self._lock:  # cleared once, under the lock: a decision after it starts the next
                    if not done or not self.campaign.update_due:
                        self._running = False
                        return
                    labels, as_of = self._labels.copy(), self.campaign.relabels_used
        except BaseException:
            with self._lock:  # no other refresh can have started: _running was set
                self._running = False
            raise

    def _refresh(self, labels: np.ndarray, as_of: int) -> bool:
        """Compute a posterior from ``labels`` (the ``as_of`` settled so far) and install it; the
        decisions that arrived meanwhile count towards the next refresh."""
        t0 = time.perf_counter()
        try:
            out = self.updater(labels)
            c = self.campaign
            post, sei = unpack_update(out, c.num_samples, c.num_classes)
        except Exception as exc:  # noqa: BLE001 - a failed refresh keeps the order; say why
            self.error = f"{type(exc).__name__}: {exc}"
            if self.log is not None:
                self.log(f"live re-ranking failed, the order stays as it was: {self.error}")
            return False
        with self._lock:
            self.campaign.set_posterior(post, sei, as_of=as_of)
            self._order = self._reordered()
            self.version += 1
            self.seconds += time.perf_counter() - t0
            self.error = None
        return True

    def _reordered(self) -> np.ndarray:
        """The shown and the pinned samples where they are; the other positions take the
        campaign's ranking of the remaining members, dealt in turn to the free positions after
        each active reviewer's place (:meth:`places`), then to those behind every one of them."""
        order = self._order
        keep = self.pinned[order] | self.shown[order]
        taken = np.zeros(self.members.size, dtype=bool)
        taken[order[keep]] = True
        ranked = self.campaign.ranking()
        ranked = ranked[self.members[ranked] & ~taken[ranked]]
        taken[ranked] = True
        rest = order[~taken[order]]  # settled but not pinned: after the ranked, in their order
        out = order.copy()
        out[_dealt(np.flatnonzero(~keep), self.places())] = np.concatenate([ranked, rest])
        return out


def _dealt(free: np.ndarray, places: np.ndarray) -> np.ndarray:
    """``free`` (ascending positions) in the order a re-ranking fills them: the k-th free position
    after each place (up to the next place) for k = 0, 1, ..., places in turn; then the free
    positions before every place, in order. Without places, ``free`` as it is."""
    if not places.size:
        return free
    seg = np.searchsorted(places, free, side="left") - 1  # the last place before each free position
    ahead = seg >= 0
    s = seg[ahead]
    first = np.searchsorted(s, s, side="left")  # s ascends: each position's index within its segment
    k = np.arange(s.size) - first
    return np.concatenate([free[ahead][np.lexsort((s, k))], free[~ahead]])
