"""What a detector's ``decide`` returns (:class:`Decision`) and the three ways the rows of the
detector table (:mod:`labeltrace.decide.detectors`) build one from a score, lower = more suspect:
flagged below a cutoff (:func:`by_cutoff`), the lowest fraction (:func:`top_k`) or the lowest
count (:func:`by_count`) — a group of scores tied at the cut flagged whole or not at all.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from labeltrace._checks import round_half_up
from labeltrace.decide import cutoffs

__all__ = ["Decision", "by_count", "by_cutoff", "top_k"]


class Decision(NamedTuple):
    """What a detector's ``decide`` returns: the flagged mask, the cutoff (NaN when the rule is a
    mask), the rule's text, and the estimated count of wrong labels that set the cut where the rule
    is a count (else None). A plain ``(flagged, cutoff, rule)`` tuple is accepted too."""

    flagged: np.ndarray
    cutoff: float
    rule: str
    n_hat: int | None = None


def by_cutoff(s: np.ndarray, cut: float, rule: str) -> Decision:
    return Decision(cutoffs.flag(s, cut), cut, rule)


def top_k(s: np.ndarray, rate: float, rule: str) -> Decision:
    """The ``round(rate * N)`` lowest scores flagged, a group tied at the cut whole or not at all
    (:func:`~labeltrace.decide.cutoffs.top_fraction`); when the tie moved the count, the rule says
    so (a forgetting count asked for 4 with 31 samples tied at the cut flags none)."""
    d = by_cutoff(s, cutoffs.top_fraction(s, rate), rule)
    asked, got = round_half_up(rate * len(s)), int(d.flagged.sum())
    if got != asked:
        tied = int(np.sum(s == np.sort(s)[max(asked, 1) - 1]))
        d = d._replace(rule=f"{rule} ({asked} asked, {got} flagged: {tied} samples tie at the cut, flagged all or none)")
    return d


def by_count(s: np.ndarray, n_hat: int, rule: str) -> Decision:
    """The ``n_hat`` lowest scores flagged (a group tied at the cut whole or not at all), the rule
    ``"<rule> <n_hat>"``."""
    return top_k(s, n_hat / len(s), f"{rule} {n_hat}")._replace(n_hat=n_hat)
