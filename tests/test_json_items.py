"""_io.iter_json_items: a JSON array read item by item gives what json.loads gives, whatever the
chunk boundaries cut through (a number, a string, an escape, a nested object)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labeltrace._io import iter_json_items

scalars = st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=12)  # fmt: skip
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                          max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(items=st.lists(values, max_size=8), chunk=st.integers(1, 17), indent=st.sampled_from([None, 0, 2]))
def test_items_equal_json_loads(tmp_path_factory: pytest.TempPathFactory, items: list, chunk: int,
                                indent: int | None) -> None:  # fmt: skip
    p = tmp_path_factory.mktemp("j") / "a.json"
    p.write_text(json.dumps(items, indent=indent), encoding="utf-8")
    assert list(iter_json_items(p, chunk=chunk)) == json.loads(p.read_text(encoding="utf-8"))


def test_one_object_and_broken_files(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    p.write_text(' {"a": [1, 2]} ')
    assert list(iter_json_items(p, chunk=3)) == [{"a": [1, 2]}]  # a file of one object: that object
    for text in ("", "  ", "[1, 2", "[1 2]", "[1, 2] x", "[{\"a\": 1}, {\"b\"", "[1,]"):
        p.write_text(text)
        with pytest.raises(ValueError):
            list(iter_json_items(p, chunk=2))
    for text, chunk in (("[12345678]", 3), ("[0.0]", 1), ("[1e5, -2.5E-3]", 1), ("[1.25]", 2)):
        p.write_text(text)  # a number cut by the chunk: read on ('0.' of '0.0' parsed as 0 before)
        assert list(iter_json_items(p, chunk=chunk)) == json.loads(text)
