"""Statistics over simulated campaigns: intervals over seeds, the normalised gain, aggregates, and
:class:`SimulationResult`, what a whole simulation returns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from labeltrace.evaluate.metrics import t_interval
from labeltrace.relabel.result import CampaignResult

if TYPE_CHECKING:
    from labeltrace.relabel.head import HeadConfig

__all__ = [
    "Aggregate",
    "SimulationResult",
    "aggregate",
    "fixed_ratio",
    "normalized_gain",
    "ratio_to_random",
    "t_interval",
]


def normalized_gain(result: CampaignResult, oracle_result: CampaignResult) -> float:
    """``result.gain / oracle_result.gain``: 1 = oracle-efficient, 0 = no progress, < 0 = harm.

    Both must share the budget and the initial labels; NaN when the oracle gained nothing.
    """
    if result.budget != oracle_result.budget:
        raise ValueError(f"budgets differ: {result.budget} vs oracle {oracle_result.budget}")
    if not np.array_equal(result.initial_labels, oracle_result.initial_labels):
        raise ValueError("the result and the oracle started from different initial labels")
    if oracle_result.gain <= 0:
        return float("nan")
    return float(result.gain / oracle_result.gain)


def fixed_ratio(
    results: Sequence[CampaignResult], reference: Sequence[CampaignResult], fraction: float
) -> tuple[float, float, float]:
    """Per-seed ratio of noisy labels fixed by ``results`` to those fixed by ``reference`` (the
    same seeds, in order) after ``fraction`` of the budget: ``(mean, low, high)`` over seeds (NaN
    where the reference fixed none)."""
    vals = []
    for a, b in zip(results, reference, strict=True):
        r = max(1, round(fraction * a.budget))
        vals.append(a.fixed[r] / b.fixed[r] if b.fixed[r] > 0 else float("nan"))
    m, lo, hi = t_interval(np.asarray(vals))
    return float(m), float(max(lo, 0.0)), float(hi)  # a ratio of counts: never below 0


@dataclass(frozen=True, eq=False)
class Aggregate:
    """Curves and summaries of one selector over seeds: mean and 95% t-interval.

    Each interval is clipped to the range its quantity can take — accuracies, ``auc`` in
    ``[0, 1]``, ``gain`` in ``[-1, 1]``, ``relabels_used`` in ``[0, budget]``, ``fixed_per_100``
    in ``[0, 100]``, the remaining counts at ``>= 0`` (``normalized_gain`` is unbounded) — so a
    few seeds near a bound never report an impossible value such as an accuracy above 100 %.

    Attributes
    ----------
    selector, n_seeds, budget.
    accuracy, accuracy_low, accuracy_high : (B+1,) mean and interval of the accuracy curve.
    remaining_clear, remaining_ambiguous : (B+1,) mean curves.
    metrics : {name: (mean, low, high)} for ``auc``, ``gain``, ``normalized_gain``,
        ``initial_accuracy``, ``final_accuracy``, ``relabels_used``, ``remaining_clear``,
        ``remaining_ambiguous`` (at the end), and ``fixed_per_100@<fraction>``.
    """

    selector: str
    n_seeds: int
    budget: int
    accuracy: np.ndarray
    accuracy_low: np.ndarray
    accuracy_high: np.ndarray
    remaining_clear: np.ndarray
    remaining_ambiguous: np.ndarray
    metrics: dict[str, tuple[float, float, float]]

    @property
    def relabels(self) -> np.ndarray:
        """(B+1,) x-axis 0..budget."""
        return np.arange(self.budget + 1)


def aggregate(results: Sequence[CampaignResult], *, confidence: float = 0.95, bounded: bool = True) -> Aggregate:
    """Aggregate runs of one selector over seeds (same budget required); ``bounded=False`` keeps the
    raw t-intervals, unclipped (what the simulator reported before the clipping)."""
    if not results:
        raise ValueError("aggregate needs at least one result")
    budgets = {r.budget for r in results}
    if len(budgets) != 1:
        raise ValueError(
            f"results have different budgets {sorted(budgets)}; curves cannot be stacked"
        )
    names = {r.selector for r in results}
    if len(names) != 1:
        raise ValueError(f"results mix selectors {sorted(names)}; aggregate one selector at a time")

    inf = float("inf")

    def ci(vals: Iterable[float], low: float = -inf, high: float = inf) -> tuple[float, float, float]:
        m, lo, hi = t_interval(np.asarray(list(vals), dtype=np.float64), confidence=confidence)
        if not bounded:
            return float(m), float(lo), float(hi)
        return float(m), float(np.clip(lo, low, high)), float(np.clip(hi, low, high))

    acc_m, acc_lo, acc_hi = t_interval(
        np.stack([r.accuracy for r in results]), confidence=confidence
    )
    if bounded:
        acc_lo, acc_hi = np.clip(acc_lo, 0.0, 1.0), np.clip(acc_hi, 0.0, 1.0)
    budget = float(results[0].budget)
    metrics = {
        "auc": ci((r.auc for r in results), 0.0, 1.0),
        "gain": ci((r.gain for r in results), -1.0, 1.0),
        "normalized_gain": ci(r.normalized_gain for r in results),
        "initial_accuracy": ci((r.initial_accuracy for r in results), 0.0, 1.0),
        "final_accuracy": ci((r.final_accuracy for r in results), 0.0, 1.0),
        "relabels_used": ci((r.relabels_used for r in results), 0.0, budget),
        "remaining_clear": ci((r.remaining_clear[-1] for r in results), 0.0),
        "remaining_ambiguous": ci((r.remaining_ambiguous[-1] for r in results), 0.0),
    }
    fracs = sorted(set().union(*(r.fixed_per_100.keys() for r in results)))
    for f in fracs:
        metrics[f"fixed_per_100@{f:g}"] = ci((r.fixed_per_100.get(f, float("nan")) for r in results),
                                             0.0, 100.0)  # fmt: skip
    return Aggregate(
        selector=results[0].selector,
        n_seeds=len(results),
        budget=results[0].budget,
        accuracy=np.asarray(acc_m),
        accuracy_low=np.asarray(acc_lo),
        accuracy_high=np.asarray(acc_hi),
        remaining_clear=np.mean([r.remaining_clear for r in results], axis=0),
        remaining_ambiguous=np.mean([r.remaining_ambiguous for r in results], axis=0),
        metrics=metrics,
    )


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Campaigns of every selector over seeds, with what each seed started from.

    Attributes
    ----------
    results : {selector: [CampaignResult per seed, in ``seeds`` order]}.
    aggregates : {selector: mean curves and 95 % t-intervals over seeds}.
    budget, noise_rate, budget_factor, seeds, active_every, active_method : the settings.
    temperatures, n_noisy : per seed, the temperature of the initial draw and the realised
        number of noisy initial labels.
    head_accuracy : per seed, the fraction of images whose posterior argmax equals the vote
        majority (the initial model; NaN without a model).
    head_noisy_recall : per seed, the fraction of initially noisy images whose posterior argmax
        differs from their noisy label (NaN without a model).
    retrainings : per seed, fits of the head (or of ``run_simulation``'s ``model``) performed,
        the initial one included.
    updates, update_seconds : per seed, posterior refreshes of the active loop and their total
        wall time (every selector's campaign counted).
    head : the head's settings (None without a model).
    seconds : wall time.
    """

    results: dict[str, list[CampaignResult]]
    aggregates: dict[str, Aggregate]
    budget: int
    noise_rate: float
    budget_factor: float
    seeds: list[int]
    active_every: int | None
    temperatures: list[float]
    n_noisy: list[int]
    head_accuracy: list[float]
    head_noisy_recall: list[float]
    retrainings: list[int]
    head: HeadConfig | None
    seconds: float
    active_method: str = "head"
    updates: list[int] = field(default_factory=list)
    update_seconds: list[float] = field(default_factory=list)


def ratio_to_random(
    sim: SimulationResult, selector: str, fraction: float
) -> tuple[float, float, float]:
    """Per-seed ratio of noisy labels fixed by ``selector`` to those fixed by ``random`` after
    ``fraction`` of the budget: ``(mean, low, high)`` over seeds (NaN where random fixed none)."""
    if "random" not in sim.results:
        raise ValueError("the simulation has no 'random' selector to compare with")
    return fixed_ratio(sim.results[selector], sim.results["random"], fraction)
