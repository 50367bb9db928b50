"""What a scan's forward passes run in: ``--precision`` (the training's) and ``--backbone-precision``
(the frozen backbone's), resolved for one scan — ``auto`` by the device, except that a run directory
already holding a scan of the same model keeps the precision that scan ran in (``--force`` chooses
again), so that a scan begun in float32, or on another machine, resumes and is read back as it began.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labeltrace import rundir as rd
from labeltrace.scan_settings import (
    ScanConfig,
    backbone_precision,
    on_frozen_features,
    training_precision,
)
from labeltrace.train.precision import TRAINED

__all__ = ["extracting_in", "training_in"]


def training_in(config: ScanConfig, model: str, out: Path, force: bool) -> tuple[str, str | None]:
    """``--precision`` as this scan trains in, and why where ``auto`` took bfloat16 or kept a
    precision. Under ``auto`` a run directory that already holds a scan of this model keeps its
    precision (unless ``force``): a scan begun in float32, the default before ``auto``, resumes and
    is read back as it began, and one begun on a machine with native bfloat16 stays bfloat16."""
    if config.precision != "auto":
        return config.precision, None
    kept = _kept(out, model, force, lambda held: json.loads(held["train"])["train"].get("precision", "float32"))
    if kept is not None:  # no key: float32 (config_key)
        return kept, _KEPT
    chosen = training_precision(model, config)
    return chosen, f"{model} on a device that runs bfloat16 natively" if chosen == "bfloat16" else None


def extracting_in(config: ScanConfig, model: str, out: Path, force: bool) -> tuple[str, str | None]:
    """``--backbone-precision`` as this scan extracts in, and why where ``auto`` took bfloat16 or kept
    a precision: as :func:`training_in`, a run directory holding a scan of this model on frozen features
    keeps the precision its features were extracted in (float32 before the setting) unless ``force``."""
    if config.backbone_precision != "auto" or not on_frozen_features(model, config):
        return backbone_precision(model, config), None
    kept = _kept(out, model, force, lambda held: held["inputs"].get("precision", "float32"))  # no key: float32
    if kept is not None:
        return kept, _KEPT
    chosen = backbone_precision(model, config)
    return chosen, "the frozen backbone on a device that runs bfloat16 natively" if chosen == "bfloat16" else None


_KEPT = "kept from the scan already in the run directory (--force chooses again)"


def _kept(out: Path, model: str, force: bool, read: Callable[[dict[str, Any]], Any]) -> str | None:
    """The precision (``read`` off its fingerprint) of the scan of ``model`` the run directory
    ``out`` already holds; None without one, with ``force``, or where the fingerprint is damaged
    (the claim says so)."""
    held = None if force else rd.held_fingerprint(out)
    if held is None or held.get("model") != model:
        return None
    try:
        kept = read(held)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return kept if kept in TRAINED else None
