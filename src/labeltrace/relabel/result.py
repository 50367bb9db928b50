"""What a simulated campaign achieved, measured against the truth.

Every relabel is a point of the curve "fraction of correct labels vs relabels spent".
Summaries: ``auc`` — the paper's area under that curve divided by the area of a perfect curve
(``∫ acc dr / budget``, the mean accuracy over the campaign); ``gain`` — the area between the
curve and the initial accuracy divided by ``budget``; ``normalized_gain`` — ``gain`` divided by
the oracle's ``gain`` at the same seed (1 = as good as the oracle, 0 = no progress; set by
:func:`labeltrace.relabel.stats.normalized_gain`); ``fixed_per_100`` — initially-noisy images
now correct per 100 relabels after 10/25/50 % of the budget; remaining *clear* vs *ambiguous*
noisy images (ambiguous = normalised vote entropy ``> 0.3``, the paper's threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from labeltrace.relabel.campaign import CampaignLog

__all__ = ["DEFAULT_FRACTIONS", "CampaignResult", "campaign_result", "count_curves"]

DEFAULT_FRACTIONS: tuple[float, ...] = (0.10, 0.25, 0.50)
"""Budget fractions at which ``fixed_per_100`` is reported."""


@dataclass(frozen=True, eq=False)
class CampaignResult:
    """One simulated relabeling campaign (one selector, one seed).

    Curves have ``budget + 1`` entries; index ``r`` is the state after ``r`` relabels.

    Attributes
    ----------
    selector, seed, budget : what was run.
    relabels_used : relabels actually spent (< budget only when every image got settled).
    accuracy : (B+1,) fraction of labels equal to the vote majority.
    fixed : (B+1,) initially-noisy images whose label is now correct.
    remaining_clear, remaining_ambiguous : (B+1,) currently wrong labels on non-ambiguous /
        ambiguous images.
    initial_labels, final_labels : (N,) int64.
    label_counts : (N, K) int64 — one vote for the initial label plus every relabel drawn.
    settled : (N,) bool — relabelled to a strict majority.
    picked : (P,) int64 images in the order they were picked; ``draws`` (P,) relabels each used.
    in_progress : the image still short of a majority when the budget ran out, or -1.
    n_updates : calls made to ``update_posterior``.
    auc : the paper's normalised area under the accuracy curve, ``∫ acc dr / budget``.
    gain : ``∫ (acc − acc[0]) dr / budget``.
    normalized_gain : ``gain / oracle gain`` at the same seed; NaN until set (see
        :func:`labeltrace.relabel.stats.normalized_gain`).
    fixed_per_100 : {fraction of the budget: initially-noisy images fixed per 100 relabels}.
    """

    selector: str
    seed: int
    budget: int
    relabels_used: int
    accuracy: np.ndarray
    fixed: np.ndarray
    remaining_clear: np.ndarray
    remaining_ambiguous: np.ndarray
    initial_labels: np.ndarray
    final_labels: np.ndarray
    label_counts: np.ndarray
    settled: np.ndarray
    picked: np.ndarray
    draws: np.ndarray
    in_progress: int
    n_updates: int
    auc: float
    gain: float
    fixed_per_100: dict[float, float]
    normalized_gain: float = field(default=float("nan"))

    @property
    def relabels(self) -> np.ndarray:
        """(B+1,) x-axis 0..budget."""
        return np.arange(self.budget + 1)

    @property
    def initial_accuracy(self) -> float:
        """Accuracy before any relabel."""
        return float(self.accuracy[0])

    @property
    def final_accuracy(self) -> float:
        """Accuracy after the whole budget."""
        return float(self.accuracy[-1])


def count_curves(
    log: CampaignLog, *, truth: np.ndarray, ambiguous: np.ndarray, budget: int
) -> dict[str, np.ndarray]:
    """(B+1,) int64 count curves ``correct``, ``fixed``, ``remaining_clear``,
    ``remaining_ambiguous`` from the settlement events of ``log``.

    Labels change only when an image settles, at most once per image and from its initial label,
    so each curve is its initial value plus a cumulative sum of per-event changes.
    """
    t_ev, i_ev = log.settled_at, log.settled_ids
    init = log.initial_labels
    correct0 = init == truth
    before = correct0[i_ev].astype(np.int64)
    after = (log.settled_labels == truth[i_ev]).astype(np.int64)
    d = after - before

    def curve(start: int, delta: np.ndarray) -> np.ndarray:
        steps = np.zeros(budget + 1, dtype=np.int64)
        np.add.at(steps, t_ev, delta)
        return start + np.cumsum(steps)

    amb_ev = ambiguous[i_ev]
    return {
        "correct": curve(int(correct0.sum()), d),
        "fixed": curve(0, after * ~correct0[i_ev]),
        "remaining_clear": curve(int((~correct0 & ~ambiguous).sum()), -d * ~amb_ev),
        "remaining_ambiguous": curve(int((~correct0 & ambiguous).sum()), -d * amb_ev),
    }


def _trapezoid(y: np.ndarray) -> float:
    """Trapezoidal integral of ``y`` sampled at 0, 1, …, len(y) − 1."""
    return float(0.5 * (y[1:] + y[:-1]).sum())


def campaign_result(
    log: CampaignLog,
    *,
    truth: np.ndarray,
    ambiguous: np.ndarray,
    name: str | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> CampaignResult:
    """Measure a finished campaign with a budget against the true labels ``truth`` (N,) and the
    ``ambiguous`` (N,) mask; ``name`` labels it (default: its priority's name)."""
    if log.budget is None:
        raise ValueError("a campaign without a budget has no curves to measure")
    budget = log.budget
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"fractions must lie in (0, 1], got {f}")
    curves = count_curves(log, truth=truth, ambiguous=ambiguous, budget=budget)
    n = log.initial_labels.size
    accuracy = curves["correct"] / n
    fpc = {}
    for f in fractions:
        rr = max(1, round(f * budget))
        fpc[float(f)] = float(100.0 * curves["fixed"][rr] / rr)
    return CampaignResult(
        selector=name or log.priority,
        seed=log.seed,
        budget=budget,
        relabels_used=log.relabels_used,
        accuracy=accuracy,
        fixed=curves["fixed"],
        remaining_clear=curves["remaining_clear"],
        remaining_ambiguous=curves["remaining_ambiguous"],
        initial_labels=log.initial_labels,
        final_labels=log.labels,
        label_counts=log.label_counts,
        settled=log.settled,
        picked=log.picked,
        draws=log.draws,
        in_progress=log.in_progress,
        n_updates=log.n_updates,
        auc=_trapezoid(accuracy) / budget,
        gain=_trapezoid(accuracy - accuracy[0]) / budget,
        fixed_per_100=fpc,
    )
