"""run.json's account of how a scan's evidence was made: the settings the detector used
(``config``), the training and its accuracy (``train``), the recording protocol (``protocol``) and
what the trainings took (``cost``) — one meaning per number, whatever the detector."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labeltrace import rundir as rd
from labeltrace.decide import detectors
from labeltrace.record.recording import Recording
from labeltrace.train import TrainConfig

if TYPE_CHECKING:
    from labeltrace.scan_settings import ScanConfig

__all__ = ["config_used", "cost", "k_fold", "protocol_used", "trained"]


def config_used(config: ScanConfig, rec: Recording | None) -> dict[str, Any]:
    """run.json's ``config``: the settings, with ``runs`` and ``folds`` saying what the detector
    used — ``runs`` the in-sample runs recorded (1 for the one-run detectors, whatever ``--runs``
    said), ``folds`` the cross-fitted or cross-validated folds — and null where it used none (a
    cross-fitted or confident-learning scan records no in-sample run, an in-sample one no fold)."""
    used = asdict(config)
    used["runs"] = len(rec.runs) if rec is not None and not rec.held_out else None
    used["folds"] = rec.num_trainings if rec is not None and rec.held_out else config.folds if k_fold(config) else None
    return used


def cost(out: Path, rec: Recording | None, config: ScanConfig, cv_seconds: float | None) -> dict[str, Any]:
    """run.json's ``cost``: the ``trainings`` the detector's evidence took and their ``seconds`` —
    the wall time of the trainings alone, summed over them: every epoch of every recorded run or
    cross-fitted fold (a resumed scan's earlier epochs included), the K fits (and out-of-fold
    predictions) behind the cross-validated probabilities; not the time to read the data, extract
    features or score (``timings`` has those, ``timings.total`` the whole scan). A re-scored scan keeps
    what its training took; null where that is unknown (cross-validated probabilities of an
    earlier scan whose run.json did not say)."""
    if rec is not None:
        return {"trainings": rec.num_trainings, "seconds": float(sum(rec.seconds))}
    if not k_fold(config):  # the kNN vote on frozen features trains nothing
        return {"trainings": 0, "seconds": 0.0}
    if cv_seconds is None:  # the probabilities were read back: the scan that computed them said what they took
        earlier = rd.held_meta(out)
        kept = (earlier.get("cost") or {}).get("seconds")
        same = (earlier.get("protocol") or {}).get("kind") == "k-fold"
        cv_seconds = float(kept) if same and isinstance(kept, (int, float)) else None
    return {"trainings": config.folds, "seconds": cv_seconds}


def trained(rec: Recording | None, tcfg: TrainConfig) -> dict[str, Any]:
    """run.json's ``train``: the training settings and the last epoch's accuracy — of the
    cross-fitted folds on the samples they held out, or of each in-sample run on the labels it
    trained on — none without a recording (cl's K fits, the kNN vote: no accuracy recorded)."""
    if rec is None:
        return asdict(tcfg)
    accuracy = list(rec.accuracy)
    return asdict(tcfg) | (_held_out_accuracy(rec, accuracy) if rec.held_out else {"final_train_accuracy": accuracy})


def _held_out_accuracy(rec: Recording, over_epochs: list[float]) -> dict[str, list[float]]:
    """A cross-fitted run's held-out accuracy at its last epoch — what an in-sample run's
    ``final_train_accuracy`` is to its training — and, beside it, its mean over every epoch (the
    recording's own number, which the first, poor epochs pull down)."""
    last = [float(np.nanmean(r.dynamics.at("correct", -1))) for r in rec.runs]
    return {"held_out_accuracy": last, "held_out_accuracy_over_epochs": over_epochs}


def k_fold(config: ScanConfig) -> bool:
    """The detector reads K-fold cross-validated probabilities (and nothing recorded)."""
    return "cv_probs" in detectors.get(config.detector).needs


def protocol_used(rec: Recording | None, config: ScanConfig, tcfg: TrainConfig) -> dict[str, Any]:
    """run.json's ``protocol``: what was recorded (crossfit, in-sample runs, K-fold probabilities or nothing)."""
    if rec is None:  # confident learning alone trains K models; the kNN vote on frozen features none
        return {"kind": "k-fold", "dynamics": "none", "folds": config.folds, "epochs_planned": tcfg.epochs} \
            if k_fold(config) else {"kind": "none", "dynamics": "none"}  # fmt: skip
    epochs = {"epochs_planned": tcfg.epochs, "epochs_trained": rec.runs[0].dynamics.num_epochs}
    if rec.held_out:
        return {"kind": "crossfit", "folds": rec.num_trainings, "dynamics": "held-out", **epochs,
                "early_stop": _early_stop(rec, config, tcfg)}  # fmt: skip
    # (--early-stop with an in-sample detector is refused by the settings check)
    return {"kind": "in-sample", "runs": len(rec.runs), "dynamics": "in-sample", **epochs, "early_stop": {"enabled": False}}


def _early_stop(rec: Recording, config: ScanConfig, tcfg: TrainConfig) -> dict[str, Any]:
    """Whether the rule was on and stopped the training, and the top set's change at epochs
    2..T measured at the final count (recomputed from the recording)."""
    from labeltrace.train.early_stop import EarlyStop, ranking_changes

    run = rec.runs[0]
    changes = ranking_changes(run.dynamics, run.in_sample, run.dynamics.labels)
    out: dict[str, Any] = {"enabled": bool(config.early_stop),
                           "top_set_change_at_final_count": [round(c, 5) for c in changes]}  # fmt: skip
    if config.early_stop:
        out |= EarlyStop().describe() | {"stopped_early": run.dynamics.num_epochs < tcfg.epochs}
    return out
