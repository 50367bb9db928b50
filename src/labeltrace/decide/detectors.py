"""Detectors: a per-sample score plus its own decision rule, from one or two recorded runs.

A *run* is one training of the model on the given labels, optionally with an auxiliary set of
samples relabeled to a pseudo-class ``K`` (the extra, last logit). Scores of a sample come only
from the runs in which it kept its label (:func:`labeltrace.threshold.combine_two_runs`).

Each detector returns a :class:`Detection` (score, cutoff, rule); ``flag = score < cutoff``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labeltrace.decide import cutoffs as threshold
from labeltrace.record import Dynamics
from labeltrace.score import trajectory as scores

__all__ = ["Detection", "RecordedRun", "available", "combined_score", "detect", "posterior", "unsupervised_cutoff"]


@dataclass(frozen=True)
class RecordedRun:
    """One training run: its dynamics and which samples were auxiliary (relabeled to class K)."""

    dynamics: Dynamics
    is_auxiliary: np.ndarray  # (N,) bool; all False when the run had no auxiliary class
    num_classes: int  # real classes K (the dynamics have K + 1 logits when auxiliary)
    held_out: bool = False  # True: every sample was recorded by models that never trained on it
    #: for a held-out run: the same fold models' in-sample dynamics (each sample recorded while the
    #: models that train on it see it), recorded at no extra training cost
    in_sample: Dynamics | None = None

    @property
    def has_auxiliary(self) -> bool:
        return bool(self.is_auxiliary.any())


@dataclass(frozen=True)
class Detection:
    name: str
    score: np.ndarray  # (N,), lower = more suspect
    cutoff: float
    rule: str

    @property
    def flagged(self) -> np.ndarray:
        return threshold.flag(self.score, self.cutoff)


def combined_score(name: str, runs: Sequence[RecordedRun], **kw: Any) -> np.ndarray:
    """A registered trajectory score, each sample scored by the runs where it kept its label."""
    per_run = [scores.compute(name, r.dynamics, **kw) for r in runs]
    if len(runs) == 1:
        out = per_run[0].copy()
        out[runs[0].is_auxiliary] = np.nan
        return out
    if len(runs) == 2:
        return threshold.combine_two_runs(per_run[0], per_run[1], runs[0].is_auxiliary, runs[1].is_auxiliary)
    raise ValueError(f"expected 1 or 2 runs, got {len(runs)}")


def _aux_cutoff(name: str, runs: Sequence[RecordedRun], rule: str, q: float = 99.0, **kw: Any) -> float:
    """Pooled cutoff over the auxiliary samples of all runs (their scores in the run where they were aux)."""
    vals = [scores.compute(name, r.dynamics, **kw)[r.is_auxiliary] for r in runs if r.has_auxiliary]
    pooled = np.concatenate(vals)
    return threshold.auxiliary_cutoff(pooled, np.ones(pooled.size, bool), rule=rule, q=q)  # type: ignore[arg-type]


def posterior(runs: Sequence[RecordedRun], *, last: int | None = None) -> np.ndarray:
    """(N, K) mean softmax over the last ``last`` epochs (all epochs when None), over the real
    classes only (auxiliary column dropped, rows renormalised), averaged over the runs where the
    sample kept its label."""
    K = runs[0].num_classes
    acc = np.zeros((runs[0].dynamics.num_samples, K))
    w = np.zeros(runs[0].dynamics.num_samples)
    fallback = None
    for r in runs:
        p = (r.dynamics.mean_posterior() if last is None else r.dynamics.posterior(last=last))[:, :K]
        p = p / np.clip(p.sum(1, keepdims=True), 1e-12, None)
        keep = ~r.is_auxiliary
        acc[keep] += p[keep]
        w[keep] += 1
        fallback = p if fallback is None else fallback
    out = acc / np.maximum(w, 1)[:, None]
    none = w == 0  # auxiliary in the only run: use its real-class posterior
    out[none] = fallback[none]  # type: ignore[index]
    return out


def unsupervised_cutoff(score: np.ndarray) -> tuple[float, str]:
    """A cutoff without auxiliary samples: the two-component GMM split when the scores are
    bimodal, else a robust outlier rule (median − 3 × 1.4826 × MAD). Returns (cutoff, rule)."""
    s = score[np.isfinite(score)]
    try:
        return threshold.gmm_cutoff(s), "gmm"
    except ValueError:
        med = float(np.median(s))
        mad = float(np.median(np.abs(s - med)))
        return med - 3.0 * 1.4826 * mad, "robust-z3"


DetectorFn = Callable[[Sequence[RecordedRun]], Detection]
_DETECTORS: dict[str, DetectorFn] = {}
_HELD_OUT: set[str] = set()  # detectors that need held-out (cross-fitted) dynamics


def _register(name: str, *, held_out: bool = False) -> Callable[[DetectorFn], DetectorFn]:
    def deco(fn: DetectorFn) -> DetectorFn:
        _DETECTORS[name] = fn
        if held_out:
            _HELD_OUT.add(name)
        return fn

    return deco


def available() -> list[str]:
    return sorted(_DETECTORS)


def needs_held_out(name: str) -> bool:
    """Whether detector ``name`` needs held-out (cross-fitted) dynamics rather than in-sample runs."""
    if name not in _DETECTORS:
        raise ValueError(f"unknown detector {name!r}; available: {', '.join(available())}")
    return name in _HELD_OUT


def applicable(name: str, runs: Sequence[RecordedRun]) -> bool:
    """Whether detector ``name`` can run on these recordings."""
    return not needs_held_out(name) or any(r.held_out for r in runs)


def detect(name: str, runs: Sequence[RecordedRun]) -> Detection:
    """Run detector ``name`` on the recorded runs."""
    try:
        fn = _DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; available: {', '.join(available())}") from None
    if not applicable(name, runs):
        raise ValueError(f"detector {name!r} needs held-out (cross-fitted) dynamics; these runs are in-sample")
    return fn(runs)


def _trajectory_detector(score_name: str, aux_rule: str, **kw: Any) -> DetectorFn:
    def fn(runs: Sequence[RecordedRun]) -> Detection:
        s = combined_score(score_name, runs, **kw)
        if any(r.has_auxiliary for r in runs):
            cut = _aux_cutoff(score_name, runs, aux_rule, **kw)
            rule = f"auxiliary-{aux_rule}"
        else:
            cut, rule = unsupervised_cutoff(s)
        return Detection(score_name, s, cut, rule)

    return fn


for _name, _rule in [("sei", "mean"), ("ei", "mean"), ("aum", "percentile"), ("confidence", "mean")]:
    _register(_name)(_trajectory_detector(_name, _rule))
_register("se_last")(_trajectory_detector("se_at", "mean", epoch=-1))


@_register("loss")
def _loss(runs: Sequence[RecordedRun]) -> Detection:
    s = combined_score("loss", runs)
    return Detection("loss", s, *unsupervised_cutoff(s))


@_register("crossfit", held_out=True)
def _crossfit(runs: Sequence[RecordedRun]) -> Detection:
    """The default: cross-fitted self-confidence, cut at confident learning's issue count.

    Score: ``p[i, given_i]`` of the trajectory-averaged posterior of the fold models — the mean
    of their *held-out* softmax (every epoch, the model that never trained on the sample) and,
    when recorded, their *in-sample* softmax (the models that train on it), averaged over all
    epochs. Cutoff: the ``n̂``-th lowest score, ``n̂`` = confident learning's count of label
    issues on the held-out posterior alone (:func:`labeltrace.probs.num_label_issues`): a model
    that trained on the labels is confident in them, so only held-out probabilities count issues
    honestly. Measured on CIFAR-10N (real human noise, frozen EfficientNet-Lite0 features) this
    beats cleanlab's recipe in F1 and AUROC (``benchmarks/RESULTS.md``).
    """
    from labeltrace.score import probs as P

    run = next(r for r in runs if r.held_out)
    given = run.dynamics.labels
    held = run.dynamics.mean_posterior()
    if np.any(given < 0) or np.isnan(held).any():
        raise ValueError("crossfit needs every sample recorded at least once with its label")
    held = held / held.sum(1, keepdims=True)
    n_hat = P.num_label_issues(held, given)
    post = held
    if run.in_sample is not None:
        ins = run.in_sample.mean_posterior()
        if np.isnan(ins).any():
            raise ValueError("crossfit: the in-sample recording misses samples")
        post = (held + ins / ins.sum(1, keepdims=True)) / 2
    s = P.self_confidence(post, given)
    cut = threshold.top_fraction(s, n_hat / len(s))
    return Detection("crossfit", s, cut, f"cl-count {n_hat}")
