"""``labeltrace simulate`` as a function: vote and feature files in, curves, summary, plot and
``simulation.json`` out (:func:`simulate_files`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labeltrace._checks import check_int, check_seeds
from labeltrace.relabel import io as rio
from labeltrace.relabel import priority as prio
from labeltrace.relabel.experiment import (
    DEFAULT_HEAD,
    DEFAULT_SELECTORS,
    SimulationResult,
    run_simulation,
)
from labeltrace.relabel.head import HeadConfig

__all__ = ["parse_selectors", "simulate_files"]


def parse_selectors(selectors: str | Sequence[str]) -> list[str]:
    """``"random, joint,oracle"`` or a list: the names, stripped, empty ones dropped."""
    items = selectors.split(",") if isinstance(selectors, str) else list(selectors)
    return [s.strip() for s in items if s.strip()]


def simulate_files(
    votes: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    features: str | os.PathLike[str] | None = None,
    selectors: str | Sequence[str] = DEFAULT_SELECTORS,
    seeds: int | Sequence[int] = 5,
    noise_rate: float = 0.15,
    budget_factor: float = 3.0,
    budget: int | None = None,
    head: HeadConfig = DEFAULT_HEAD,
    active_every: int | None = None,
    active_method: str = "head",
    gamma: float = prio.DEFAULT_GAMMA,
    curve_every: int = 1,
    title: str | None = None,
    log: Callable[[str], None] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> tuple[SimulationResult, dict[str, Path]]:
    """Read the votes (and features), run :func:`~labeltrace.relabel.experiment.run_simulation`
    and write its files to ``out`` (:func:`~labeltrace.relabel.io.write_simulation`).

    ``seeds`` is a count (seeds ``0..n-1``) or the seeds themselves; ``curve_every`` keeps every
    n-th point of the curves. ``features`` may name several files separated by commas: views of
    the same images (e.g. one backbone at several resolutions) whose heads' posteriors are
    averaged. Everything is checked before anything is trained or written: bad
    files, selectors that need a model without ``features`` (the message names them), features
    whose rows do not match the votes, the seeds, and the settings no selector reads (as in
    :func:`~labeltrace.relabel.experiment.run_simulation`).

    Returns
    -------
    (the simulation, {kind: path written})
    """
    if int(curve_every) != curve_every or curve_every < 1:
        raise ValueError(f"--curve-every must be >= 1, got {curve_every}")
    vote_counts, _ = rio.load_votes(votes)
    names = parse_selectors(selectors)
    need = prio.needing_model(n for n in names if n in prio.available())
    if need and features is None:
        raise ValueError(
            f"selectors {need} need a model posterior/SEI: give features (--features FILE.npy, "
            "an (N, D) matrix aligned with the vote rows), or keep only selectors that need no "
            f"model ({', '.join(n for n in prio.available() if n not in prio.needing_model([n]))})"
        )
    feats = None
    if features is not None:  # one file, or several views of the same images: "a.npy,b.npy"
        views = features.split(",") if isinstance(features, str) else [features]
        feats = [rio.load_features(f.strip() if isinstance(f, str) else f, n=vote_counts.shape[0])
                 for f in views]  # fmt: skip
    seed_list = (list(range(check_int("seeds", seeds, 1))) if isinstance(seeds, int | np.integer | bool)
                 else check_seeds(seeds))  # fmt: skip
    sim = run_simulation(vote_counts, features=feats, selectors=names, seeds=seed_list,
                         noise_rate=noise_rate, budget_factor=budget_factor, budget=budget,
                         head=head, active_every=active_every, active_method=active_method,
                         gamma=gamma, log=log)  # fmt: skip
    info = {"votes": str(votes), "features": None if features is None else str(features)}
    paths = rio.write_simulation(sim, out, title=title, every=int(curve_every),
                                 meta={**info, **(dict(meta) if meta else {})})  # fmt: skip
    return sim, paths
