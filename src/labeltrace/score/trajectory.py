"""Per-sample label-quality scores from training dynamics — one registry, one convention.

Every score has shape ``(N,)`` and **lower = more likely mislabeled**. Samples never seen while
recording get NaN. A new score is one function of :class:`~labeltrace.record.Dynamics` plus one
``@register`` line.

=============== ============================================================================
name            definition (means are over the epochs in which the sample was seen)
=============== ============================================================================
``sei``         Signed Entropy Integral: mean of +H(p_t) if the prediction agrees with the label
                (its logit >= every other: an exact tie agrees, as the official code) else −H(p_t).
                The *mean* (not the sum) so runs of different lengths compare; multiply by the
                number of epochs for the paper's sum. ``epochs=slice`` integrates a window.
``ei``          Unsigned entropy integral, **negated**: −mean H(p_t). Low = uncertain
                throughout (the paper's ablation without the sign).
``se_at``       Signed entropy at one epoch (``epoch=-1`` last, ``epoch=T//2`` mid).
``aum``         Area under the margin (Pleiss et al. 2020): mean of (given-label logit −
                largest other logit).
``loss``        Negated mean cross-entropy of the given label.
``forgetting``  Negated number of forgetting events (correct → incorrect between consecutive
                seen epochs; Toneva et al. 2019). Never-learned samples get −(T + 1), below
                any achievable count. "Correct" counts an exact logit tie as agreement (the
                SEI sign's rule), where the paper's argmax picks one of the tied classes.
``confidence``  Data maps (Swayamdipta et al. 2020): mean probability of the given label.
``variability`` Data maps: std of the given-label probability, **negated** (high variability
                = ambiguous, ranked suspect first among equals). Use ``confidence`` to find
                mislabeled samples; variability separates ambiguous from hard.
=============== ============================================================================

Scores from a probability matrix (``self_confidence``, ``normalized_margin``,
``confident_learning``) live in :mod:`labeltrace.score.probs` and are reachable here through
:func:`from_probs`; the feature-space ``knn_vote`` lives in :mod:`labeltrace.score.knn`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from labeltrace.record import Dynamics

__all__ = ["available", "compute", "describe", "from_probs", "parameters", "register"]

ScoreFn = Callable[..., np.ndarray]
_REGISTRY: dict[str, ScoreFn] = {}


def register(name: str, *, overwrite: bool = False) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator adding a ``f(dyn, **kw) -> (N,)`` score to the registry under ``name``;
    ``overwrite`` replaces one registered before (a notebook cell run again), as
    :func:`labeltrace.decide.detectors.register` does."""

    def deco(fn: ScoreFn) -> ScoreFn:
        if name in _REGISTRY and not overwrite:
            raise ValueError(f"score {name!r} is already registered (register({name!r}, overwrite=True) replaces it)")
        _REGISTRY[name] = fn
        return fn

    return deco


def available() -> list[str]:
    """Names of the registered trajectory scores."""
    return sorted(_REGISTRY)


def describe(name: str) -> str:
    """First line of a score's docstring ("" when it has none)."""
    lines = (_get(name).__doc__ or "").strip().splitlines()
    return lines[0] if lines else ""


def _get(name: str) -> ScoreFn:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown score {name!r}; available: {', '.join(available())}") from None


def parameters(name: str) -> list[str] | None:
    """The keyword options the registered score ``name`` takes (``epochs``, ``epoch``, ...), or None
    for one that takes any (``**kw``)."""
    params = inspect.signature(_get(name)).parameters
    if any(v.kind == v.VAR_KEYWORD for v in params.values()):
        return None
    return [p for p, v in params.items() if p != "dyn" and v.kind != v.VAR_POSITIONAL]


def compute(name: str, dyn: Dynamics, **kw: Any) -> np.ndarray:
    """Compute the registered score ``name`` from ``dyn``: an ``(N,)`` float64 array, lower = more suspect."""
    if not isinstance(dyn, Dynamics):
        raise ValueError(f"expected a labeltrace Dynamics, got {type(dyn).__name__}")
    if dyn.num_epochs == 0:
        raise ValueError("the dynamics hold no finished epoch (call Recorder.end_epoch())")
    fn = _get(name)
    takes = parameters(name)
    extra = [] if takes is None else [k for k in kw if k not in takes]
    if extra:  # e.g. labeltrace score --method sei --epoch 0: sei integrates a window, se_at reads one epoch
        raise ValueError(f"score {name!r} takes no {', '.join(repr(k) for k in extra)} "
                         f"(it takes: {', '.join(takes or []) or 'no options'})")
    out = np.asarray(fn(dyn, **kw), dtype=np.float64)
    if out.shape != (dyn.num_samples,):
        raise ValueError(f"score {name!r} returned shape {out.shape}; a score gives one value per "
                         f"sample, shape ({dyn.num_samples},)")  # fmt: skip
    return out


def from_probs(name: str, probs: np.ndarray, labels: np.ndarray, **kw: Any) -> np.ndarray:
    """Scores from an ``(N, K)`` predicted-probability matrix (see :mod:`labeltrace.score.probs`)."""
    from labeltrace.score import probs as _probs

    return _probs.from_probs(name, probs, labels, **kw)


# ---------------------------------------------------------------------------- trajectory scores
@register("sei")
def sei(dyn: Dynamics, *, epochs: slice | None = None) -> np.ndarray:
    """Signed Entropy Integral: mean over seen epochs of ±H(p_t) (+ when the given label's logit is
    >= every other, an exact tie included, as the official code)."""
    return dyn.mean("signed_entropy", epochs)


@register("ei")
def ei(dyn: Dynamics, *, epochs: slice | None = None) -> np.ndarray:
    """Negated unsigned entropy integral: −mean H(p_t) (low = uncertain throughout)."""
    return 0.0 - dyn.mean("entropy", epochs)  # 0.0 - x: a zero reads 0, not -0


@register("se_at")
def se_at(dyn: Dynamics, *, epoch: int = -1) -> np.ndarray:
    """Signed entropy at one epoch (``epoch=-1`` last; ``dyn.num_epochs // 2`` mid)."""
    return dyn.at("signed_entropy", epoch)


@register("aum")
def aum(dyn: Dynamics, *, epochs: slice | None = None) -> np.ndarray:
    """Area under the margin: mean of given-label logit minus the largest other logit."""
    return dyn.mean("margin", epochs)


@register("loss")
def loss(dyn: Dynamics, *, epochs: slice | None = None) -> np.ndarray:
    """Negated mean cross-entropy of the given label."""
    return 0.0 - dyn.mean("loss", epochs)


@register("forgetting")
def forgetting(dyn: Dynamics) -> np.ndarray:
    """Negated forgetting-event count; never-learned samples get −(T + 1)."""
    counts, never = dyn.forgetting_events()
    out = 0.0 - counts.astype(np.float64)  # 0.0, not -0.0, for no event ('-0' in a table)
    out[never] = -(dyn.num_epochs + 1.0)
    out[dyn.n_seen == 0] = np.nan
    return out


@register("confidence")
def confidence(dyn: Dynamics, *, epochs: slice | None = None) -> np.ndarray:
    """Data-map confidence: mean probability of the given label."""
    return dyn.mean("p_given", epochs)


@register("variability")
def variability(dyn: Dynamics, *, epochs: slice | None = None) -> np.ndarray:
    """Negated data-map variability: −std of the given-label probability."""
    return 0.0 - dyn.std("p_given", epochs)
