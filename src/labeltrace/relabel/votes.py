"""The vote model: real annotator votes as the truth, and the noisy labels a campaign starts from.

Given per-image annotator vote counts ``votes`` (N, K) — e.g. CIFAR-10H:

1. the **true label** of an image is its vote majority ``argmax votes`` (ties → lowest class
   index) and its **annotator distribution** is ``votes / votes.sum()``;
2. one **initial noisy label** per image is drawn from the temperature-scaled vote distribution
   ``p_τ ∝ votes ** (1/τ)`` (:func:`sample_initial_labels`): ``τ = 1`` is one annotator's answer,
   ``τ → 0`` the majority (noise only on tied images), large ``τ`` uniform over the classes that
   got at least one vote (classes without votes are never drawn). :func:`temperature_for_rate`
   picks ``τ`` for a target noise rate;
3. an image is *ambiguous* when its normalised vote entropy exceeds 0.3 (the paper's threshold,
   :func:`ambiguous_mask`).

Seeds: every random step of the relabel package draws from its own stream of one seed
(:func:`stream_rng`): :data:`INITIAL_STREAM` for the initial labels, :data:`ANNOTATOR_STREAM` for
the simulated annotator; the ``random`` priority uses ``default_rng(seed)`` itself. So one seed
may drive all three without correlating them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labeltrace.relabel.arrays import normalize_counts, normalized_entropy

__all__ = [
    "ANNOTATOR_STREAM",
    "INITIAL_STREAM",
    "InitialLabels",
    "ambiguous_mask",
    "expected_noise_rate",
    "sample_initial_labels",
    "stream_rng",
    "temperature_for_rate",
    "tempered_distribution",
    "true_labels",
    "vote_distribution",
]

INITIAL_STREAM = 0
"""Stream of a seed that draws the initial noisy labels."""
ANNOTATOR_STREAM = 1
"""Stream of a seed that the simulated annotator draws its votes from."""


def stream_rng(seed: int, stream: int) -> np.random.Generator:
    """Independent generator ``stream`` of ``seed`` (a SeedSequence spawn key, as ``spawn()``)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


def vote_distribution(votes: np.ndarray) -> np.ndarray:
    """(N, K) annotator distributions: each row of the vote counts divided by its total.

    Raises ``ValueError`` for non-2-D input, fewer than 2 classes, NaN/negative counts or images
    without votes (naming the sample ids).
    """
    return normalize_counts(votes, "votes")


def true_labels(votes: np.ndarray) -> np.ndarray:
    """(N,) int64 vote majority ``argmax votes`` (ties → lowest class index)."""
    return vote_distribution(votes).argmax(axis=1).astype(np.int64)


def _log_tempered(dist: np.ndarray, temperature: float) -> np.ndarray:
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    with np.errstate(divide="ignore"):
        logp = np.log(dist)
    return (logp - logp.max(axis=1, keepdims=True)) / temperature  # -inf where no votes


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


def _uniforms(n: int, seed: int) -> np.ndarray:
    return stream_rng(seed, INITIAL_STREAM).random(n)


def sample_initial_labels(
    votes: np.ndarray, *, temperature: float = 1.0, seed: int = 0
) -> InitialLabels:
    """Draw one label per image from ``p_τ ∝ votes ** (1/τ)``.

    One uniform ``u`` per image (:data:`INITIAL_STREAM` of ``seed``) decides: ``u < p_τ[true]``
    keeps the majority label; otherwise ``u`` is rescaled onto the other classes and inverted
    through their cumulative ``p_τ``. This is an exact draw from ``p_τ`` in which, for a fixed
    seed, the set of noisy images only grows with ``τ`` — what lets
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
    (e.g. images whose annotators all agree can never be noisy; images whose votes tie for the most
    are noisy about half the time even at the lowest temperature).
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
    step = 0.5 / dist.shape[0] if seed is not None else 1e-9  # a realised rate moves in steps of 1/N
    if target_rate < r_lo - step:  # was: the lowest temperature, silently noisier than asked
        tied = int(np.sum(np.sum(dist >= dist.max(axis=1, keepdims=True) - 1e-12, axis=1) > 1))
        raise ValueError(
            f"target_rate {target_rate} is not reachable: the noise rate ranges over [{r_lo:.6f}, {r_hi:.6f}] "
            f"for temperatures in {bounds}"
            + (f" — {tied} of {dist.shape[0]} images have a tie for the most votes: half or more of them draw "
               "another class than their truth (the first of the tied ones) even at the lowest temperature"
               if tied else "")
            + f"; ask for a rate of at least {r_lo:.4f}"
        )  # fmt: skip
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
