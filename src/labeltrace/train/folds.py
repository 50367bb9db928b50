"""Which fold each sample falls in: the splits that keep a sample's predictions from the models
that trained on it.

* :func:`stratified_folds`: the cross-fitted protocol's folds (:mod:`labeltrace.train.protocol`),
  each class spread evenly over them, seeded;
* :func:`fold_ids`: the K-fold out-of-fold probabilities' folds (:mod:`labeltrace.train.crossval`),
  cleanlab's split (scikit-learn's ``StratifiedKFold``);
* :func:`grouped_folds`: either with ``groups`` (a patient, a study): a group's samples in one fold;
* :func:`keep_together`: either with ``copies`` (exact duplicate images,
  :mod:`labeltrace.data.duplicates`): each copy moved into the fold of its group's first sample,
  every other sample left where it was.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from labeltrace._checks import group_codes, listing, seeded
from labeltrace.data.duplicates import connected_sets
from labeltrace.train.seeds import legacy_seed

__all__ = ["ClassHeldOut", "fold_ids", "grouped_folds", "keep_together", "said_elsewhere", "stratified_folds"]


def stratified_folds(labels: np.ndarray, n_folds: int, *, seed: int, groups: Sequence[str] | None = None,
                     copies: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """(N,) fold index per sample: each class spread evenly over the folds, seeded. With
    ``groups`` (one key per sample: a patient, a study) a group's samples share a fold, the
    classes spread as evenly as whole groups allow (scikit-learn's ``StratifiedGroupKFold``): a
    held-out model then never trained on another image of the same patient. With ``copies``
    (``(N,)`` duplicate group per sample, ``-1`` alone: :func:`labeltrace.data.duplicates.dataset_duplicates`)
    exact copies share a fold too (:func:`keep_together`)."""
    labels = np.asarray(labels)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if len(labels) < n_folds:
        raise ValueError(f"{len(labels)} samples cannot be split into {n_folds} folds")
    if groups is not None:
        return keep_together(grouped_folds(labels, n_folds, seed, groups), labels, n_folds, copies, groups)
    rng = seeded(seed)
    order = np.lexsort((rng.random(len(labels)), labels))  # by class, random within class
    folds = np.empty(len(labels), dtype=np.int64)
    folds[order] = np.arange(len(labels)) % n_folds
    return keep_together(folds, labels, n_folds, copies)


def keep_together(folds: np.ndarray, labels: np.ndarray, n_folds: int, copies: np.ndarray | None,
                  groups: Sequence[str] | None = None) -> np.ndarray:  # fmt: skip
    """``folds`` with every exact copy (``copies``: ``(N,)`` duplicate group, ``-1`` alone) moved,
    with the whole ``groups`` group it belongs to, into the fold of the first sample of its
    connected set — the union of both groupings: two patients one of whose images is a copy of the
    other's share a fold. Every sample outside such a set keeps its fold, so data without copies
    gets the folds it had (``folds`` itself is returned when ``copies`` holds none). A set whose move
    would empty a fold, or leave a fold with no image of a class to train on that it had before (a
    class whose images are all copies of one image), stays where it was — its copies then back each
    other's label, as they did before copies were looked for — and a ``UserWarning`` names it (a
    class that is one image copied: no number of folds could keep it together)."""
    c = None if copies is None else np.asarray(copies, dtype=np.int64).reshape(-1)
    if c is None or not (c >= 0).any():
        return folds
    y = np.asarray(labels)
    n = y.shape[0]
    if c.shape[0] != n:
        raise ValueError(f"copies has {c.shape[0]} entries for {n} samples")
    rank = connected_sets(c, groups)  # each sample's set, 0..S-1
    _, first = np.unique(rank, return_index=True)  # the first sample of each set
    base = np.asarray(folds, dtype=np.int64)
    target = base[first[rank]]
    apart = np.zeros(first.size, dtype=bool)  # the sets left where they were
    held_before = _held_out_whole(base, y, n_folds)
    while True:
        moved = np.where(apart[rank], base, target)
        went = moved != base
        bad = np.zeros(first.size, dtype=bool)
        for empty in np.flatnonzero(np.bincount(moved, minlength=n_folds) == 0).tolist():
            bad[rank[went & (base == empty)]] = True  # the sets that emptied fold f
        for f, cls in _held_out_whole(moved, y, n_folds) - held_before:
            bad[rank[went & (moved == f) & (y == cls)]] = True  # the sets that took class c's last images into f
        if not bad.any():
            break
        apart |= bad
    if apart.any():
        sets = [np.flatnonzero(rank == r) for r in np.flatnonzero(apart)]
        warnings.warn(f"{len(sets)} set{'s' if len(sets) > 1 else ''} of exact copies left in different folds (in "
                      "one fold they would leave a fold empty, or without any image of a class to train on): each copy backs its twin's label; sample ids "
                      + listing("+".join(str(i) for i in m.tolist()) for m in sets), UserWarning, stacklevel=2)
    return moved


@contextmanager
def said_elsewhere() -> Iterator[None]:
    """The folds' own warnings silenced, for a caller that says both in its own words (a scan:
    its small-classes warning, and the copies by file in its outputs): scikit-learn's "The least
    populated class ..." and :func:`keep_together`'s exact copies left in different folds."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"\d+ sets? of exact copies left in different folds")
        yield


def _held_out_whole(folds: np.ndarray, labels: np.ndarray, n_folds: int) -> set[tuple[int, int]]:
    """``(fold, class)`` pairs where the fold holds every image of the class (its model never sees it)."""
    out = set()
    for f in range(n_folds):
        out |= {(f, int(c)) for c in np.setdiff1d(np.unique(labels), labels[folds != f]).tolist()}
    return out


def fold_ids(labels: Any, *, n_folds: int = 5, seed: int = 0, groups: Sequence[str] | None = None,
             copies: np.ndarray | None = None) -> np.ndarray:
    """Fold index of each sample, ``(N,)`` int64, as used by
    :func:`~labeltrace.train.crossval.crossval_probs`.

    ``StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)`` (cleanlab's split; the seed
    taken modulo 2**32, :func:`~labeltrace.train.seeds.legacy_seed`).
    A class with fewer than ``n_folds`` samples is spread over fewer folds (scikit-learn warns).
    With ``groups`` (one key per sample), :func:`grouped_folds`: a group's samples share a fold;
    with ``copies``, exact copies too (:func:`keep_together`).
    """
    y = np.asarray(labels)
    if groups is not None:
        return keep_together(grouped_folds(y, n_folds, legacy_seed(seed), groups), y, n_folds, copies, groups)
    folds = np.empty(y.shape[0], dtype=np.int64)
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=legacy_seed(seed))
    for f, (_, test) in enumerate(skf.split(np.zeros((y.shape[0], 1)), y)):
        folds[test] = f
    return keep_together(folds, y, n_folds, copies)


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
            raise ClassHeldOut(int(missing[0]), fold=f, n_folds=n_folds,
                               groups=[str(k) for k in np.unique(keys[y == missing[0]])])
    return folds


class ClassHeldOut(ValueError):
    """A class every image of which lies in groups one fold holds out: that fold's model would never
    see it. ``str()`` names the class by its label id; :meth:`named` by its name (the scan's)."""

    def __init__(self, label: int, *, fold: int, n_folds: int, groups: list[str]) -> None:
        self.label, self.fold, self.n_folds, self.groups = label, fold, n_folds, groups
        super().__init__(self.named())

    def named(self, classes: Sequence[str] | None = None) -> str:
        c = f"class {classes[self.label]!r}" if classes is not None else f"class {self.label}"
        fewer = "fewer folds, " if self.n_folds > 2 else ""  # 2 is the fewest
        return (f"the images of {c} all lie in the group{'s' if len(self.groups) > 1 else ''} {listing(self.groups)}, "
                f"which fold {self.fold} holds out: its model would never see {c}, and call all of them wrong; "
                f"{fewer}finer groups, or more groups in that class")
