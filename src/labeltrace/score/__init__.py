"""Per-sample label-quality scores: lower = more likely mislabeled."""

from labeltrace.score.trajectory import available, compute, describe, from_probs, register

__all__ = ["available", "compute", "describe", "from_probs", "register"]
