"""Names a package exports from its modules, each imported on first use (:func:`exports`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, where: Mapping[str, str]) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package`` exporting each name of ``where`` from its
    module (``{"find_suspects": "own_run"}``: ``package.own_run.find_suspects``), imported when the
    name is first read, listed by ``dir()`` (tab completion) before that."""
    def getattr_(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted(set(importlib.import_module(package).__dict__) | set(where))

    return sorted(where), getattr_, dir_
