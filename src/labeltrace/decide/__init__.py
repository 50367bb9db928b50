"""Deciding which samples to flag: cutoffs and the detector table.

The public functions are importable from here (imported on first use: the detector table pulls
in scikit-learn): :func:`find_suspects` (the one-training mode), the cutoffs (:func:`flag`,
:func:`top_fraction`, :func:`gmm_cutoff`, :func:`unsupervised_cutoff`, :func:`auxiliary_cutoff`),
:func:`rank_of` / :func:`score_table`, and the detector table (:func:`detect`, :func:`get`,
:func:`available`, :func:`register`).
"""

from __future__ import annotations

from labeltrace._lazy import exports

_WHERE = {
    "find_suspects": "own_run",
    "flag": "cutoffs", "top_fraction": "cutoffs", "gmm_cutoff": "cutoffs", "unsupervised_cutoff": "cutoffs",
    "auxiliary_cutoff": "cutoffs", "estimate_noise_rate": "cutoffs",
    "rank_of": "ranking", "score_table": "ranking",
    "detect": "detectors", "get": "detectors", "available": "detectors", "register": "detectors",
    "Detection": "detectors", "Detector": "detectors",
}  # fmt: skip

__all__, __getattr__, __dir__ = exports(__name__, _WHERE)
