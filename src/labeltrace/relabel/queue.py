"""The review queue of a scan run: samples in relabel-priority order, with the model's
suggestion, written where the review app reads it (``RUN_DIR/queue.parquet``).

:func:`write_queue` is ``labeltrace queue``: it builds the posterior from the run's saved
dynamics (:func:`~labeltrace.relabel.posterior.queue_posterior`), computes the priority with
the given labels as the label counts, orders the samples (:func:`build_queue`) and writes the
queue file and the review order; with a budget it also estimates what relabeling that many
samples will fix (:mod:`labeltrace.relabel.preflight`).

The posterior, and the SEI a rule may need, come from :mod:`labeltrace.relabel.posterior` (a
cross-fitted run's held-out posterior, an in-sample run's last epochs). The queue file's schema
metadata (key ``labeltrace.queue``) records the rule and the posterior, so the review app's
live queue ranks by the same rule.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from labeltrace import rundir
from labeltrace._checks import check_int, counted, describe_ids
from labeltrace.diagnostics import one_class_phrase, warned_inflated
from labeltrace.relabel import priority as prio
from labeltrace.relabel.arrays import check_posterior, check_vector
from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.earlier import settled_before
from labeltrace.relabel.posterior import (  # re-exported: this module's public names before the split
    LAST_EPOCHS,
    QueuePosterior,
    Window,
    queue_posterior,
    run_posterior,
    run_sei,
)
from labeltrace.relabel.preflight import REPEATS, Estimate, preflight
from labeltrace.relabel.runstore import open_store
from labeltrace.relabel.unread import refuse_unread
from labeltrace.run_claim import sharing

__all__ = [
    "DEFAULT_METHOD",
    "LAST_EPOCHS",
    "META_KEY",
    "Queue",
    "QueuePosterior",
    "build_queue",
    "queue_meta",
    "queue_methods",
    "queue_posterior",
    "queue_table",
    "run_posterior",
    "run_sei",
    "write_queue",
]

#: below this mean top probability of the samples a budget reaches, the pre-flight estimate warns:
#: its simulated reviewers, drawn from the posterior, then err far more than experts (a small CNN
#: agreeing with 28 % of 1,500 CIFAR-10H labels: 24 fixed estimated for 100 reviews, 33.6 by the
#: real votes; 319 broken for a full review, 37 by the votes)
SURE = 0.6

DEFAULT_METHOD = "cross_entropy"
"""The default relabel priority of the queue and the review app (benchmarks/RESULTS.md, §7)."""
META_KEY = b"labeltrace.queue"
"""Schema metadata key of the queue file: JSON ``{method, gamma, seed, posterior}``."""


def queue_methods() -> list[str]:
    """The priorities a scan run can feed: every registry rule that needs no true labels."""
    return [name for name in prio.available() if "true_dist" not in prio.get(name).inputs]


# --------------------------------------------------------------------------- the queue


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
    ``suggested_prob`` (float64, ``max p``), plus the optional columns above.
    """
    pr = check_vector(priorities, "priorities")
    n = pr.shape[0]
    p = check_posterior(posterior, n=n)
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
        "suggested_prob": p[order, sugg] if order.size else np.zeros(0),
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


@dataclass(frozen=True, eq=False)
class Queue:
    """A run's review queue.

    Attributes
    ----------
    table : one row per sample in queue order: ``id, external_id, path, given_label,
        given_label_id, suggested_label, suggested_label_id, suggested_prob, priority,
        rank``.
    method : the priority rule.
    posterior : the posterior it ranks by.
    note : a remark for the user (fewer epochs kept than asked), or None.
    estimate : the pre-flight estimate for a budget (:func:`write_queue`), or None.
    rule : the consensus rule the estimate simulated (the one stored with the run's decisions,
        else single-expert review), or None without an estimate.
    estimate_note : a warning about the estimate (a budget past the samples the scan flagged,
        where it runs high), or None.
    paths : the files written (:func:`write_queue`), else empty.
    meta : what the queue file records (:func:`queue_meta`).
    """

    table: pa.Table
    method: str
    posterior: QueuePosterior
    note: str | None = None
    estimate: Estimate | None = None
    estimate_note: str | None = None
    paths: tuple[Path, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    rule: ConsensusRule | None = None

    @property
    def epochs(self) -> int | None:
        """Epochs the posterior averages (None = all of them)."""
        return self.posterior.epochs


def queue_meta(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The rule and posterior a queue file was written with, or None (an older or foreign
    file, or no file)."""
    p = Path(path)
    if not p.is_file():
        return None
    md = pq.read_schema(p).metadata or {}
    return json.loads(md[META_KEY]) if META_KEY in md else None


def _settings(method: str, gamma: float, seed: int) -> tuple[prio.Priority, float, int]:
    """The rule ``method`` (one of :func:`queue_methods`), ``gamma`` in [0, 1] and ``seed`` >= 0, or
    ``ValueError`` naming the parameter (``oracle`` needs true labels: the simulator's alone)."""
    offered = queue_methods()
    if not isinstance(method, str) or method not in offered:
        why = (f"; {method} needs the true labels, which a scan run has not (the simulator's upper bound)"
               if isinstance(method, str) and method in prio.available() else "")  # fmt: skip
        raise ValueError(f"method must be one of {', '.join(offered)}{why}, got {method!r}")
    return prio.get(method), prio.check_gamma(gamma), check_int("seed", seed, 0)


def queue_table(
    run: rundir.Run,
    *,
    method: str = DEFAULT_METHOD,
    gamma: float = prio.DEFAULT_GAMMA,
    seed: int = 0,
    posterior: Window = "auto",
    settled_last: bool = True,
) -> Queue:
    """The review queue of ``run`` by priority ``method`` (:func:`queue_methods`).

    The label counts are one vote for each given label; the posterior comes from
    :func:`queue_posterior`; ``sei`` from the samples table when the rule needs it; ``seed``
    seeds ``random``, ``gamma`` is the ambiguity threshold of ``joint`` / ``sei_joint``. With
    ``settled_last``, the samples an earlier review round settled
    (:func:`~labeltrace.relabel.earlier.settled_before`: a cleaned manifest or .npz scanned again) come
    after all others, each group in priority order (column ``settled_before``).
    """
    rule, gamma, seed = _settings(method, gamma, seed)
    qp = queue_posterior(run, posterior)
    post = qp.probs
    given = run.column("given_label_id").astype(np.int64)
    counts = np.eye(len(run.classes))[given]  # one vote: the given label
    sei = run_sei(run) if "sei" in rule.inputs else None
    pr = rule(posterior=post, label_counts=counts, sei=sei, gamma=gamma, seed=seed)
    q = build_queue(pr, post, classes=run.classes, labels=given)
    ids = pa.array(q["id"])
    table = pa.table({
        "id": q["id"],
        "external_id": run.samples.column("external_id").take(ids),
        "path": run.samples.column("path").take(ids),
        "given_label": q["label_class"].astype(str),
        "given_label_id": q["label"],
        "suggested_label": q["suggested_class"].astype(str),
        "suggested_label_id": q["suggested_label"],
        "suggested_prob": q["suggested_prob"],
        "priority": q["priority"],
        "rank": q["rank"],
    })  # fmt: skip
    notes = []
    if qp.epochs is not None and qp.epochs < LAST_EPOCHS:
        notes.append(f"the run kept the softmax of {counted(qp.epochs, 'epoch')} only; posterior over those")
    meta = {"method": rule.name, "gamma": gamma, "seed": seed, "posterior": qp.window,
            "last": qp.epochs, "held_out": qp.held_out}  # fmt: skip
    settled, why = settled_before(run)
    if why:
        notes.append(why)
    if settled is not None:
        before = settled[q["id"]]
        table = table.append_column("settled_before", pa.array(before))
        if settled_last and before.any():
            table = table.take(pa.array(np.argsort(before, kind="stable")))
            table = table.set_column(table.column_names.index("rank"), "rank",
                                     pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64)))  # fmt: skip
        meta["settled_before"] = {"count": int(before.sum()), "last": bool(settled_last)}
        if before.any():
            notes.append(f"{int(before.sum())} sample{'s' if before.sum() != 1 else ''} settled by an earlier "
                         "review round (the manifest's review_status: consensus on its label) "
                         + ("queued after the others" if settled_last else "kept in priority order"))
    note = "; ".join(notes) or None
    return Queue(table=table, method=rule.name, posterior=qp, note=note, meta=meta)


@sharing
def write_queue(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    method: str = DEFAULT_METHOD,
    gamma: float = prio.DEFAULT_GAMMA,
    seed: int = 0,
    posterior: Window = "auto",
    budget: int | None = None,
    repeats: int = REPEATS,
    settled_last: bool = True,
) -> Queue:
    """Write the queue of the run in ``run_dir`` to ``out`` (``.csv`` or ``.parquet``) and its
    order (``id, priority, rank``) to the run's queue file, which the review app serves.

    With ``budget``, also estimate what relabeling that many samples of the queue fixes
    (:func:`labeltrace.relabel.preflight.preflight`, ``repeats`` simulated campaigns) under the
    consensus rule stored with the run's decisions (``review --agree / --count-given``; single-
    expert review when none is stored). ``settled_last``: as in :func:`queue_table`.

    A setting the rule does not read, given a value other than its default, is refused
    (:func:`labeltrace.relabel.unread.refuse_unread`, as ``labeltrace queue`` refuses it named):
    ``gamma`` but for ``joint`` / ``sei_joint``, ``seed`` but for ``random`` or with a ``budget``,
    ``repeats`` without a ``budget``.
    """
    chosen, gamma, seed = _settings(method, gamma, seed)
    refuse_unread([chosen.name], cli=False, gamma=gamma != prio.DEFAULT_GAMMA, seed=seed != 0,
                  repeats=repeats != REPEATS, budget=budget is not None)  # fmt: skip
    run = rundir.open_run(run_dir)
    q = queue_table(run, method=method, gamma=gamma, seed=seed, posterior=posterior, settled_last=settled_last)
    estimate, warn, rule = None, None, None
    if budget is not None:
        given = run.column("given_label_id").astype(np.int64)
        sei = run_sei(run) if "sei" in chosen.inputs else None
        store = open_store(run)
        rule = store.rule() if store is not None else ConsensusRule()
        estimate = preflight(q.posterior.probs, given, budget=budget, priority=method, sei=sei,
                             gamma=gamma, rule=rule, repeats=repeats, seed=seed)  # fmt: skip
        flagged = int(run.column("is_suspect").sum())
        notes = []
        reached = estimate.samples if estimate.samples is not None else budget  # reviews on several samples each
        if reached > flagged:
            rate = run.meta.get("noise_rate_estimate")
            est = (f" (it estimates {round(float(rate) * run.num_samples):,} wrong labels in all, against the "
                   f"{estimate.wrong:,} the model calls wrong"
                   + ("; the scan warned that a class the model barely recognises inflates that estimate)"
                      if warned_inflated(run.meta.get("warnings")) else ")")
                   if isinstance(rate, (int, float)) else "")  # fmt: skip
            notes.append(f"the budget passes the {flagged} samples the scan flagged{est}; past them the "
                         "estimate counts every label the model disagrees with as wrong, a count that is only as "
                         "good as the model (validated on one regime, a cross-fitted head on CIFAR-10H: "
                         "benchmarks/RESULTS.md §7)")  # fmt: skip
        if estimate.sureness is not None and estimate.sureness < SURE:
            notes.append(f"the model is unsure of the samples the budget reaches (mean top probability "
                         f"{estimate.sureness:.2f}): the simulated reviewers are drawn from its posterior and err as "
                         "often, where experts would not — the estimate then runs low on what the reviews fix and "
                         "high on what they break")  # fmt: skip
        phrase = one_class_phrase(q.posterior.probs.argmax(1), given, run.classes, model="the model")
        if phrase is not None:
            notes.append(f"{phrase}: the estimate takes its posterior for the truth — right if many labels are "
                         "wrong, far too high if the model learned little from the images (see the scan's "
                         "warning)")  # fmt: skip
        decided = int((store.current_arrays()[0] >= 0).sum()) if store is not None else 0
        if decided:
            notes.append(f"{decided} sample{'s' if decided != 1 else ''} already have a decision: the estimate "
                         "simulates the review from the scan's labels, as if none had been made")
        if q.meta.get("settled_before", {}).get("count") and settled_last:
            notes.append("the estimate follows the priority alone, the samples settled by an earlier round among "
                         "the others")
        warn = "; ".join(notes) or None
    written = rundir.write_table(Path(out), q.table)
    order = q.table.select(["id", "priority", "rank"])
    order = order.replace_schema_metadata({META_KEY: json.dumps(q.meta).encode()})
    side = rundir.write_table(run.path / rundir.QUEUE, order)
    return Queue(table=q.table, method=q.method, posterior=q.posterior, note=q.note,
                 estimate=estimate, estimate_note=warn, paths=(written, side),
                 meta=q.meta, rule=rule)  # fmt: skip
