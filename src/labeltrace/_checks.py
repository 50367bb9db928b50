"""Input checks shared by the array modules: clear ``ValueError`` messages that name sample ids."""

from __future__ import annotations

import numpy as np

__all__ = ["check_labels", "check_num_classes", "describe_ids"]


def describe_ids(mask: np.ndarray, limit: int = 10) -> str:
    """``"sample ids [3, 7] (and 5 more)"`` for a boolean mask."""
    ids = np.flatnonzero(mask)
    shown = ", ".join(str(int(i)) for i in ids[:limit])
    more = f" (and {ids.size - limit} more)" if ids.size > limit else ""
    return f"sample ids [{shown}]{more}"


def check_num_classes(num_classes: int) -> int:
    """An int >= 2."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise ValueError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return int(num_classes)


def check_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """1-D integer labels in ``[0, num_classes)``, returned as a new int64 array."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must have an integer dtype, got {arr.dtype}")
    bad = (arr < 0) | (arr >= num_classes)
    if bad.any():
        raise ValueError(
            f"labels must lie in [0, {num_classes}); {int(bad.sum())} do not: {describe_ids(bad)}"
            f" have labels {arr[bad][:10].tolist()}"
        )
    return arr.astype(np.int64, copy=True)
