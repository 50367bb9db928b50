"""Relabel priorities (active label cleaning): the registry of rules that order samples.

Priorities rank samples for re-annotation: **higher priority = relabel first** (the opposite
direction of the package's scores, where lower = more suspect). They follow Bernhardt et al.,
"Active label cleaning for improved dataset quality under resource constraints", Nature
Communications 13:1161 (2022), with entropies normalised by ``log K`` so they lie in ``[0, 1]``.

Notation: ``p`` is the model posterior ``(N, K)``; ``q`` the current label counts ``(N, K)``
(one-hot of the given label before any relabelling; each row normalised to ``q̄``);
``H(p) = -Σ p log p``; ``CE(q̄, p) = -Σ q̄ log p``; probabilities are clipped at ``EPS`` inside
logarithms.

================== ==========================================================================
name               priority
================== ==========================================================================
``cross_entropy``  ``CE(q̄, p) / log K`` — label correctness: high when the model disagrees with
                   the current label.
``joint``          ``CE(q̄, p) / log K − max(H(p) / log K − γ, 0)`` — the paper's rule: also
                   demotes samples the model finds ambiguous (``γ = 0.3``).
``sei``            ``−SEI`` — lowest Signed Entropy Integral first.
``sei_joint``      ``rank01(−SEI) − max(H(p) / log K − γ, 0)`` — ``rank01`` maps ``−SEI`` to
                   average ranks rescaled into ``[0, 1]`` (1 = lowest SEI), so the SEI term has
                   the same ``[0, 1]`` scale as the ambiguity penalty it is combined with.
``random``         a seeded uniform draw in ``[0, 1)``.
``oracle``         needs the true label distributions ``t``: ``0`` when the current majority
                   label equals ``argmax t``; otherwise ``1 + t[argmax t] − t[current]`` in
                   ``[1, 2]`` — every wrong label first, the clearest errors (cheapest to fix
                   by majority vote) before the ambiguous ones. The simulator's upper bound.
================== ==========================================================================

Ties in ``argmax`` go to the lowest class index (numpy's rule) throughout.

Each rule is one :class:`Priority` row of the registry and declares the inputs it needs
(``posterior``, ``label_counts``, ``sei``, ``true_dist``). That declaration is the one place that
says which rules need a model (:attr:`Priority.needs_model`, :func:`needing_model`): the
campaign, the experiments and the CLI all ask it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from labeltrace._checks import check_finite_float, describe_ids, listing, seeded
from labeltrace.relabel.arrays import (
    EPS,
    as_matrix,
    check_posterior,
    check_vector,
    normalize_counts,
    normalized_entropy,
)

__all__ = [
    "DEFAULT_GAMMA",
    "DEFAULT_SELECTORS",
    "EPS",
    "MODEL_INPUTS",
    "Input",
    "Priority",
    "PriorityFn",
    "ambiguity_penalty",
    "available",
    "check_gamma",
    "cross_entropy",
    "custom",
    "get",
    "joint",
    "needing_model",
    "normalized_entropy",
    "oracle",
    "priority",
    "random",
    "resolve",
    "sei",
    "sei_joint",
]

Input = Literal["posterior", "label_counts", "sei", "true_dist"]
"""What a priority may need: the model posterior (N, K), the current label counts (N, K), the
SEI (N,) of the model's training run, the true label distributions (N, K) (simulation only)."""

MODEL_INPUTS: frozenset[str] = frozenset({"posterior", "sei"})
"""Inputs that come from a trained model."""

PriorityFn = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]
"""A custom rule: ``f(label_counts (N, K), posterior (N, K) or None) -> (N,) priorities``."""

_KEYWORD: dict[str, str] = {
    "posterior": "posterior=",
    "label_counts": "label_counts=",
    "sei": "sei=",
    "true_dist": "true_dist= (the true label distributions)",
}

# --------------------------------------------------------------------------- the rules


#: the ambiguity threshold γ of ``joint`` and ``sei_joint`` unless given (Bernhardt et al.'s)
DEFAULT_GAMMA = 0.3


def check_gamma(gamma: float) -> float:
    """``gamma`` as a float in ``[0, 1]`` (the entropies it is compared with are normalised): a value
    outside, NaN, a bool or a string is refused, whichever rule it is for."""
    try:
        g = check_finite_float(gamma, "gamma")
    except ValueError:
        g = float("nan")
    if not 0.0 <= g <= 1.0:
        raise ValueError(f"gamma must be a number in [0, 1] (entropies are normalised), got {gamma!r}")
    return g


def ambiguity_penalty(posterior: np.ndarray, *, gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """``max(H(p) / log K − γ, 0)``: (N,) penalty for posteriors more uncertain than ``γ``."""
    p = check_posterior(posterior)
    return np.maximum(normalized_entropy(p) - check_gamma(gamma), 0.0)


def cross_entropy(posterior: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """``CE(q̄, p) / log K``: (N,) label-correctness priority, high = model disagrees with labels.

    Parameters
    ----------
    posterior : (N, K) model probabilities, rows summing to 1.
    label_counts : (N, K) non-negative label counts; each row is normalised to a distribution.
    """
    p = check_posterior(posterior)
    q = normalize_counts(label_counts, "label_counts", n=p.shape[0], k=p.shape[1])
    logp = np.log(np.clip(p, EPS, 1.0))
    return -(q * logp).sum(axis=1) / np.log(p.shape[1])


def joint(posterior: np.ndarray, label_counts: np.ndarray, *, gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """Bernhardt et al.'s priority ``CE(q̄, p)/log K − max(H(p)/log K − γ, 0)``: (N,)."""
    return cross_entropy(posterior, label_counts) - ambiguity_penalty(posterior, gamma=gamma)


def sei(sei: np.ndarray) -> np.ndarray:
    """``−SEI``: (N,) priority, lowest Signed Entropy Integral first; NaN raises ``ValueError``."""
    return -check_vector(sei, "sei")


def sei_joint(sei: np.ndarray, posterior: np.ndarray, *, gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """``rank01(−SEI) − max(H(p)/log K − γ, 0)``: SEI combined with the ambiguity penalty, (N,).

    ``rank01`` turns ``−SEI`` into average ranks rescaled to ``[0, 1]`` (1 = lowest SEI; a single
    sample gets 1), so the result lies in ``[γ − 1, 1]``. Ranks make the SEI term independent of
    the number of epochs and of the entropy scale, and commensurate with the penalty.
    """
    s = check_vector(sei, "sei")
    p = check_posterior(posterior, n=s.shape[0])
    n = s.shape[0]
    # imported here: scipy.stats takes seconds, the CLI's --help none
    from scipy.stats import rankdata

    r = rankdata(-s, method="average")
    r01 = (r - 1.0) / (n - 1.0) if n > 1 else np.ones(n)
    return r01 - ambiguity_penalty(p, gamma=gamma)


def random(n: int, *, seed: int = 0) -> np.ndarray:
    """(n,) seeded uniform priorities in ``[0, 1)``: a random review order."""
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n}")
    return seeded(seed).random(int(n))


def oracle(label_counts: np.ndarray, true_dist: np.ndarray) -> np.ndarray:
    """(N,) priority from the true label distributions (simulation upper bound).

    ``0`` where the current majority label ``argmax q`` equals the true label ``argmax t``;
    otherwise ``1 + t[argmax t] − t[argmax q]`` in ``[1, 2]``: all wrong labels first, clear
    errors (a large gap, fixed in few votes) before ambiguous ones. ``true_dist`` may be counts;
    rows are normalised.
    """
    t = normalize_counts(true_dist, "true_dist")
    q = as_matrix(label_counts, "label_counts", n=t.shape[0], k=t.shape[1])
    bad = np.flatnonzero(q.sum(axis=1) <= 0)
    if bad.size:
        raise ValueError(
            f"label_counts rows must have a positive total; all-zero rows at {describe_ids(bad)}"
        )
    rows = np.arange(t.shape[0])
    cur = q.argmax(axis=1)
    true = t.argmax(axis=1)
    gap = t[rows, true] - t[rows, cur]
    return np.where(cur != true, 1.0 + gap, 0.0)


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Priority:
    """One relabel rule: its name, what it needs, and how it computes (N,) priorities.

    Attributes
    ----------
    name : registry name (``labeltrace queue --method``, the simulator's selectors).
    compute : ``compute(inputs) -> (N,)``; ``inputs`` holds every :data:`Input` (``None`` when
        not given) plus ``n``, ``gamma`` and ``seed``.
    needs : inputs that must be given, checked in this order (a missing one raises
        ``ValueError: priority 'joint' needs posterior=``).
    uses : inputs passed when available but not required (custom rules get the posterior).
    settings : the settings the rule reads, of ``gamma`` and ``seed`` (a command refuses one named
        for rules that read none, a function one set off its default: :mod:`labeltrace.relabel.unread`).
    """

    name: str
    compute: Callable[[Mapping[str, Any]], np.ndarray]
    needs: tuple[Input, ...] = ()
    uses: tuple[Input, ...] = ()
    settings: tuple[Literal["gamma", "seed"], ...] = ()

    @property
    def inputs(self) -> frozenset[str]:
        """Every input the rule reads."""
        return frozenset(self.needs) | frozenset(self.uses)

    @property
    def needs_model(self) -> bool:
        """Whether the rule reads a model's posterior or SEI."""
        return bool(self.inputs & MODEL_INPUTS)

    def __call__(
        self,
        *,
        posterior: np.ndarray | None = None,
        label_counts: np.ndarray | None = None,
        sei: np.ndarray | None = None,
        true_dist: np.ndarray | None = None,
        gamma: float = DEFAULT_GAMMA,
        seed: int = 0,
    ) -> np.ndarray:
        """(N,) float64 priorities, higher = relabel first."""
        given = {"posterior": posterior, "label_counts": label_counts, "sei": sei,
                 "true_dist": true_dist}  # fmt: skip
        for need in self.needs:
            if given[need] is None:
                raise ValueError(f"priority {self.name!r} needs {_KEYWORD[need]}")
        n = next((int(np.shape(a)[0]) for a in given.values() if a is not None), None)
        out = self.compute({**given, "n": n, "gamma": gamma, "seed": seed})
        return np.asarray(out, dtype=np.float64)


def _random_rule(inp: Mapping[str, Any]) -> np.ndarray:
    if inp["n"] is None:
        raise ValueError(
            "priority 'random' needs one of posterior=, label_counts=, sei=, true_dist= for N"
        )
    return random(inp["n"], seed=inp["seed"])


DEFAULT_SELECTORS: tuple[str, ...] = ("random", "cross_entropy", "joint", "sei", "sei_joint", "oracle")
"""The selectors ``labeltrace simulate`` compares by default."""

_REGISTRY: dict[str, Priority] = {
    p.name: p
    for p in (
        Priority(
            "cross_entropy",
            lambda i: cross_entropy(i["posterior"], i["label_counts"]),
            needs=("posterior", "label_counts"),
        ),
        Priority(
            "joint",
            lambda i: joint(i["posterior"], i["label_counts"], gamma=i["gamma"]),
            needs=("posterior", "label_counts"),
            settings=("gamma",),
        ),
        Priority("sei", lambda i: sei(i["sei"]), needs=("sei",)),
        Priority(
            "sei_joint",
            lambda i: sei_joint(i["sei"], i["posterior"], gamma=i["gamma"]),
            needs=("sei", "posterior"),
            settings=("gamma",),
        ),
        Priority("random", _random_rule, settings=("seed",)),
        Priority(
            "oracle",
            lambda i: oracle(i["label_counts"], i["true_dist"]),
            needs=("label_counts", "true_dist"),
        ),
    )
}


def available() -> list[str]:
    """Names accepted by :func:`priority` and :func:`get`, sorted."""
    return sorted(_REGISTRY)


def get(name: str, *, kind: str = "priority") -> Priority:
    """The registry row ``name``; ``ValueError`` naming the available ones (``kind`` words it)."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {kind} {name!r}; available: {listing(available())}") from None


def needing_model(names: Iterable[str]) -> list[str]:
    """The names among ``names`` whose rule needs a model posterior or SEI, sorted."""
    return sorted({n for n in names if get(n).needs_model})


def custom(fn: PriorityFn, name: str | None = None) -> Priority:
    """A :class:`Priority` from ``fn(label_counts, posterior or None) -> (N,)``.

    It receives copies, uses the posterior when one is available (so it counts as needing a
    model), and its output is checked: shape (N,), finite (``ValueError`` naming the ids).
    """

    def compute(inp: Mapping[str, Any]) -> np.ndarray:
        counts, post = inp["label_counts"], inp["posterior"]
        n = int(np.shape(counts)[0])
        pr = np.asarray(fn(np.array(counts, copy=True),
                           None if post is None else np.array(post, copy=True)),
                        dtype=np.float64)  # fmt: skip
        if pr.shape != (n,):
            raise ValueError(f"selector returned shape {pr.shape}, expected ({n},)")
        bad = np.flatnonzero(~np.isfinite(pr))
        if bad.size:
            raise ValueError(f"selector returned NaN or infinite priorities at {describe_ids(bad)}")
        return pr

    label = name or str(getattr(fn, "__name__", "custom"))
    return Priority(label, compute, needs=("label_counts",), uses=("posterior",))


def resolve(selector: str | Priority | PriorityFn, *, kind: str = "selector") -> Priority:
    """A registry name, a :class:`Priority` or a :data:`PriorityFn` as a :class:`Priority`."""
    if isinstance(selector, Priority):
        return selector
    if isinstance(selector, str):
        return get(selector, kind=kind)
    if callable(selector):
        return custom(selector)
    raise ValueError(f"a {kind} must be a name, a Priority or a function, got {selector!r}")


def priority(
    name: str,
    *,
    posterior: np.ndarray | None = None,
    label_counts: np.ndarray | None = None,
    sei: np.ndarray | None = None,
    true_dist: np.ndarray | None = None,
    gamma: float = DEFAULT_GAMMA,
    seed: int = 0,
) -> np.ndarray:
    """Compute the relabel priority ``name`` (see :func:`available`): (N,) float64, higher first.

    Each rule uses only the inputs it needs (table in the module docstring) and raises
    ``ValueError`` when one is missing. ``random`` takes ``N`` from the first input given.
    """
    return get(name)(posterior=posterior, label_counts=label_counts, sei=sei,
                     true_dist=true_dist, gamma=gamma, seed=seed)  # fmt: skip
