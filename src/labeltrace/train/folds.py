"""Which fold each sample falls in: the splits that keep a sample's predictions from the models
that trained on it.

* :func:`stratified_folds`: the cross-fitted protocol's folds (:mod:`labeltrace.train.protocol`),
  each class spread evenly over them, seeded;
* :func:`fold_ids`: the K-fold out-of-fold probabilities' folds (:mod:`labeltrace.train.crossval`),
  cleanlab's split (scikit-learn's ``StratifiedKFold``);
* :func:`grouped_folds`: either with ``groups`` (a patient, a study): a group's samples in one fold.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from labeltrace._checks import group_codes, listing
from labeltrace.train.seeds import legacy_seed

__all__ = ["fold_ids", "grouped_folds", "stratified_folds"]


def stratified_folds(labels: np.ndarray, n_folds: int, *, seed: int, groups: Sequence[str] | None = None) -> np.ndarray:
    """(N,) fold index per sample: each class spread evenly over the folds, seeded. With
    ``groups`` (one key per sample: a patient, a study) a group's samples share a fold, the
    classes spread as evenly as whole groups allow (scikit-learn's ``StratifiedGroupKFold``): a
    held-out model then never trained on another image of the same patient."""
    labels = np.asarray(labels)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if len(labels) < n_folds:
        raise ValueError(f"{len(labels)} samples cannot be split into {n_folds} folds")
    if groups is not None:
        return grouped_folds(labels, n_folds, seed, groups)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(labels)), labels))  # by class, random within class
    folds = np.empty(len(labels), dtype=np.int64)
    folds[order] = np.arange(len(labels)) % n_folds
    return folds


def fold_ids(labels: Any, *, n_folds: int = 5, seed: int = 0, groups: Sequence[str] | None = None) -> np.ndarray:
    """Fold index of each sample, ``(N,)`` int64, as used by
    :func:`~labeltrace.train.crossval.crossval_probs`.

    ``StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)`` (cleanlab's split; the seed
    taken modulo 2**32, :func:`~labeltrace.train.seeds.legacy_seed`).
    A class with fewer than ``n_folds`` samples is spread over fewer folds (scikit-learn warns).
    With ``groups`` (one key per sample), :func:`grouped_folds`: a group's samples share a fold.
    """
    y = np.asarray(labels)
    if groups is not None:
        return grouped_folds(y, n_folds, legacy_seed(seed), groups)
    folds = np.empty(y.shape[0], dtype=np.int64)
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=legacy_seed(seed))
    for f, (_, test) in enumerate(skf.split(np.zeros((y.shape[0], 1)), y)):
        folds[test] = f
    return folds


def grouped_folds(labels: np.ndarray, n_folds: int, seed: int, groups: Sequence[str]) -> np.ndarray:
    """``(N,)`` fold index per sample, a group's samples (a patient's images) in one fold, the classes
    spread over the folds as evenly as whole groups allow: scikit-learn's ``StratifiedGroupKFold``
    (shuffled, ``random_state`` the seed modulo 2**32). A held-out model then never trained on
    another image of the same patient."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(labels)
    if len(groups) != y.shape[0]:
        raise ValueError(f"groups has {len(groups)} entries for {y.shape[0]} samples")
    keys, codes = group_codes(groups)
    n_groups = int(codes.max()) + 1 if codes.size else 0
    if n_groups < n_folds:
        raise ValueError(f"{n_groups} groups cannot be split into {n_folds} folds (a group's samples share a fold): "
                         "fewer folds, or no groups")  # fmt: skip
    folds = np.full(y.shape[0], -1, dtype=np.int64)
    split = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=legacy_seed(seed))
    with warnings.catch_warnings():  # "the least populated class has only m members": the classes as they come
        warnings.simplefilter("ignore", UserWarning)
        for f, (_, held) in enumerate(split.split(np.zeros((y.shape[0], 1)), y, codes)):
            folds[held] = f
    sizes = np.bincount(folds, minlength=n_folds)
    if (sizes == 0).any():  # whole groups could not fill every fold
        raise ValueError(f"{n_groups} groups of sizes {listing(sorted(np.bincount(codes).tolist(), reverse=True))} do "
                         f"not fill {n_folds} folds (fold sizes {sizes.tolist()}): fewer folds")  # fmt: skip
    classes = np.unique(y)
    for f in range(n_folds):  # a class every image of which a fold holds out is never trained on there
        missing = np.setdiff1d(classes, y[folds != f])
        if missing.size:
            c = missing[0]
            held = np.unique(keys[y == c])
            raise ValueError(f"class {c}'s images all lie in the groups {listing(held)}, which fold {f} holds out: "
                             f"its model would never see class {c}, and call all of them wrong; fewer folds, finer "
                             "groups, or more groups in that class")  # fmt: skip
    return folds
