"""Small checks shared by the bench config's parsers: each error names the table at fault."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def err(where: str, msg: str) -> ValueError:
    """The error of a bad config entry, naming its table (``where``)."""
    return ValueError(f"bench config {where}: {msg}")


def check_keys(d: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """Refuse keys outside ``allowed`` (a misspelled key is never silently ignored)."""
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise err(where, f"unknown keys {unknown}; allowed: {sorted(allowed)}")


def typed(d: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    """``d[key]``, refused unless it is of ``types`` (a TOML boolean is not an int here)."""
    v = d[key]
    kinds = types if isinstance(types, tuple) else (types,)
    if (isinstance(v, bool) and bool not in kinds) or not isinstance(v, types):
        names = " or ".join({"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}
                            .get(t.__name__, t.__name__) for t in kinds)  # fmt: skip
        raise err(where, f"{key!r} must be {names}, got {v!r}")
    return v


def check_name(name: str, where: str) -> str:
    """A results file stem: not empty, no folder in it (``--name x/../y`` wrote outside ``--out``)."""
    if not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise err(where, f"the results name must be a plain file stem (no folder, not hidden), got {name!r}")
    return name


def seed_list(v: Any, where: str) -> list[int]:
    """``v`` as a non-empty list of ints >= 0 (the ``seeds`` of a table), or an error."""
    ok = isinstance(v, list) and bool(v) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v)
    if not ok:
        raise err(where, f"'seeds' must be a non-empty list of ints >= 0, got {v!r}")
    _no_repeats(v, "seeds", where)
    return list(v)


def str_list(v: Any, key: str, where: str) -> list[str]:
    """``v`` as a non-empty list of strings, or an error naming ``key``."""
    if not isinstance(v, list) or not v or not all(isinstance(s, str) for s in v):
        raise err(where, f"{key!r} must be a non-empty list of strings, got {v!r}")
    _no_repeats(v, key, where)
    return list(v)


def _no_repeats(v: list[Any], key: str, where: str) -> None:
    """A list whose entries name cells must not repeat one: the cell would run twice, and the reports
    would average its rows as if they were two seeds."""
    seen = sorted({x for x in v if v.count(x) > 1}, key=str)
    if seen:
        raise err(where, f"{key!r} lists {', '.join(map(repr, seen))} more than once: {v!r}")
