"""The pixels' fingerprint of in-memory images of one size is hashed image by image (never every
image decoded at once), with the very value the whole uint8 array gave (recorded run fingerprints
and caches depend on it)."""

from __future__ import annotations

import numpy as np
import pytest

from labeltrace.data import from_arrays
from labeltrace.data.base import ImageDataset
from labeltrace.models.feature_cache import fingerprint_array, fingerprint_rows
from labeltrace.models.inputs import pixels_fingerprint


@pytest.mark.parametrize(("shape", "max_elements"), [
    ((5, 3, 4, 4), 1_000_000), ((7, 3, 5, 6), 100), ((7, 3, 5, 6), 37), ((11, 1, 3, 3), 7), ((3, 2, 2, 2), 1),
    ((4, 50), 3),
])  # fmt: skip
def test_fingerprint_rows_equals_fingerprint_array(shape: tuple[int, ...], max_elements: int) -> None:
    x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    assert fingerprint_rows(shape, np.uint8, iter(x), max_elements=max_elements) == \
        fingerprint_array(x, max_elements=max_elements)  # fmt: skip
    with pytest.raises(ValueError, match="rows for an array of shape"):
        fingerprint_rows(shape, np.uint8, iter(x[:-1]), max_elements=max_elements)


def test_values_recorded_before_are_kept() -> None:
    """Computed with ``fingerprint_array(ds.materialize(dtype=np.uint8))`` before the change."""
    rng = np.random.default_rng(0)
    gray = from_arrays(rng.integers(0, 256, (7, 5, 6), dtype=np.uint8), np.arange(7) % 2)
    rgb = from_arrays(rng.integers(0, 256, (7, 5, 6, 3), dtype=np.uint8), np.arange(7) % 2)
    assert pixels_fingerprint(gray) == "e206427e70dd01dee7be313441726dc48764faebebaf57403548a754148ccf7e"
    assert pixels_fingerprint(rgb) == "aff2c58248dbeb53a9cdc11c50b6b12d48af5d124e12c4b8cc55d4ce01f42360"


@pytest.mark.parametrize("shapes_known", [True, False])
def test_the_images_are_never_materialised(shapes_known: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    ds = from_arrays(rng.random((410, 32, 32, 3)).astype(np.float32), np.arange(410) % 2)  # > 1e6 values: sampled
    if not shapes_known:
        ds = ImageDataset(ds.classes, ds.labels, ds.sources, ds.ids, ds.source)
    want = fingerprint_array(ds.materialize(dtype=np.uint8))

    def refuse(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("every image decoded at once")

    monkeypatch.setattr(ImageDataset, "materialize", refuse)
    assert pixels_fingerprint(ds) == want


def test_uint16_arrays_that_agree_in_8_bits_have_other_fingerprints() -> None:
    """12-bit data in uint16 hashed at 8 bits keeps 17 levels: two other datasets had one fingerprint,
    so a scan into the same folder reused the other's training and frozen-feature cache."""
    rng = np.random.default_rng(0)
    a = (257 * rng.integers(0, 16, (20, 16, 16))).astype(np.uint16)  # 257 k: k exactly, in 8 bits
    b = a + np.uint16(1)  # every value off by one: the same in 8 bits (round(255 x / 65535))
    assert np.array_equal(np.rint(a / 65535 * 255), np.rint(b / 65535 * 255))
    fa, fb = (pixels_fingerprint(from_arrays(x, np.arange(20) % 2)) for x in (a, b))
    assert fa != fb
    assert fa == fingerprint_array(from_arrays(a, np.arange(20) % 2).materialize(dtype=np.uint16))
