"""What a bench cache entry is keyed on besides its cell: the code and package versions that turn
recordings into rows (:func:`code_digest`), and the torch a training was made with (:func:`torch_key`)."""

from __future__ import annotations

import functools
from pathlib import Path

from labeltrace._io import digest

__all__ = ["code_digest", "torch_key"]

#: the packages a cached row's numbers come from, besides the recordings (keyed on their own)
_ROW_CODE = ("decide", "score", "evaluate")
#: single modules outside those packages that rows read (which neighbours a kNN vote may use)
_ROW_MODULES = ("data/duplicates.py", "_checks.py")  # _checks.group_codes: the groups neighbour_groups joins


#: the installed packages whose code turns recordings into rows: the cleanlab recipe's row is cleanlab's
_ROW_PACKAGES = ("cleanlab", "scikit-learn", "numpy")


def _versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


@functools.cache
def code_digest() -> str:
    """A digest of the source that turns recordings into rows (the detector table, the scores, the
    metrics, the exact copies' kNN neighbour groups, the bench cells and this module) and of the versions of the
    packages they call (:data:`_ROW_PACKAGES`: a cached cleanlab row under another cleanlab was served
    without a word). A cached row keeps the digest it was computed with, so a resumed or
    repeated benchmark can say which of its rows older code computed (``--recompute-scores``)."""
    root = Path(__file__).resolve().parents[1]
    files = sorted(f for pkg in _ROW_CODE for f in (root / pkg).rglob("*.py"))
    files += [root / m for m in _ROW_MODULES] + [root / "bench" / "cells.py", Path(__file__).resolve()]
    return digest([[f.relative_to(root).as_posix(), f.read_text(encoding="utf-8")] for f in files]
                  + [_versions(_ROW_PACKAGES)])


#: the torch every cached training was made with before the key named one (their keys stay as they were)
_TORCH_KEYED_FROM = "2.13.0"


def torch_key() -> dict[str, str]:
    """The torch version, as a cache key's part, for a torch other than :data:`_TORCH_KEYED_FROM`: a
    training cached under one torch was served under another (other kernels, other numbers), unsaid;
    the trainings cached under that one keep their keys."""
    import torch

    v = str(torch.__version__).split("+")[0]
    return {} if v == _TORCH_KEYED_FROM else {"torch": v}
