"""Before the review: how many labels will relabeling the first B samples of a queue fix?

:func:`preflight` simulates the review campaign on the user's own run, with the model's
posterior standing in for the annotators (:class:`~labeltrace.relabel.annotator.
SimulatedAnnotator` drawing each review from a sample's posterior): the sample's *true* label is
then what such annotators agree on, ``argmax p``, and a sample is *fixed* when its given label
differs from it and the review settles on it. Each repeat draws new reviews; the estimate is
the mean over repeats, with the 2.5–97.5 % percentiles of the repeats as the range of the
simulated reviews — not a confidence interval: the model's own errors are not in it, nor the
reviewers' (taking its posterior for the truth, on CIFAR-10H's votes the estimate runs low while
the budget stays among the wrong labels and high past them; where one reviewer's answer is often
wrong, as with CIFAR-10N's annotators, high at every budget; RESULTS.md §7.4).

The campaign follows the review app's rule (:class:`~labeltrace.relabel.consensus.
ConsensusRule`; single-expert review by default: one review settles a sample), in the queue's
order, so ``budget`` counts reviews — with one review a sample, the samples relabeled.

How far to trust it: ``benchmarks/simulation/preflight_validation.py`` compares the estimate with
the same campaign answered by CIFAR-10H's real annotator votes (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeltrace.relabel.annotator import SimulatedAnnotator
from labeltrace.relabel.arrays import check_label_vector, check_posterior
from labeltrace.relabel.campaign import Campaign
from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.priority import DEFAULT_GAMMA, Priority, PriorityFn
from labeltrace.relabel.result import count_curves

__all__ = ["REPEATS", "Estimate", "preflight"]

#: the simulated campaigns of an estimate unless asked otherwise
REPEATS = 200


@dataclass(frozen=True)
class Estimate:
    """What relabeling ``budget`` reviews of the queue is expected to do.

    Attributes
    ----------
    budget : reviews spent (samples relabeled, with one review a sample).
    fixed, fixed_low, fixed_high : wrong labels made right — mean, and the 2.5 / 97.5 % percentiles
        of the simulated reviews (their spread alone: not a confidence interval).
    broken, broken_low, broken_high : right labels made wrong (a review that errs).
    wrong : labels the posterior calls wrong in the whole dataset (``given != argmax p``).
    repeats : simulated campaigns.
    used : reviews the simulated campaigns spent, mean (below ``budget`` when every sample
        settles first: a budget larger than the queue).
    samples : samples the simulated campaigns reviewed, mean (``budget`` under single-expert
        review; fewer when a sample takes several reviews: ``agree`` above 1, ``count_given``).
    one_review_each : the consensus rule settles a sample with one review (single-expert review).
    agreeing : of the samples the budget reaches, those whose given label the posterior agrees
        with (its argmax): only they can be broken, so with none ``broken`` is 0 by construction.
    sureness : the posterior's mean top probability over the samples the budget reaches — how
        often the simulated reviewers, drawn from it, name the label it calls true.
    """

    budget: int
    fixed: float
    fixed_low: float
    fixed_high: float
    broken: float
    broken_low: float
    broken_high: float
    wrong: int
    repeats: int
    used: float | None = None
    samples: float | None = None
    one_review_each: bool = True
    agreeing: int | None = None
    sureness: float | None = None

    def message(self) -> str:
        """``relabeling B samples is expected to fix X (L–H in 95 % of the simulated reviews ...)`` (``B reviews, on S
        samples on average, are ...`` when the rule can ask several reviews of a sample); a budget the queue cannot spend
        says how many reviews settle every sample instead."""
        what = "samples" if self.budget != 1 else "sample"
        head = f"relabeling {self.budget} {what} is"
        if not self.one_review_each and self.samples is not None:
            on = f"{self.samples:.0f} sample{'s' if round(self.samples) != 1 else ''}"
            head = (f"{self.budget} review{'s' if self.budget != 1 else ''}, on {on} on average (the consensus "
                    f"rule can ask several reviews of a sample), {'are' if self.budget != 1 else 'is'}")  # fmt: skip
        if self.used is not None and self.used < self.budget:
            head = (f"the budget of {self.budget} reviews is more than the queue can use: every sample "
                    f"settles after {self.used:.0f} reviews, which are")  # fmt: skip
        fixes = (f"{head} expected to fix {self.fixed:.0f} "
                 f"({self.fixed_low:.0f}–{self.fixed_high:.0f} in 95 % of the simulated reviews, which take the "
                 f"model's word for the truth: its own errors are not in that range) of the "
                 f"{self.wrong} labels the model calls wrong")  # fmt: skip
        if self.agreeing == 0:  # nothing the simulation could break: no number to give
            return (f"{fixes}; every label they reach is one the model calls wrong, so the simulation, its "
                    "reviewers drawn from the model, changes no right label to a wrong one: what real reviewers' "
                    "mistakes cost is not in it")  # fmt: skip
        return (f"{fixes}, and to change {self.broken:.0f} ({self.broken_low:.0f}–"
                f"{self.broken_high:.0f} in 95 % of them) right labels to wrong ones")  # fmt: skip


def preflight(
    posterior: np.ndarray,
    given: np.ndarray,
    *,
    budget: int,
    priority: str | Priority | PriorityFn = "cross_entropy",
    sei: np.ndarray | None = None,
    gamma: float = DEFAULT_GAMMA,
    rule: ConsensusRule = ConsensusRule(),
    repeats: int = REPEATS,
    seed: int = 0,
) -> Estimate:
    """Estimate what ``budget`` reviews of the queue ordered by ``priority`` fix (module doc).

    Parameters
    ----------
    posterior : (N, K) the model's posterior: the queue's ranking, the simulated reviews and the
        labels they would settle on.
    given : (N,) the labels the samples have now.
    budget : reviews, ``>= 1`` (more than the samples is allowed: the campaign stops when every
        sample is settled).
    priority, sei, gamma : the queue's rule and its inputs (the priorities are computed once, on the
        whole queue, for every repeat).
    rule : the review's consensus rule.
    repeats, seed : simulated campaigns; repeat ``r`` draws its reviews from seed ``seed + r``.
    """
    p = check_posterior(posterior)
    n, k = p.shape
    g = check_label_vector(given, n, k, "given")
    if isinstance(budget, bool) or int(budget) != budget or budget < 1:
        raise ValueError(f"budget must be a positive number of reviews, got {budget!r}")
    if isinstance(repeats, bool) or int(repeats) != repeats or repeats < 2:
        raise ValueError(f"repeats must be an integer >= 2, got {repeats!r}")
    truth = p.argmax(axis=1)
    # The queue is ranked once: a campaign asks each sample until it settles, then the next in the
    # order (no re-ranking here), so the samples it reaches are the order's first ``budget`` at most,
    # and each repeat replays the campaign on them alone, with their priorities from the whole
    # queue (the same picks and the same draws: a vote's draw depends on the order of the votes).
    first = Campaign(g, num_classes=k, budget=int(budget), priority=priority, posterior=p, sei=sei,
                     gamma=gamma, seed=seed, count_initial_label=rule.count_given, agree=rule.agree)  # fmt: skip
    top = np.sort(first.ranking()[: int(budget)])  # by id, so that ties keep their order
    ranked = first.priorities()[top]
    fixed_order = Priority("preflight-ranking", lambda _: ranked)
    t, was_right = truth[top], int((g[top] == truth[top]).sum())
    fixed, broken, used, samples = (np.zeros(repeats) for _ in range(4))
    if rule.one_vote_settles:
        _single_reviews(p[top], g[top], t, fixed_order, budget=int(budget), seed=seed,
                        out=(fixed, broken, used, samples))  # fmt: skip
    plain = np.zeros(top.size, dtype=bool)
    for r in range(0 if rule.one_vote_settles else int(repeats)):
        c = Campaign(g[top], num_classes=k, budget=int(budget), priority=fixed_order, posterior=p[top],
                     annotator=SimulatedAnnotator(p[top], seed=seed + r), count_initial_label=rule.count_given,
                     agree=rule.agree)  # fmt: skip
        log = c.run()
        used[r] = c.relabels_used
        samples[r] = c.samples_reviewed
        curves = count_curves(log, truth=t, ambiguous=plain, budget=int(budget))
        fixed[r] = curves["fixed"][-1]
        broken[r] = was_right - (curves["correct"][-1] - curves["fixed"][-1])
    lo, hi = np.percentile(fixed, [2.5, 97.5])
    blo, bhi = np.percentile(broken, [2.5, 97.5])
    return Estimate(budget=int(budget), fixed=float(fixed.mean()), fixed_low=float(lo),
                    fixed_high=float(hi), broken=float(broken.mean()), broken_low=float(blo),
                    broken_high=float(bhi), wrong=int((g != truth).sum()),
                    repeats=int(repeats), used=float(used.mean()), samples=float(samples.mean()),
                    one_review_each=rule.one_vote_settles, agreeing=was_right,
                    sureness=float(p[top].max(axis=1).mean()))  # fmt: skip


def _single_reviews(p: np.ndarray, g: np.ndarray, truth: np.ndarray, order: Priority, *, budget: int,
                    seed: int, out: tuple[np.ndarray, ...]) -> None:  # fmt: skip
    """The repeats of :func:`preflight` under single-expert review, without stepping a campaign.

    One review settles a sample on the label drawn, so repeat ``r`` asks the first ``budget``
    samples of the order once each, in order: the same votes a :class:`Campaign` with
    ``SimulatedAnnotator(p, seed=seed + r)`` draws (its ``t``-th vote goes to the ``t``-th sample),
    drawn in one call (the campaign's loop took minutes for a budget of 20,000).
    """
    asked = Campaign(g, num_classes=p.shape[1], budget=budget, priority=order, posterior=p).ranking()[:budget]
    fixed, broken, used, samples = out
    wrong = g[asked] != truth[asked]
    for r in range(fixed.size):
        vote = SimulatedAnnotator(p, seed=seed + r).annotate(asked)
        fixed[r] = int((wrong & (vote == truth[asked])).sum())
        broken[r] = int((~wrong & (vote != truth[asked])).sum())
    used[:] = samples[:] = asked.size
