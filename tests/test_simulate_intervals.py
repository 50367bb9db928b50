"""Intervals over seeds stay inside the range their quantity can take."""

from __future__ import annotations

import dataclasses

import numpy as np

from labeltrace.relabel import experiment
from labeltrace.relabel import stats as rstats
from labeltrace.relabel import votes as vm


def test_intervals_of_bounded_quantities_are_clipped_to_their_range() -> None:
    rng = np.random.default_rng(0)
    truth = np.arange(120) % 3
    votes = rng.multinomial(6, [0.1, 0.1, 0.1], size=120).astype(float)
    votes[np.arange(120), truth] += 10
    init = vm.sample_initial_labels(votes, temperature=vm.temperature_for_rate(votes, 0.2), seed=0).labels
    runs = experiment.compare_selectors(votes, init, budget=30, selectors=["random"], seeds=[0, 1, 2])["random"]
    # two seeds end at 100 %, one far below: the plain t-interval reaches beyond 100 %
    ends = [1.0, 1.0, 0.9]
    runs = [dataclasses.replace(r, auc=e, accuracy=np.r_[r.accuracy[:-1], e],
                                relabels_used=[30, 30, 24][k], fixed_per_100={0.1: [100.0, 100.0, 80.0][k]})
            for k, (r, e) in enumerate(zip(runs, ends, strict=True))]  # fmt: skip
    agg = rstats.aggregate(runs)
    for name, high in (("final_accuracy", 1.0), ("auc", 1.0), ("relabels_used", 30.0),
                       ("fixed_per_100@0.1", 100.0)):  # fmt: skip
        m, lo, hi = agg.metrics[name]
        assert lo <= m <= hi == high, name
        assert lo < m  # the lower end stays the t-interval's
    assert agg.accuracy_high[-1] == 1.0 and agg.accuracy_low.min() >= 0.0
    plain = rstats.t_interval(np.asarray(ends))
    assert plain[2] > 1.0  # what was reported before
