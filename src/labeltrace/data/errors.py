"""The errors of the data edge (their own module, so decoding and datasets both use them)."""

from __future__ import annotations

__all__ = ["DataError", "MissingDependencyError"]


class DataError(ValueError):
    """Bad input data: unreadable image, missing file, unknown label, duplicate id, ..."""


class MissingDependencyError(ImportError):
    """An optional dependency needed for this input (e.g. ``pydicom``) is not installed."""
