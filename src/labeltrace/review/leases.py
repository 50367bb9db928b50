"""Which reviewer has which sample open: a short hold, so that a team's reviewers are sent to
different samples.

Without it every reviewer's "next" is the first sample not yet done, where the reviewer one step
ahead already sits: a team of five moved in lockstep and settled 106 samples with the 400
decisions that settle 400 (the others' decisions fell on samples already settled, or turned them
into ties; ``scripts/review_team_sim.py``). A sample shown to a named reviewer (or answered as
their next) is held for :data:`SECONDS`, until they decide it, open another or close the page
(its tab says so: :meth:`Leases.leave`); another reviewer's next sample skips it while it still
needs no more votes than the others holding it can give. A
held sample a reviewer walked away from is passed by the others' next samples and comes back at a
page's resume (where it starts, or reloads) once the hold lapses. Each page (browser tab, by the
id it sends) holds its own sample: a reviewer's second tab does not end the first one's hold, and
its next passes it; pages without a name that send their id hold for one another (each apart; a
named reviewer's pages count up to :data:`PAGES`). A resume passes only other named reviewers'
holds: a page that lost its id (closed and opened again) would otherwise skip its own sample.
Holds live in one server process: two servers on one run directory do not see each other's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

__all__ = ["PAGES", "SECONDS", "Leases"]

#: how long a sample shown to a reviewer stays theirs (about twenty reads of an image)
SECONDS = 120.0
#: the most pages (browser tabs) one named reviewer holds samples on: a newer page's hold ends the
#: oldest (a script sending a new page id with every request held every sample it opened)
PAGES = 4


class Leases:
    """The samples each reviewer has open; thread-safe."""

    def __init__(self, seconds: float = SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = float(seconds)
        self._clock = clock
        # sample -> (reviewer, page) -> (until, the take's number)
        self._held: dict[int, dict[tuple[str | None, str | None], tuple[float, int]]] = {}
        self._taken = 0
        self._numbers: dict[tuple[str | None, str], tuple[int, float]] = {}  # (reviewer, page) -> (latest seq, when)
        self._lock = threading.Lock()

    def take(self, sample: int, reviewer: str | None, page: str | None = None) -> None:
        """``reviewer`` is shown ``sample`` on ``page`` (a tab's id; None: a page that sends none):
        theirs for :attr:`seconds` (that page's earlier hold lapses: one page shows one sample; a
        second tab of theirs keeps its own)."""
        now = self._clock()
        key = (reviewer, page)
        with self._lock:
            self._drop_page(key)
            if reviewer is not None:  # a named reviewer's oldest pages beyond PAGES (nameless pages are apart)
                mine = sorted(((t, s, k) for s, who in self._held.items() for k, t in who.items() if k[0] == reviewer),
                              key=lambda h: h[0])  # fmt: skip
                for _, s, k in mine[: max(0, len(mine) - PAGES + 1)]:
                    self._drop(s, k.__eq__)
            self._taken += 1  # a later take sorts after an earlier one of the same clock reading
            self._held.setdefault(int(sample), {})[key] = (now + self.seconds, self._taken)
            self._expire(now)

    def latest(self, reviewer: str | None, page: str | None, seq: int | None) -> bool:
        """Whether ``page``'s request numbered ``seq`` is the latest it has sent (None: a request
        that says no number — always). A reviewer's quick arrow keys send several requests at once,
        which the server may answer out of order: an older one's hold would land on a sample the
        page passed over. A page's numbers are remembered for :attr:`seconds`, as long as a hold
        (a clock set back across a reload costs at most that long)."""
        if seq is None or page is None:
            return True
        now = self._clock()
        with self._lock:
            for k in [k for k, (_, t) in self._numbers.items() if now - t >= self.seconds]:
                del self._numbers[k]
            last = self._numbers.get((reviewer, page))
            if last is not None and seq < last[0]:
                return False
            self._numbers[(reviewer, page)] = (int(seq), now)
            return True

    def leave(self, reviewer: str | None, page: str) -> None:
        """``page`` of ``reviewer`` was closed: the sample it showed is no longer held (it had been
        for :attr:`seconds`, passed by the others' next samples)."""
        with self._lock:
            self._drop_page((reviewer, page))

    def release(self, sample: int, reviewer: str | None) -> None:
        """``reviewer`` decided ``sample``: no longer held for them (on any page of theirs)."""
        with self._lock:
            self._drop(int(sample), lambda k: k[0] == reviewer)

    def held_by_others(self, reviewer: str | None, n: int, page: str | None = None) -> np.ndarray:
        """(n,) int: how many other named reviewers hold each sample now; for a nameless page that
        says its id (``page``), also the other nameless pages that said theirs (a nameless team
        with one vote settling); other nameless holds count for no one (a page that sends no id
        is a lone reviewer's, or every such page's at once)."""
        out = np.zeros(n, dtype=np.int64)
        now = self._clock()
        nameless = reviewer is None and page is not None
        with self._lock:
            self._expire(now)
            for s, who in self._held.items():
                if 0 <= s < n:
                    out[s] = len({(r, None if r is not None else p) for r, p in who
                                  if (r is not None and r != reviewer)
                                  or (nameless and r is None and p is not None and p != page)})  # fmt: skip
        return out

    def free(self, need: np.ndarray, reviewer: str | None, page: str | None, *, blind: bool = False) -> np.ndarray:
        """(N,) bool: the samples whose other holders (:meth:`held_by_others`) leave ``need`` (N,)
        votes to give — all of them on a ``blind`` review, where each reviewer reads every sample —
        and, for ``page``, not open in the same reviewer's other tabs (blind too: a reviewer's own
        tabs reveal no one)."""
        n = int(need.size)
        free = np.ones(n, dtype=bool) if blind else self.held_by_others(reviewer, n, page) < need
        if reviewer is not None and page is not None:
            free &= ~self.held_elsewhere(reviewer, page, n)
        return free

    def held_elsewhere(self, reviewer: str, page: str, n: int) -> np.ndarray:
        """(n,) bool: the samples ``reviewer`` holds open on pages other than ``page`` (their other
        tabs: not this tab's next sample)."""
        out = np.zeros(n, dtype=bool)
        now = self._clock()
        with self._lock:
            self._expire(now)
            for s, who in self._held.items():
                if 0 <= s < n and any(r == reviewer and p != page for r, p in who):
                    out[s] = True
        return out

    def _drop_page(self, key: tuple[str | None, str | None]) -> None:
        for s in [s for s, who in self._held.items() if key in who]:
            self._drop(s, key.__eq__)

    def _drop(self, sample: int, which: Callable[[tuple[str | None, str | None]], bool]) -> None:
        who = self._held.get(sample)
        if who is not None:
            for k in [k for k in who if which(k)]:
                del who[k]
            if not who:
                del self._held[sample]

    def _expire(self, now: float) -> None:
        for s in list(self._held):
            who = self._held[s]
            for r in [r for r, (until, _) in who.items() if until <= now]:
                del who[r]
            if not who:
                del self._held[s]
