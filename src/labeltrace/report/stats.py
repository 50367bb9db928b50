"""Numbers behind the report: flagged-set quality, per-class table, trajectory groups, PR curve.

Pure array functions; score convention: lower = more suspect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from labeltrace._checks import describe_ids, listing
from labeltrace.evaluate import metrics

__all__ = [
    "ClassRow",
    "class_table",
    "class_text",
    "flagged_metrics",
    "precision_recall",
    "trajectory_groups",
]


def share_text(x: Any, places: int = 3, *, missing: str = "—") -> str:
    """A value in [0, 1] to ``places`` decimals, where rounding never reaches an end the value does
    not: one short of 1 is "0.999+" (not "1.000" beside "1 clean sample flagged"), a little above 0
    "0.000+"; ``missing`` for None or NaN."""
    if x is None or not math.isfinite(v := float(x)):
        return missing
    text = f"{v:.{places}f}"
    if v < 1 and float(text) >= 1:
        return f"{1 - 10.0**-places:.{places}f}+"
    return f"{0:.{places}f}+" if v > 0 and float(text) <= 0 else text


def flagged_metrics(flagged: np.ndarray, noisy: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of a flagged set against known noisy labels, as the run's
    ``run.json`` and the terminal summary have them (:func:`labeltrace.evaluate.metrics.detection_report`:
    precision 0 when nothing is flagged, recall and F1 NaN when no label is wrong).

    Returns ``tp, fp, fn`` (counts) and ``precision, recall, f1``.
    """
    f = np.asarray(flagged, dtype=bool)
    y = np.asarray(noisy, dtype=bool)
    if f.shape != y.shape or f.ndim != 1:
        raise ValueError(
            f"flagged and noisy must be 1-D of equal length, got {f.shape} and {y.shape}"
        )
    tp = int(np.sum(f & y))
    fp = int(np.sum(f & ~y))
    fn = int(np.sum(~f & y))
    rep = metrics.detection_report(y, f)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": rep["precision"], "recall": rep["recall"], "f1": rep["f1"]}


@dataclass(frozen=True)
class ClassRow:
    """One row of the per-class table."""

    name: str
    samples: int
    flagged: int
    relabel_to: str | None  # most common suggested label among flagged samples that differs
    relabel_count: int
    agreed: int = 0  # flagged samples whose suggested label is their given one (the model agrees with it)


def class_table(
    given: np.ndarray, suggested: np.ndarray, flagged: np.ndarray, classes: list[str]
) -> list[ClassRow]:
    """Per given class: samples, flagged, the most common suggested relabel of the flagged, and how
    many flagged samples the model agrees with (suggested = given: a count that reaches past the
    samples the model contradicts flags them too).

    ``given`` and ``suggested`` are class ids in ``[0, K)``; ties in the relabel go to the
    lowest class id.
    """
    k = len(classes)
    g = np.asarray(given, dtype=np.int64)
    s = np.asarray(suggested, dtype=np.int64)
    f = np.asarray(flagged, dtype=bool)
    for name, a in (("given", g), ("suggested", s)):
        bad = np.flatnonzero((a < 0) | (a >= k))
        if bad.size:
            raise ValueError(
                f"{name} label ids out of range [0, {k}) for {describe_ids(bad)}"
            )
    samples = np.bincount(g, minlength=k)
    nflag = np.bincount(g[f], minlength=k)
    moved = f & (s != g)
    agreed = np.bincount(g[f & ~moved], minlength=k)
    # the (given, suggested) pairs that occur, counted: memory O(flagged), not O(K²)
    pairs, counts = np.unique(g[moved] * k + s[moved], return_counts=True)
    pg, ps = pairs // k, pairs % k
    order = np.lexsort((ps, -counts, pg))  # per given class: the most common, then the lowest suggested id
    first = order[np.r_[True, pg[order][1:] != pg[order][:-1]]] if order.size else order
    best = np.zeros(k, dtype=np.int64)
    cnt = np.zeros(k, dtype=np.int64)
    best[pg[first]], cnt[pg[first]] = ps[first], counts[first]
    return [
        ClassRow(
            classes[j],
            int(samples[j]),
            int(nflag[j]),
            classes[best[j]] if cnt[j] else None,
            int(cnt[j]),
            int(agreed[j]),
        )
        for j in range(k)
    ]


def class_text(rows: list[ClassRow], limit: int = 6) -> str:
    """The flagged samples per given class in one line (the terminal summary's): the classes with
    flagged samples, most flagged first, each with its share flagged and what the model suggests
    for them, then how many classes had none flagged — so that "every flagged sample is a
    'pneumonia' label" is read at a glance, not pieced together from the top suspects."""
    hit = sorted((r for r in rows if r.flagged), key=lambda r: -r.flagged)  # stable: class order within a tie
    parts = []
    for r in hit:
        said = [f"{r.relabel_count:,} suggested {r.relabel_to!r}"] if r.relabel_to else []
        other = r.flagged - r.relabel_count - r.agreed
        if other:
            said.append(f"{other:,} suggested another class")
        if r.agreed:
            said.append(f"the model agrees with {'all ' if r.agreed == r.flagged else ''}{r.agreed:,}")
        parts.append(f"{r.name!r} {r.flagged:,} of {r.samples:,} ({r.flagged / r.samples:.1%}: {', '.join(said)})")
    none = [r for r in rows if not r.flagged]
    text = "; ".join(parts[:limit]) + (f"; {len(parts) - limit} more classes with flagged samples"
                                       if len(parts) > limit else "")
    if none:
        names = listing((repr(r.name) for r in none), limit)
        text += ("; " if text else "") + f"none flagged in {names} ({sum(r.samples for r in none):,} samples)"
    return f"flagged per given class: {text}"


def trajectory_groups(
    score: np.ndarray,
    flagged: np.ndarray,
    *,
    noisy: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    quantile: float = 0.25,
) -> dict[str, np.ndarray]:
    """Sample ids of the three groups of the SEI figure: easy, hard-but-clean, suspect.

    The clean pool is the samples not known to be noisy (``noisy`` given) or not flagged.
    *easy* = clean samples with a score at or above the pool's ``1 - quantile`` quantile,
    *hard* = clean samples at or below its ``quantile`` quantile, *suspect* = the noisy
    (or flagged) samples. Samples in ``exclude`` (e.g. auxiliary ones) and NaN scores are
    left out.
    """
    s = np.asarray(score, dtype=np.float64)
    ok = np.isfinite(s)
    if exclude is not None:
        ok &= ~np.asarray(exclude, dtype=bool)
    bad = np.asarray(noisy, dtype=bool) if noisy is not None else np.asarray(flagged, dtype=bool)
    clean = ok & ~bad
    out = {"easy": np.array([], np.int64), "hard": np.array([], np.int64)}
    if clean.any():
        lo, hi = np.quantile(s[clean], [quantile, 1.0 - quantile])
        out["easy"] = np.flatnonzero(clean & (s >= hi))
        out["hard"] = np.flatnonzero(clean & (s <= lo))
    out["suspect"] = np.flatnonzero(ok & bad)
    return out


def precision_recall(score: np.ndarray, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of flagging the ``k`` lowest scores, for every ``k = 1..n``.

    NaN scores are left out. Ties are broken by sample id (stable sort), like the ``rank``
    column.
    """
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(noisy, dtype=bool)
    ok = np.isfinite(s)
    s, y = s[ok], y[ok]
    order = np.argsort(s, kind="stable")
    tp = np.cumsum(y[order])
    k = np.arange(1, s.size + 1)
    npos = max(int(y.sum()), 1)
    return tp / k, tp / npos
