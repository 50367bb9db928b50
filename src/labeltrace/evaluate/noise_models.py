"""The seeded label-noise models, for benchmarking mislabel detectors on synthetic noise.

:func:`symmetric`, :func:`pair`, :func:`from_transition`, :func:`confusion_calibrated` and
:func:`instance_dependent`, each re-exported by :mod:`labeltrace.evaluate.noise` (which also
reads the ``--noise`` spec and draws the noise it names).

Every generator returns a :class:`NoisyLabels` holding the noisy labels, the mask of samples
whose label changed and the realised noise rate. The input arrays are never modified. Each
random step draws from ``np.random.default_rng(seed)``, so equal seeds give equal noise.

Counts of flipped samples are ``rate * N`` rounded half up, computed in floating point as
``floor(rate * N + 0.5)``: a product that is a half in decimals but just below it in binary
rounds down (``0.7 * 45`` is 31.4999…, so 31 flips, not 32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from labeltrace._checks import check_labels as _check_labels
from labeltrace._checks import check_num_classes as _check_num_classes
from labeltrace._checks import describe_ids as _describe_ids
from labeltrace._checks import id_list, real_numbers, round_half_up, seeded

__all__ = [
    "NoisyLabels",
    "confusion_calibrated",
    "from_transition",
    "instance_dependent",
    "pair",
    "symmetric",
]

Seed = int | np.random.Generator

_ROW_SUM_TOL = 1e-6


@dataclass(frozen=True, eq=False)
class NoisyLabels:
    """Result of a noise injection.

    Attributes
    ----------
    labels : np.ndarray
        (N,) int64 noisy labels (read-only).
    flipped : np.ndarray
        (N,) bool, True where ``labels`` differs from the original label (read-only).
    rate : float
        Realised noise rate ``flipped.mean()`` (0.0 when N == 0).
    """

    labels: np.ndarray
    flipped: np.ndarray
    rate: float


# --------------------------------------------------------------------------- helpers


def _check_rate(rate: float) -> float:
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"rate must be a float in [0, 1), got {rate!r}") from None
    if not (0.0 <= r < 1.0):
        raise ValueError(f"rate must be in [0, 1), got {rate!r}")
    return r


def _n_flips(rate: float, n: int) -> int:
    return round_half_up(rate * n)


def _result(original: np.ndarray, noisy: np.ndarray) -> NoisyLabels:
    flipped = noisy != original
    noisy.flags.writeable = False
    flipped.flags.writeable = False
    realised = float(flipped.mean()) if flipped.size else 0.0
    return NoisyLabels(labels=noisy, flipped=flipped, rate=realised)


def _sample_rows(cdf_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw per row: index of the first cdf entry >= u * total (u in (0, 1]).

    Zero-probability entries are never returned because u * total > 0.
    """
    total = cdf_rows[:, -1:]
    idx = (cdf_rows < u[:, None] * total).sum(axis=1)
    return np.minimum(idx, cdf_rows.shape[1] - 1)


# --------------------------------------------------------------------------- generators


def symmetric(labels: np.ndarray, rate: float, num_classes: int, *, seed: Seed) -> NoisyLabels:
    """Flip exactly ``round(rate * N)`` uniformly chosen samples to a different class.

    "Symmetric" here means *always flip to another class*: each chosen sample gets a label drawn
    uniformly from the ``K - 1`` classes other than its own, so the realised rate equals
    ``round(rate * N) / N`` exactly (the convention where the new label may equal the old one
    would realise only ``rate * (K - 1) / K``).

    Parameters
    ----------
    labels : np.ndarray
        (N,) integer labels in ``[0, num_classes)``.
    rate : float
        Target noise rate in ``[0, 1)``.
    num_classes : int
        Number of classes K >= 2.
    seed : int or np.random.Generator
        Seed for ``np.random.default_rng`` (an int >= 0), or a generator.

    Returns
    -------
    NoisyLabels
    """
    k = _check_num_classes(num_classes)
    y = _check_labels(labels, k)
    r = _check_rate(rate)
    rng = seeded(seed)
    n_flip = _n_flips(r, y.size)
    idx = rng.choice(y.size, size=n_flip, replace=False)
    offset = rng.integers(1, k, size=n_flip)
    noisy = y.copy()
    noisy[idx] = (y[idx] + offset) % k
    return _result(y, noisy)


def pair(labels: np.ndarray, rate: float, num_classes: int, *, seed: Seed) -> NoisyLabels:
    """Pair-flip noise: ``round(rate * N)`` uniformly chosen samples go ``i -> (i + 1) mod K``.

    Parameters
    ----------
    labels : np.ndarray
        (N,) integer labels in ``[0, num_classes)``.
    rate : float
        Target noise rate in ``[0, 1)``.
    num_classes : int
        Number of classes K >= 2.
    seed : int or np.random.Generator
        Seed for ``np.random.default_rng`` (an int >= 0), or a generator.

    Returns
    -------
    NoisyLabels
    """
    k = _check_num_classes(num_classes)
    y = _check_labels(labels, k)
    r = _check_rate(rate)
    rng = seeded(seed)
    idx = rng.choice(y.size, size=_n_flips(r, y.size), replace=False)
    noisy = y.copy()
    noisy[idx] = (y[idx] + 1) % k
    return _result(y, noisy)


def _check_square(matrix: np.ndarray, name: str) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"{name} must be a square (K, K) matrix, got shape {m.shape}")
    if m.shape[0] < 2:
        raise ValueError(f"{name} must have K >= 2 classes, got shape {m.shape}")
    if not np.isfinite(m).all():
        rows = np.flatnonzero(~np.isfinite(m).all(axis=1))
        raise ValueError(f"{name} has non-finite entries in rows {id_list(rows)}")
    if (m < 0).any():
        rows = np.flatnonzero((m < 0).any(axis=1))
        raise ValueError(f"{name} has negative entries in rows {id_list(rows)}")
    return m


def from_transition(labels: np.ndarray, T: np.ndarray, *, seed: Seed) -> NoisyLabels:
    """Draw each sample's noisy label from row ``T[y]`` of a transition matrix.

    ``T[i, j]`` is P(noisy = j | clean = i). The number of flips is random (binomial-like), so
    the realised rate only approximates the mean off-diagonal mass.

    Parameters
    ----------
    labels : np.ndarray
        (N,) integer labels in ``[0, K)``.
    T : np.ndarray
        (K, K) row-stochastic matrix: non-negative, finite, each row summing to 1 within 1e-6.
    seed : int or np.random.Generator
        Seed for ``np.random.default_rng`` (an int >= 0), or a generator.

    Returns
    -------
    NoisyLabels
    """
    t = _check_square(T, "T")
    sums = t.sum(axis=1)
    bad = np.abs(sums - 1.0) > _ROW_SUM_TOL
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"T must be row-stochastic (rows sum to 1 within {_ROW_SUM_TOL}); rows "
            f"{id_list(rows)} sum to {sums[rows[:10]].tolist()}"
        )
    k = t.shape[0]
    y = _check_labels(labels, k)
    rng = seeded(seed)
    u = 1.0 - rng.random(y.size)  # in (0, 1]
    cdf = np.cumsum(t, axis=1)
    noisy = np.empty_like(y)
    for c in range(k):  # loop over classes, vectorised within each
        members = y == c
        noisy[members] = _sample_rows(np.broadcast_to(cdf[c], (int(members.sum()), k)), u[members])
    return _result(y, noisy)


def confusion_calibrated(
    labels: np.ndarray,
    rate: float,
    confusion_matrix: np.ndarray,
    *,
    seed: Seed,
    weight_classes: bool = True,
) -> NoisyLabels:
    """"Hard" noise shaped like a model's mistakes, at an exact target rate (SEI paper).

    Procedure (K classes, N samples):

    1. Row-normalise ``confusion_matrix`` (rows = true class, columns = predicted class) to
       ``R``; let ``D`` be ``R`` with its diagonal zeroed and ``o_c = D[c].sum()`` the model's
       error rate on class c. All-zero rows give ``o_c = 0``.
    2. Choose exactly ``n = round(rate * N)`` distinct samples. With ``weight_classes=True``
       they are drawn by weighted sampling without replacement (Efraimidis & Spirakis keys
       ``log(u) / w``), sample weight ``w_i = o_{y_i}``, so classes the model confuses more are
       flipped more; samples with weight 0 are taken (uniformly at random) only after every
       positive-weight sample has been taken, so the total always equals ``n``. With
       ``weight_classes=False`` the ``n`` samples are chosen uniformly.
    3. Each chosen sample of class c gets a new label drawn from ``D[c] / o_c``; rows with
       ``o_c = 0`` use the uniform distribution over the other ``K - 1`` classes. The new label
       always differs from the old one, so the realised rate is exactly ``n / N``.

    Parameters
    ----------
    labels : np.ndarray
        (N,) integer labels in ``[0, K)``.
    rate : float
        Target noise rate in ``[0, 1)``.
    confusion_matrix : np.ndarray
        (K, K) non-negative counts or rates, ``[true, predicted]``.
    seed : int or np.random.Generator
        Seed for ``np.random.default_rng`` (an int >= 0), or a generator.
    weight_classes : bool, default True
        Weight the choice of flipped samples by the per-class error rate ``o_c`` (step 2).

    Returns
    -------
    NoisyLabels
    """
    cm = _check_square(confusion_matrix, "confusion_matrix")
    k = cm.shape[0]
    y = _check_labels(labels, k)
    r = _check_rate(rate)
    rng = seeded(seed)

    row_sums = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, row_sums, out=np.zeros_like(cm), where=row_sums > 0)
    off = norm.copy()
    np.fill_diagonal(off, 0.0)
    err = off.sum(axis=1)
    uniform_other = np.ones((k, k)) - np.eye(k)
    dest = np.where((err > 0)[:, None], off, uniform_other)  # unnormalised destination rows

    n_flip = _n_flips(r, y.size)
    u_pick = 1.0 - rng.random(y.size)  # in (0, 1]
    tiebreak = rng.random(y.size)
    if weight_classes:
        w = err[y]
        with np.errstate(divide="ignore"):
            key = np.where(w > 0, np.log(u_pick) / np.where(w > 0, w, 1.0), -np.inf)
        order = np.lexsort((tiebreak, -key))  # largest key first, random among -inf
    else:
        order = np.argsort(tiebreak, kind="stable")
    chosen = order[:n_flip]

    u_dest = 1.0 - rng.random(n_flip)
    cdf = np.cumsum(dest, axis=1)
    noisy = y.copy()
    yc = y[chosen]
    for c in range(k):
        members = yc == c
        if members.any():
            rows = np.broadcast_to(cdf[c], (int(members.sum()), k))
            noisy[chosen[members]] = _sample_rows(rows, u_dest[members])
    return _result(y, noisy)


def instance_dependent(
    features: np.ndarray,
    labels: np.ndarray,
    rate: float,
    num_classes: int,
    *,
    seed: Seed,
    std: float = 0.1,
) -> NoisyLabels:
    """Instance-dependent noise of Xia et al. (NeurIPS 2020, "Part-dependent label noise").

    Procedure:

    1. Per-sample flip rates ``q_i ~ N(rate, std**2)`` truncated to ``[0, 1]``
       (``rate == 0`` gives ``q_i = 0``, i.e. no noise).
    2. For every class c a random projection ``W_c`` of shape (D, K) with N(0, 1) entries
       (drawn class by class, in class order).
    3. ``a_i = x_i @ W_{y_i}``; the true class entry is masked to ``-inf``; the flip
       distribution is ``q_i * softmax(a_i)`` on the other classes and ``1 - q_i`` on ``y_i``.
    4. The noisy label is drawn from that distribution.

    The realised rate is random and only approximately ``rate``: the truncation raises the mean
    flip rate for small targets (``rate=0.1, std=0.1`` gives about 0.13). Read ``.rate``.
    Features are used as given (no scaling); large feature norms make the flip destination
    nearly deterministic per sample.

    Parameters
    ----------
    features : np.ndarray
        (N, D) finite per-sample features (e.g. flattened images or embeddings).
    labels : np.ndarray
        (N,) integer labels in ``[0, num_classes)``.
    rate : float
        Target mean flip rate in ``[0, 1)``.
    num_classes : int
        Number of classes K >= 2.
    seed : int or np.random.Generator
        Seed for ``np.random.default_rng`` (an int >= 0), or a generator.
    std : float, default 0.1
        Standard deviation of the (pre-truncation) flip-rate normal.

    Returns
    -------
    NoisyLabels
    """
    k = _check_num_classes(num_classes)
    y = _check_labels(labels, k)
    r = _check_rate(rate)
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {x.shape}")
    if x.shape[0] != y.size:
        raise ValueError(f"features has {x.shape[0]} rows but labels has {y.size} entries")
    if not real_numbers(x.dtype, booleans=False):
        raise ValueError(f"features must be real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        raise ValueError(f"features must be finite; {_describe_ids(~finite)} are not")
    if not (np.isfinite(std) and std > 0):
        raise ValueError(f"std must be a positive finite float, got {std!r}")

    rng = seeded(seed)
    n, d = x.shape
    if r == 0.0:
        q = np.zeros(n)
    else:
        q = stats.truncnorm.rvs(
            (0.0 - r) / std, (1.0 - r) / std, loc=r, scale=std, size=n, random_state=rng
        )
    logits = np.empty((n, k))
    for c in range(k):
        w_c = rng.standard_normal((d, k))
        members = y == c
        logits[members] = x[members] @ w_c
    logits[np.arange(n), y] = -np.inf
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)

    flip = rng.random(n) < q
    u_dest = 1.0 - rng.random(int(n))
    dest = _sample_rows(np.cumsum(probs, axis=1), u_dest)
    noisy = np.where(flip, dest, y)
    return _result(y, noisy)
