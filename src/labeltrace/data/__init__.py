"""Loading labeled image datasets into one representation, :class:`ImageDataset`.

Adapters: :func:`from_folder`, :func:`from_manifest` (CSV/Parquet), :func:`from_npz`,
:func:`from_arrays`, :func:`from_hf`; built-in :func:`example` sets. Bad input raises
:class:`DataError` naming the files or rows. :class:`TensorLoader` makes seeded training
batches; its names (which need torch) are imported from ``loader`` on first access.
"""

from __future__ import annotations

from typing import Any

from labeltrace.data.adapters import (
    MISSING_VALUES,
    HFSource,
    from_arrays,
    from_folder,
    from_hf,
    from_manifest,
    from_npz,
    parse_labels,
)
from labeltrace.data.base import (
    ArraySource,
    FileSource,
    ImageDataset,
    ImageSource,
)
from labeltrace.data.decode import array_to_float, decode_image, pil_to_array
from labeltrace.data.errors import DataError, DataWarning, MissingDependencyError
from labeltrace.data.examples import available_examples, example
from labeltrace.data.transforms import convert_channels, resize_image, to_uint8_thumbnail
from labeltrace.data.validate import check_class_counts

_LOADER_NAMES = ("Augment", "TensorLoader", "augment_batch", "channel_stats")

__all__ = [
    "MISSING_VALUES",
    "ArraySource",
    "Augment",
    "DataError",
    "DataWarning",
    "FileSource",
    "HFSource",
    "ImageDataset",
    "ImageSource",
    "MissingDependencyError",
    "TensorLoader",
    "array_to_float",
    "augment_batch",
    "available_examples",
    "channel_stats",
    "check_class_counts",
    "convert_channels",
    "decode_image",
    "example",
    "from_arrays",
    "from_folder",
    "from_hf",
    "from_manifest",
    "from_npz",
    "parse_labels",
    "pil_to_array",
    "resize_image",
    "to_uint8_thumbnail",
]


def __getattr__(name: str) -> Any:
    if name in _LOADER_NAMES:
        from labeltrace.data import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'labeltrace.data' has no attribute {name!r}")
