"""Early stop of the cross-fitted recording: stop training once its ranking is stable.

The default detector (``crossfit``) ranks samples by p(given label) under the mean of the
held-out and in-sample posteriors, each averaged over the epochs (with a head on frozen features
on a small set, each first mixed with the kNN label shares), and flags the n̂ lowest, n̂ from
:func:`labeltrace.decide.count.conservative_count`. :class:`EarlyStop` watches a proxy of that
ranking after every epoch, computed from the recorders alone — the un-mixed posteriors, cut at
confident learning's held-out count:

* after ``t`` finished epochs, ``n̂_t`` = confident learning's number of label issues on the
  held-out softmax averaged over epochs ``1..t``;
* ``score_s`` (``s <= t``) = the mean over epochs ``1..s`` of the held-out ``p_given``, averaged
  with the same mean of the in-sample ``p_given`` (the recorded probability of the given label;
  the mean of a softmax's entry is the entry of the mean softmax, so this is the detector's score
  up to float32 rounding where it mixes in no kNN shares);
* ``S_s`` = the ``n̂_t`` samples with the lowest ``score_s`` (ties by id);
* ``change_s = 1 − |S_s ∩ S_{s−1}| / n̂_t`` (0 when ``n̂_t`` = 0).

Training stops after epoch ``t`` when ``t >= min_epochs`` and ``change_s < tol`` for each of the
last ``patience`` epochs ``s = t − patience + 1 .. t``: the top set at the current estimated count
changed by less than ``tol`` (1 %) in each of the last 3 epochs. Everything is a function of the
recorded dynamics (the per-epoch ``p_given`` rows and the softmax sums), so a resumed recording
takes the same decision at the same epoch. The learning-rate schedule is not shortened: a stopped
run has trained ``t`` epochs of the schedule planned for ``epochs``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labeltrace.record import Dynamics

__all__ = ["EarlyStop", "ranking_changes"]


@dataclass(frozen=True)
class EarlyStop:
    """The rule (see the module docstring)."""

    tol: float = 0.01
    patience: int = 3
    min_epochs: int = 5

    def __post_init__(self) -> None:
        if not 0.0 <= self.tol < 1.0:
            raise ValueError(f"early stop tolerance must be in [0, 1), got {self.tol}")
        if self.patience < 1:
            raise ValueError(f"early stop patience must be >= 1, got {self.patience}")
        if self.min_epochs < self.patience + 1:
            raise ValueError(f"early stop min_epochs must be >= patience + 1 = {self.patience + 1}, got "
                             f"{self.min_epochs}")  # fmt: skip

    def should_stop(self, held: Dynamics, in_sample: Dynamics | None, labels: np.ndarray) -> bool:
        """True when the recording so far meets the rule."""
        t = held.num_epochs
        if t < self.min_epochs:
            return False
        changes = ranking_changes(held, in_sample, labels, last=self.patience)
        return len(changes) == self.patience and all(c < self.tol for c in changes)

    def describe(self) -> dict[str, Any]:
        return {"rule": "top set at confident learning's held-out count changes by < tol in each of the last "
                        "patience epochs", **asdict(self)}  # fmt: skip


def _lowest(score: np.ndarray, n: int) -> np.ndarray:
    order = np.lexsort((np.arange(score.size), score))  # ascending score, ties by id
    return order[:n]


def _score(held: Dynamics, in_sample: Dynamics | None, s: int) -> np.ndarray:
    window = slice(0, s)
    p = held.mean("p_given", epochs=window).astype(np.float64)
    if in_sample is not None:
        p = (p + in_sample.mean("p_given", epochs=window)) / 2
    return np.nan_to_num(p, nan=np.inf)  # never seen yet: ranked last


def ranking_changes(held: Dynamics, in_sample: Dynamics | None, labels: np.ndarray, *,
                    last: int | None = None) -> list[float]:  # fmt: skip
    """``change_s`` for the last ``last`` epochs (all epochs 2..t when None), oldest first, at the
    count ``n̂_t`` of the latest epoch (see the module docstring)."""
    from labeltrace.score.confident import num_label_issues

    labels = np.asarray(labels, dtype=np.int64)
    t = held.num_epochs
    if t < 2:
        return []
    post = held.mean_posterior()
    post = np.nan_to_num(post, nan=1.0 / post.shape[1])
    post = post / post.sum(1, keepdims=True)
    n_hat = int(num_label_issues(post, labels))
    first = 2 if last is None else max(2, t - last + 1)
    if n_hat == 0:
        return [0.0] * (t - first + 1)
    prev = set(_lowest(_score(held, in_sample, first - 1), n_hat).tolist())
    out = []
    for s in range(first, t + 1):
        cur = set(_lowest(_score(held, in_sample, s), n_hat).tolist())
        out.append(1.0 - len(cur & prev) / n_hat)
        prev = cur
    return out
