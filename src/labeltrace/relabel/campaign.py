"""A relabeling campaign as a state that advances one vote at a time.

The rules (Bernhardt et al., Nat. Commun. 2022; the simulator's, and the review loop's):

* a :mod:`priority <labeltrace.relabel.priority>` rule ranks the samples; the highest-ranked
  sample not yet *settled* is relabelled, **one vote per relabel**, until the top label of the
  votes collected for it has a strict majority over the second. With
  ``count_initial_label=True`` (the paper's choice) the initial label counts as one vote: a
  sample whose annotators agree with its label settles in one relabel, a wrong label needs at
  least two (the first correct vote only ties it). ``False`` makes the first vote decide
  (single-expert review); ``agree=R`` also asks the leading label for at least ``R`` votes
  (:mod:`labeltrace.relabel.consensus`, the review app's rule). The sample then takes the
  majority label and is never picked again;
* the campaign stops exactly when its budget of relabels is spent; a sample still short of a
  majority at that moment keeps its previous label (:attr:`Campaign.in_progress`);
* **re-ranking.** Rules are per-sample, so the ranking only changes when the model does:
  :meth:`Campaign.set_posterior` installs a new posterior (and SEI) and re-ranks the unsettled
  samples from it and the current label counts. With ``update_every=M`` the campaign reports
  :attr:`Campaign.update_due` at the first sample boundary after every ``M`` relabels; with an
  ``update_posterior(labels)`` callback it refits there itself (the simulator's active loop).
  A caller that refits elsewhere (a background thread of the review app) leaves the callback
  out, watches ``update_due`` and calls ``set_posterior`` whenever its model is ready.

Who votes is pluggable: :meth:`Campaign.step` asks an :class:`~labeltrace.relabel.annotator.
Annotator` for the vote of :meth:`Campaign.next_sample`; a human loop calls ``next_sample`` and
:meth:`Campaign.record` itself. Nothing here knows the true labels: the curves of a simulated
campaign are computed from its :class:`CampaignLog` by :mod:`labeltrace.relabel.result`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from labeltrace._checks import check_int, id_list, listing
from labeltrace.relabel.annotator import Annotator
from labeltrace.relabel.arrays import (
    as_class,
    as_whole,
    check_label_vector,
    check_posterior,
    check_vector,
    unpack_update,
)
from labeltrace.relabel.consensus import settles
from labeltrace.relabel.priority import DEFAULT_GAMMA, Priority, PriorityFn, resolve
from labeltrace.relabel.steps import CampaignLog, Step

__all__ = ["Campaign", "CampaignLog", "Step", "UpdateFn"]

UpdateFn = Callable[[np.ndarray], "np.ndarray | tuple[np.ndarray, np.ndarray]"]
"""``update_posterior(current_labels (N,)) -> posterior (N, K)`` or ``(posterior, sei)``."""


class Campaign:
    """A relabeling campaign's state: labels, votes, the ranking, the budget (module docstring).

    Parameters
    ----------
    initial_labels : (N,) int labels in ``0..num_classes-1``.
    num_classes : K.
    budget : relabels to spend (``>= 1``), never exceeded; None = until every sample settles.
    priority : a registry name (:func:`labeltrace.relabel.priority.available`), a
        :class:`~labeltrace.relabel.priority.Priority` or a ``PriorityFn``.
    posterior, sei : (N, K) model probabilities and (N,) SEI for the rules that need them.
    true_dist : (N, K) true label distributions, for the ``oracle`` rule (simulation only).
    gamma : ambiguity threshold of ``joint`` / ``sei_joint``.
    seed : seed of the ``random`` rule (``priority.random(N, seed=seed)``).
    annotator : answers :meth:`step`; not needed when votes come through :meth:`record`.
    update_posterior, update_every : the refit hook (module docstring). If the rule reads a
        posterior (or SEI) that was not given, ``update_posterior`` is also called once before
        the first pick to provide it.
    count_initial_label : count the initial label as one vote in the majority rule (default True,
        the paper's simulation protocol; the review app, ``labeltrace queue --budget`` and
        :func:`~labeltrace.relabel.preflight.preflight` default to single-expert review,
        ``ConsensusRule()``: pass ``count_initial_label=rule.count_given, agree=rule.agree`` to
        simulate what a review under ``rule`` does).
    agree : votes the leading label needs to settle a sample (besides a strict majority).

    Attributes
    ----------
    labels, counts, settled : (N,) current labels, (N, K) label counts (initial vote + every
        relabel), (N,) settled flags — read them, change them only through :meth:`record` (or
        :meth:`settle_all`).
    posterior, sei : the model output the ranking uses now (:meth:`set_posterior`).
    relabels_used, n_updates : relabels spent; posteriors installed after the start.

    Raises
    ------
    ValueError
        Labels out of range (naming the ids), a bad budget, ``update_posterior`` without
        ``update_every``, an unknown rule, or inputs the rule needs and does not get.
    """

    def __init__(
        self,
        initial_labels: np.ndarray,
        *,
        num_classes: int,
        budget: int | None,
        priority: str | Priority | PriorityFn = "joint",
        posterior: np.ndarray | None = None,
        sei: np.ndarray | None = None,
        true_dist: np.ndarray | None = None,
        gamma: float = DEFAULT_GAMMA,
        seed: int = 0,
        annotator: Annotator | None = None,
        update_posterior: UpdateFn | None = None,
        update_every: int | None = None,
        count_initial_label: bool = True,
        agree: int = 1,
    ) -> None:
        k = check_int("num_classes", num_classes, 1)  # 3.9 was taken as 3
        if k < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        init = np.asarray(initial_labels)
        if init.ndim != 1:
            raise ValueError(f"initial_labels must be a 1-D (N,) array, got shape {init.shape}")
        n = int(init.shape[0])
        init = check_label_vector(init, n, k, "initial_labels")
        if budget is not None and (int(budget) != budget or budget < 1):
            raise ValueError(f"budget must be a positive integer number of relabels, got {budget}")
        if update_posterior is not None and (update_every is None or int(update_every) < 1):
            raise ValueError("update_posterior needs update_every >= 1 (relabels between updates)")
        if update_every is not None and int(update_every) < 1:
            raise ValueError(f"update_every must be >= 1, got {update_every}")
        self.rule = resolve(priority)
        self.num_samples, self.num_classes = n, k
        self.budget = None if budget is None else int(budget)
        self.gamma, self.seed = float(gamma), int(seed)
        self.true_dist = true_dist
        self.annotator = annotator
        self.update_posterior = update_posterior
        self.update_every = None if update_every is None else int(update_every)
        self.count_initial_label = bool(count_initial_label)
        if isinstance(agree, bool) or int(agree) != agree or agree < 1:
            raise ValueError(f"agree must be a positive integer number of votes, got {agree!r}")
        self.agree = int(agree)
        self.initial_labels = init
        self._init = init.tolist()
        self.labels = init.copy()
        self.counts = np.zeros((n, k), dtype=np.int64)
        self.counts[np.arange(n), init] = 1
        self.settled = np.zeros(n, dtype=bool)
        self.posterior = None if posterior is None else check_posterior(posterior, n=n, k=k)
        self.sei = None if sei is None else check_vector(sei, "sei", n)
        self.n_updates = 0
        self.relabels_used = 0
        self._limit = self.budget if self.budget is not None else np.inf
        self._next_update = self.update_every or 0
        self._current, self._tally = -1, [0] * k
        self._picked: list[int] = []
        self._draws: list[int] = []
        self._ev_t: list[int] = []
        self._ev_i: list[int] = []
        self._ev_new: list[int] = []
        missing = [x for x, v in (("posterior", self.posterior), ("sei", self.sei))
                   if x in self.rule.inputs and v is None]  # fmt: skip
        if update_posterior is not None and missing:
            self.set_posterior(*unpack_update(update_posterior(self.labels.copy()), n, k))
        else:
            self._rerank()

    # ------------------------------------------------------------------ the ranking

    def priorities(self) -> np.ndarray:
        """(N,) the rule's priorities now (higher = relabel first), settled samples included."""
        return self.rule(posterior=self.posterior, label_counts=self.counts, sei=self.sei,
                         true_dist=self.true_dist, gamma=self.gamma, seed=self.seed)  # fmt: skip

    def _rerank(self) -> None:
        pr = self.priorities()
        ids = np.flatnonzero(~self.settled)
        self._order = ids[np.argsort(-pr[ids], kind="stable")].tolist()
        self._ptr = 0

    def set_posterior(self, posterior: np.ndarray, sei: np.ndarray | None = None, *,
                      as_of: int | None = None) -> None:  # fmt: skip
        """Install a new model output and re-rank the unsettled samples from it.

        ``sei`` None keeps the previous SEI. Clears :attr:`update_due` until the next
        ``update_every`` relabels after ``as_of``, the relabels the output was computed from
        (default: all so far; a refresh that ran while more arrived gives its start, so that a
        next one is due at once when ``update_every`` arrived meanwhile). Safe while a sample is
        in progress: it stays first.
        """
        n, k = self.num_samples, self.num_classes
        self.posterior = check_posterior(posterior, n=n, k=k)
        if sei is not None:
            self.sei = check_vector(sei, "sei", n)
        self.n_updates += 1
        every = self.update_every
        base = self.relabels_used if as_of is None else min(int(as_of), self.relabels_used)
        while every and self._next_update <= base:
            self._next_update += every
        self._rerank()

    @property
    def update_due(self) -> bool:
        """``update_every`` relabels have passed since the last posterior, at a sample boundary,
        with budget left."""
        return (
            self.update_every is not None
            and self._current < 0
            and self._next_update <= self.relabels_used < self._limit
        )

    @property
    def until_update(self) -> int | None:
        """Relabels left before :attr:`update_due` (0 when due or overdue); None without
        ``update_every``."""
        if self.update_every is None:
            return None
        return max(self._next_update - self.relabels_used, 0)

    def ranking(self) -> np.ndarray:
        """(U,) int64 unsettled samples in the order they will be asked (in progress first)."""
        rest = np.asarray(self._order[self._ptr :], dtype=np.int64)
        rest = rest[~self.settled[rest]]
        if self._current >= 0:
            rest = np.r_[self._current, rest[rest != self._current]]
        return rest

    # ------------------------------------------------------------------ votes

    def next_sample(self) -> int | None:
        """The sample the next vote is for, or None when the campaign is over."""
        if self.relabels_used >= self._limit:
            return None
        if self._current >= 0:
            return self._current
        order, settled, ptr = self._order, self.settled, self._ptr
        while ptr < len(order) and settled[order[ptr]]:
            ptr += 1
        self._ptr = ptr
        return order[ptr] if ptr < len(order) else None

    @property
    def done(self) -> bool:
        """The budget is spent or every sample is settled."""
        return self.next_sample() is None

    @property
    def in_progress(self) -> int:
        """The sample that has votes but no majority yet, or -1."""
        return self._current

    @property
    def samples_reviewed(self) -> int:
        """Samples that got at least one review so far (settled or in progress)."""
        return len(self._picked)

    def record(self, sample_id: int, label: int) -> Step:
        """Record one vote ``label`` for ``sample_id`` and settle it on a strict majority.

        Any unsettled sample may be voted on (not only :meth:`next_sample`), but while one is in
        progress its votes come first. When the vote settles it and :attr:`update_due` holds,
        ``update_posterior`` (if given) refits and the samples are re-ranked.
        """
        lab, k = label, self.num_classes
        if self.relabels_used >= self._limit:
            raise ValueError(f"the campaign's budget of {self.budget} relabels is spent")
        i = as_whole(sample_id)
        if i is None:  # int() would make 2.7 sample 2, True 1
            raise ValueError(f"sample id {sample_id!r} is not an integer")
        if not 0 <= i < self.num_samples:
            raise ValueError(f"sample id {i} is outside 0..{self.num_samples - 1}")
        if as_class(lab, k) is None:
            raise ValueError(f"vote {lab!r} for sample id {i} is not a class in 0..{k - 1}")
        return self._record(i, int(lab))

    def _record(self, i: int, lab: int) -> Step:
        """:meth:`record` for a checked sample id and class."""
        k = self.num_classes
        if self._current < 0:
            if self.settled[i]:
                raise ValueError(f"sample id {i} is already settled")
            self._current = i
            self._tally = [0] * k
            if self.count_initial_label:
                self._tally[self._init[i]] += 1
            self._picked.append(i)
            self._draws.append(0)
        elif i != self._current:
            raise ValueError(
                f"sample id {self._current} is short of a majority; its votes come before "
                f"sample id {i}"
            )
        tally = self._tally
        tally[lab] += 1
        self.counts[i, lab] += 1
        self.relabels_used += 1
        self._draws[-1] += 1
        top, second = sorted(tally)[-2:][::-1]
        if not settles(top, second, self.agree):
            return Step(i, lab, self.relabels_used, -1, False)
        new = tally.index(top)
        self.settled[i] = True
        self.labels[i] = new
        self._current = -1
        self._ev_t.append(self.relabels_used)
        self._ev_i.append(i)
        self._ev_new.append(new)
        updated = self.update_posterior is not None and self.update_due
        if updated:
            out = self.update_posterior(self.labels.copy())  # type: ignore[misc]
            self.set_posterior(*unpack_update(out, self.num_samples, k))
        return Step(i, lab, self.relabels_used, new, updated)

    def settle_all(self, sample_ids: np.ndarray, labels: np.ndarray) -> None:
        """Settle each of ``sample_ids`` (unsettled, distinct) with its one vote ``labels``, in one
        step: what :meth:`record` does for each in turn where one vote settles a sample
        (``agree == 1``, the initial label not counted) and no refit hook runs between votes —
        the review app's live queue taking in a store's decisions. The order of ``sample_ids`` is
        the order of the log's settlements. Any other campaign records them one by one."""
        ids, labs = np.asarray(sample_ids).reshape(-1), np.asarray(labels).reshape(-1)
        fast = self.agree == 1 and not self.count_initial_label and self.update_posterior is None
        if not fast or self._current >= 0 or self.relabels_used + ids.size > self._limit:
            for i, lab in zip(ids.tolist(), labs.tolist(), strict=True):
                self.record(i, lab)  # refuses what is not a whole sample id or class, as ever
            return
        for name, a in (("sample ids", ids), ("labels", labs)):  # as record(): 2.7 is not sample 2, True not 1
            if a.size and (a.dtype == bool or not np.issubdtype(a.dtype, np.integer)):
                raise ValueError(f"{name} must be integers, got dtype {a.dtype}")
        if ids.shape != labs.shape:
            raise ValueError(f"{ids.size} sample ids but {labs.size} labels")
        ids, labs = ids.astype(np.int64), labs.astype(np.int64)
        bad = (ids < 0) | (ids >= self.num_samples)
        if bad.any():
            raise ValueError(f"sample ids {id_list(ids[bad])} lie outside 0..{self.num_samples - 1}")
        bad = (labs < 0) | (labs >= self.num_classes)
        if bad.any():
            raise ValueError(f"votes {id_list(labs[bad])} for sample ids {id_list(ids[bad])} are not classes in "
                             f"0..{self.num_classes - 1}")  # fmt: skip
        if np.unique(ids).size != ids.size or self.settled[ids].any():
            raise ValueError("settle_all() takes distinct samples not settled yet")
        used = self.relabels_used + np.arange(1, ids.size + 1)
        np.add.at(self.counts, (ids, labs), 1)
        self.settled[ids] = True
        self.labels[ids] = labs
        self.relabels_used += ids.size
        self._picked.extend(ids.tolist())
        self._draws.extend([1] * ids.size)
        self._ev_t.extend(used.tolist())
        self._ev_i.extend(ids.tolist())
        self._ev_new.extend(labs.tolist())

    def step(self) -> Step | None:
        """Ask the annotator for the vote of :meth:`next_sample` and record it; None when over."""
        i = self.next_sample()
        if i is None:
            return None
        if self.annotator is None:
            raise ValueError("this campaign has no annotator: give one, or record() the votes")
        out = np.asarray(self.annotator.annotate(np.array([i], dtype=np.int64))).reshape(-1)
        if out.size != 1:
            raise ValueError(f"annotator returned {out.size} labels for 1 sample id ({i})")
        lab = as_class(out.tolist()[0], self.num_classes)
        if lab is None:
            raise ValueError(f"annotator returned label {out.tolist()[0]!r} for sample id {i}; "
                             f"expected 0..{self.num_classes - 1}")  # fmt: skip
        return self._record(i, lab)

    def run(self) -> CampaignLog:
        """Step until the budget is spent or every sample is settled; the log."""
        while self.step() is not None:
            pass
        return self.log()

    def log(self) -> CampaignLog:
        """A snapshot of what happened so far."""
        i64 = np.int64
        return CampaignLog(
            priority=self.rule.name,
            seed=self.seed,
            budget=self.budget,
            relabels_used=self.relabels_used,
            initial_labels=self.initial_labels.copy(),
            labels=self.labels.copy(),
            label_counts=self.counts.copy(),
            settled=self.settled.copy(),
            picked=np.asarray(self._picked, dtype=i64),
            draws=np.asarray(self._draws, dtype=i64),
            in_progress=self._current,
            n_updates=self.n_updates,
            settled_at=np.asarray(self._ev_t, dtype=i64),
            settled_ids=np.asarray(self._ev_i, dtype=i64),
            settled_labels=np.asarray(self._ev_new, dtype=i64),
        )

    def __repr__(self) -> str:
        state = [f"{self.relabels_used}/{self.budget} relabels", f"{self.settled.sum()} settled"]
        if self._current >= 0:
            state.append(f"sample id {self._current} in progress")
        return f"Campaign({self.rule.name!r}, {listing(state)})"
