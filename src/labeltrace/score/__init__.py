"""Per-sample label-quality scores: lower = more likely mislabeled.

Trajectory scores of recorded dynamics (:func:`compute`, :func:`available`, :func:`register`), and
the scores of a probability matrix alone: :func:`self_confidence`, :func:`normalized_margin`,
confident learning (:func:`find_label_issues`, :func:`confident_joint`, :func:`num_label_issues`,
:func:`estimate_noise_rate`; ``probs`` first, ``labels`` second — the reverse of cleanlab's
``(labels, pred_probs)``) and the kNN vote (:func:`knn_vote`).
"""

from labeltrace.score.confident import (
           confident_joint,
           estimate_noise_rate,
           find_label_issues,
           num_label_issues,
)
from labeltrace.score.knn import knn_vote
from labeltrace.score.probs import normalized_margin, self_confidence
from labeltrace.score.trajectory import available, compute, describe, from_probs, register

__all__ = ["available", "compute", "confident_joint", "describe", "estimate_noise_rate", "find_label_issues",
           "from_probs", "knn_vote", "normalized_margin", "num_label_issues", "register", "self_confidence"]
