"""The one in-memory dataset representation every adapter produces: :class:`ImageDataset`.

An :class:`ImageDataset` holds labels and per-sample metadata; the pixels stay with an
:class:`~labeltrace.data.sources.ImageSource` (files, an in-memory array, a Hugging Face
dataset) and are decoded on demand, or all at once by :meth:`ImageDataset.materialize`. The
sources live in :mod:`labeltrace.data.sources` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from labeltrace._checks import listing
from labeltrace.data.errors import DataError
from labeltrace.data.sources import ArraySource, FileSource, ImageSource, parallel_map
from labeltrace.data.sources import default_workers as default_workers
from labeltrace.data.subset import stratified_subset as stratified_subset
from labeltrace.data.transforms import convert_channels, resize_image

__all__ = [
    "ArraySource",
    "FileSource",
    "ImageDataset",
    "ImageSource",
    "stratified_subset",
]


def _duplicates(values: Sequence[str]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for k, v in enumerate(values):
        seen.setdefault(v, []).append(k)
    return {v: ks for v, ks in seen.items() if len(ks) > 1}


@dataclass(frozen=True, eq=False, repr=False)
class ImageDataset:
    """A labeled image dataset: class names, given labels, per-sample metadata, pixels on demand.

    Sample ids are the positions ``0..N-1``; ``ids`` keeps the external ids (a manifest's id
    column, a relative path, ...). Build one with an adapter (``from_folder``,
    ``from_manifest``, ``from_npz``, ``from_arrays``, ``from_hf``, ``example``).

    Attributes
    ----------
    classes : tuple of str
        Class names in id order.
    labels : ndarray of int64, shape (N,)
        Given (possibly wrong) labels, read-only.
    sources : tuple of str
        Per sample: file path (relative to ``root`` when inside it, else absolute),
        ``"array:<row>"`` or ``"hf:<row>"``.
    ids : tuple of str
        External ids, unique.
    source : ImageSource
        Decodes the pixels.
    root : Path or None
        Folder relative paths are resolved against.
    skipped : tuple of (str, str)
        ``(source, reason)`` of images left out under ``on_bad_image="skip"``.
    shapes : ndarray of int64, shape (N, 3), or None
        ``(H, W, C)`` per sample when known (arrays, or files after up-front verification).
    allowed_roots : tuple of Path
        Resolved folders the image files may lie in (after following symlinks): ``root`` first,
        then any root allowed explicitly (``allow_roots=`` of the adapters). The adapters refuse
        files elsewhere; a scan records these roots, and the report, review app and exports
        serve only files inside them.
    groups : tuple of str, or None
        Per sample, the group it belongs to (a patient, a study, a scanner session: images that
        share one are alike), or None when every sample stands alone. The cross-fitted folds keep
        a group together, and the kNN evidence finds a sample's neighbours outside its group, so
        that another image of the same patient cannot vouch for a wrong label they share.
    notes : tuple of str
        The :class:`~labeltrace.data.DataWarning` texts said while the dataset was read (16-bit
        files beside 8-bit ones, files not read, ...): a scan keeps them in ``run.json`` and its
        report.
    """

    classes: tuple[str, ...]
    labels: np.ndarray
    sources: tuple[str, ...]
    ids: tuple[str, ...]
    source: ImageSource
    root: Path | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    shapes: np.ndarray | None = field(default=None)
    allowed_roots: tuple[Path, ...] = ()
    groups: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        classes = tuple(str(c) for c in self.classes)
        labels = np.array(self.labels, copy=True)
        if labels.ndim != 1 or not (labels.dtype.kind in "iu" or labels.size == 0):
            raise DataError(
                f"labels must be a 1-d integer array; got {labels.dtype} {labels.shape}"
            )
        labels = labels.astype(np.int64)
        labels.setflags(write=False)
        n = len(labels)
        if n == 0:
            raise DataError("the dataset is empty")
        for name, seq in (("sources", self.sources), ("ids", self.ids)):
            if len(seq) != n:
                raise DataError(f"{name} has {len(seq)} entries for {n} labels")
        if len(self.source) != n:
            raise DataError(f"image source has {len(self.source)} images for {n} labels")
        if not classes or any(not c for c in classes):
            raise DataError(f"class names must be non-empty strings; got {list(classes)}")
        dup_cls = _duplicates(classes)
        if dup_cls:
            raise DataError(f"duplicate class names: {listing(repr(c) for c in dup_cls)}")
        bad = np.flatnonzero((labels < 0) | (labels >= len(classes)))
        if bad.size:
            raise DataError(
                f"labels outside 0..{len(classes) - 1} at samples {listing(bad.tolist())}"
            )
        ids = tuple(str(x) for x in self.ids)
        dup = _duplicates(ids)
        if dup:
            raise DataError(
                f"duplicate ids: {listing(f'{v!r} (samples {ks})' for v, ks in dup.items())}"
            )
        shapes = self.shapes
        if shapes is not None:
            shapes = np.array(shapes, dtype=np.int64, copy=True).reshape(n, 3)
            shapes.setflags(write=False)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "sources", tuple(str(s) for s in self.sources))
        object.__setattr__(self, "notes", tuple(str(t) for t in self.notes))
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "skipped", tuple((str(a), str(b)) for a, b in self.skipped))
        object.__setattr__(self, "shapes", shapes)
        object.__setattr__(self, "root", None if self.root is None else Path(self.root))
        roots = [Path(r).resolve() for r in self.allowed_roots]
        if self.root is not None:
            roots.insert(0, Path(self.root).resolve())
        object.__setattr__(self, "allowed_roots", tuple(dict.fromkeys(roots)))
        if self.groups is not None:
            groups = tuple(str(g) for g in self.groups)
            if len(groups) != n:
                raise DataError(f"groups has {len(groups)} entries for {n} labels")
            empty = [k for k, g in enumerate(groups) if not g.strip()]
            if empty:
                raise DataError(f"empty group for {len(empty)} samples: {listing(ids[k] for k in empty)}")
            object.__setattr__(self, "groups", groups)

    # ----------------------------------------------------------------- metadata
    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        shape = self.image_shape
        return (
            f"ImageDataset(n={len(self)}, classes={len(self.classes)}, "
            f"image_shape={shape if shape is not None else 'mixed/unknown'}, "
            f"root={str(self.root) if self.root else None!r}, skipped={len(self.skipped)})"
        )

    @property
    def kind(self) -> str:
        """Where the pixels live: the source's ``kind`` (``"files"``, ``"arrays"``, ``"hf"``)."""
        return str(getattr(self.source, "kind", "custom"))

    @property
    def n_classes(self) -> int:
        """Number of classes ``K``."""
        return len(self.classes)

    def class_counts(self) -> np.ndarray:
        """Samples per class, shape ``(K,)``."""
        return np.bincount(self.labels, minlength=self.n_classes)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(H, W)`` shared by all images (whatever their channels), or None if they differ or
        are not known."""
        if self.shapes is None or not np.all(self.shapes[:, :2] == self.shapes[0, :2]):
            return None
        return int(self.shapes[0, 0]), int(self.shapes[0, 1])

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """``(H, W, C)`` shared by all images, or None if they differ or are not known."""
        if self.shapes is None or not np.all(self.shapes == self.shapes[0]):
            return None
        return tuple(int(v) for v in self.shapes[0])  # type: ignore[return-value]

    @cached_property
    def _id_index(self) -> dict[str, int]:
        return {v: k for k, v in enumerate(self.ids)}

    def index_of(self, external_id: str) -> int:
        """Sample id (position) of an external id; ``KeyError`` if unknown."""
        return self._id_index[str(external_id)]

    def path(self, i: int) -> Path | None:
        """Absolute file of sample ``i`` (None for in-memory images).

        Only files listed by the dataset are ever returned, so a server that maps requests
        to sample ids cannot be made to read other files.
        """
        return self.source.path(self._check_index(i))

    # ----------------------------------------------------------------- pixels
    def _check_index(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"sample id {i} outside 0..{len(self) - 1}")
        return i

    def load(self, i: int) -> np.ndarray:
        """Decode sample ``i`` to an ``(H, W, C)`` float32 array in [0, 1], ``C`` in {1, 3}."""
        i = self._check_index(i)
        try:
            return self.source.load(i)
        except DataError as exc:
            p = self.source.path(i)
            if self.sources[i] in str(exc) or (p is not None and str(p) in str(exc)):
                raise
            raise DataError(f"{self.sources[i]}: {exc}") from exc

    def _target(
        self, size: int | tuple[int, int] | None, channels: int | None,
    ) -> tuple[tuple[int, int] | None, int | None]:
        """Output ``(h, w)`` and channel count, from the arguments or the known shapes."""
        if channels is not None and channels not in (1, 3):
            raise ValueError(f"channels must be 1, 3 or None; got {channels}")
        if size is not None:
            hw = (size, size) if isinstance(size, int) else tuple(size)
            if len(hw) != 2 or min(hw) < 1:
                raise ValueError(f"size must be a positive int or (h, w); got {size}")
            size = (int(hw[0]), int(hw[1]))
        if self.shapes is not None:
            if channels is None:
                channels = int(self.shapes[:, 2].max())
            if size is None:
                hw_all = np.unique(self.shapes[:, :2], axis=0)
                if len(hw_all) > 1:
                    raise DataError(
                        "images have different sizes "
                        f"({listing(f'{h}x{w}' for h, w in hw_all)}); pass size="
                    )
                size = (int(hw_all[0, 0]), int(hw_all[0, 1]))
        return size, channels

    def output_shape(
        self, *, size: int | tuple[int, int] | None = None, channels: int | None = None,
    ) -> tuple[tuple[int, int], int]:
        """``((h, w), c)`` of the images :meth:`materialize` would produce with these arguments
        (from the known shapes, else from the first image)."""
        hw, c = self._target(size, channels)
        if hw is None or c is None:
            first = self._load_fixed(0, hw, c)
            hw, c = hw or first.shape[:2], c or first.shape[2]
        return (int(hw[0]), int(hw[1])), int(c)

    def follows_first_image(self, *, size: int | tuple[int, int] | None = None,
                            channels: int | None = None) -> tuple[bool, bool]:  # fmt: skip
        """Whether :meth:`materialize` with these arguments takes the size, and the channels, from the
        first image (not known, not asked): every other image must then have that size, and no more
        channels (``load_fixed(..., resize=False, convert=False)``), refused otherwise, not resized
        or turned gray."""
        hw, c = self._target(size, channels)
        return hw is None, c is None

    def load_fixed(self, i: int, hw: tuple[int, int], c: int, *, resize: bool = True,
                   convert: bool = True) -> np.ndarray:  # fmt: skip
        """Sample ``i`` as ``(C, H, W)`` float32 of exactly ``(c, *hw)`` (converted and resized as
        :meth:`materialize` does; :class:`DataError` naming the file if it cannot be). ``resize=False``:
        an image of another size than ``hw`` is refused, naming it, not resized; ``convert=False``:
        one of more channels than ``c`` (colour, where ``c`` is 1) is refused, not turned gray (a gray
        one is still made colour, which loses nothing)."""
        img = self._load_fixed(i, hw, c if convert else None, resize=resize)
        if not convert and img.shape[2] < c:
            img = convert_channels(img, c)
        if img.shape != (hw[0], hw[1], c):
            raise DataError(
                f"{self.sources[i]}: shape {img.shape} differs from {(hw[0], hw[1], c)}; "
                "pass size= and/or channels="
            )
        return img.transpose(2, 0, 1)

    def _load_fixed(self, i: int, size: tuple[int, int] | None, channels: int | None, *,
                    resize: bool = True) -> np.ndarray:  # fmt: skip
        img = self.load(i)
        if channels is not None:
            img = convert_channels(img, channels)
        if size is not None and not resize and img.shape[:2] != tuple(size):
            raise DataError(f"{self.sources[i]}: {img.shape[0]}x{img.shape[1]} px, not {size[0]}x{size[1]} like "
                            "the first image (image sizes not verified): pass size= to resize them all, or load "
                            "the data with verify=True")  # fmt: skip
        if size is not None:
            img = resize_image(img, size)
        return img

    @staticmethod
    def _stack(imgs: list[np.ndarray], idx: np.ndarray, sources: Sequence[str]) -> np.ndarray:
        shapes = {im.shape for im in imgs}
        if len(shapes) > 1:
            raise DataError(
                f"images in the batch differ in shape ({listing(sorted(shapes))}), e.g. "
                f"{sources[int(idx[0])]}; pass size= and/or channels="
            )
        return np.stack(imgs).transpose(0, 3, 1, 2)

    def load_batch(
        self, idx: Sequence[int] | np.ndarray, *, size: int | tuple[int, int] | None = None,
        channels: int | None = None, workers: int | None = None,
    ) -> np.ndarray:
        """Decode samples ``idx`` into a ``(B, C, H, W)`` float32 array (torch layout).

        Parameters
        ----------
        idx : sequence of int
            Sample ids.
        size : int or (h, w), optional
            Resize every image (bilinear, aspect ratio not kept). Required when image sizes differ.
        channels : {1, 3}, optional
            Convert channels (gray to RGB repeats; RGB to gray uses BT.601 luma). Default:
            3 if any image of the dataset is RGB when shapes are known, else the batch must agree.
        workers : int, optional
            Decoding threads (default: CPU count, at most 8).
        """
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        for i in idx:
            self._check_index(int(i))
        hw, c = self._target(size, channels)
        if idx.size == 0:
            if hw is None or c is None:
                raise ValueError("an empty batch needs size= and channels= when shapes are unknown")
            return np.zeros((0, c, hw[0], hw[1]), dtype=np.float32)
        imgs = parallel_map(lambda i: self._load_fixed(i, hw, c), idx, workers)
        return self._stack(imgs, idx, self.sources)

    def materialize(
        self, *, size: int | tuple[int, int] | None = None, channels: int | None = None,
        dtype: type | np.dtype = np.float32, workers: int | None = None,
    ) -> np.ndarray:
        """Decode every image once into an ``(N, C, H, W)`` array (for small datasets).

        ``dtype`` float32 keeps values in [0, 1] exactly as decoded; ``uint8`` stores
        ``round(255 * x)`` (4x less memory; 16-bit images lose precision), ``uint16``
        ``round(65535 * x)`` (a ``uint16`` source's values exactly). Other options as in
        :meth:`load_batch`.
        """
        dtype = np.dtype(dtype)
        scale = {np.dtype(np.float32): None, np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
        if dtype not in scale:
            raise ValueError(f"dtype must be float32, uint8 or uint16; got {dtype}")
        idx = np.arange(len(self))
        hw, c = self._target(size, channels)
        native, native_c = hw is None, c is None  # not known, not asked: the first image's, which every image must have
        if hw is None or c is None:
            first = self._load_fixed(0, hw, c)
            hw, c = hw or first.shape[:2], c or first.shape[2]
        out = np.empty((len(self), c, hw[0], hw[1]), dtype=dtype)

        def fill(i: int) -> None:
            chw = self.load_fixed(i, hw, c, resize=not native, convert=not native_c)
            out[i] = chw if scale[dtype] is None else np.round(chw * scale[dtype])

        parallel_map(fill, idx, workers)
        return out

    # ----------------------------------------------------------------- derived datasets
    def with_labels(self, labels: np.ndarray) -> ImageDataset:
        """Same images with other labels (e.g. injected noise or corrections), shape ``(N,)``."""
        labels = np.asarray(labels)
        if labels.shape != self.labels.shape:
            raise DataError(f"labels must have shape {self.labels.shape}; got {labels.shape}")
        return ImageDataset(self.classes, labels, self.sources, self.ids, self.source,
                            self.root, self.skipped, self.shapes, self.allowed_roots, self.groups, self.notes)

    def subset(self, idx: Sequence[int] | np.ndarray) -> ImageDataset:
        """Samples ``idx`` as a new dataset (renumbered 0..len(idx)-1, external ids kept)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        for i in idx:
            self._check_index(int(i))
        return ImageDataset(
            self.classes, self.labels[idx], tuple(self.sources[i] for i in idx),
            tuple(self.ids[i] for i in idx), self.source.take(idx), self.root, self.skipped,
            None if self.shapes is None else self.shapes[idx], self.allowed_roots,
            None if self.groups is None else tuple(self.groups[i] for i in idx), self.notes,
        )
