"""Relabeling-campaign simulator (active label cleaning, Bernhardt et al., Nat. Commun. 2022).

Given real per-image annotator vote counts ``votes`` (N, K) — e.g. CIFAR-10H — the simulator

1. takes the **true label** of an image to be its vote majority ``argmax votes`` (ties → lowest
   class index) and its **annotator distribution** ``votes / votes.sum()``;
2. draws one **initial noisy label** per image from the temperature-scaled vote distribution
   ``p_τ ∝ votes ** (1/τ)`` (:func:`sample_initial_labels`): ``τ = 1`` is one annotator's answer,
   ``τ → 0`` the majority (noise only on tied images), large ``τ`` uniform over the classes that
   got at least one vote (classes without votes are never drawn). :func:`temperature_for_rate`
   picks ``τ`` for a target noise rate;
3. runs a campaign (:func:`run_campaign`): a selector orders the images by a relabel priority
   (:mod:`labeltrace.queue`); the highest-priority image not yet settled is relabelled by a
   simulated annotator who draws from its real (untempered) vote distribution, **one relabel per
   draw**, until the top label of the votes collected for the image has a strict majority over
   the second. As in the paper, the initial noisy label counts as one vote
   (``count_initial_label=True``): an image whose annotators all agree with its label settles in
   one relabel; a wrong label needs at least two (the first correct vote only ties it). The image
   then takes the majority label and is settled (never picked again). The campaign stops exactly
   when the budget of relabels is spent; an image in progress at that moment keeps its previous
   label (while in progress its collected votes are tied at the top, so there is no majority yet).

Every relabel is a point of the curve "fraction of correct labels vs relabels spent". Summaries:
``auc`` — the paper's area under that curve divided by the area of a perfect curve
(``∫ acc dr / budget``, the mean accuracy over the campaign); ``gain`` — the area between the
curve and the initial accuracy divided by ``budget``; ``normalized_gain`` — ``gain`` divided by
the oracle's ``gain`` at the same seed (1 = as good as the oracle, 0 = no progress);
``fixed_per_100`` — initially-noisy images now correct per 100 relabels after 10/25/50% of the
budget; remaining *clear* vs *ambiguous* noisy images (ambiguous = normalised vote entropy
``> 0.3``, the paper's threshold).

Seeds: :func:`sample_initial_labels` (``seed=s``), the annotator of :func:`run_campaign`
(``seed=s``) and its ``random`` selector draw from independent streams, so one seed may drive all
three. Unlike the authors' released code, no selector re-picks a settled image — the oracle
included — so once every wrong label has been visited the oracle moves on to correct ones.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from labeltrace._checks import describe_ids
from labeltrace.relabel import priority as _q
from labeltrace.relabel.priority import _normalize_counts, normalized_entropy

__all__ = [
    "Aggregate",
    "CampaignResult",
    "InitialLabels",
    "aggregate",
    "ambiguous_mask",
    "compare_selectors",
    "expected_noise_rate",
    "normalized_gain",
    "plot_campaigns",
    "run_campaign",
    "sample_initial_labels",
    "t_interval",
    "temperature_for_rate",
    "tempered_distribution",
    "true_labels",
    "vote_distribution",
    "write_curves_csv",
    "write_summary_csv",
]

DEFAULT_FRACTIONS: tuple[float, ...] = (0.10, 0.25, 0.50)
_MODEL_SELECTORS = frozenset({"cross_entropy", "joint", "sei_joint"})
_SEI_SELECTORS = frozenset({"sei", "sei_joint"})

# --------------------------------------------------------------------------- votes and noise


def vote_distribution(votes: np.ndarray) -> np.ndarray:
    """(N, K) annotator distributions: each row of the vote counts divided by its total.

    Raises ``ValueError`` for non-2-D input, fewer than 2 classes, NaN/negative counts or images
    without votes (naming the sample ids).
    """
    return _normalize_counts(votes, "votes")


def true_labels(votes: np.ndarray) -> np.ndarray:
    """(N,) int64 vote majority ``argmax votes`` (ties → lowest class index)."""
    return vote_distribution(votes).argmax(axis=1).astype(np.int64)


def _log_tempered(dist: np.ndarray, temperature: float) -> np.ndarray:
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    with np.errstate(divide="ignore"):
        logp = np.log(dist)
    logp = (logp - logp.max(axis=1, keepdims=True)) / temperature
    return logp  # -inf where a class has no votes


def tempered_distribution(votes: np.ndarray, temperature: float) -> np.ndarray:
    """(N, K) ``p_τ ∝ votes ** (1/τ)``, computed in log space; zero-vote classes stay at 0."""
    w = np.exp(_log_tempered(vote_distribution(votes), temperature))
    return w / w.sum(axis=1, keepdims=True)


def _p_true(dist: np.ndarray, temperature: float) -> np.ndarray:
    """(N,) tempered probability of the majority class."""
    w = np.exp(_log_tempered(dist, temperature))
    return w[np.arange(dist.shape[0]), dist.argmax(axis=1)] / w.sum(axis=1)


def expected_noise_rate(votes: np.ndarray, temperature: float) -> float:
    """Expected fraction of initial labels differing from the majority: ``mean(1 − p_τ[true])``."""
    return float(np.mean(1.0 - _p_true(vote_distribution(votes), temperature)))


@dataclass(frozen=True, eq=False)
class InitialLabels:
    """Initial noisy labels drawn by :func:`sample_initial_labels`.

    Attributes
    ----------
    labels : (N,) int64 noisy labels.
    temperature : the ``τ`` used.
    noise_rate : realised fraction of labels that differ from the vote majority.
    expected_noise_rate : ``mean(1 − p_τ[true])``, the rate's expectation over draws.
    seed : the seed of the draw.
    """

    labels: np.ndarray
    temperature: float
    noise_rate: float
    expected_noise_rate: float
    seed: int


_STREAM_INITIAL, _STREAM_ANNOTATOR = 0, 1


def _rng(seed: int, stream: int) -> np.random.Generator:
    """Independent generator ``stream`` of ``seed`` (a SeedSequence spawn key, as ``spawn()``).

    Keeps the initial-label draw, the annotator and the ``random`` selector
    (``default_rng(seed)``) uncorrelated when they are given the same seed.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


def _uniforms(n: int, seed: int) -> np.ndarray:
    return _rng(seed, _STREAM_INITIAL).random(n)


def sample_initial_labels(
    votes: np.ndarray, *, temperature: float = 1.0, seed: int = 0
) -> InitialLabels:
    """Draw one label per image from ``p_τ ∝ votes ** (1/τ)``.

    One uniform ``u`` per image (stream 0 of ``seed``, see :func:`_rng`) decides:
    ``u < p_τ[true]`` keeps the majority label; otherwise ``u`` is rescaled onto the other
    classes and inverted through their cumulative ``p_τ``. This is an exact draw from ``p_τ`` in
    which, for a fixed seed, the set of noisy images only grows with ``τ`` — what lets
    :func:`temperature_for_rate` hit a realised rate.
    """
    dist = vote_distribution(votes)
    n, k = dist.shape
    rows = np.arange(n)
    true = dist.argmax(axis=1)
    p = np.exp(_log_tempered(dist, temperature))
    p /= p.sum(axis=1, keepdims=True)
    pt = p[rows, true]
    u = _uniforms(n, seed)
    noisy = u >= pt
    labels = true.astype(np.int64).copy()
    if noisy.any():
        idx = np.flatnonzero(noisy)
        other = p[idx].copy()
        other[np.arange(idx.size), true[idx]] = 0.0
        mass = other.sum(axis=1)  # = 1 - pt > 0 here, since u < 1
        v = (u[idx] - pt[idx]) / mass
        cdf = np.cumsum(other, axis=1) / mass[:, None]
        lab = (cdf <= v[:, None]).sum(axis=1)
        # rounding can leave cdf[-1] a hair below v: take the last class with mass
        last = k - 1 - np.argmax((other > 0)[:, ::-1], axis=1)
        labels[idx] = np.where(lab >= k, last, lab)
    return InitialLabels(
        labels=labels,
        temperature=float(temperature),
        noise_rate=float(np.mean(labels != true)),
        expected_noise_rate=float(np.mean(1.0 - pt)),
        seed=int(seed),
    )


def temperature_for_rate(
    votes: np.ndarray,
    target_rate: float,
    *,
    seed: int | None = None,
    bounds: tuple[float, float] = (1e-3, 1e4),
    max_iter: int = 200,
) -> float:
    """Temperature ``τ`` giving initial-label noise rate ``target_rate``, by bisection on ``log τ``.

    With ``seed=None`` the target is the **expected** rate ``mean(1 − p_τ[true])`` (continuous and
    increasing in ``τ``; bisection to relative precision 1e-12). With an integer ``seed`` it is the
    **realised** rate of ``sample_initial_labels(votes, temperature=τ, seed=seed)``, a step function
    in steps of 1/N: the smallest ``τ`` (to relative precision 1e-9) whose realised rate is at
    least ``target_rate``.

    Raises ``ValueError`` when the target lies outside the rates reachable within ``bounds``
    (e.g. images whose annotators all agree can never be noisy).
    """
    dist = vote_distribution(votes)
    if not 0.0 <= target_rate < 1.0:
        raise ValueError(f"target_rate must lie in [0, 1), got {target_rate}")
    lo, hi = float(bounds[0]), float(bounds[1])
    if not 0 < lo < hi:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")
    if seed is None:

        def rate(t: float) -> float:
            return float(np.mean(1.0 - _p_true(dist, t)))

        rel_tol = 1e-12
    else:
        u = _uniforms(dist.shape[0], seed)

        def rate(t: float) -> float:
            return float(np.mean(u >= _p_true(dist, t)))

        rel_tol = 1e-9
    r_lo, r_hi = rate(lo), rate(hi)
    if target_rate <= r_lo:
        return lo
    if target_rate > r_hi:
        raise ValueError(
            f"target_rate {target_rate} is not reachable: the noise rate ranges over "
            f"[{r_lo:.6f}, {r_hi:.6f}] for temperatures in {bounds}"
        )
    llo, lhi = math.log(lo), math.log(hi)
    for _ in range(max_iter):
        mid = 0.5 * (llo + lhi)
        if rate(math.exp(mid)) >= target_rate:
            lhi = mid
        else:
            llo = mid
        if lhi - llo < rel_tol:
            break
    if seed is None:  # continuous: return the point closer to the target
        a, b = math.exp(llo), math.exp(lhi)
        return a if abs(rate(a) - target_rate) < abs(rate(b) - target_rate) else b
    return math.exp(lhi)


def ambiguous_mask(votes: np.ndarray, *, threshold: float = 0.3) -> np.ndarray:
    """(N,) bool: images whose normalised vote entropy ``H(votes)/log K`` exceeds ``threshold``."""
    return normalized_entropy(vote_distribution(votes)) > threshold


# --------------------------------------------------------------------------- the campaign


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
        :func:`normalized_gain`, :func:`compare_selectors`).
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


PriorityFn = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]
"""A custom selector: ``f(label_counts (N, K), posterior (N, K) or None) -> (N,) priorities``."""

UpdateFn = Callable[[np.ndarray], "np.ndarray | tuple[np.ndarray, np.ndarray]"]
"""``update_posterior(current_labels (N,)) -> posterior (N, K)`` or ``(posterior, sei)``."""


def _check_labels(labels: Any, n: int, k: int, name: str) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one per image), got {lab.shape}")
    if lab.size and not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {lab.dtype}")
    bad = np.flatnonzero((lab < 0) | (lab >= k))
    if bad.size:
        raise ValueError(f"{name} outside 0..{k - 1} at {describe_ids(bad)}")
    return lab.astype(np.int64)


def _unpack_update(out: Any, n: int, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    sei = None
    if isinstance(out, tuple):
        if len(out) != 2:
            raise ValueError("update_posterior must return posterior or (posterior, sei)")
        out, sei = out
        sei = _q._check_vector(sei, "sei returned by update_posterior", n)
    post = _q._check_posterior(out, n=n, k=k)
    return post, sei


def run_campaign(
    votes: np.ndarray,
    initial_labels: np.ndarray | InitialLabels,
    *,
    budget: int,
    selector: str | PriorityFn = "joint",
    posterior: np.ndarray | None = None,
    sei: np.ndarray | None = None,
    gamma: float = 0.3,
    seed: int = 0,
    update_posterior: UpdateFn | None = None,
    update_every: int | None = None,
    count_initial_label: bool = True,
    annotator: Callable[[int], int] | None = None,
    ambiguity_threshold: float = 0.3,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    name: str | None = None,
) -> CampaignResult:
    """Simulate one relabeling campaign of ``budget`` relabels (module docstring for the rules).

    Parameters
    ----------
    votes : (N, K) annotator vote counts; the truth and the annotator model.
    initial_labels : (N,) noisy labels, or an :class:`InitialLabels`.
    budget : number of relabels (annotator draws) to spend, ``>= 1``; never exceeded.
    selector : a name from :func:`labeltrace.queue.available` or a :data:`PriorityFn`.
        ``oracle`` uses the vote distributions; ``random`` uses ``seed``.
    posterior, sei : (N, K) model probabilities and (N,) SEI for the model-based selectors.
    gamma : ambiguity threshold of ``joint`` / ``sei_joint``.
    seed : seeds the annotator (stream 1 of ``seed``, see :func:`_rng`; one uniform per relabel,
        drawn up front) and the ``random`` selector (``queue.random(N, seed=seed)``). Both are
        independent of :func:`sample_initial_labels` with the same seed.
    update_posterior, update_every : the active loop. At the first image boundary after every
        ``update_every`` relabels, ``update_posterior(current_labels)`` returns a new posterior
        (or ``(posterior, sei)``) and the priorities of the unsettled images are recomputed
        from it and the current label counts. If the selector needs a posterior (or SEI) that
        was not given, it is also called once before the first pick to provide it.
    count_initial_label : count the initial label as one vote in the majority rule (the
        paper's choice). ``False`` makes the first relabel decide (single-expert review).
    annotator : ``f(image id) -> label`` replacing the vote-distribution draw (for scripted
        annotators in tests or a real labeling loop).
    ambiguity_threshold : normalised vote entropy above which a noisy image counts as ambiguous.
    fractions : budget fractions at which ``fixed_per_100`` is reported.
    name : label of the result (default: the selector's name).

    Returns
    -------
    CampaignResult

    Notes
    -----
    With static priorities the selection order is computed once (``O(N log N)``) and a pointer
    skips settled images, so each relabel costs O(1) Python work plus one ``searchsorted``; the
    curves are assembled afterwards from the settlement events with vectorised cumulative sums.
    Priorities of unvisited images do not change when other images are relabelled (every rule
    is per-image), so recomputing them is only needed when the posterior changes.
    """
    dist = vote_distribution(votes)
    n, k = dist.shape
    truth = dist.argmax(axis=1)
    if isinstance(initial_labels, InitialLabels):
        initial_labels = initial_labels.labels
    init = _check_labels(initial_labels, n, k, "initial_labels")
    if int(budget) != budget or budget < 1:
        raise ValueError(f"budget must be a positive integer number of relabels, got {budget}")
    budget = int(budget)
    if update_posterior is not None and (update_every is None or int(update_every) < 1):
        raise ValueError("update_posterior needs update_every >= 1 (relabels between updates)")
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"fractions must lie in (0, 1], got {f}")
    if callable(selector):
        sel_name = name or str(getattr(selector, "__name__", "custom"))
    elif selector in _q.available():
        sel_name = name or str(selector)
    else:
        raise ValueError(f"unknown selector {selector!r}; available: {', '.join(_q.available())}")
    amb = ambiguous_mask(votes, threshold=ambiguity_threshold)

    rows = np.arange(n)
    counts = np.zeros((n, k), dtype=np.int64)
    counts[rows, init] = 1
    labels = init.copy()
    settled = np.zeros(n, dtype=bool)
    n_updates = 0
    post = None if posterior is None else _q._check_posterior(posterior, n=n, k=k)
    sei_arr = None if sei is None else _q._check_vector(sei, "sei", n)
    needs_post = callable(selector) or selector in _MODEL_SELECTORS
    needs_sei = not callable(selector) and selector in _SEI_SELECTORS
    if update_posterior is not None and (
        (needs_post and post is None) or (needs_sei and sei_arr is None)
    ):
        post, new_sei = _unpack_update(update_posterior(labels.copy()), n, k)
        sei_arr = new_sei if new_sei is not None else sei_arr
        n_updates += 1

    def priorities() -> np.ndarray:
        if callable(selector):
            pr = np.asarray(
                selector(counts.copy(), None if post is None else post.copy()), dtype=np.float64
            )
            if pr.shape != (n,):
                raise ValueError(f"selector returned shape {pr.shape}, expected ({n},)")
            bad = np.flatnonzero(~np.isfinite(pr))
            if bad.size:
                raise ValueError(
                    f"selector returned NaN or infinite priorities at {describe_ids(bad)}"
                )
            return pr
        return _q.priority(
            selector,
            posterior=post,
            label_counts=counts,
            sei=sei_arr,
            true_dist=dist,
            gamma=gamma,
            seed=seed,
        )

    def make_order(pr: np.ndarray) -> list[int]:
        ids = np.flatnonzero(~settled)
        return ids[np.argsort(-pr[ids], kind="stable")].tolist()

    order = make_order(priorities())

    # annotator: one uniform per relabel, inverted through the vote CDF of the picked image
    if annotator is None:
        u = _rng(seed, _STREAM_ANNOTATOR).random(budget).tolist()
        cdf = np.cumsum(dist, axis=1)
        last_pos = (k - 1 - np.argmax((dist > 0)[:, ::-1], axis=1)).tolist()

        def draw(i: int, t: int) -> int:
            lab = int(np.searchsorted(cdf[i], u[t], side="right"))
            return lab if lab < k else last_pos[i]

    else:

        def draw(i: int, t: int) -> int:
            lab = annotator(i)
            if int(lab) != lab or not 0 <= lab < k:
                raise ValueError(
                    f"annotator returned label {lab!r} for sample id {i}; expected 0..{k - 1}"
                )
            return int(lab)

    init_list = init.tolist()
    ev_t: list[int] = []
    ev_i: list[int] = []
    ev_new: list[int] = []
    picked: list[int] = []
    draws: list[int] = []
    in_progress = -1
    used = 0
    ptr = 0
    every = int(update_every) if update_posterior is not None and update_every else 0
    next_update = every if every else budget + 1
    while used < budget:
        while ptr < len(order) and settled[order[ptr]]:
            ptr += 1
        if ptr >= len(order):
            break  # every image settled
        i = order[ptr]
        ptr += 1
        tally = [0] * k
        if count_initial_label:
            tally[init_list[i]] += 1
        nd = 0
        new = -1
        while used < budget:
            lab = draw(i, used)
            tally[lab] += 1
            counts[i, lab] += 1
            used += 1
            nd += 1
            top, second = sorted(tally)[-2:][::-1]
            if top > second:
                new = tally.index(top)
                break
        picked.append(i)
        draws.append(nd)
        if new < 0:
            in_progress = i
            break
        settled[i] = True
        labels[i] = new
        ev_t.append(used)
        ev_i.append(i)
        ev_new.append(new)
        if update_posterior is not None and next_update <= used < budget:
            while next_update <= used:
                next_update += every
            post, new_sei = _unpack_update(update_posterior(labels.copy()), n, k)
            sei_arr = new_sei if new_sei is not None else sei_arr
            n_updates += 1
            order = make_order(priorities())
            ptr = 0

    curves = _curves(ev_t, ev_i, ev_new, init=init, truth=truth, ambiguous=amb, budget=budget)
    accuracy = curves["correct"] / n
    fpc = {}
    for f in fractions:
        rr = max(1, round(f * budget))
        fpc[float(f)] = float(100.0 * curves["fixed"][rr] / rr)

    return CampaignResult(
        selector=sel_name,
        seed=int(seed),
        budget=budget,
        relabels_used=used,
        accuracy=accuracy,
        fixed=curves["fixed"],
        remaining_clear=curves["remaining_clear"],
        remaining_ambiguous=curves["remaining_ambiguous"],
        initial_labels=init,
        final_labels=labels,
        label_counts=counts,
        settled=settled,
        picked=np.asarray(picked, dtype=np.int64),
        draws=np.asarray(draws, dtype=np.int64),
        in_progress=in_progress,
        n_updates=n_updates,
        auc=_trapezoid(accuracy) / budget,
        gain=_trapezoid(accuracy - accuracy[0]) / budget,
        fixed_per_100=fpc,
    )


def _curves(
    ev_t: Sequence[int],
    ev_i: Sequence[int],
    ev_new: Sequence[int],
    *,
    init: np.ndarray,
    truth: np.ndarray,
    ambiguous: np.ndarray,
    budget: int,
) -> dict[str, np.ndarray]:
    """(B+1,) count curves from settlement events (relabel count, image id, new label).

    Labels change only when an image settles, at most once per image and from its initial label,
    so each curve is its initial value plus a cumulative sum of per-event changes.
    """
    t_ev = np.asarray(ev_t, dtype=np.int64)
    i_ev = np.asarray(ev_i, dtype=np.int64)
    correct0 = init == truth
    before = correct0[i_ev].astype(np.int64)
    after = (np.asarray(ev_new, dtype=np.int64) == truth[i_ev]).astype(np.int64)
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


def compare_selectors(
    votes: np.ndarray,
    initial_labels: np.ndarray | InitialLabels,
    *,
    budget: int,
    selectors: Sequence[str] | Mapping[str, str | PriorityFn] = ("random", "oracle", "joint"),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    posterior: np.ndarray | None = None,
    sei: np.ndarray | None = None,
    gamma: float = 0.3,
    update_posterior: UpdateFn | None = None,
    update_every: int | None = None,
    count_initial_label: bool = True,
    ambiguity_threshold: float = 0.3,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> dict[str, list[CampaignResult]]:
    """Run :func:`run_campaign` for every selector × seed from the same initial labels.

    ``selectors`` is a list of registry names or a mapping ``display name -> name or PriorityFn``.
    ``update_posterior`` (the active loop) is given to every selector except ``random`` and
    ``oracle``. When ``oracle`` is among the selectors, every result's ``normalized_gain`` is set
    against the oracle run with the same seed.

    Returns
    -------
    {display name: [CampaignResult per seed, in ``seeds`` order]}
    """
    named: dict[str, str | PriorityFn] = (
        dict(selectors) if isinstance(selectors, Mapping) else {str(s): s for s in selectors}
    )
    if not named:
        raise ValueError("no selectors given")
    if not seeds:
        raise ValueError("no seeds given")
    out: dict[str, list[CampaignResult]] = {}
    for disp, sel in named.items():
        active = update_posterior is not None and sel not in ("random", "oracle")
        out[disp] = [
            run_campaign(
                votes,
                initial_labels,
                budget=budget,
                selector=sel,
                posterior=posterior,
                sei=sei,
                gamma=gamma,
                seed=s,
                update_posterior=update_posterior if active else None,
                update_every=update_every if active else None,
                count_initial_label=count_initial_label,
                ambiguity_threshold=ambiguity_threshold,
                fractions=fractions,
                name=disp,
            )
            for s in seeds
        ]
    oracle_key = next((d for d, s in named.items() if s == "oracle"), None)
    if oracle_key is not None:
        ref = {r.seed: r for r in out[oracle_key]}
        out = {
            d: [replace(r, normalized_gain=normalized_gain(r, ref[r.seed])) for r in rs]
            for d, rs in out.items()
        }
    return out


# --------------------------------------------------------------------------- aggregation


def t_interval(
    values: Sequence[float] | np.ndarray, *, confidence: float = 0.95
) -> tuple[Any, Any, Any]:
    """``(mean, low, high)``: mean and two-sided Student-t confidence interval over seeds.

    ``values`` is (S,) — one value per seed, giving floats — or (S, M), giving (M,) arrays (each
    column separately). One seed gives NaN bounds; a NaN value makes the result NaN (nothing is
    dropped).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim not in (1, 2) or v.shape[0] == 0:
        raise ValueError(f"t_interval needs a non-empty (S,) or (S, M) array, got shape {v.shape}")
    n = v.shape[0]
    mean = v.mean(axis=0)
    if n == 1:
        lo = hi = np.full_like(mean, np.nan)
    else:
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * v.std(axis=0, ddof=1) / math.sqrt(n)
        lo, hi = mean - half, mean + half
    if v.ndim == 1:
        return float(mean), float(lo), float(hi)
    return mean, lo, hi


@dataclass(frozen=True, eq=False)
class Aggregate:
    """Curves and summaries of one selector over seeds: mean and 95% t-interval.

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


def aggregate(results: Sequence[CampaignResult], *, confidence: float = 0.95) -> Aggregate:
    """Aggregate runs of one selector over seeds (same budget required)."""
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

    def ci(vals: Iterable[float]) -> tuple[float, float, float]:
        m, lo, hi = t_interval(np.asarray(list(vals), dtype=np.float64), confidence=confidence)
        return float(m), float(lo), float(hi)

    acc_m, acc_lo, acc_hi = t_interval(
        np.stack([r.accuracy for r in results]), confidence=confidence
    )
    metrics = {
        "auc": ci(r.auc for r in results),
        "gain": ci(r.gain for r in results),
        "normalized_gain": ci(r.normalized_gain for r in results),
        "initial_accuracy": ci(r.initial_accuracy for r in results),
        "final_accuracy": ci(r.final_accuracy for r in results),
        "relabels_used": ci(r.relabels_used for r in results),
        "remaining_clear": ci(r.remaining_clear[-1] for r in results),
        "remaining_ambiguous": ci(r.remaining_ambiguous[-1] for r in results),
    }
    fracs = sorted(set().union(*(r.fixed_per_100.keys() for r in results)))
    for f in fracs:
        metrics[f"fixed_per_100@{f:g}"] = ci(r.fixed_per_100.get(f, float("nan")) for r in results)
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


# --------------------------------------------------------------------------- output


def _atomic_write_rows(
    path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_curves_csv(
    results: Iterable[CampaignResult] | Mapping[str, Sequence[CampaignResult]],
    path: str | os.PathLike[str],
    *,
    every: int = 1,
) -> Path:
    """Write campaign curves to CSV (long format), atomically.

    Columns ``selector, seed, relabels, accuracy, fixed, remaining_clear, remaining_ambiguous``;
    one row per ``every`` relabels (0, every, 2·every, …) plus the final budget. Accepts a list of
    results or :func:`compare_selectors`' mapping.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if isinstance(results, Mapping):
        results = [r for rs in results.values() for r in rs]

    def rows() -> Iterable[list[Any]]:
        for res in results:
            idx = np.unique(np.r_[np.arange(0, res.budget + 1, every), res.budget])
            for j in idx.tolist():
                yield [
                    res.selector,
                    res.seed,
                    j,
                    f"{res.accuracy[j]:.6f}",
                    int(res.fixed[j]),
                    int(res.remaining_clear[j]),
                    int(res.remaining_ambiguous[j]),
                ]

    header = [
        "selector",
        "seed",
        "relabels",
        "accuracy",
        "fixed",
        "remaining_clear",
        "remaining_ambiguous",
    ]
    return _atomic_write_rows(path, header, rows())


def write_summary_csv(aggregates: Iterable[Aggregate], path: str | os.PathLike[str]) -> Path:
    """Write one row per selector and metric (``selector, metric, mean, low, high, n_seeds``)."""

    def rows() -> Iterable[list[Any]]:
        for a in aggregates:
            for m, (mean, lo, hi) in a.metrics.items():
                yield [a.selector, m, f"{mean:.6g}", f"{lo:.6g}", f"{hi:.6g}", a.n_seeds]

    return _atomic_write_rows(
        path, ["selector", "metric", "mean", "low", "high", "n_seeds"], rows()
    )


def plot_campaigns(
    aggregates: Iterable[Aggregate],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    dpi: int = 120,
) -> Path:
    """Plot accuracy (left) and remaining noisy labels (right) vs relabels; save to ``path``.

    ``oracle`` (blue) and ``random`` (red) are drawn dashed as the upper and lower bounds; the
    shaded bands are the 95% t-intervals. Uses matplotlib's object API with the Agg canvas
    (no pyplot state, no display needed).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    aggs = list(aggregates)
    if not aggs:
        raise ValueError("nothing to plot")
    fig = Figure(figsize=(11, 4.5))
    FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(1, 2)
    palette = [
        "tab:green",
        "tab:orange",
        "tab:purple",
        "tab:brown",
        "tab:pink",
        "tab:olive",
        "tab:cyan",
        "black",
    ]
    others = iter(palette * (1 + len(aggs) // len(palette)))
    for a in aggs:
        key = a.selector.lower()
        if key == "oracle":
            color, style = "tab:blue", "--"
        elif key == "random":
            color, style = "tab:red", "--"
        else:
            color, style = next(others), "-"
        x = a.relabels
        auc = a.metrics["auc"][0]
        ng = a.metrics["normalized_gain"][0]
        label = f"{a.selector} (AUC {auc:.3f}" + (
            f", gain/oracle {ng:.2f})" if np.isfinite(ng) else ")"
        )
        ax.plot(x, 100 * a.accuracy, style, color=color, label=label, lw=1.8)
        if a.n_seeds > 1:
            ax.fill_between(
                x, 100 * a.accuracy_low, 100 * a.accuracy_high, color=color, alpha=0.2, lw=0
            )
        ax2.plot(x, a.remaining_clear, style, color=color, lw=1.8, label=f"{a.selector} clear")
        ax2.plot(
            x, a.remaining_ambiguous, ":", color=color, lw=1.8, label=f"{a.selector} ambiguous"
        )
    ax.set_xlabel("relabels spent")
    ax.set_ylabel("correct labels (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax2.set_xlabel("relabels spent")
    ax2.set_ylabel("remaining noisy labels")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7, loc="upper right", ncol=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
