"""Input checks shared by the array modules, and the one helper that lists ids and items in
error messages (``sample ids [3, 7] (and 5 more)``)."""

from __future__ import annotations

import numpy as np

__all__ = ["check_labels", "check_num_classes", "describe_ids", "id_list", "listing"]

from collections.abc import Iterable
from typing import Any


def listing(items: Iterable[object], limit: int = 10) -> str:
    """``"a, b, c (and 5 more)"``: the first ``limit`` items of an error message's list."""
    items = [str(x) for x in items]
    more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def id_list(ids: Any, limit: int = 10) -> str:
    """``"[3, 7] (and 5 more)"`` for integer ids or a boolean mask (its true positions)."""
    arr = np.asarray(ids)
    arr = np.flatnonzero(arr) if arr.dtype == bool else arr.ravel()
    shown = ", ".join(str(int(i)) for i in arr[:limit])
    more = f" (and {arr.size - limit} more)" if arr.size > limit else ""
    return f"[{shown}]{more}"


def describe_ids(ids: Any, limit: int = 10) -> str:
    """``"sample ids [3, 7] (and 5 more)"`` for integer ids or a boolean mask."""
    return f"sample ids {id_list(ids, limit)}"


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
