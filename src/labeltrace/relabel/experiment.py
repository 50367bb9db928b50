"""Simulated campaigns on real votes: one campaign, selectors × seeds, and full simulations with
a head in the loop.

* :func:`run_campaign` — one :class:`~labeltrace.relabel.campaign.Campaign` whose annotator
  draws from the real (untempered) vote distributions (:class:`~labeltrace.relabel.annotator.
  SimulatedAnnotator`), measured against the vote majority;
* :func:`compare_selectors` — every selector × seed from the same initial labels, normalised by
  the oracle;
* :func:`run_simulation` — per seed: initial noisy labels at a target noise rate
  (:mod:`labeltrace.relabel.votes`), a head trained on the features and those labels
  (:mod:`labeltrace.relabel.head`; in-sample, or cross-fitted with ``HeadConfig(folds=F)``) —
  or any model given as a function of the labels (``model=``, e.g. a fine-tuned network) —
  then :func:`compare_selectors`; with ``active_every=M`` the model-based selectors refresh the
  posterior every ``M`` relabels — by retraining the head (``active_method="head"``) or by
  label propagation (``"propagation"``), the refresh the review app's live queue runs
  (:func:`labeltrace.relabel.live.build_updater`).

The budget of a simulation is ``budget_factor × round(noise_rate × N)`` relabels, the same for
every seed so the curves can be averaged (the realised number of noisy labels is reported).
Unlike the authors' released code, no selector re-picks a settled image — the oracle included —
so once every wrong label has been visited the oracle moves on to correct ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from labeltrace._checks import check_seeds
from labeltrace.relabel import priority as prio
from labeltrace.relabel.annotator import Annotator, FunctionAnnotator, SimulatedAnnotator
from labeltrace.relabel.arrays import check_label_vector, check_posterior, check_vector
from labeltrace.relabel.campaign import Campaign, UpdateFn
from labeltrace.relabel.head import HeadConfig, HeadRetrainer, standardize
from labeltrace.relabel.live import LiveConfig, TimedUpdate, build_updater
from labeltrace.relabel.priority import DEFAULT_SELECTORS
from labeltrace.relabel.propagation import neighbour_graph
from labeltrace.relabel.result import DEFAULT_FRACTIONS, CampaignResult, campaign_result
from labeltrace.relabel.stats import SimulationResult, aggregate, normalized_gain, ratio_to_random
from labeltrace.relabel.unread import check_active, refuse_unread
from labeltrace.relabel.votes import (
    InitialLabels,
    ambiguous_mask,
    sample_initial_labels,
    temperature_for_rate,
    vote_distribution,
)

__all__ = [
    "DEFAULT_SELECTORS",
    "ModelFn",
    "SimulationResult",
    "compare_selectors",
    "ratio_to_random",
    "run_campaign",
    "run_simulation",
]

DEFAULT_HEAD = HeadConfig()


def run_campaign(
    votes: np.ndarray,
    initial_labels: np.ndarray | InitialLabels,
    *,
    budget: int,
    selector: str | prio.Priority | prio.PriorityFn = "joint",
    posterior: np.ndarray | None = None,
    sei: np.ndarray | None = None,
    gamma: float = prio.DEFAULT_GAMMA,
    seed: int = 0,
    update_posterior: UpdateFn | None = None,
    update_every: int | None = None,
    count_initial_label: bool = True,
    annotator: Annotator | Callable[[int], int] | None = None,
    ambiguity_threshold: float = 0.3,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    name: str | None = None,
) -> CampaignResult:
    """Simulate one relabeling campaign of ``budget`` relabels on real votes.

    Parameters
    ----------
    votes : (N, K) annotator vote counts: the truth (majority) and the annotator model.
    initial_labels : (N,) noisy labels, or an :class:`~labeltrace.relabel.votes.InitialLabels`.
    budget : number of relabels (annotator draws) to spend, ``>= 1``; never exceeded.
    selector : a registry name, a ``Priority`` or a ``PriorityFn``. ``oracle`` uses the vote
        distributions; ``random`` uses ``seed``.
    posterior, sei, gamma, update_posterior, update_every, count_initial_label : as for
        :class:`~labeltrace.relabel.campaign.Campaign`.
    seed : seeds the annotator (:class:`SimulatedAnnotator`, one uniform per relabel) and the
        ``random`` selector; both independent of ``sample_initial_labels`` with the same seed.
    annotator : an :class:`~labeltrace.relabel.annotator.Annotator`, or ``f(image id) -> label``,
        replacing the vote-distribution draw (scripted answers; a posterior standing in for
        the annotators).
    ambiguity_threshold : normalised vote entropy above which a noisy image counts as ambiguous.
    fractions : budget fractions at which ``fixed_per_100`` is reported.
    name : label of the result (default: the selector's name).

    Notes
    -----
    With static priorities the selection order is computed once (``O(N log N)``) and a pointer
    skips settled images, so each relabel costs O(1) Python work; the curves are assembled
    afterwards from the settlement events with vectorised cumulative sums.
    """
    dist = vote_distribution(votes)
    n, k = dist.shape
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"fractions must lie in (0, 1], got {f}")
    if isinstance(initial_labels, InitialLabels):
        initial_labels = initial_labels.labels
    init = check_label_vector(initial_labels, n, k, "initial_labels")
    if int(budget) != budget or budget < 1:
        raise ValueError(f"budget must be a positive integer number of relabels, got {budget}")
    who: Annotator
    if annotator is None:
        who = SimulatedAnnotator(dist, seed=seed)
    elif isinstance(annotator, Annotator):
        who = annotator
    else:
        who = FunctionAnnotator(annotator)
    campaign = Campaign(init, num_classes=k, budget=int(budget), priority=selector,
                        posterior=posterior, sei=sei, true_dist=dist, gamma=gamma, seed=seed,
                        annotator=who, update_posterior=update_posterior,
                        update_every=update_every if update_posterior is not None else None,
                        count_initial_label=count_initial_label)  # fmt: skip
    log = campaign.run()
    return campaign_result(log, truth=dist.argmax(axis=1),
                           ambiguous=ambiguous_mask(votes, threshold=ambiguity_threshold),
                           name=name, fractions=fractions)  # fmt: skip


def compare_selectors(
    votes: np.ndarray,
    initial_labels: np.ndarray | InitialLabels,
    *,
    budget: int,
    selectors: Sequence[str] | Mapping[str, str | prio.PriorityFn] = ("random", "oracle", "joint"),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    posterior: np.ndarray | None = None,
    sei: np.ndarray | None = None,
    gamma: float = prio.DEFAULT_GAMMA,
    update_posterior: UpdateFn | None = None,
    update_every: int | None = None,
    count_initial_label: bool = True,
    ambiguity_threshold: float = 0.3,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> dict[str, list[CampaignResult]]:
    """Run :func:`run_campaign` for every selector × seed from the same initial labels.

    ``selectors`` is a list of registry names or a mapping ``display name -> name or PriorityFn``.
    ``update_posterior`` (the active loop) is given to the selectors that read a model
    (``Priority.needs_model``). When ``oracle`` is among the selectors, every result's
    ``normalized_gain`` is set against the oracle run with the same seed.

    Returns
    -------
    {display name: [CampaignResult per seed, in ``seeds`` order]}
    """
    named: dict[str, str | prio.PriorityFn] = (
        dict(selectors) if isinstance(selectors, Mapping) else {str(s): s for s in selectors}
    )
    if not named:
        raise ValueError("no selectors given")
    seeds = check_seeds(seeds)
    out: dict[str, list[CampaignResult]] = {}
    for disp, sel in named.items():
        active = update_posterior is not None and prio.resolve(sel).needs_model
        out[disp] = [
            run_campaign(votes, initial_labels, budget=budget, selector=sel, posterior=posterior,
                         sei=sei, gamma=gamma, seed=s,
                         update_posterior=update_posterior if active else None,
                         update_every=update_every if active else None,
                         count_initial_label=count_initial_label,
                         ambiguity_threshold=ambiguity_threshold, fractions=fractions, name=disp)
            for s in seeds
        ]  # fmt: skip
    oracle_key = next((d for d, s in named.items() if s == "oracle"), None)
    if oracle_key is not None:
        ref = {r.seed: r for r in out[oracle_key]}
        out = {
            d: [replace(r, normalized_gain=normalized_gain(r, ref[r.seed])) for r in rs]
            for d, rs in out.items()
        }
    return out


ModelFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
"""``model(labels (N,), seed) -> (posterior (N, K), sei (N,))``: a model in the simulation's loop
(:func:`run_simulation`'s ``model``)."""


def _checked_model(model: ModelFn, seed: int, n: int, k: int) -> UpdateFn:
    """``model`` for one seed, on the current labels; its answers checked (shapes, finite, rows
    summing to 1)."""

    def fit(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        post, sei = model(labels, seed)
        return check_posterior(post, n=n, k=k), check_vector(sei, "the model's SEI", n)

    return fit


def _simulation_budget(n: int, noise_rate: float, budget_factor: float, budget: int | None) -> int:
    if not 0.0 < noise_rate < 1.0:
        raise ValueError(f"noise_rate must lie in (0, 1), got {noise_rate}")
    if budget is None:
        if not budget_factor > 0:
            raise ValueError(f"budget_factor must be > 0, got {budget_factor}")
        budget = round(budget_factor * round(noise_rate * n))
        if budget < 1:  # the user gave no budget: say where the 0 came from
            raise ValueError(f"the budget (--budget-factor {budget_factor:g} x round(--noise-rate {noise_rate:g} x "
                             f"{n:,} samples) = {budget}) is no relabel: give --budget, or a higher --noise-rate")  # fmt: skip
    if int(budget) != budget or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget}")
    return int(budget)


def run_simulation(
    votes: np.ndarray,
    *,
    features: np.ndarray | Sequence[np.ndarray] | None = None,
    selectors: Sequence[str] = DEFAULT_SELECTORS,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    noise_rate: float = 0.15,
    budget_factor: float = 3.0,
    budget: int | None = None,
    head: HeadConfig = DEFAULT_HEAD,
    active_every: int | None = None,
    active_method: str = "head",
    gamma: float = prio.DEFAULT_GAMMA,
    log: Callable[[str], None] | None = None,
    model: ModelFn | None = None,
) -> SimulationResult:
    """Simulate relabeling campaigns of every selector on real votes with a model in the loop.

    Parameters
    ----------
    votes : (N, K) annotator vote counts (truth = majority; the simulated annotator).
    features : (N, D) raw features (standardised here), or a list of views of the same images
        (each standardised; the head is trained on each and the posteriors averaged, see
        :mod:`labeltrace.relabel.head`; label propagation uses the first view's neighbours);
        required by the selectors that need a model
        (:func:`labeltrace.relabel.priority.needing_model`) unless ``model`` is given.
    selectors : registry names; ``oracle`` sets the normalised gains.
    seeds : per seed ``s``: the initial labels (``temperature_for_rate(votes, noise_rate,
        seed=s)`` then ``sample_initial_labels(..., seed=s)``), the head (``head.seed + s``),
        the annotator and the ``random`` order.
    noise_rate : target fraction of initial labels that differ from the vote majority (realised
        exactly up to ties: the smallest temperature reaching it).
    budget_factor, budget : relabels = ``budget`` if given, else
        ``round(budget_factor × round(noise_rate × N))``.
    head : the head and its posterior.
    active_every : refresh the posterior from the current labels every this many relabels (model
        selectors only); None keeps the initial model's posterior and SEI throughout.
    active_method : ``"head"`` retrains the head (as configured: in-sample or cross-fitted);
        ``"propagation"`` shifts the initial posterior by the neighbours' corrected labels
        (:mod:`labeltrace.relabel.propagation`, k = 10, λ = 1).
    gamma : ambiguity threshold of ``joint`` / ``sei_joint``.
    log : called with one progress line per seed.
    model : instead of ``features`` and ``head``: any model in the loop, ``model(labels, seed) ->
        (posterior (N, K), sei (N,))`` trained on ``labels`` (e.g. a fine-tuned network,
        cross-fitted); with ``active_every`` it is called again on the current labels at every
        refresh (``active_method="head"``).

    Everything is checked before the first seed trains: the seeds (distinct whole numbers >= 0),
    ``gamma`` (in [0, 1]), ``features`` against the votes' N, and the settings no selector reads,
    refused as ``labeltrace simulate`` refuses them (:mod:`labeltrace.relabel.unread`): ``gamma``
    off its default without ``joint`` / ``sei_joint``; ``features``, ``model``, ``head``,
    ``active_every`` or ``active_method`` given with selectors that read no model;
    ``active_method`` without ``active_every``; ``head`` or ``features`` beside ``model``.
    """
    dist = vote_distribution(votes)
    n, k = dist.shape
    sel = list(selectors)
    if not sel:
        raise ValueError("no selectors given")
    unknown = [s for s in sel if s not in prio.available()]
    if unknown:
        raise ValueError(f"unknown selectors {unknown}; available: {', '.join(prio.available())}")
    if len(set(sel)) != len(sel):
        raise ValueError(f"selectors repeat: {sel}")
    seeds = check_seeds(seeds)  # all of them before the first trains
    gamma = prio.check_gamma(gamma)
    check_active(active_method, active_every, cli=False)
    needs_model = prio.needing_model(sel)
    if model is not None and (features is not None or head != DEFAULT_HEAD or active_method != "head"):
        raise ValueError("model replaces features and the head: give one or the other "
                         "(a model refreshes by refitting: active_method='head')")  # fmt: skip
    x: list[np.ndarray] | None = None
    if features is not None:  # checked whether or not a selector reads them
        views = [features] if isinstance(features, np.ndarray) else list(features)
        x = [standardize(f) for f in views]
        for i, v in enumerate(x):
            if v.shape[0] != n:
                name = "features" if len(x) == 1 else f"feature view {i}"
                raise ValueError(f"{name} have {v.shape[0]} rows but the votes have {n} images")
    given = [name for name, on in (("features", features is not None), ("model", model is not None),
                                   ("head", head != DEFAULT_HEAD), ("active_every", active_every is not None),
                                   ("active_method", active_method != "head")) if on]  # fmt: skip
    refuse_unread(sel, cli=False, gamma=gamma != prio.DEFAULT_GAMMA, model=given)
    if needs_model and model is None and features is None:
        raise ValueError(
            f"selectors {needs_model} need a model posterior/SEI: give features "
            "(an (N, D) array) or keep only random and oracle"
        )
    budget = _simulation_budget(n, noise_rate, budget_factor, budget)
    live = None
    if active_every is not None:
        live = LiveConfig(method=active_method, every=active_every)  # type: ignore[arg-type]
    neighbours = None
    if live is not None and live.method == "propagation" and x is not None:
        neighbours = neighbour_graph(x[0], k=live.k)  # the first view's neighbours

    truth = dist.argmax(axis=1)
    t_start = time.perf_counter()
    results: dict[str, list[CampaignResult]] = {s: [] for s in sel}
    temps: list[float] = []
    n_noisy: list[int] = []
    head_acc: list[float] = []
    head_rec: list[float] = []
    trainings: list[int] = []
    n_updates: list[int] = []
    update_sec: list[float] = []
    taus = {s: temperature_for_rate(votes, noise_rate, seed=s) for s in seeds}  # an unreachable rate: before any
    for s in seeds:  # training, not at the seed whose draw first misses it
        t0 = time.perf_counter()
        tau = taus[s]
        init = sample_initial_labels(votes, temperature=tau, seed=s)
        noisy = init.labels != truth
        temps.append(float(tau))
        n_noisy.append(int(noisy.sum()))
        post = sei = None
        retrainer = None
        head_acc.append(float("nan"))
        head_rec.append(float("nan"))
        update = None
        if model is not None and needs_model:
            fit = _checked_model(model, s, n, k)
            post, sei = fit(init.labels)
            update = TimedUpdate(fit) if live is not None else None
        elif x is not None:
            retrainer = HeadRetrainer(x, num_classes=k, config=replace(head, seed=head.seed + s))
            first = retrainer.fit(init.labels)
            post, sei = first.posterior, first.sei
        if post is not None:
            pred = post.argmax(axis=1)
            head_acc[-1] = float(np.mean(pred == truth))
            if noisy.any():
                head_rec[-1] = float(np.mean(pred[noisy] != init.labels[noisy]))
        if live is not None and x is not None and post is not None:
            if live.method == "head":  # the retrainer that fitted the start: its cache is shared
                update = TimedUpdate(retrainer)  # type: ignore[arg-type]
            else:
                update = build_updater(live, x[0], posterior=post, labels=init.labels, sei=sei,
                                       neighbours=neighbours)  # fmt: skip
        out = compare_selectors(
            votes, init, budget=budget, selectors=sel, seeds=[s], posterior=post, sei=sei,
            gamma=gamma, update_posterior=update,
            update_every=live.every if live is not None else None,
        )  # fmt: skip
        for name, rs in out.items():
            results[name].extend(rs)
        fits = 1 + (update.calls if update is not None else 0) if model is not None and needs_model else 0
        trainings.append(retrainer.trainings if retrainer is not None else fits)
        n_updates.append(update.calls if update is not None else 0)
        update_sec.append(update.seconds if update is not None else 0.0)
        if log is not None:
            log(
                f"seed {s}: tau {tau:.3g}, {int(noisy.sum())} noisy, "
                + (f"head acc {head_acc[-1]:.3f}, " if x is not None else "")
                + f"{trainings[-1]} trainings, {time.perf_counter() - t0:.1f}s"
            )
    return SimulationResult(
        results=results,
        aggregates={name: aggregate(rs) for name, rs in results.items()},
        budget=budget,
        noise_rate=float(noise_rate),
        budget_factor=float(budget_factor),
        seeds=seeds,
        active_every=None if active_every is None else int(active_every),
        temperatures=temps,
        n_noisy=n_noisy,
        head_accuracy=head_acc,
        head_noisy_recall=head_rec,
        retrainings=trainings,
        head=head if x is not None else None,
        seconds=time.perf_counter() - t_start,
        active_method=live.method if live is not None else "head",
        updates=n_updates,
        update_seconds=update_sec,
    )
