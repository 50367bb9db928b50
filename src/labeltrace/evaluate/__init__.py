"""Measuring detection against known truth: metrics, and seeded noise injection.

Importable from here (on first use): :func:`detection_report`, :func:`flag_top_k`,
:func:`report_at_true_rate`, :func:`t_interval`, and the noise models (:func:`inject`,
:func:`symmetric`, :func:`pair`, :func:`from_transition`, :func:`confusion_calibrated`,
:func:`instance_dependent`, :class:`NoisyLabels`).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "detection_report": "metrics", "flag_top_k": "metrics", "report_at_true_rate": "metrics", "t_interval": "metrics",
    "inject": "noise", "parse_spec": "noise", "symmetric": "noise", "pair": "noise", "from_transition": "noise",
    "confusion_calibrated": "noise", "instance_dependent": "noise", "NoisyLabels": "noise",
}  # fmt: skip

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"labeltrace.evaluate.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'labeltrace.evaluate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
