"""knn_probs on too few samples says so (not numpy's zero-size message)."""

from __future__ import annotations

import numpy as np
import pytest

from labeltrace.score.knn import knn_probs


@pytest.mark.parametrize("num_classes", [None, 3])
def test_knn_probs_without_samples_raises_a_clear_error(num_classes: int | None) -> None:
    with pytest.raises(ValueError, match=r"knn_probs needs at least 2 samples .*got 0"):
        knn_probs(np.zeros((0, 4)), np.zeros(0, dtype=int), num_classes=num_classes, k=1)
