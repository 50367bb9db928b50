"""Recorder sizes must be whole numbers: 10.9 samples is not silently 10."""

from __future__ import annotations

import numpy as np
import pytest

from labeltrace import Recorder


@pytest.mark.parametrize(("n", "k", "bad"), [(10.9, 3, "num_samples"), (10, 3.7, "num_classes"), (10.0, 3, "num_samples"),
                                             (True, 3, "num_samples"), (10, True, "num_classes"),
                                             ("10", 3, "num_samples")])  # fmt: skip
def test_non_integer_sizes_are_refused(n: object, k: object, bad: str) -> None:
    with pytest.raises(ValueError, match=rf"{bad} must be an int >= \d, got"):
        Recorder(n, k)  # type: ignore[arg-type]


def test_numpy_integer_sizes_are_accepted() -> None:
    rec = Recorder(np.int64(10), np.int32(3))
    assert (rec.num_samples, rec.num_classes) == (10, 3) and type(rec.num_samples) is int
