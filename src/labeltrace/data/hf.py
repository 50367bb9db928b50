"""The Hugging Face adapter: a ``datasets.Dataset`` -> :class:`ImageDataset` (its image column read
row by row through :class:`HFSource`; labels from a ``ClassLabel`` or parsed as in every adapter)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from labeltrace._checks import is_tensor, listing, to_numpy
from labeltrace.data.base import ImageDataset
from labeltrace.data.decode import (
    array_to_float,
    check_pixels,
    load_pixels,
    mode_bits,
    open_image,
    pil_to_array,
    pixel_limit,
    stored_bits,
)
from labeltrace.data.errors import DataError, keeps_warnings
from labeltrace.data.validate import OnBadImage, finalize, id_texts, parse_labels

__all__ = ["HFSource", "from_hf"]


def _hf_value_to_array(v: Any, max_pixels: int | None = None) -> np.ndarray:
    from PIL import Image

    from labeltrace.data.decode import decode_image

    if isinstance(v, Image.Image):  # an Image feature's value: datasets (5.x) has decoded it already
        check_pixels(v.width, v.height, max_pixels)
        again = _turned_tiff_file(v)
        return pil_to_array(v) if again is None else decode_image(again, max_pixels=max_pixels)
    if isinstance(v, np.ndarray):
        return array_to_float(v)
    if is_tensor(v):  # ds.with_format("torch"): an Image feature as a (C, H, W) tensor, its dtype kept
        a = to_numpy(v, "image")
        if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
            a = a.transpose(1, 2, 0)  # channels last, as every other image here
        return array_to_float(a)
    if isinstance(v, list | tuple):  # an Array3D column unformatted: nested lists, their dtype lost
        raise DataError("the image is nested lists (an Array2D / Array3D column read without a format), whose pixel "
                        "type is lost: hand the images over as uint8 or uint16 arrays (ds.with_format('numpy'), the "
                        "column cast to one of them)")
    if isinstance(v, dict):
        if v.get("bytes"):
            try:
                with open_image(BytesIO(v["bytes"]), max_pixels) as img:
                    return pil_to_array(load_pixels(img))
            except DataError:
                raise
            except Exception as exc:
                raise DataError(f"cannot decode image bytes ({type(exc).__name__}: {exc})") from exc
        if v.get("path"):
            return decode_image(v["path"], max_pixels=max_pixels)
    if v is None:
        raise DataError("image is missing (None)")
    raise DataError(f"unsupported image value of type {type(v).__name__}")


def _turned_tiff_file(img: Any) -> str | None:
    """The local file of a TIFF that ``datasets`` decoded from its path, when its orientation swaps
    its sides (5-8); else None. Pillow 13 scrambles such a TIFF opened by path (not from bytes):
    it comes back at the stored size with its values out of place, so it is decoded again from the
    file (:func:`~labeltrace.data.decode.decode_image` reads it as stored and turns it). An image
    ``datasets`` has converted (``Image(mode=...)`` to another mode) no longer names its file and
    cannot be told apart."""
    from PIL import Image

    name = getattr(img, "filename", None)
    if getattr(img, "format", None) != "TIFF" or not isinstance(name, str) or not os.path.isfile(name):
        return None
    try:
        with Image.open(name) as head:
            turned = getattr(head, "tag_v2", {}).get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:  # noqa: BLE001 - the file changed since datasets read it: keep datasets' image
        return None
    return name if turned else None


@dataclass(frozen=True, eq=False)
class HFSource:
    """Images in a column of a Hugging Face ``datasets.Dataset``; sample ``i`` = row ``rows[i]``."""

    dataset: Any
    column: str
    rows: np.ndarray
    max_pixels: int | None = None
    kind: ClassVar[str] = "hf"

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, i: int) -> np.ndarray:
        try:  # a datasets Image feature decodes the row here, before the value reaches labeltrace
            value = self.dataset[int(self.rows[i])][self.column]
        except Exception as exc:  # noqa: BLE001 - one image, named and skippable like any bad file
            raise DataError(f"cannot decode image ({type(exc).__name__}: {exc})") from exc
        return _hf_value_to_array(value, self.max_pixels)

    def take(self, idx: np.ndarray) -> HFSource:
        return HFSource(self.dataset, self.column, self.rows[np.asarray(idx, dtype=np.int64)],
                        self.max_pixels)

    def stored_bits(self) -> int:
        """Bits per sample of the first row's image as stored: 16 for a 16-bit (or 32-bit integer)
        image (:func:`~labeltrace.data.decode.mode_bits`) or a ``uint16`` array, else 8 (an
        unreadable one too)."""
        if not len(self.rows):
            return 8
        try:
            v = self.dataset[int(self.rows[0])][self.column]
        except Exception:  # noqa: BLE001 - the decoding names a bad image; its bits do not matter
            return 8
        if isinstance(v, dict) and (v.get("bytes") or v.get("path")):
            return stored_bits(BytesIO(v["bytes"]) if v.get("bytes") else v["path"])
        if isinstance(v, np.ndarray):
            return 16 if v.dtype == np.uint16 else 8
        return mode_bits(getattr(v, "mode", ""))

    def path(self, i: int) -> Path | None:
        return None


def _integer_values(values: list[Any]) -> np.ndarray | None:
    """``values`` as an int64 array when every one is an integer scalar (Python, numpy or a 0-d
    torch tensor), else None."""
    if any(v is None or isinstance(v, (str, bytes, bool)) for v in values):
        return None
    try:
        arr = np.asarray([np.asarray(v) for v in values])
    except (TypeError, ValueError):
        return None
    return arr.astype(np.int64) if arr.ndim == 1 and arr.dtype.kind in "iu" else None


@keeps_warnings
def from_hf(
    dataset: Any, *, image_column: str = "image", label_column: str = "label",
    id_column: str | None = None, classes: Sequence[str] | None = None,
    on_bad_image: OnBadImage = "fail", verify: bool = True, workers: int | None = None,
    max_pixels: int | None = None,
) -> ImageDataset:
    """Dataset from a Hugging Face ``datasets.Dataset`` (map-style, not streaming).

    Class names come from ``classes=``, else the label column's ``ClassLabel`` names, else as in
    :func:`parse_labels`. With both, a ``classes=`` that shares names with the ``ClassLabel``
    looks each label up by its name (it may order them otherwise, or add classes no row has; a
    name it lacks is refused); one that shares none renames the ``ClassLabel``'s positions. Images may be PIL images, arrays or ``{"bytes", "path"}`` dicts.
    Sources are ``"hf:<row>"``; ids the ``id_column`` or ``"<row>"``. ``max_pixels`` as in
    :func:`from_folder`, checked from the header for bytes and paths; an ``Image`` feature's value
    reaches it decoded by ``datasets`` (Pillow's own limit guards that decoding). ``datasets``
    itself is not imported.
    """
    pixel_limit(max_pixels)
    if not hasattr(dataset, "column_names") or not hasattr(dataset, "__len__"):
        raise DataError(
            "from_hf needs a map-style datasets.Dataset (not an IterableDataset or DatasetDict)"
        )
    if isinstance(dataset.column_names, dict):  # a DatasetDict: {split: columns}
        raise DataError(f"from_hf needs one split of the DatasetDict, e.g. dataset[{next(iter(dataset.column_names), 'train')!r}] "
                        f"(its splits: {listing(map(repr, dataset.column_names))})")  # fmt: skip
    cols = list(dataset.column_names)
    missing = [c for c in (image_column, label_column, id_column) if c and c not in cols]
    if missing:
        raise DataError(f"Hugging Face dataset lacks columns {missing}; columns are {cols}")
    feature = getattr(dataset, "features", {}).get(label_column)
    names = getattr(feature, "names", None)
    values = list(dataset[label_column])
    as_ints = _integer_values(values)  # a formatted dataset gives numpy or torch scalars, not ints
    none = [k for k, v in enumerate(values) if v is None] or (
        [] if as_ints is None or names is None else np.flatnonzero(as_ints < 0).tolist())
    if none:
        raise DataError(f"missing labels (None or -1) at rows {listing(none)}")
    if classes is None and names is not None and as_ints is not None:
        # a ClassLabel's values are positions in its names, whatever the names look like
        out = np.flatnonzero(as_ints >= len(names)).tolist()
        if out:
            raise DataError(f"labels beyond the {len(names)} ClassLabel names at rows {listing(out)}")
        labels, cls = as_ints, tuple(str(c) for c in names)
    elif classes is not None and names is not None and as_ints is not None and {str(c) for c in names} & {str(c) for c in classes}:
        # classes= naming the ClassLabel's classes: each value is looked up by its name in classes=
        # (taken as positions, a list in another order renamed every label); with no name in
        # common, classes= renames the ClassLabel's positions (the else branch)
        out = np.flatnonzero(as_ints >= len(names)).tolist()
        if out:
            raise DataError(f"labels beyond the {len(names)} ClassLabel names at rows {listing(out)}")
        labels, cls = parse_labels([str(names[i]) for i in as_ints], classes, row_name=lambda k: f"row {k}")
    else:
        labels, cls = parse_labels(values if as_ints is None else as_ints.tolist(),
                                   classes if classes is not None else names, row_name=lambda k: f"row {k}")
    n = len(values)
    ids = id_texts(dataset[id_column], n, f" in column {id_column!r}") if id_column else [str(i) for i in range(n)]
    return finalize(
        classes=cls, labels=labels, sources=[f"hf:{i}" for i in range(n)], ids=ids,
        source=HFSource(dataset, image_column, np.arange(n), max_pixels), root=None,
        on_bad_image=on_bad_image, verify=verify, workers=workers,
    )
