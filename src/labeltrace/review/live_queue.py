"""The review app's live queue of a run (``labeltrace review --live``): a campaign that ranks by
the queue file's rule and re-ranks as decisions arrive, and its refresh, built in the refresh
thread on its first use — label propagation over the page's neighbour graph
(:meth:`~labeltrace.review.context.ReviewContext.graph`), or a head refitted on the run's
features (:func:`labeltrace.relabel.live.build_updater`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from labeltrace.relabel import priority as prio
from labeltrace.relabel.campaign import Campaign
from labeltrace.relabel.features import run_features
from labeltrace.relabel.head import HeadConfig
from labeltrace.relabel.live import LiveConfig, LiveQueue, build_updater
from labeltrace.relabel.posterior import run_sei
from labeltrace.review.context import ReviewContext
from labeltrace.rundir import QUEUE, Run

__all__ = ["live_queue"]


class _Lazy:
    """An update built on its first call (in the refresh thread: features load there)."""

    def __init__(self, build: Callable[[], Callable[[np.ndarray], Any]]) -> None:
        self.build = build
        self.fn: Callable[[np.ndarray], Any] | None = None

    def __call__(self, labels: np.ndarray) -> Any:
        if self.fn is None:
            self.fn = self.build()
        return self.fn(labels)


def live_queue(
    run: Run,
    config: LiveConfig,
    *,
    order: np.ndarray,
    posterior: np.ndarray,
    given: np.ndarray,
    method: str,
    queue: dict[str, Any],
    context: ReviewContext,
    features: str | None,
    log: Callable[[str], None] | None,
) -> tuple[LiveQueue, np.ndarray]:
    """The live queue of ``run`` from its ``posterior`` and ``given`` labels, ranking by priority
    ``method`` with the gamma and seed of the queue file (``queue``: its metadata), and the order it
    starts from: ``order``, or its own ranking when the run has no queue file. ``context``: the
    page's neighbours (propagation); ``features``: an ``.npy`` of the run's features (a refit),
    None for the run's own; ``log``: told when a refresh fails."""
    rule = prio.get(method)
    sei = run_sei(run) if "sei" in rule.inputs else None
    # the queue file's own gamma and seed: the live queue ranks as the queue was written
    gamma, seed = float(queue.get("gamma", 0.3)), int(queue.get("seed", 0))
    campaign = Campaign(given, num_classes=len(run.classes), budget=None, priority=rule,
                        posterior=posterior, sei=sei, count_initial_label=False,
                        update_every=config.every, gamma=gamma, seed=seed)  # fmt: skip
    if not (run.path / QUEUE).exists():
        # no queue file: the order shown is the live ranking's own, not the scan's rank, so a
        # refresh that changed no label reproduces it (the first one reshuffled everything)
        order = campaign.ranking()
    head = HeadConfig(folds=5 if run.held_out else 1)

    def build() -> Callable[[np.ndarray], Any]:
        # propagation: the page's reduced features (the neighbours it shows) and their graph,
        # cached with them; a refit: all features
        if config.method == "propagation":
            x, graph = context.load()["embedding"], context.graph(config.k)
        else:
            x, graph = run_features(run, features).values, None
        return build_updater(config, x, posterior=posterior, labels=given, sei=sei, head=head,
                             neighbours=graph)  # fmt: skip

    return LiveQueue(order, campaign, _Lazy(build), log=log), order
