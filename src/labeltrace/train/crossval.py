"""Out-of-fold predicted probabilities from features: cleanlab's recipe.

:func:`crossval_probs` fits one model per fold of a stratified K-fold split
(:func:`~labeltrace.train.folds.fold_ids`) and predicts the held-out fold, so every sample's
probabilities come from a model that never saw it. Feed the
result to :mod:`labeltrace.score.probs` (self-confidence, ...) and :mod:`labeltrace.score.confident`
(confident learning).
:func:`cross_validated_probs` (also :func:`labeltrace.train.protocol.cross_validated_probs`) runs
it for a network or for logistic regression, seeded by the protocol's :func:`~labeltrace.train.
protocol.cv_seed`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from labeltrace._checks import check_int, check_num_classes, id_list, real_numbers
from labeltrace.train.folds import fold_ids, grouped_folds
from labeltrace.train.seeds import cv_seed, legacy_seed, seed_torch

if TYPE_CHECKING:
    import torch
    from torch import nn

    from labeltrace.train.loop import TrainConfig
    from labeltrace.train.recipe import NetworkSpec

__all__ = ["NetworkEstimator", "cross_validated_probs", "crossval_probs", "fold_ids", "grouped_folds"]


class ProbaEstimator(Protocol):
    """What ``estimator_factory()`` must return (any scikit-learn classifier fits)."""

    classes_: np.ndarray

    def fit(self, X: np.ndarray, y: np.ndarray) -> Any: ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


def _validate(
    features: Any, labels: Any, num_classes: int | None, n_folds: int
) -> tuple[np.ndarray, np.ndarray, int]:
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {x.shape}")
    if not real_numbers(x.dtype):
        raise ValueError(f"features must be real numbers, got dtype {x.dtype}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(
            f"features contain NaN/inf in sample ids {id_list(np.flatnonzero(bad))}"
        )
    n = x.shape[0]
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if y.dtype.kind == "u" and n and y.max() > np.iinfo(np.int64).max:  # checked in its own dtype
        big = np.flatnonzero(y > np.iinfo(np.int64).max)
        raise ValueError(f"labels must be class ids; sample ids {id_list(big)} have labels {id_list(y[big])}")
    y = y.astype(np.int64, copy=False)
    if n and y.min() < 0:
        raise ValueError(
            f"labels must be >= 0; sample ids {id_list(np.flatnonzero(y < 0))} are not"
        )
    k = check_num_classes(int(y.max()) + 1 if num_classes is None else num_classes)
    bad = y >= k
    if bad.any():
        raise ValueError(
            f"labels must lie in [0, {k}); sample ids {id_list(np.flatnonzero(bad))} do not"
        )
    check_int("n_folds", n_folds, 2)
    if n_folds > n:
        raise ValueError(f"n_folds ({n_folds}) cannot exceed the number of samples ({n})")
    if np.unique(y).size < 2:
        raise ValueError("labels must contain at least 2 distinct classes")
    return x, y, int(k)


def crossval_probs(
    features: Any,
    labels: Any,
    *,
    n_folds: int = 5,
    C: float = 0.05,
    seed: int = 0,
    standardize: bool = True,
    max_iter: int = 1000,
    num_classes: int | None = None,
    estimator_factory: Callable[[], ProbaEstimator] | None = None,
    groups: Sequence[str] | None = None,
    copies: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-fold predicted probabilities, float64 ``(N, K)``.

    Parameters
    ----------
    features : array_like
        ``(N, D)`` finite features.
    labels : array_like
        ``(N,)`` integer labels in ``[0, K)``; at least 2 distinct classes.
    n_folds : int
        Folds of ``StratifiedKFold(shuffle=True, random_state=legacy_seed(seed))`` (see :func:`fold_ids`).
    C, max_iter : float, int
        Inverse L2 strength and iteration cap of the default model,
        ``LogisticRegression(solver="lbfgs")`` (multinomial for K > 2). Ignored with
        ``estimator_factory``.
    seed : int
        Fold shuffling seed (also the default model's ``random_state``).
    standardize : bool
        Scale features to zero mean / unit variance, fitted on each training fold only.
    num_classes : int, optional
        K; default ``max(labels) + 1``.
    estimator_factory : callable, optional
        Returns a fresh unfitted classifier with ``fit``, ``predict_proba`` and ``classes_``
        (e.g. ``lambda: sklearn.ensemble.RandomForestClassifier(random_state=0)``).
    groups : sequence of str, optional
        One key per sample (a patient, a study): a group's samples share a fold (:func:`fold_ids`).
    copies : array_like, optional
        ``(N,)`` exact-duplicate group per sample, ``-1`` alone: copies share a fold (:func:`fold_ids`).

    Returns
    -------
    np.ndarray
        Row i is predicted by the model of the fold holding out sample i. A class absent from
        a training fold gets probability 0 in that fold's rows (all K columns are always
        present); rows sum to 1. (cleanlab's ``estimate_cv_predicted_probabilities`` instead
        copies one held-out sample of the missing class into training and sets its row to
        one-hot on its given label; we never train on a held-out sample.) When every training
        fold holds every class, the default model with ``standardize=False`` reproduces
        cleanlab's probabilities for the same ``seed``.

    Raises
    ------
    ValueError
        Bad shapes or values, or a training fold containing a single class.
    """
    x, y, k = _validate(features, labels, num_classes, n_folds)
    if estimator_factory is None:
        if not C > 0:
            raise ValueError(f"C must be > 0, got {C}")

        def estimator_factory() -> ProbaEstimator:
            return LogisticRegression(C=C, max_iter=max_iter, solver="lbfgs", random_state=legacy_seed(seed))

    x = x.astype(np.float64)
    folds = fold_ids(y, n_folds=n_folds, seed=seed, groups=groups, copies=copies)
    out = np.zeros((y.size, k), dtype=np.float64)
    for f in range(n_folds):
        test = folds == f
        train = ~test
        present = np.unique(y[train])
        if present.size < 2:
            raise ValueError(
                f"training fold {f} holds only class {int(present[0])}; "
                "use fewer folds or more data"
            )
        x_train, x_test = x[train], x[test]
        if standardize:
            scaler = StandardScaler().fit(x_train)
            x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
        model = estimator_factory()
        model.fit(x_train, y[train])
        cols = np.asarray(model.classes_).astype(np.int64)
        proba = np.asarray(model.predict_proba(x_test), dtype=np.float64)
        if proba.shape != (int(test.sum()), cols.size):
            raise ValueError(
                f"estimator returned probabilities of shape {proba.shape} for fold {f}, "
                f"expected {(int(test.sum()), cols.size)}"
            )
        out[np.ix_(np.flatnonzero(test), cols)] = proba
    return out


class NetworkEstimator:
    """scikit-learn-style wrapper so :func:`crossval_probs` can cross-validate a network
    (:func:`labeltrace.train.protocol.cross_validated_probs`).

    ``fit`` takes the flattened inputs (crossval_probs needs 2-D features) and reshapes them;
    every fit runs in this process alone, also inside a data-parallel scan.
    """

    def __init__(self, spec: NetworkSpec, train: TrainConfig, shape: tuple[int, ...], k: int, seed: int) -> None:
        self.spec, self.train, self.shape, self.k, self.seed = spec, train, shape, k, seed
        self.classes_ = np.arange(k)
        self.net: nn.Module | None = None

    def _x(self, x: np.ndarray) -> torch.Tensor:
        import torch

        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32).reshape(-1, *self.shape))

    def fit(self, x: np.ndarray, y: np.ndarray) -> NetworkEstimator:

        from labeltrace.train.distributed import LOCAL
        from labeltrace.train.loop import train_recorded

        xt = self._x(x)
        seed_torch(self.seed)
        self.net = self.spec.build(xt, self.k)
        train_recorded(self.net, xt, np.asarray(y), num_classes=self.k, config=replace(self.train, seed=self.seed),
                       recorder_mode="streaming", keep_probs=0, progress=False, dist=LOCAL)  # fmt: skip
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        import torch

        from labeltrace.train.loop import predict_logits

        assert self.net is not None, "fit first"
        xt = self._x(x)
        logits = predict_logits(self.net, xt, torch.arange(len(xt)), device=next(self.net.parameters()).device,
                                precision=self.train.precision)  # fmt: skip
        return torch.softmax(logits.float(), 1).cpu().numpy().astype(np.float64)


def cross_validated_probs(
    spec: NetworkSpec | None,
    train: TrainConfig | None,
    inputs: torch.Tensor,
    given: np.ndarray,
    *,
    num_classes: int,
    seed: int,
    folds: int = 5,
    C: float = 0.05,
    max_iter: int = 1000,
    groups: Sequence[str] | None = None,
    copies: np.ndarray | None = None,
) -> np.ndarray:
    """(N, K) out-of-fold probabilities after training: ``folds`` fits of ``spec`` with ``train``
    (fold ``f`` seeded :func:`cv_seed`), or, with ``spec=None``, cleanlab's recipe — logistic
    regression (``C``, ``max_iter``) on standardised features. ``inputs`` in memory; one process
    (rank 0 of a data-parallel scan computes it alone). ``groups``: a group in one fold; ``copies``:
    exact copies in one fold."""
    if spec is None:
        return crossval_probs(inputs.numpy(), given, n_folds=folds, C=C, max_iter=max_iter, seed=seed,
                              num_classes=num_classes, groups=groups, copies=copies)  # fmt: skip
    if train is None:
        raise ValueError("cross_validated_probs: a network needs its training settings")

    shape = tuple(inputs.shape[1:])
    fold = iter(range(folds))

    def factory() -> NetworkEstimator:
        return NetworkEstimator(spec, train, shape, num_classes, cv_seed(seed, next(fold)))

    flat = inputs.reshape(len(inputs), -1).numpy()
    return crossval_probs(flat, given, n_folds=folds, seed=seed, standardize=False, num_classes=num_classes,
                          estimator_factory=factory, groups=groups, copies=copies)  # fmt: skip
