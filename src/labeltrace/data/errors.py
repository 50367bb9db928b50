"""The errors of the data edge (their own module, so decoding and datasets both use them)."""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["DataError", "DataWarning", "MissingDependencyError", "keeps_warnings"]

P = ParamSpec("P")
T = TypeVar("T")


class DataError(ValueError):
    """Bad input data: unreadable image, missing file, unknown label, duplicate id, ..."""


class MissingDependencyError(ImportError):
    """An optional dependency needed for this input (e.g. ``pydicom``) is not installed."""


class DataWarning(UserWarning):
    """Input that is read but may not be what was meant: files not read, folders that look like
    splits, images a manifest leaves out (the CLI prints these as ``warning: ...``)."""


def keeps_warnings(adapter: Callable[P, T]) -> Callable[P, T]:
    """An adapter whose dataset keeps, in its ``notes``, the :class:`DataWarning` texts said while
    it was read (each still said as it comes): a scan writes them into ``run.json`` and the report,
    where the console's lines were lost (16-bit files beside 8-bit ones, files not read, ...)."""

    @functools.wraps(adapter)
    def read(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DataWarning)  # each one, though said before: each dataset's own
                ds = adapter(*args, **kwargs)
        finally:  # said on, as the caller's filters have them (a refused dataset's too)
            for w in caught:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        said: list[str] = list(getattr(ds, "notes", ()))  # an adapter calling another: its notes first
        said += dict.fromkeys(str(w.message) for w in caught
                              if issubclass(w.category, DataWarning) and str(w.message) not in said)  # fmt: skip
        return dataclasses.replace(ds, notes=tuple(said)) if said else ds  # type: ignore[type-var]

    return read
