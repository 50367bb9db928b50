"""The detector table: each detector is one row — its score, its cutoff rule, what it needs.

``labeltrace scan --detector``, ``labeltrace bench``, the report and ``run.json`` all read this
table, so a new detector is one :func:`register` call::

    register(Detector("my_det", needs=("in_sample",), score=my_score, decide=my_cutoff,
                      summary="one line for --help and the reports"))

A detector's ``score(evidence)`` returns an ``(N,)`` array, **lower = more likely mislabeled**;
its ``decide(evidence, score)`` returns ``(flagged mask, cutoff, rule)`` (a
:class:`~labeltrace.decide.flagging.Decision`: :mod:`labeltrace.decide.flagging` builds one by a
cutoff, a fraction or a count). ``needs`` names the :class:`~labeltrace.decide.evidence.Evidence`
items it reads (``in_sample`` recordings,
``single`` one in-sample training without auxiliary samples, ``held_out`` cross-fitted recording,
``cv_probs``, ``features``); ``scan`` records what the chosen
detector needs, and reports every other detector whose needs that recording also meets.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labeltrace._checks import check_int, describe_ids, round_half_up
from labeltrace.decide import auxiliary, cutoffs
from labeltrace.decide import count as C
from labeltrace.decide.evidence import (
    NEEDS,
    Evidence,
    Need,
    auxiliary_scores,
    combined_score,
    posterior,
    trajectory_runs,
)
from labeltrace.decide.flagging import Decision, by_count, by_cutoff, top_k
from labeltrace.record.recording import RecordedRun
from labeltrace.score import probs as P

__all__ = ["Decision", "Detection", "Detector", "applicable", "available", "check_installed", "detect", "get", "register",
           "unregister"]


@dataclass(frozen=True)
class Detection:
    """A detector's result: its score, the flagged samples, and the rule that flagged them.

    ``n_hat``: the estimated count of wrong labels that set the cut, where the detector's rule is a
    count (the crossfit family, the one-training family), else None. ``flagged.sum()`` can differ
    from it when scores tie at the cut (a tied group is flagged whole or not at all).
    """

    name: str
    score: np.ndarray  # (N,), lower = more suspect
    flagged: np.ndarray  # (N,) bool
    cutoff: float
    rule: str
    n_hat: int | None = None


@dataclass(frozen=True)
class Detector:
    """One row of the table."""

    name: str
    needs: tuple[Need, ...]
    score: Callable[[Evidence], np.ndarray]
    decide: Callable[[Evidence, np.ndarray], Decision]
    summary: str
    #: the score's column name when several detectors share one score (default: ``name``)
    score_name: str | None = None
    #: a Python package the detector imports (an optional extra), e.g. ``"cleanlab"``
    requires: str | None = None

    def __post_init__(self) -> None:
        bad = [n for n in self.needs if n not in NEEDS]
        if bad or not self.needs:
            raise ValueError(f"detector {self.name!r}: needs must be a non-empty subset of {NEEDS}, got {self.needs}")

    @property
    def column(self) -> str:
        return self.score_name or self.name

    def run(self, ev: Evidence) -> Detection:
        s = np.asarray(self.score(ev), dtype=np.float64)
        if s.shape != ev.labels.shape:
            raise ValueError(f"detector {self.name!r}: its score has shape {s.shape}, expected {ev.labels.shape}")
        d = Decision(*self.decide(ev, s))
        flagged = np.asarray(d.flagged)
        if flagged.dtype != np.bool_ or flagged.shape != ev.labels.shape:  # an index array read as a mask
            raise ValueError(f"detector {self.name!r}: its decide must return a boolean mask of shape "
                             f"{ev.labels.shape}, got dtype {flagged.dtype} and shape {flagged.shape}")
        n_hat = None if d.n_hat is None else check_int(f"detector {self.name!r}: its count n_hat", d.n_hat, 0,
                                                        len(s))  # fmt: skip
        return Detection(self.name, s, flagged, float(d.cutoff), d.rule, n_hat)


_TABLE: dict[str, Detector] = {}


def register(det: Detector, *, overwrite: bool = False) -> Detector:
    """Add a row to the table."""
    if det.name in _TABLE and not overwrite:
        raise ValueError(f"detector {det.name!r} is already registered")
    _TABLE[det.name] = det
    return det


def unregister(name: str) -> None:
    """Remove a row (tests register toy detectors and take them out again)."""
    _TABLE.pop(name, None)


def available(*, needs: Need | None = None) -> list[str]:
    """Names of the registered detectors (those that use ``needs``, when given), in table order."""
    return [n for n, d in _TABLE.items() if needs is None or needs in d.needs]


def get(name: str) -> Detector:
    try:
        return _TABLE[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; available: {', '.join(available())}") from None


def applicable(name: str, ev: Evidence) -> bool:
    """Whether ``ev`` provides everything detector ``name`` needs (and its package is installed)."""
    d = get(name)
    if d.requires is not None and importlib.util.find_spec(d.requires) is None:
        return False
    return all(ev.has(n) for n in d.needs)


def detect(name: str, ev: Evidence) -> Detection:
    """Run detector ``name`` on the evidence."""
    d = get(name)
    missing = [n for n in d.needs if not ev.has(n)]
    if missing:
        raise ValueError(f"detector {name!r} needs {' and '.join(m.replace('_', '-') for m in missing)} evidence, "
                         "which these recordings do not provide")  # fmt: skip
    check_installed(name)
    return d.run(ev)


def check_installed(name: str) -> None:
    """A ``ValueError`` naming the package and the extra when detector ``name`` needs a package that
    is not installed (the scan checks before it claims its folder or trains)."""
    d = get(name)
    if d.requires is not None and importlib.util.find_spec(d.requires) is None:
        raise ValueError(f"detector {name!r} needs the {d.requires} package (pip install 'labeltrace[bench]')")


# ----------------------------------------------------------------------------- held out (cross-fitted)
def _held_posteriors(ev: Evidence) -> tuple[np.ndarray, np.ndarray | None]:
    run = ev.held_out
    held = run.dynamics.mean_posterior()
    if np.any(run.dynamics.labels < 0) or np.isnan(held).any():
        raise ValueError("crossfit needs every sample recorded at least once with its label")
    ins = None
    if run.in_sample is not None:
        ins = run.in_sample.mean_posterior()
        if np.isnan(ins).any():
            raise ValueError("crossfit: the in-sample recording misses samples")
        ins = ins / ins.sum(1, keepdims=True)
    return held / held.sum(1, keepdims=True), ins


def _crossfit_posteriors(ev: Evidence) -> tuple[np.ndarray, np.ndarray | None]:
    """The default's held-out and in-sample posteriors: on a small set with frozen features,
    each mixed with the kNN label shares (``count.KNN_WEIGHT``); else as recorded."""
    held, ins = _held_posteriors(ev)
    if not (ev.features_frozen and ev.has("features") and len(ev.labels) < C.LARGE):
        return held, ins
    return C.knn_mixed(held, ins, ev.knn_shares())


def _crossfit_score(ev: Evidence) -> np.ndarray:
    held, ins = _crossfit_posteriors(ev)
    post = held if ins is None else (held + ins) / 2
    return P.self_confidence(post, ev.labels)


def _crossfit_decide(ev: Evidence, s: np.ndarray) -> Decision:
    held, ins = _crossfit_posteriors(ev)
    return by_count(s, C.conservative_count(held, ins, ev.labels), "count")


def _crossfit_cl_decide(ev: Evidence, s: np.ndarray) -> Decision:
    held, _ = _crossfit_posteriors(ev)
    return Decision(P.find_label_issues(held, ev.labels, filter_by="prune_by_noise_rate"), float("nan"),
                    "cl prune_by_noise_rate (held-out)")


register(Detector(
    "crossfit", ("held_out",), _crossfit_score, _crossfit_decide,
    "the default: p(given label) under the mean of the cross-fitted models' held-out and in-sample softmax, "
    "averaged over epochs (on a small set with frozen features, mixed 3:1 with the kNN label shares); the "
    "lowest flagged, as many as confident-learning estimates on the held-out posterior count "
    "(decide.count.conservative_count: small sets the geometric mean of CL's count and rate x N, large sets "
    "the smallest of three counts)",
))  # fmt: skip
def _crossfit_counted(name: str, count: Callable[[Evidence, np.ndarray, np.ndarray], int], summary: str) -> Detector:
    """crossfit's score, flagged down to a count estimated by another rule."""

    def decide(ev: Evidence, s: np.ndarray) -> Decision:
        held, _ = _crossfit_posteriors(ev)
        return by_count(s, count(ev, held, s), f"{name.split('_', 1)[1]}-count")

    return Detector(name, ("held_out",), _crossfit_score, decide, summary, score_name="crossfit")


for _det in (
    _crossfit_counted("crossfit_clcount", lambda ev, held, s: C.cl_count(held, ev.labels),
                      "crossfit's score, as many flagged as confident learning counts on the held-out posterior "
                      "(the default until the dev/test study)"),
    _crossfit_counted("crossfit_rate", lambda ev, held, s: C.cl_rate_count(held, ev.labels),
                      "crossfit's score, the lowest N x (calibrated confident-joint noise rate) flagged"),
):
    register(_det)


def _crossfit_knn_score(ev: Evidence) -> np.ndarray:
    held, ins = _held_posteriors(ev)
    post = held if ins is None else (held + ins) / 2
    nb = ev.knn_shares()
    w = C.implant_weight(held, nb, ev.labels)
    rows = np.arange(len(ev.labels))
    return (1 - w) * post[rows, ev.labels] + w * nb[rows, ev.labels]


register(Detector(
    "crossfit_knn", ("held_out", "features"), _crossfit_knn_score, _crossfit_decide,
    "the cross-fitted posterior (not kNN-mixed) and the kNN label share mixed with a weight chosen per "
    "dataset by virtual implanted errors (no clean labels), cut at crossfit's count",
))  # fmt: skip
register(Detector(
    "crossfit_cl", ("held_out",), _crossfit_score, _crossfit_cl_decide,
    "crossfit's score, flagged by confident learning's own mask (prune_by_noise_rate) on the held-out "
    "posterior: separates the model's contribution from the cutoff's", score_name="crossfit",
))  # fmt: skip


# ----------------------------------------------------------------------------- in-sample trajectories
# The auxiliary cuts are the papers' rules as published: once the network has learned the auxiliary
# samples their mean is positive, and SEI's then flags confident samples that agree with their label
# too (benchmarks/RESULTS.md §4). Without auxiliary samples (one run, a cross-fitted scan's side by side):
WITHOUT_AUXILIARY = ("without auxiliary samples: as many as the default counts on a cross-fitted run's held-out "
                     "posterior, else (one run) as the one-training mode counts")
#: the scores >= 0 where the prediction agrees with the given label (on average over the epochs, or at
#: one epoch): never flagged without auxiliary samples, whatever the count
SIGNED = frozenset({"sei", "se_at", "aum"})


def _trajectory(name: str, score: str, aux_rule: str, summary: str, **kw: Any) -> Detector:
    def window(ev: Evidence) -> dict[str, Any]:
        return {k: (v(ev) if callable(v) else v) for k, v in kw.items()}

    def s_fn(ev: Evidence) -> np.ndarray:
        return combined_score(score, trajectory_runs(ev), **window(ev))

    def decide(ev: Evidence, s: np.ndarray) -> Decision:
        runs = ev.in_sample
        if any(r.has_auxiliary for r in runs):
            pooled = auxiliary_scores(score, runs, **window(ev))
            cut = auxiliary.auxiliary_cutoff(pooled, np.ones(pooled.size, bool), rule=aux_rule)  # type: ignore[arg-type]
            note = f" (epoch {window(ev)['epoch'] + 1})" if "epoch" in kw and name != "se_last" else ""  # from 1
            return by_cutoff(s, cut, f"auxiliary-{aux_rule}{note}")
        return _without_auxiliary(ev, s, signed=score in SIGNED)

    return Detector(name, ("in_sample",), s_fn, decide, f"{summary}; {WITHOUT_AUXILIARY}"
                    + (", never a score >= 0" if score in SIGNED else ""))


def _without_auxiliary(ev: Evidence, s: np.ndarray, *, signed: bool = False) -> Decision:
    """:data:`WITHOUT_AUXILIARY`: the lowest scores ``s``, as many as :func:`_crossfit_decide` counts,
    else as :func:`_one_run_count` does. A mixture split of the score alone flagged 358 of 1,797 clean
    digits for SEI (capped at 0); the in-sample fold models memorise (on the same digits with 359
    wrong they contradicted 246 in most epochs), the held-out count reads labels they did not learn."""
    if ev.has("held_out"):
        held, ins = _crossfit_posteriors(ev)
        n_hat, rule = C.conservative_count(held, ins, ev.labels), "held-out count"
    else:
        n_hat, rule = _one_run_count(ev, ev.in_sample, s)
        rule += "-count"
    if signed and n_hat > (below := int((s < 0).sum())):  # a score >= 0 agrees with its label (on a large
        n_hat, rule = below, f"{rule} capped at the scores < 0:"  # set the count is a mixture split of s)
    return by_count(s, n_hat, f"no auxiliary samples: {rule}")


def _one_run_count(ev: Evidence, runs: Sequence[RecordedRun], s: np.ndarray) -> tuple[int, str]:
    """How many of the scores ``s`` of in-sample ``runs`` without auxiliary samples to flag, and the
    rule's name: on a small set the samples the runs contradicted in most epochs or, when larger, the
    held-out count on the features' kNN label shares (:func:`~labeltrace.decide.count.one_run_count`);
    on a large set the two-component mixture's count on ``s``, at most 3.5 x the confident-joint rate
    of the trajectory-averaged posterior. Chosen on the dev cells for ``single`` (the loss)."""
    if len(s) < C.LARGE:  # a small set is memorised: the contradicted count, or the kNN posterior's
        agreement = np.mean([r.dynamics.mean("correct") for r in runs], axis=0)
        shares = ev.knn_class_shares() if ev.has("features") else None
        return C.one_run_count(agreement, shares, ev.labels)
    # the GMM split, never more than 3.5 x the rate on the trajectory-averaged posterior
    post = runs[0].dynamics.mean_posterior()[:, : ev.num_classes] if len(runs) == 1 else posterior(runs)
    rate = C.cl_rate_count(post / post.sum(1, keepdims=True), ev.labels)
    return min(C.bimodal_count(s), round_half_up(C.SINGLE_RATE_FACTOR * rate)), "min"


def _mid(ev: Evidence) -> int:
    return ev.in_sample[0].dynamics.num_epochs // 2


for _det in (
    _trajectory("sei", "sei", "mean", "Signed Entropy Integral (SEI paper), cut at the auxiliary samples' mean"),
    _trajectory("ei", "ei", "mean", "negated unsigned entropy integral (SEI's ablation), auxiliary-mean cutoff"),
    _trajectory("aum", "aum", "percentile", "area under the margin, cut at the auxiliary 99th percentile (AUM paper)"),
    _trajectory("confidence", "confidence", "mean", "data-map confidence (mean p(given)), auxiliary-mean cutoff"),
    _trajectory("se_last", "se_at", "mean", "signed entropy at the last epoch, auxiliary-mean cutoff", epoch=-1),
    _trajectory("se_mid", "se_at", "mean", "signed entropy at the middle epoch, auxiliary-mean cutoff", epoch=_mid),
):
    register(_det)


# ----------------------------------------------------------------------------- one plain training
def _single(name: str, score: str, summary: str) -> Detector:
    def s_fn(ev: Evidence) -> np.ndarray:
        return combined_score(score, [ev.single])

    def decide(ev: Evidence, s: np.ndarray) -> Decision:
        n_hat, rule = _one_run_count(ev, [ev.single], s)
        return by_count(s, n_hat, f"{rule}-count")

    return Detector(name, ("single",), s_fn, decide, summary)


register(_single("single", "loss", "the one-training mode: one plain training's negated mean loss, its n lowest "
                 "flagged, n on a small set the number of samples it contradicted in most epochs or, when larger, "
                 "the held-out count on the features' kNN label shares; on a large one the GMM count capped at "
                 "3.5 x the confident-joint rate of its trajectory-averaged posterior"))
for _score, _what in (("aum", "area under the margin"), ("sei", "SEI"), ("confidence", "mean p(given label)")):
    register(_single(f"single_{_score}", _score, f"one plain training's {_what}, the same count"))


def _loss_decide(ev: Evidence, s: np.ndarray) -> Decision:
    if not any(r.has_auxiliary for r in ev.in_sample):  # as every trajectory detector: a GMM split of one
        return _without_auxiliary(ev, s)  # run's losses flagged 192 of 1,797 clean digits
    return by_cutoff(s, *cutoffs.unsupervised_cutoff(s))


register(Detector("loss", ("in_sample",), lambda ev: combined_score("loss", trajectory_runs(ev)), _loss_decide,
                  f"negated mean cross-entropy, cut by a two-component GMM; {WITHOUT_AUXILIARY}"))  # fmt: skip


def _forgetting_decide(ev: Evidence, s: np.ndarray) -> Decision:
    post = posterior(ev.in_sample)
    unseen = np.isnan(post).any(axis=1)
    if unseen.any():  # the noise-rate estimate read it as "probs has NaN/inf", probs no one passed
        raise ValueError(f"forgetting: {describe_ids(unseen)} have no prediction recorded in any epoch")
    rate = float(P.estimate_noise_rate(post, ev.labels))
    return top_k(s, rate, f"top-k at estimated rate {rate:.3f}")


register(Detector("forgetting", ("in_sample",), lambda ev: combined_score("forgetting", trajectory_runs(ev)),
                  _forgetting_decide,
                  "negated forgetting-event count, top-k at the confident-joint noise-rate estimate"))  # fmt: skip


# ----------------------------------------------------------------------------- features
def _knn_score(ev: Evidence) -> np.ndarray:
    """The kNN vote (:func:`labeltrace.score.knn.knn_vote`) over the most its class lets it reach: a
    sample of a class of ``n`` samples has at most ``n - 1`` neighbours of its class, so with
    ``k`` >= ``n`` every clean sample of it voted below 0.5 (4 classes of 5 images: all 20 flagged).
    With groups, the class's samples outside the sample's group (:meth:`Evidence.knn_reach`). A
    sample with more than ``k`` such samples is unchanged."""
    vote = ev.knn_shares()[np.arange(len(ev.labels)), ev.labels]
    reach, k = ev.knn_reach()  # with groups: the class's samples outside the sample's group
    ceiling = np.minimum(1.0, reach / k)
    return np.minimum(1.0, vote / np.maximum(ceiling, 1.0 / k))


register(Detector("knn_vote", ("features",), _knn_score, lambda ev, s: Decision(s < 0.5, 0.5, "vote < 0.5"),
                  "share of the k nearest neighbours (features) that carry the same label (of the most a class "
                  "smaller than k can reach), flag < 0.5"))  # fmt: skip


# ----------------------------------------------------------------------------- cross-validated probabilities
def _cl_score(ev: Evidence) -> np.ndarray:
    return P.confident_learning(ev.cv_probs, ev.labels, filter_by="prune_by_noise_rate")


def _cl_decide(ev: Evidence, s: np.ndarray) -> Decision:
    return Decision(P.find_label_issues(ev.cv_probs, ev.labels, filter_by="prune_by_noise_rate"), P.CL_CUTOFF,
                    "prune_by_noise_rate")


register(Detector("cl", ("cv_probs",), _cl_score, _cl_decide,
                  "confident learning (ours) on K-fold out-of-fold probabilities, prune_by_noise_rate"))  # fmt: skip


def _cleanlab_score(ev: Evidence) -> np.ndarray:
    from cleanlab.rank import get_label_quality_scores

    return np.asarray(get_label_quality_scores(ev.labels, ev.cv_probs), dtype=np.float64)


def _cleanlab_decide(ev: Evidence, s: np.ndarray) -> Decision:
    from cleanlab.filter import find_label_issues

    flagged = np.asarray(find_label_issues(ev.labels, ev.cv_probs, filter_by="prune_by_noise_rate", n_jobs=1))
    return Decision(flagged.astype(bool), float("nan"), "cleanlab prune_by_noise_rate")


register(Detector("cleanlab", ("cv_probs",), _cleanlab_score, _cleanlab_decide,
                  "the cleanlab package's find_label_issues (prune_by_noise_rate) on the same probabilities",
                  requires="cleanlab"))  # fmt: skip
