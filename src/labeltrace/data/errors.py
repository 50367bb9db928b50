"""The errors of the data edge (their own module, so decoding and datasets both use them)."""

from __future__ import annotations

__all__ = ["DataError", "DataWarning", "MissingDependencyError"]


class DataError(ValueError):
    """Bad input data: unreadable image, missing file, unknown label, duplicate id, ..."""


class MissingDependencyError(ImportError):
    """An optional dependency needed for this input (e.g. ``pydicom``) is not installed."""


class DataWarning(UserWarning):
    """Input that is read but may not be what was meant: files not read, folders that look like
    splits, images a manifest leaves out (the CLI prints these as ``warning: ...``)."""
