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
    it was read (each still said): a scan writes them into ``run.json`` and the report, where the
    console's lines were lost (16-bit files beside 8-bit ones, files not read, ...).

    The caller's warning filters decide as before ("error" stops the adapter at the warning,
    "ignore" keeps it out of the notes too); a data warning is said again at the caller's line (as
    the adapters' own ``stacklevel`` placed it), any other where it arose."""

    @functools.wraps(adapter)
    def read(*args: P.args, **kwargs: P.kwargs) -> T:
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                # appended after the caller's filters, which still decide; adding one resets the
                # warnings' once-per-line registries, so a folder read again is noted again
                warnings.filterwarnings("default", category=DataWarning, append=True)
                ds = adapter(*args, **kwargs)
        finally:
            for w in caught:
                if issubclass(w.category, DataWarning):
                    warnings.warn(w.message, stacklevel=2)  # the caller's line, module and registry
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        said: list[str] = list(getattr(ds, "notes", ()))  # an adapter calling another: its notes first
        said += dict.fromkeys(str(w.message) for w in caught
                              if issubclass(w.category, DataWarning) and str(w.message) not in said)  # fmt: skip
        return dataclasses.replace(ds, notes=tuple(said)) if said else ds  # type: ignore[type-var]

    return read
