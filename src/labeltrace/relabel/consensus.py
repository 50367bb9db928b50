"""When the votes on a sample settle its label: the one rule of the simulator and the review app.

A sample's votes are counted per class (in the review app: each reviewer's latest decision is
one vote when it is a label or an *exclude* — a vote for "no class", counted as one more column
beside the classes, so excluding a sample needs the agreement a relabel needs, and a tie between
exclude and a class is a dispute as any tie is; *unsure* and *skip* are no vote, so a reviewer who
answers one of them after a vote withdraws it). The leading class settles the sample
when it has

* at least ``agree`` votes, and
* a **strict majority over the second** class (majority until consensus: a tie asks for
  another vote).

With ``count_given=True`` the label the sample came with counts as one vote (the simulator's
``count_initial_label``, the paper's choice): confirming it settles at once, changing it needs
a second voice. ``agree=1, count_given=False`` is single-expert review — the first label
decision settles the sample (and a changed mind replaces it).

:func:`settles` is the scalar form the campaign's inner loop uses; :func:`resolve` the
vectorised one the review app and the exports use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeltrace.relabel.arrays import as_matrix, check_label_vector

__all__ = ["ConsensusRule", "Resolution", "resolve", "settles"]


@dataclass(frozen=True)
class ConsensusRule:
    """How many agreeing votes settle a sample.

    Attributes
    ----------
    agree : votes the leading class needs (>= 1), besides a strict majority over the second.
    count_given : the sample's given label counts as one vote (True or False).
    """

    agree: int = 1
    count_given: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.agree, bool) or not isinstance(self.agree, int | np.integer):
            raise ValueError(f"agree must be an integer number of votes, got {self.agree!r}")
        if self.agree < 1:
            raise ValueError(f"agree must be >= 1 vote, got {self.agree}")
        if not isinstance(self.count_given, bool | np.bool_):  # "false" is truthy: never read as a flag
            raise ValueError(f"count_given must be True or False, got {self.count_given!r}")
        object.__setattr__(self, "agree", int(self.agree))  # stored as JSON with the run's decisions
        object.__setattr__(self, "count_given", bool(self.count_given))

    @property
    def one_vote_settles(self) -> bool:
        """Whether one reviewer's label can settle a sample (single-expert review). Otherwise every
        vote needs a reviewer's name: nameless votes are all one "anonymous" reviewer's, so a
        second person's would replace the first's (with ``count_given`` too: a label that differs
        from the given one ties with it, and needs a second voice)."""
        return self.agree == 1 and not self.count_given

    def describe(self) -> str:
        """``"2 agreeing reviews, more than any other label"`` — for pages and messages."""
        n = f"{self.agree} agreeing review{'s' if self.agree != 1 else ''}"
        return n + ", more than any other label" + (", the given label counts as one" if self.count_given
                                          else "")  # fmt: skip


def settles(top: int, second: int, agree: int = 1) -> bool:
    """Whether a leading class with ``top`` votes, the runner-up with ``second``, settles."""
    return top >= agree and top > second


@dataclass(frozen=True, eq=False)
class Resolution:
    """Every sample's state under a :class:`ConsensusRule`.

    Attributes
    ----------
    label : (N,) int64 consensus class, -1 where none (unresolved, or excluded: never a class id).
    resolved : (N,) bool — the votes settle the sample (to a class, or as excluded).
    disputed : (N,) bool — unresolved although two classes have reviewer votes.
    n_votes : (N,) int64 reviewer votes (the given label not included).
    top, second : (N,) vote counts (given label included when counted) of the leading class and
        of the runner-up.
    excluded : (N,) bool — settled as "no class" (the exclude votes lead; ``label`` is -1 there).
    """

    label: np.ndarray
    resolved: np.ndarray
    disputed: np.ndarray
    n_votes: np.ndarray
    top: np.ndarray
    second: np.ndarray
    excluded: np.ndarray

    @property
    def unresolved(self) -> np.ndarray:
        """(N,) bool: reviewer votes, but no consensus yet."""
        return (self.n_votes > 0) & ~self.resolved


def resolve(
    votes: np.ndarray, given: np.ndarray, rule: ConsensusRule = ConsensusRule(), *, excluding: bool = False
) -> Resolution:
    """Resolve (N, K) reviewer vote counts against the (N,) given labels under ``rule``.

    A sample without reviewer votes is never resolved (not even to its given label with
    ``count_given``). Ties for the lead never settle; the consensus class is the unique leader.
    ``excluding``: the last column counts the exclude votes ("no class"; the given labels lie in
    the other columns): a sample it settles is ``excluded``, its ``label`` -1.
    """
    v = as_matrix(votes, "votes")
    n, k = v.shape
    g = check_label_vector(given, n, k - int(excluding), "given")
    counts = v.copy()
    if rule.count_given:
        counts[np.arange(n), g] += 1
    n_votes = v.sum(axis=1).astype(np.int64)
    part = np.sort(counts, axis=1)
    top, second = part[:, -1], part[:, -2]
    resolved = (n_votes > 0) & (top >= rule.agree) & (top > second)
    label = np.where(resolved, counts.argmax(axis=1), -1).astype(np.int64)
    excluded = resolved & (label == k - 1) if excluding else np.zeros(n, dtype=bool)
    disputed = ~resolved & ((v > 0).sum(axis=1) >= 2)
    return Resolution(label=np.where(excluded, -1, label), resolved=resolved, disputed=disputed, n_votes=n_votes,
                      top=top.astype(np.int64), second=second.astype(np.int64), excluded=excluded)  # fmt: skip
