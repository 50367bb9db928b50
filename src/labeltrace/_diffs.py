"""What differs between two settings mappings (fingerprints): the keys, and the leaves named for a
refusal ("another configuration, differs in: train.epochs (4, now 3)")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["differences", "differing_keys"]


def differing_keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The keys, sorted, whose values differ between two settings mappings (compared as canonical
    JSON, so ``1`` and ``1.0`` differ as the fingerprints they are stored in do); a key in one only
    differs."""
    return [k for k in sorted(set(a) | set(b))
            if json.dumps(a.get(k), sort_keys=True, default=str) != json.dumps(b.get(k), sort_keys=True, default=str)]


def differences(a: Mapping[str, Any], b: Mapping[str, Any], *, limit: int = 6) -> list[str]:
    """The settings that differ between two fingerprints, named down to their leaves where the
    values are mappings (or JSON text of one): ``"train.epochs (4, now 3)"`` rather than
    ``"train"``; values shortened to 40 characters, at most ``limit`` entries (then "..."). A
    data or labels digest reads ``"data"``: its value says nothing to a reader."""
    def parsed(v: Any) -> Any:
        if isinstance(v, str) and v.startswith("{"):
            try:
                return json.loads(v)
            except ValueError:
                return v
        return v

    def short(v: Any) -> str:
        t = "absent" if v is _ABSENT else json.dumps(v, sort_keys=True, default=str)
        return t if len(t) <= 40 else t[:37] + "..."

    out: list[str] = []

    def walk(x: Any, y: Any, name: str) -> None:
        x, y = parsed(x), parsed(y)
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            for k in differing_keys(x, y):
                # "train" holding {"train": {...}} reads as train.epochs, not train.train.epochs
                sub = name if name.rsplit(".", 1)[-1] == str(k) else f"{name}.{k}" if name else str(k)
                walk(x.get(k, _ABSENT), y.get(k, _ABSENT), sub)
        elif name in ("data", "labels", "truth"):  # digests
            out.append(name)
        else:
            out.append(f"{name} ({short(x)}, now {short(y)})")

    walk(a, b, "")
    return out if len(out) <= limit else [*out[:limit], f"... {len(out) - limit} more"]


_ABSENT = object()
