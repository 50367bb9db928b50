"""Detectors over recorded runs: the held-out ``crossfit`` default and the protocol checks."""

from __future__ import annotations

import numpy as np
import pytest

from labeltrace.decide import detectors as detect
from labeltrace.record import Recorder
from labeltrace.score import probs


def _held_out_run(seed: int = 0, n: int = 300, k: int = 4, epochs: int = 6, rate: float = 0.2):
    """Logits that favour the true class; a fraction of the given labels flipped."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    given = true.copy()
    flip = rng.random(n) < rate
    given[flip] = (true[flip] + rng.integers(1, k, flip.sum())) % k
    rec = Recorder(n, k)
    for _ in range(epochs):
        logits = rng.normal(size=(n, k))
        logits[np.arange(n), true] += 2.5
        rec.update(np.arange(n), logits, given)
        rec.end_epoch()
    return detect.RecordedRun(rec.dynamics(), np.zeros(n, bool), k, held_out=True), given, flip


def test_crossfit_scores_held_out_self_confidence_and_cuts_at_cl_count() -> None:
    run, given, flip = _held_out_run()
    det = detect.detect("crossfit", [run])
    post = run.dynamics.mean_posterior()
    np.testing.assert_allclose(det.score, probs.self_confidence(post / post.sum(1, keepdims=True), given))
    n_hat = probs.num_label_issues(post / post.sum(1, keepdims=True), given)
    assert det.flagged.sum() == n_hat
    # the flagged are exactly the n_hat lowest scores
    assert det.score[det.flagged].max() < det.score[~det.flagged].min()
    # and they are mostly the flipped labels
    assert (det.flagged & flip).sum() > 0.8 * det.flagged.sum()


def test_crossfit_needs_held_out_dynamics() -> None:
    run, _, _ = _held_out_run()
    in_sample = detect.RecordedRun(run.dynamics, run.is_auxiliary, run.num_classes)
    assert detect.needs_held_out("crossfit") and not detect.needs_held_out("sei")
    assert detect.applicable("crossfit", [run]) and not detect.applicable("crossfit", [in_sample])
    with pytest.raises(ValueError, match="held-out"):
        detect.detect("crossfit", [in_sample])
    with pytest.raises(ValueError, match="unknown detector"):
        detect.needs_held_out("nope")


def test_crossfit_rejects_a_sample_never_recorded() -> None:
    n, k = 20, 3
    rec = Recorder(n, k)
    rec.update(np.arange(n - 1), np.zeros((n - 1, k)), np.zeros(n - 1, dtype=int))
    rec.end_epoch()
    run = detect.RecordedRun(rec.dynamics(), np.zeros(n, bool), k, held_out=True)
    with pytest.raises(ValueError, match="every sample"):
        detect.detect("crossfit", [run])


def test_crossfit_averages_the_in_sample_companion_but_counts_on_held_out() -> None:
    run, given, flip = _held_out_run(seed=3)
    comp, _, _ = _held_out_run(seed=4)  # another recording of the same labels
    both = detect.RecordedRun(run.dynamics, run.is_auxiliary, run.num_classes, held_out=True,
                              in_sample=comp.dynamics)  # fmt: skip
    det = detect.detect("crossfit", [both])
    h, i = run.dynamics.mean_posterior(), comp.dynamics.mean_posterior()
    h, i = h / h.sum(1, keepdims=True), i / i.sum(1, keepdims=True)
    np.testing.assert_allclose(det.score, probs.self_confidence((h + i) / 2, given))
    assert det.flagged.sum() == probs.num_label_issues(h, given)  # the count comes from held-out alone
