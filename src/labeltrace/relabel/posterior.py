"""What a scan run's review queue ranks by, read from the run: its posterior and its SEI — the one
place the queue and the review app ask :mod:`labeltrace.decide` for them.

The posterior (:func:`queue_posterior`): a cross-fitted run's is its **held-out** posterior —
every sample predicted by the models that never trained on it, averaged over the whole
trajectory (what ``labeltrace scan`` suggests labels from); an in-sample run's is the softmax of
its last epochs (``window="auto"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from labeltrace import rundir
from labeltrace._checks import counted

__all__ = ["LAST_EPOCHS", "QueuePosterior", "Window", "queue_posterior", "run_posterior", "run_sei"]

LAST_EPOCHS = 5
"""``posterior="last"``: the softmax is averaged over this many final epochs (or fewer kept)."""
Window = Literal["auto", "last", "mean"]


def run_posterior(run: rundir.Run, *, last: int | None = None) -> np.ndarray:
    """(N, K) mean softmax of a run's saved dynamics over its last ``last`` epochs (all when
    None), averaged over its training runs. The one place the queue asks ``decide`` for it."""
    from labeltrace.decide.evidence import posterior

    return posterior(run.recording().runs, last=last)


@dataclass(frozen=True, eq=False)
class QueuePosterior:
    """The posterior a queue ranks by.

    Attributes
    ----------
    probs : (N, K) probabilities.
    window : ``"last"`` or ``"mean"`` (every epoch), as resolved.
    epochs : epochs averaged over for ``"last"`` (fewer than asked when the run kept fewer);
        None for ``"mean"``.
    held_out : the run's dynamics are held out (a cross-fitted run).
    """

    probs: np.ndarray
    window: Literal["last", "mean"]
    epochs: int | None
    held_out: bool

    def describe(self) -> str:
        """``"held-out (cross-fitted), mean over every epoch"`` — for messages."""
        view = "held-out (cross-fitted)" if self.held_out else "in-sample"
        span = "mean over every epoch" if self.window == "mean" else f"last {counted(self.epochs or 0, 'epoch')}"
        return f"{view}, {span}"


def queue_posterior(
    run: rundir.Run, window: Window = "auto", *, last: int = LAST_EPOCHS
) -> QueuePosterior:
    """The run's posterior: the mean softmax over every epoch (``window="mean"``) or over the
    last ``last`` epochs (``"last"``; as many as the recorder kept when fewer). ``"auto"``: a
    cross-fitted run's held-out posterior over every epoch, an in-sample run's last epochs."""
    held = run.held_out
    if window == "auto":
        window = "mean" if held else "last"
    if window == "mean":
        return QueuePosterior(run_posterior(run, last=None), "mean", None, held)
    if window != "last":
        raise ValueError(f"posterior window must be 'auto', 'last' or 'mean', got {window!r}")
    if last < 1:
        raise ValueError(f"last must be >= 1, got {last}")
    for n in range(int(last), 0, -1):
        try:
            return QueuePosterior(run_posterior(run, last=n), "last", n, held)
        except ValueError:
            if n == 1:
                raise
    raise AssertionError("unreachable")


def run_sei(run: rundir.Run) -> np.ndarray:
    """(N,) the run's SEI: its samples-table column, else computed from its recording."""
    if "sei" in run.samples.column_names:
        return run.column("sei").astype(np.float64)
    from labeltrace.decide.evidence import combined_score

    return combined_score("sei", run.recording().in_sample_runs())
