"""A stand-in for the few FiftyOne names the export uses, recording the datasets it builds (the
real FiftyOne needs its database; a review ran the export against FiftyOne 1.22.1)."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest


def fake_fiftyone(monkeypatch: pytest.MonkeyPatch, *, fail_on: int | None = None) -> dict[str, Any]:
    """Install a fake ``fiftyone`` module; returns its datasets by name. ``fail_on``: adding that
    many samples raises, as FiftyOne does on a sample it refuses."""
    made: dict[str, Any] = {}
    fo = types.ModuleType("fiftyone")

    class Dataset:
        def __init__(self, name: str, overwrite: bool = False) -> None:
            self._name, self.samples, self.info, self.persistent = name, [], {}, False
            self.default_classes: list[str] = []
            self.set_calls: list[tuple[str, dict]] = []
            made[name] = self

        @property
        def name(self) -> str:
            return self._name

        @name.setter
        def name(self, new: str) -> None:
            assert new not in made, f"a dataset named {new!r} exists"
            made[new] = made.pop(self._name)
            self._name = new

        def add_samples(self, s: list) -> None:
            if fail_on is not None and len(s) >= fail_on:
                self.samples.extend(s[: fail_on - 1])
                raise TypeError("Sample media type 'image' does not match dataset media type 'unknown'")
            self.samples.extend(s)

        def save(self) -> None:
            pass

        def delete(self) -> None:
            made.pop(self._name)

        def values(self, field: str) -> list:
            first, _, rest = field.partition(".")
            return [(s.get(first) or {}).get(rest) if rest else s.get(first) for s in self.samples]

        def get_field_schema(self) -> dict[str, Any]:
            return {k: None for s in self.samples for k in s}

        def set_values(self, field: str, values: dict, key_field: str) -> None:
            """Only the samples whose key ``values`` holds; a dotted field sets the embedded value."""
            first, _, rest = field.partition(".")
            if first not in self.get_field_schema() and all(v is None for v in values.values()):
                raise ValueError(f"Cannot infer an appropriate type for new sample field {field!r} from empty/all-None values")
            for s in self.samples:
                if s.get(key_field) in values:
                    if rest:
                        s[first][rest] = values[s[key_field]]
                    else:
                        s[first] = values[s[key_field]]
            self.set_calls.append((field, dict(values)))

    fo.Sample = fo.Classification = dict  # type: ignore[attr-defined]
    fo.Dataset = Dataset  # type: ignore[attr-defined]
    fo.dataset_exists = lambda name: name in made  # type: ignore[attr-defined]
    fo.load_dataset = lambda name: made[name]  # type: ignore[attr-defined]
    fo.list_datasets = lambda: sorted(made)  # type: ignore[attr-defined]
    core, utils = types.ModuleType("fiftyone.core"), types.ModuleType("fiftyone.core.utils")

    def to_slug(name: str) -> str:  # FiftyOne 1.22's rule (fiftyone.core.utils.to_slug)
        kept = ["-" if c.isspace() or c in "+_.-" else c.lower() for c in name if c.isascii() and
                (c.isalnum() or c.isspace() or c in "+_.-")]  # fmt: skip
        slug = "-".join(filter(None, "".join(kept).split("-")))
        if not 1 <= len(slug) <= 1551 or len(name) > 1551:
            raise ValueError(f"{name!r} has invalid slug-friendly name {slug!r}; length {len(slug)} < 1")
        return slug

    utils.to_slug = to_slug  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fiftyone", fo)
    monkeypatch.setitem(sys.modules, "fiftyone.core", core)
    monkeypatch.setitem(sys.modules, "fiftyone.core.utils", utils)
    return made
