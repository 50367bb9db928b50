"""What a detector may look at, provided lazily: recordings, cross-validated probabilities, features.

:class:`Evidence` is filled by whoever runs detectors — ``labeltrace scan`` with what it recorded,
``labeltrace bench`` from its cache — each item either a value or a zero-argument function that
computes it on first use (so the bench trains only what the chosen detectors need). A detector
declares which items it needs (:data:`NEEDS`); the detector table checks them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from labeltrace._checks import check_int, check_num_classes, describe_ids, group_codes
from labeltrace.decide import auxiliary
from labeltrace.record.batch import as_index_array
from labeltrace.record.recording import RecordedRun
from labeltrace.score import trajectory

__all__ = ["NEEDS", "Evidence", "Need", "combined_score", "posterior"]

#: ``in_sample``: in-sample runs (one, or two with disjoint auxiliary sets); ``single``: one plain
#: training on every sample, no auxiliary class (what a user's own training records); ``held_out``:
#: a cross-fitted run (held-out dynamics + in-sample companion); ``cv_probs``: (N, K) out-of-fold
#: probabilities at the end of training; ``features``: (N, D) features (frozen backbone features
#: or a trained network's embedding)
Need = Literal["in_sample", "single", "held_out", "cv_probs", "features"]
NEEDS: tuple[Need, ...] = ("in_sample", "single", "held_out", "cv_probs", "features")

Provider = Any  # a value, or a zero-argument callable returning it


class Evidence:
    """Given labels, classes and the lazily provided inputs of the detectors.

    ``cost`` maps each need to ``(model fits, wall seconds)`` it took, for cost accounting; a
    callable is called after its item was computed. ``knn_k`` is the kNN vote's neighbour count.
    ``features_frozen``: the features are a frozen backbone's (the model trained on them), not a
    trained network's embedding — the default detector mixes their kNN label shares into its
    posterior only then (:data:`labeltrace.decide.count.KNN_WEIGHT`). ``groups`` (one key per
    sample: a patient, a study): a sample's nearest neighbours are found outside its group.
    """

    def __init__(
        self,
        labels: np.ndarray,
        num_classes: int,
        *,
        in_sample: Provider = None,
        single: Provider = None,
        held_out: Provider = None,
        cv_probs: Provider = None,
        features: Provider = None,
        cost: dict[str, Callable[[], tuple[int, float]] | tuple[int, float]] | None = None,
        knn_k: int = 10,
        features_frozen: bool = False,
        groups: Sequence[str] | None = None,
    ) -> None:
        self.num_classes = check_num_classes(num_classes)  # 3.9 is no class count (it read 3)
        # class ids in 0..K-1: 1.7 would be class 1, and -1 would read the posterior's last column
        self.labels = as_index_array(labels, "labels", self.num_classes)
        self.knn_k = check_int("knn_k", knn_k, 1, hint=" (the neighbours of each sample)")
        self.features_frozen = bool(features_frozen)
        self.groups = None if groups is None else np.asarray([str(g) for g in groups])
        if self.groups is not None and self.groups.shape != self.labels.shape:
            raise ValueError(f"groups has {self.groups.size} entries for {self.labels.size} samples")
        self._providers: dict[str, Provider] = {
            "in_sample": in_sample, "single": single, "held_out": held_out, "cv_probs": cv_probs,
            "features": features,
        }  # fmt: skip
        self._values: dict[str, Any] = {}
        self._cost = dict(cost or {})

    def has(self, need: str) -> bool:
        return self._providers.get(need) is not None

    def get(self, need: str) -> Any:
        if need not in self._providers:
            raise ValueError(f"unknown evidence {need!r}; one of {NEEDS}")
        if need not in self._values:
            p = self._providers[need]
            if p is None:
                raise ValueError(f"no {need.replace('_', '-')} evidence was provided")
            self._values[need] = p() if callable(p) else p
        return self._values[need]

    @property
    def in_sample(self) -> Sequence[RecordedRun]:
        return self.get("in_sample")

    @property
    def single(self) -> RecordedRun:
        return self.get("single")

    @property
    def held_out(self) -> RecordedRun:
        return self.get("held_out")

    @property
    def cv_probs(self) -> np.ndarray:
        return self.get("cv_probs")

    @property
    def features(self) -> np.ndarray:
        x = self.get("features")
        rows = np.shape(x)[0] if np.ndim(x) >= 1 else None
        if rows != len(self.labels):
            raise ValueError(f"features have {'no rows' if rows is None else f'{rows} rows'} for the "
                             f"{len(self.labels)} samples of labels: one row per sample")  # fmt: skip
        return x

    def knn_shares(self) -> np.ndarray:
        """(N, K) label shares of each sample's ``knn_k`` nearest neighbours in ``features``
        (computed once: the kNN search is the expensive part of every kNN-based detector).

        A sample whose feature row is all zeros (a network's embedding can be: every unit off) has
        no direction, hence no cosine neighbours: it gets the label shares of the whole set, the
        others find their neighbours among the rest, and a warning names it."""
        if "knn_shares" not in self._values:
            self._values["knn_shares"], self._values["knn_k_used"] = _knn_shares(
                self.features, self.labels, self.num_classes, self.knn_k, self.groups)
        return self._values["knn_shares"]

    def knn_reach(self) -> tuple[np.ndarray, int]:
        """((N,) how many of each sample's possible neighbours share its label — its class's other
        samples, outside its group when there are groups —, the neighbours each sample has): the most
        a kNN vote for the given label can reach is their ratio, at most 1."""
        self.knn_shares()
        k = int(self._values["knn_k_used"])
        y = self.labels
        sizes = np.bincount(y, minlength=self.num_classes)
        if self.groups is None:
            return sizes[y] - 1, k
        _, g = group_codes(self.groups)
        pair = g * self.num_classes + y
        return sizes[y] - np.bincount(pair)[pair], k

    def knn_class_shares(self) -> np.ndarray:
        """:meth:`knn_shares`, each sample's over its nearest ``min(knn_k, reach)`` neighbours
        (:meth:`knn_reach`: the others of its class, at least 1): a clean sample of a class of 3 has 2
        neighbours of its class among 10, so over 10 its class's share is at most 0.2 and a count read
        from the shares called every such sample wrong. Where every class reaches ``knn_k`` (no class
        smaller than ``knn_k`` + 1), :meth:`knn_shares` itself, unchanged."""
        shares = self.knn_shares()
        reach, k = self.knn_reach()
        take = np.clip(reach, 1, k)
        if (take >= k).all():
            return shares
        if "knn_class_shares" not in self._values:
            self._values["knn_class_shares"] = _first_shares(self.features, self.labels, self.num_classes, k,
                                                             take, self.groups, shares)  # fmt: skip
        return self._values["knn_class_shares"]

    def cost(self, needs: Sequence[str]) -> tuple[int, float]:
        """(model fits, wall seconds) of the evidence ``needs`` uses, each counted once."""
        n, sec = 0, 0.0
        for need in dict.fromkeys(needs):
            c = self._cost.get(need, (0, 0.0))
            c = c() if callable(c) else c
            n, sec = n + int(c[0]), sec + float(c[1])
        return n, sec


def trajectory_runs(ev: Evidence) -> Sequence[RecordedRun]:
    """The in-sample runs a trajectory detector scores: refused, naming them, where one run alone
    leaves its auxiliary samples unscored (their NaN scores cannot be flagged or kept)."""
    runs = ev.in_sample
    if len(runs) == 1 and runs[0].has_auxiliary:
        aux = np.asarray(runs[0].is_auxiliary, dtype=bool)
        raise ValueError(f"one in-sample run with auxiliary samples scores none of them ({describe_ids(aux)}): "
                         "record two runs with disjoint auxiliary sets (protocol.InSample(2)), or one run "
                         "without auxiliary samples")  # fmt: skip
    return runs


def combined_score(name: str, runs: Sequence[RecordedRun], **kw: Any) -> np.ndarray:
    """A trajectory score, each sample scored by the runs in which it kept its label (NaN for a
    sample auxiliary in the only run)."""
    per_run = [trajectory.compute(name, r.dynamics, **kw) for r in runs]
    if len(runs) == 1:
        out = per_run[0].copy()
        out[runs[0].is_auxiliary] = np.nan
        return out
    if len(runs) == 2:
        return auxiliary.combine_two_runs(per_run[0], per_run[1], runs[0].is_auxiliary, runs[1].is_auxiliary)
    raise ValueError(f"expected 1 or 2 runs, got {len(runs)}")


def auxiliary_scores(name: str, runs: Sequence[RecordedRun], **kw: Any) -> np.ndarray:
    """The auxiliary samples' scores, pooled over the runs in which they were auxiliary; an
    auxiliary sample a run never scored (never recorded in a finished epoch) is named."""
    vals = []
    for i, r in enumerate(runs):
        if not r.has_auxiliary:
            continue
        s = trajectory.compute(name, r.dynamics, **kw)
        unscored = r.is_auxiliary & np.isnan(s)
        if unscored.any():
            raise ValueError(f"run {i}: {int(unscored.sum())} of its auxiliary samples have no {name} score (never "
                             f"recorded in a finished epoch): {describe_ids(np.flatnonzero(unscored))}")
        vals.append(s[r.is_auxiliary])
    return np.concatenate(vals) if vals else np.zeros(0)


def posterior(runs: Sequence[RecordedRun], *, last: int | None = None) -> np.ndarray:
    """(N, K) mean softmax over the last ``last`` epochs (all epochs when None), over the real
    classes only (auxiliary column dropped, rows renormalised), averaged over the runs where the
    sample kept its label. A sample a run did not see in its last ``last`` epochs (a sampler that
    draws with replacement, in a training of your own) reads that run's mean over every epoch it
    was seen in."""
    K = runs[0].num_classes
    n = runs[0].dynamics.num_samples
    acc = np.zeros((n, K))
    w = np.zeros(n)
    fallback = None
    for r in runs:
        p = (r.dynamics.mean_posterior() if last is None else r.dynamics.posterior(last=last))[:, :K]
        gap = np.isnan(p).any(axis=1)
        if gap.any():
            p[gap] = r.dynamics.mean_posterior()[gap, :K]
        p = p / np.clip(p.sum(1, keepdims=True), 1e-12, None)
        keep = ~r.is_auxiliary
        acc[keep] += p[keep]
        w[keep] += 1
        fallback = p if fallback is None else fallback
    out = acc / np.maximum(w, 1)[:, None]
    none = w == 0  # auxiliary in the only run: use its real-class posterior
    out[none] = fallback[none]  # type: ignore[index]
    return out


def _knn_shares(features: np.ndarray, labels: np.ndarray, num_classes: int, k: int,
                groups: np.ndarray | None = None) -> tuple[np.ndarray, int]:  # fmt: skip
    """(:func:`labeltrace.score.knn.knn_probs`, with all-zero rows given the set's label shares;
    the neighbours each sample has); with ``groups`` each sample's neighbours outside its group
    (``k`` at most what the largest group leaves, said in a warning when that is fewer)."""
    from labeltrace.score.knn import knn_probs

    x = np.asarray(features)
    if k > len(labels) - 1:  # named as the setting it is (the kNN itself says "k")
        raise ValueError(f"knn_k = {k}: each sample's {k} nearest neighbours need more than {k} samples, got "
                         f"{len(labels)}; pass a smaller knn_k")  # fmt: skip
    zero = np.flatnonzero(np.count_nonzero(x, axis=1) == 0) if x.ndim == 2 else np.empty(0, np.int64)
    if groups is not None and zero.size < len(labels):  # every row all zeros: said below, in the kNN's words
        keep_g = groups if zero.size == 0 else np.delete(groups, zero)
        largest = int(np.unique(keep_g, return_counts=True)[1].max())
        if len(keep_g) - largest < k:
            warnings.warn(f"the largest group holds {largest:,} of {len(keep_g):,} samples: its samples have "
                          f"{len(keep_g) - largest} neighbours outside it, so every sample's kNN vote is over "
                          f"{max(1, len(keep_g) - largest)}, not {k}", UserWarning, stacklevel=3)  # fmt: skip
            k = max(1, len(keep_g) - largest)
    if zero.size == 0:
        return knn_probs(x, labels, num_classes=num_classes, k=k, groups=groups), k
    keep = np.setdiff1d(np.arange(len(labels)), zero)
    if keep.size < 2:
        raise ValueError(f"features are all zeros for {describe_ids(zero)}: no kNN label shares without two "
                         "samples that have a direction")  # fmt: skip
    out = np.empty((len(labels), num_classes), dtype=np.float64)
    k = min(k, keep.size - 1)
    out[keep] = knn_probs(x[keep], labels[keep], num_classes=num_classes, k=k,
                          groups=None if groups is None else groups[keep])  # fmt: skip
    out[zero] = np.bincount(labels, minlength=num_classes) / len(labels)
    warnings.warn(f"features are all zeros for {describe_ids(zero)}: they have no cosine neighbours, so their "
                  "kNN label shares are the whole set's; the others' neighbours are found without them",
                  UserWarning, stacklevel=3)  # fmt: skip
    return out, k


def _first_shares(features: np.ndarray, labels: np.ndarray, num_classes: int, k: int, take: np.ndarray,
                  groups: np.ndarray | None, shares: np.ndarray) -> np.ndarray:  # fmt: skip
    """(N, K) label shares of each sample's ``take[i]`` nearest of its ``k`` neighbours (the search of
    :func:`_knn_shares`); a sample with an all-zero feature row keeps its row of ``shares`` (the set's)."""
    from labeltrace.score.knn import knn_indices

    x = np.asarray(features)
    keep = np.flatnonzero(np.count_nonzero(x, axis=1) > 0)
    nb = keep[knn_indices(x[keep], k=k, groups=None if groups is None else groups[keep])]
    first = np.arange(k)[None, :] < take[keep, None]
    out = shares.copy()
    counts = np.zeros((keep.size, num_classes))
    rows = np.broadcast_to(np.arange(keep.size)[:, None], nb.shape)
    np.add.at(counts, (rows[first], labels[nb][first]), 1.0)
    out[keep] = counts / take[keep, None]
    return out
