"""cutoffs.unsupervised_cutoff refuses scores it cannot fit a cutoff to."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from labeltrace.decide import cutoffs


@pytest.mark.parametrize("scores", [np.zeros(0), np.full(5, np.nan), np.array([np.nan, np.inf, -np.inf])])
def test_unsupervised_cutoff_without_a_finite_score_raises(scores: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning on the way to the error
        with pytest.raises(ValueError, match=r"unsupervised_cutoff needs finite scores.*(is empty|no finite value)"):
            cutoffs.unsupervised_cutoff(scores)


def test_unsupervised_cutoff_still_skips_the_non_finite_scores() -> None:
    s = np.r_[np.random.default_rng(0).normal(size=50), np.nan, np.inf]
    want = cutoffs.unsupervised_cutoff(s[:50])
    assert cutoffs.unsupervised_cutoff(s) == want
    assert cutoffs.unsupervised_cutoff(np.array([np.nan, 2.0])) == (2.0, "robust-z3")
