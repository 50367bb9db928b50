"""Relabel priorities and the review queue (active label cleaning).

Priorities rank samples for re-annotation: **higher priority = relabel first** (the opposite
direction of the package's scores, where lower = more suspect). They follow Bernhardt et al.,
"Active label cleaning for improved dataset quality under resource constraints", Nature
Communications 13:1161 (2022), with entropies normalised by ``log K`` so they lie in ``[0, 1]``.

Notation: ``p`` is the model posterior ``(N, K)``; ``q`` the current label counts ``(N, K)``
(one-hot of the given label before any relabelling; each row normalised to ``q̄``);
``H(p) = -Σ p log p``; ``CE(q̄, p) = -Σ q̄ log p``; probabilities are clipped at ``EPS`` inside
logarithms.

================== ==========================================================================
name               priority
================== ==========================================================================
``cross_entropy``  ``CE(q̄, p) / log K`` — label correctness: high when the model disagrees with
                   the current label.
``joint``          ``CE(q̄, p) / log K − max(H(p) / log K − γ, 0)`` — the paper's rule: also
                   demotes samples the model finds ambiguous (``γ = 0.3``).
``sei``            ``−SEI`` — lowest Signed Entropy Integral first.
``sei_joint``      ``rank01(−SEI) − max(H(p) / log K − γ, 0)`` — ``rank01`` maps ``−SEI`` to
                   average ranks rescaled into ``[0, 1]`` (1 = lowest SEI), so the SEI term has
                   the same ``[0, 1]`` scale as the ambiguity penalty it is combined with.
``random``         a seeded uniform draw in ``[0, 1)``.
``oracle``         needs the true label distributions ``t``: ``0`` when the current majority
                   label equals ``argmax t``; otherwise ``1 + t[argmax t] − t[current]`` in
                   ``[1, 2]`` — every wrong label first, the clearest errors (cheapest to fix
                   by majority vote) before the ambiguous ones. The simulator's upper bound.
================== ==========================================================================

Ties in ``argmax`` go to the lowest class index (numpy's rule) throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from labeltrace._checks import describe_ids

__all__ = [
    "EPS",
    "ambiguity_penalty",
    "available",
    "build_queue",
    "cross_entropy",
    "joint",
    "normalized_entropy",
    "oracle",
    "priority",
    "random",
    "sei",
    "sei_joint",
]

EPS = 1e-12
"""Probabilities are clipped to ``[EPS, 1]`` inside logarithms."""

_MAX_IDS = 10


def _as_matrix(x: Any, name: str, *, n: int | None = None, k: int | None = None) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, K) array, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} rows, expected {n} (one per sample)")
    if k is not None and arr.shape[1] != k:
        raise ValueError(f"{name} has {arr.shape[1]} columns, expected {k} (one per class)")
    if arr.shape[1] < 2:
        raise ValueError(f"{name} needs at least 2 classes, got {arr.shape[1]}")
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise ValueError(f"{name} has NaN or infinite values at {describe_ids(bad)}")
    bad = np.flatnonzero((arr < 0).any(axis=1))
    if bad.size:
        raise ValueError(f"{name} has negative values at {describe_ids(bad)}")
    return arr


def _check_posterior(posterior: Any, *, n: int | None = None, k: int | None = None) -> np.ndarray:
    """Validate an (N, K) probability matrix whose rows sum to 1 (within 1e-3)."""
    p = _as_matrix(posterior, "posterior", n=n, k=k)
    bad = np.flatnonzero(np.abs(p.sum(axis=1) - 1.0) > 1e-3)
    if bad.size:
        raise ValueError(f"posterior rows must sum to 1; they do not at {describe_ids(bad)}")
    return p


def _normalize_counts(
    counts: Any, name: str, *, n: int | None = None, k: int | None = None
) -> np.ndarray:
    """Validate non-negative (N, K) counts and return each row divided by its sum."""
    c = _as_matrix(counts, name, n=n, k=k)
    tot = c.sum(axis=1)
    bad = np.flatnonzero(tot <= 0)
    if bad.size:
        raise ValueError(
            f"{name} rows must have a positive total; all-zero rows at {describe_ids(bad)}"
        )
    return c / tot[:, None]


def _check_vector(x: Any, name: str, n: int | None = None) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name} must be a 1-D (N,) array, got shape {v.shape}")
    if n is not None and v.shape[0] != n:
        raise ValueError(f"{name} has {v.shape[0]} entries, expected {n} (one per sample)")
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        raise ValueError(f"{name} has NaN or infinite values at {describe_ids(bad)}")
    return v


def normalized_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy of each row of an (N, K) distribution divided by ``log K``: (N,) in ``[0, 1]``.

    Zero entries contribute nothing (``0 log 0 = 0``).
    """
    p = np.asarray(p, dtype=np.float64)
    k = p.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.clip(p, EPS, 1.0)), 0.0)
    return -terms.sum(axis=1) / np.log(k)


def ambiguity_penalty(posterior: np.ndarray, *, gamma: float = 0.3) -> np.ndarray:
    """``max(H(p) / log K − γ, 0)``: (N,) penalty for posteriors more uncertain than ``γ``."""
    p = _check_posterior(posterior)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1] (entropies are normalised), got {gamma}")
    return np.maximum(normalized_entropy(p) - gamma, 0.0)


def cross_entropy(posterior: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """``CE(q̄, p) / log K``: (N,) label-correctness priority, high = model disagrees with labels.

    Parameters
    ----------
    posterior : (N, K) model probabilities, rows summing to 1.
    label_counts : (N, K) non-negative label counts; each row is normalised to a distribution.
    """
    p = _check_posterior(posterior)
    q = _normalize_counts(label_counts, "label_counts", n=p.shape[0], k=p.shape[1])
    logp = np.log(np.clip(p, EPS, 1.0))
    return -(q * logp).sum(axis=1) / np.log(p.shape[1])


def joint(posterior: np.ndarray, label_counts: np.ndarray, *, gamma: float = 0.3) -> np.ndarray:
    """Bernhardt et al.'s priority ``CE(q̄, p)/log K − max(H(p)/log K − γ, 0)``: (N,)."""
    return cross_entropy(posterior, label_counts) - ambiguity_penalty(posterior, gamma=gamma)


def sei(sei: np.ndarray) -> np.ndarray:
    """``−SEI``: (N,) priority, lowest Signed Entropy Integral first; NaN raises ``ValueError``."""
    return -_check_vector(sei, "sei")


def sei_joint(sei: np.ndarray, posterior: np.ndarray, *, gamma: float = 0.3) -> np.ndarray:
    """``rank01(−SEI) − max(H(p)/log K − γ, 0)``: SEI combined with the ambiguity penalty, (N,).

    ``rank01`` turns ``−SEI`` into average ranks rescaled to ``[0, 1]`` (1 = lowest SEI; a single
    sample gets 1), so the result lies in ``[γ − 1, 1]``. Ranks make the SEI term independent of
    the number of epochs and of the entropy scale, and commensurate with the penalty.
    """
    s = _check_vector(sei, "sei")
    p = _check_posterior(posterior, n=s.shape[0])
    n = s.shape[0]
    r = rankdata(-s, method="average")
    r01 = (r - 1.0) / (n - 1.0) if n > 1 else np.ones(n)
    return r01 - ambiguity_penalty(p, gamma=gamma)


def random(n: int, *, seed: int = 0) -> np.ndarray:
    """(n,) seeded uniform priorities in ``[0, 1)``: a random review order."""
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n}")
    return np.random.default_rng(seed).random(int(n))


def oracle(label_counts: np.ndarray, true_dist: np.ndarray) -> np.ndarray:
    """(N,) priority from the true label distributions (simulation upper bound).

    ``0`` where the current majority label ``argmax q`` equals the true label ``argmax t``;
    otherwise ``1 + t[argmax t] − t[argmax q]`` in ``[1, 2]``: all wrong labels first, clear
    errors (a large gap, fixed in few votes) before ambiguous ones. ``true_dist`` may be counts;
    rows are normalised.
    """
    t = _normalize_counts(true_dist, "true_dist")
    q = _as_matrix(label_counts, "label_counts", n=t.shape[0], k=t.shape[1])
    bad = np.flatnonzero(q.sum(axis=1) <= 0)
    if bad.size:
        raise ValueError(
            f"label_counts rows must have a positive total; all-zero rows at {describe_ids(bad)}"
        )
    rows = np.arange(t.shape[0])
    cur = q.argmax(axis=1)
    true = t.argmax(axis=1)
    gap = t[rows, true] - t[rows, cur]
    return np.where(cur != true, 1.0 + gap, 0.0)


def _need(value: Any, what: str, name: str) -> Any:
    if value is None:
        raise ValueError(f"priority {name!r} needs {what}")
    return value


_Fn = Callable[..., np.ndarray]
_REGISTRY: dict[str, _Fn] = {
    "cross_entropy": lambda *, posterior, label_counts, **_: cross_entropy(
        _need(posterior, "posterior=", "cross_entropy"),
        _need(label_counts, "label_counts=", "cross_entropy"),
    ),
    "joint": lambda *, posterior, label_counts, gamma, **_: joint(
        _need(posterior, "posterior=", "joint"),
        _need(label_counts, "label_counts=", "joint"),
        gamma=gamma,
    ),
    "sei": lambda *, sei_score, **_: sei(_need(sei_score, "sei=", "sei")),
    "sei_joint": lambda *, sei_score, posterior, gamma, **_: sei_joint(
        _need(sei_score, "sei=", "sei_joint"),
        _need(posterior, "posterior=", "sei_joint"),
        gamma=gamma,
    ),
    "random": lambda *, n, seed, **_: random(n, seed=seed),
    "oracle": lambda *, label_counts, true_dist, **_: oracle(
        _need(label_counts, "label_counts=", "oracle"),
        _need(true_dist, "true_dist= (the true label distributions)", "oracle"),
    ),
}


def available() -> list[str]:
    """Names accepted by :func:`priority`."""
    return sorted(_REGISTRY)


def priority(
    name: str,
    *,
    posterior: np.ndarray | None = None,
    label_counts: np.ndarray | None = None,
    sei: np.ndarray | None = None,
    true_dist: np.ndarray | None = None,
    gamma: float = 0.3,
    seed: int = 0,
) -> np.ndarray:
    """Compute the relabel priority ``name`` (see :func:`available`): (N,) float64, higher first.

    Each rule uses only the inputs it needs (table in the module docstring) and raises
    ``ValueError`` when one is missing. ``random`` takes ``N`` from the first input given.
    """
    try:
        fn = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown priority {name!r}; available: {', '.join(available())}"
        ) from None
    n = None
    for arr in (posterior, label_counts, sei, true_dist):
        if arr is not None:
            n = int(np.shape(arr)[0])
            break
    if name == "random" and n is None:
        raise ValueError(
            "priority 'random' needs one of posterior=, label_counts=, sei=, true_dist= for N"
        )
    out = fn(
        posterior=posterior,
        label_counts=label_counts,
        sei_score=sei,
        true_dist=true_dist,
        gamma=gamma,
        seed=seed,
        n=n,
    )
    return np.asarray(out, dtype=np.float64)


def _exclude_mask(exclude: Any, n: int) -> np.ndarray:
    if exclude is None:
        return np.zeros(n, dtype=bool)
    ex = np.asarray(exclude)
    if ex.dtype == bool:
        if ex.shape != (n,):
            raise ValueError(f"boolean exclude must have shape ({n},), got {ex.shape}")
        return ex.copy()
    if ex.size and not np.issubdtype(ex.dtype, np.integer):
        raise ValueError(
            f"exclude must be a boolean mask or integer sample ids, got dtype {ex.dtype}"
        )
    ex = ex.astype(np.int64).ravel()
    bad = ex[(ex < 0) | (ex >= n)]
    if bad.size:
        raise ValueError(f"exclude refers to ids outside 0..{n - 1}: {describe_ids(bad)}")
    mask = np.zeros(n, dtype=bool)
    mask[ex] = True
    return mask


def build_queue(
    priorities: np.ndarray,
    posterior: np.ndarray,
    *,
    exclude: np.ndarray | Sequence[int] | None = None,
    classes: Sequence[str] | None = None,
    labels: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The review queue: samples in priority order (highest first, ties by lower id).

    Parameters
    ----------
    priorities : (N,) finite priorities, higher = review first.
    posterior : (N, K) model probabilities; the suggestion is their argmax.
    exclude : boolean (N,) mask or integer ids to leave out (e.g. already reviewed).
    classes : K class names; adds a ``suggested_class`` column.
    labels : (N,) current integer labels; adds ``label`` (and ``label_class`` with ``classes``).

    Returns
    -------
    dict of equal-length arrays (``pyarrow.table(q)`` turns it into a Table): ``id`` (int64),
    ``priority`` (float64), ``rank`` (int64, 1 = first), ``suggested_label`` (int64),
    ``suggested_confidence`` (float64, ``max p``), plus the optional columns above.
    """
    pr = _check_vector(priorities, "priorities")
    n = pr.shape[0]
    p = _check_posterior(posterior, n=n)
    k = p.shape[1]
    keep = ~_exclude_mask(exclude, n)
    ids = np.flatnonzero(keep)
    order = ids[np.argsort(-pr[ids], kind="stable")]
    sugg = p[order].argmax(axis=1).astype(np.int64)
    out: dict[str, np.ndarray] = {
        "id": order.astype(np.int64),
        "priority": pr[order],
        "rank": np.arange(1, order.size + 1, dtype=np.int64),
        "suggested_label": sugg,
        "suggested_confidence": p[order, sugg] if order.size else np.zeros(0),
    }
    names = None
    if classes is not None:
        names = np.asarray(list(classes), dtype=object)
        if names.shape != (k,):
            raise ValueError(
                f"classes has {names.size} names, expected {k} (one per posterior column)"
            )
        out["suggested_class"] = names[sugg]
    if labels is not None:
        lab = np.asarray(labels)
        if lab.shape != (n,) or (lab.size and not np.issubdtype(lab.dtype, np.integer)):
            raise ValueError(
                f"labels must be an integer (N,) = ({n},) array, got {lab.dtype} {lab.shape}"
            )
        bad = np.flatnonzero((lab < 0) | (lab >= k))
        if bad.size:
            raise ValueError(f"labels outside 0..{k - 1} at {describe_ids(bad)}")
        out["label"] = lab[order].astype(np.int64)
        if names is not None:
            out["label_class"] = names[lab[order]]
    return out
