"""Measuring detection against known truth: metrics, and seeded noise injection.

Importable from here (on first use): :func:`detection_report`, :func:`flag_top_k`,
:func:`report_at_true_rate`, :func:`t_interval`, and the noise models (:func:`inject`,
:func:`symmetric`, :func:`pair`, :func:`from_transition`, :func:`confusion_calibrated`,
:func:`instance_dependent`, :class:`NoisyLabels`).
"""

from __future__ import annotations

from labeltrace._lazy import exports

_WHERE = {
    "detection_report": "metrics", "flag_top_k": "metrics", "report_at_true_rate": "metrics", "t_interval": "metrics",
    "inject": "noise", "parse_spec": "noise", "symmetric": "noise", "pair": "noise", "from_transition": "noise",
    "confusion_calibrated": "noise", "instance_dependent": "noise", "NoisyLabels": "noise",
}  # fmt: skip

__all__, __getattr__, __dir__ = exports(__name__, _WHERE)
