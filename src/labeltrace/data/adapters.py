"""Adapters: folder layout, CSV/Parquet manifest, arrays/npz, Hugging Face -> :class:`ImageDataset`.

Every adapter validates up front and raises :class:`DataError` naming the offending files or
rows: unreadable/corrupt or missing images (unless ``on_bad_image="skip"``, which leaves them
out and records them in ``ImageDataset.skipped``), unknown labels, duplicate ids, classes
with fewer than 2 samples, and empty datasets.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from labeltrace._checks import listing
from labeltrace.data.base import (
    ArraySource,
    FileSource,
    ImageDataset,
    ImageSource,
    _duplicates,
    check_class_counts,
    parallel_map,
)
from labeltrace.data.decode import (
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    array_to_float,
    check_pixels,
    open_image,
    pil_to_array,
    pixel_limit,
)
from labeltrace.data.errors import DataError

__all__ = ["HFSource", "from_arrays", "from_folder", "from_hf", "from_manifest", "from_npz"]

OnBadImage = Literal["fail", "skip"]
_INT_RE = re.compile(r"^[+-]?\d+$")


# --------------------------------------------------------------------------- shared steps
def _probe(source: ImageSource, i: int) -> tuple[int, int, int] | str:
    """Decode image ``i`` fully; its shape, or the reason it cannot be read."""
    try:
        img = source.load(i)
    except DataError as exc:
        msg = str(exc)
        p = source.path(i)
        return msg.removeprefix(f"{p}: ") if p is not None else msg
    return img.shape  # type: ignore[return-value]


def _finalize(
    *, classes: Sequence[str], labels: np.ndarray, sources: Sequence[str], ids: Sequence[str],
    source: ImageSource, root: Path | None, on_bad_image: str, verify: bool,
    workers: int | None, shapes: np.ndarray | None = None, where: str = "",
    allowed_roots: tuple[Path, ...] = (),
) -> ImageDataset:
    """Check images (decode all, or existence only), skip or fail on bad ones, build and check."""
    if on_bad_image not in ("fail", "skip"):
        raise ValueError(f"on_bad_image must be 'fail' or 'skip'; got {on_bad_image!r}")
    n = len(labels)
    if n == 0:
        raise DataError(f"the dataset is empty{where}")
    dup = _duplicates([str(v) for v in ids])
    if dup:
        raise DataError(
            "duplicate ids: "
            + listing(f"{v!r} ({listing(sources[k] for k in ks)})" for v, ks in dup.items())
        )
    reasons: list[str | None] = [None] * n
    if shapes is None and verify:
        probed = parallel_map(lambda i: _probe(source, i), range(n), workers)
        reasons = [r if isinstance(r, str) else None for r in probed]
        shapes = np.array([(0, 0, 0) if isinstance(r, str) else r for r in probed],
                          dtype=np.int64).reshape(n, 3)
    elif shapes is None:
        reasons = [
            None if (p := source.path(i)) is None or p.is_file() else "file not found"
            for i in range(n)
        ]
    bad = [i for i in range(n) if reasons[i] is not None]
    if bad and on_bad_image == "fail":
        raise DataError(
            f"{len(bad)} of {n} images cannot be read{where}: "
            + listing(f"{sources[i]} ({reasons[i]})" for i in bad)
            + "; pass on_bad_image='skip' to leave them out"
        )
    skipped = tuple((str(sources[i]), str(reasons[i])) for i in bad)
    if len(bad) == n:
        raise DataError(f"the dataset is empty{where}: all {n} images were skipped as unreadable")
    keep = np.array([r is None for r in reasons])
    idx = np.flatnonzero(keep)
    ds = ImageDataset(
        classes=tuple(classes),
        labels=np.asarray(labels, dtype=np.int64)[idx],
        sources=tuple(str(sources[i]) for i in idx),
        ids=tuple(str(ids[i]) for i in idx),
        source=source.take(idx) if bad else source,
        root=root,
        skipped=skipped,
        shapes=None if shapes is None else shapes[idx],
        allowed_roots=allowed_roots,
    )
    check_class_counts(ds)
    return ds


def _allowed_roots(root: Path, allow_roots: Sequence[str | Path]) -> tuple[Path, ...]:
    """``root`` and the explicitly allowed folders, resolved; each must be an existing folder."""
    if isinstance(allow_roots, (str, Path)):
        allow_roots = [allow_roots]
    roots = [root]
    for r in allow_roots:
        p = Path(r).expanduser().resolve()
        if not p.is_dir():
            raise DataError(f"allowed root {r} is not a folder")
        roots.append(p)
    return tuple(dict.fromkeys(roots))


def _inside_roots(
    files: Sequence[Path], sources: Sequence[str], roots: tuple[Path, ...],
) -> tuple[Path, ...]:
    """Each file resolved once (symlinks followed); a DataError naming those outside ``roots``.

    The dataset then reads the resolved files, i.e. exactly the ones checked here.
    """
    resolved = tuple(Path(f).resolve() for f in files)
    outside = [k for k, f in enumerate(resolved) if not any(f.is_relative_to(r) for r in roots)]
    if outside:
        n = len(outside)
        also = f" or the allowed roots {listing(roots[1:])}" if len(roots) > 1 else ""
        raise DataError(
            f"{n} file{'s lie' if n != 1 else ' lies'} outside the data root {roots[0]}{also} "
            "(through a symlink, '..' or an absolute path): "
            + listing(f"{sources[k]} -> {resolved[k]}" for k in outside)
            + "; to read them, allow their folder with allow_roots=[DIR] "
            "(labeltrace scan --allow-root DIR)"
        )
    return resolved


def _as_int(v: Any) -> int | None:
    """``v`` as an int if it is an integer (or integer-like string / integral float), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    if isinstance(v, str) and _INT_RE.match(v.strip()):
        return int(v.strip())
    return None


def parse_labels(
    values: Sequence[Any], classes: Sequence[str] | None, *, row_name: Any = None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map raw labels (class names or integer ids) to ``(labels (N,), classes)``.

    With ``classes``: labels that are all class names map by name; otherwise integer labels
    index ``classes``. Without: integers give classes ``"0".."max"``, names give the sorted
    unique names. Unknown names, out-of-range or negative integers raise :class:`DataError`
    naming the rows (``row_name(k)`` describes row ``k``; default ``"row {k+1}"``).
    """
    row_name = row_name or (lambda k: f"row {k + 1}")
    raw = [v.strip() if isinstance(v, str) else v for v in values]
    ints = [_as_int(v) for v in raw]
    all_int = all(v is not None for v in ints)
    if classes is not None:
        classes = tuple(str(c) for c in classes)
        index = {c: k for k, c in enumerate(classes)}
        if all(isinstance(v, str) and v in index for v in raw):
            return np.array([index[v] for v in raw], dtype=np.int64), classes
        if all_int:
            bad = [k for k, v in enumerate(ints) if not 0 <= v < len(classes)]  # type: ignore
        else:
            bad = [k for k, v in enumerate(raw) if not (isinstance(v, str) and v in index)]
        if bad:
            raise DataError(
                f"unknown labels (classes are {listing(repr(c) for c in classes)}): "
                + listing(f"{row_name(k)} {raw[k]!r}" for k in bad)
            )
        return np.array(ints, dtype=np.int64), classes
    if all_int:
        neg = [k for k, v in enumerate(ints) if v < 0]  # type: ignore[operator]
        if neg:
            raise DataError(
                "negative integer labels: " + listing(f"{row_name(k)} {raw[k]!r}" for k in neg)
            )
        k_max = max(ints) if ints else -1  # type: ignore[type-var]
        return np.array(ints, dtype=np.int64), tuple(str(k) for k in range(k_max + 1))
    names = tuple(sorted({str(v) for v in raw}))
    index = {c: k for k, c in enumerate(names)}
    return np.array([index[str(v)] for v in raw], dtype=np.int64), names


def _is_empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (
        isinstance(v, float) and np.isnan(v))


def _read_classes_txt(path: Path) -> tuple[str, ...]:
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return tuple(ln for ln in lines if ln)


# --------------------------------------------------------------------------- folder
def from_folder(
    root: str | Path, *, on_bad_image: OnBadImage = "fail",
    extensions: Sequence[str] = IMAGE_SUFFIXES + DICOM_SUFFIXES, verify: bool = True,
    workers: int | None = None, max_pixels: int | None = None,
    allow_roots: Sequence[str | Path] = (),
) -> ImageDataset:
    """Dataset from ``root/<class>/<image>`` (one sub-folder per class, not recursive).

    Class ids follow the sorted folder names. Hidden files and folders (``.name``) and files
    whose extension (case-insensitive) is not in ``extensions`` are ignored; image files
    directly in ``root`` are ignored with a warning. Sources and ids are the paths relative
    to ``root`` (``"cat/001.png"``).

    Symlinked files and class folders are followed; a file whose target lies outside ``root``
    (and outside every folder of ``allow_roots``) is refused with a :class:`DataError` naming
    it, whatever ``on_bad_image`` says.

    Parameters
    ----------
    root : str or Path
        Dataset folder.
    on_bad_image : {"fail", "skip"}
        What to do with unreadable or missing images.
    extensions : sequence of str
        File extensions to read.
    verify : bool
        Decode every image up front (in a thread pool) to find corrupt files and record
        shapes. With False only existence is checked and a corrupt file raises at load time.
    workers : int, optional
        Decoding threads.
    max_pixels : int, optional
        Refuse images whose header declares more pixels, now and at every later load (default
        :data:`labeltrace.data.decode.MAX_PIXELS`, 40 megapixels); such images count as bad.
    allow_roots : sequence of path
        Other folders image files may lie in (e.g. the target of a symlinked class folder).
    """
    pixel_limit(max_pixels)
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    roots = _allowed_roots(root, allow_roots)
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    visible = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    class_dirs = [p for p in visible if p.is_dir()]
    loose = [p.name for p in visible if p.is_file() and p.suffix.lower() in exts]
    if loose:
        warnings.warn(
            f"{len(loose)} image files directly in {root} are ignored (not in a class folder): "
            f"{listing(loose)}", stacklevel=2,
        )
    if not class_dirs:
        raise DataError(f"{root}: no class sub-folders found")
    files: list[Path] = []
    labels: list[int] = []
    for k, d in enumerate(class_dirs):
        found = sorted(
            f for f in d.iterdir()
            if not f.name.startswith(".") and f.suffix.lower() in exts and f.is_file()
        )
        files += found
        labels += [k] * len(found)
    rel = [f.relative_to(root).as_posix() for f in files]
    resolved = _inside_roots(files, rel, roots)
    return _finalize(
        classes=[d.name for d in class_dirs], labels=np.array(labels, dtype=np.int64), sources=rel,
        ids=rel, source=FileSource(resolved, max_pixels), root=root, on_bad_image=on_bad_image,
        verify=verify, workers=workers, where=f" ({root})", allowed_roots=roots,
    )


# --------------------------------------------------------------------------- manifest
def read_columns(path: Path, columns: list[str]) -> dict[str, list[Any]]:
    """Columns of a CSV/TSV or Parquet table as lists (missing columns named in a DataError)."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(f"{path}: missing columns {missing}; columns are {names}")
        table = pq.read_table(path, columns=columns)
        return {c: table.column(c).to_pylist() for c in columns}
    if suffix in (".csv", ".tsv", ".txt"):
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            names = list(reader.fieldnames or [])
            missing = [c for c in columns if c not in names]
            if missing:
                raise DataError(f"{path}: missing columns {missing}; columns are {names}")
            rows = list(reader)
        return {c: [r[c] for r in rows] for c in columns}
    raise DataError(f"{path}: manifest must be .csv, .tsv or .parquet")


def from_manifest(
    path: str | Path, *, path_column: str = "path", label_column: str = "label",
    id_column: str | None = None, classes: Sequence[str] | None = None,
    root: str | Path | None = None, on_bad_image: OnBadImage = "fail", verify: bool = True,
    workers: int | None = None, max_pixels: int | None = None,
    allow_roots: Sequence[str | Path] = (),
) -> ImageDataset:
    """Dataset from a CSV/TSV or Parquet manifest with one row per image.

    Paths are relative to ``root`` (default: the manifest's folder) or absolute; a path that
    leads out of ``root`` (``..``, an absolute path elsewhere, a symlink) is refused with a
    :class:`DataError` naming the rows, unless it lies in a folder of ``allow_roots``. Labels are class
    names or integer ids; classes come from ``classes=``, else a ``classes.txt`` (one name
    per line) beside the manifest, else ``"0".."K-1"`` for integers or the sorted names.
    Rows are counted from 1, header excluded, in error messages.

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.tsv`` or ``.parquet`` file.
    path_column, label_column : str
        Column names.
    id_column : str, optional
        Column of external ids (default: the path as written).
    classes : sequence of str, optional
        Class names in id order.
    root : str or Path, optional
        Image folder that relative paths start from (default: the manifest's folder).
    on_bad_image, verify, workers, max_pixels, allow_roots
        As in :func:`from_folder`.
    """
    pixel_limit(max_pixels)
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise DataError(f"{path}: manifest not found")
    cols = [path_column, label_column] + ([id_column] if id_column else [])
    table = read_columns(path, list(dict.fromkeys(cols)))
    for c in dict.fromkeys(cols):
        empty = [k for k, v in enumerate(table[c]) if _is_empty(v)]
        if empty:
            raise DataError(f"{path}: empty {c!r} in rows {listing(k + 1 for k in empty)}")
    root = path.parent if root is None else Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root}: image root is not a folder")
    roots = _allowed_roots(root, allow_roots)
    if classes is None and (path.parent / "classes.txt").is_file():
        classes = _read_classes_txt(path.parent / "classes.txt")
    raw_paths = [str(v).strip() for v in table[path_column]]
    labels, cls = parse_labels(table[label_column], classes,
                               row_name=lambda k: f"row {k + 1} ({raw_paths[k]})")
    sources = [Path(p).as_posix() for p in raw_paths]
    files = _inside_roots([root / p for p in raw_paths], sources, roots)  # absolute p: p itself
    ids = [str(v).strip() for v in table[id_column]] if id_column else sources
    dup = _duplicates(ids)
    if dup:
        raise DataError(
            f"{path}: duplicate ids: "
            + listing(f"{v!r} (rows {listing(k + 1 for k in ks)})" for v, ks in dup.items())
        )
    return _finalize(
        classes=cls, labels=labels, sources=sources, ids=ids, source=FileSource(files, max_pixels),
        root=root, on_bad_image=on_bad_image, verify=verify, workers=workers, where=f" ({path})",
        allowed_roots=roots,
    )


# --------------------------------------------------------------------------- arrays / npz
def from_arrays(
    images: np.ndarray, labels: Sequence[Any] | np.ndarray, *, classes: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
) -> ImageDataset:
    """Dataset from in-memory images ``(N, H, W[, C])`` and labels ``(N,)`` or ``(N, 1)``.

    Images are ``uint8`` (scaled by 1/255), ``uint16`` (1/65535), ``bool`` or float in [0, 1];
    they are not copied. Labels are integer ids or class names (see :func:`parse_labels`).
    Sources are ``"array:<i>"``; ids default to ``"<i>"``.
    """
    images = np.asarray(images)
    lab = np.asarray(labels)
    if lab.ndim == 2 and lab.shape[1] == 1:
        lab = lab[:, 0]
    if lab.ndim != 1:
        raise DataError(
            f"labels must be (N,) or (N, 1); got shape {lab.shape} (multi-label is not supported)"
        )
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise DataError(
            f"images must be (N, H, W) or (N, H, W, C), C in {{1, 3}}; got {images.shape}"
        )
    if len(images) != len(lab):
        raise DataError(f"{len(images)} images but {len(lab)} labels")
    if images.dtype.kind == "f":
        flat = images.reshape(len(images), -1)
        bad = np.flatnonzero(~np.all(np.isfinite(flat) & (flat >= 0) & (flat <= 1), axis=1))
        if bad.size:
            raise DataError(
                f"float images must lie in [0, 1]; not so for samples {listing(bad.tolist())}"
            )
    elif images.dtype not in (np.uint8, np.uint16, np.bool_):
        raise DataError(
            f"unsupported image dtype {images.dtype}; use uint8, uint16, bool or float in [0, 1] "
            "(e.g. images.astype(np.uint8) for 0..255 integers)"
        )
    values = lab.tolist()
    int_labels, cls = parse_labels(values, classes, row_name=lambda k: f"sample {k}")
    n = len(images)
    c = 1 if images.ndim == 3 else images.shape[3]
    shapes = np.tile(np.array([images.shape[1], images.shape[2], c], dtype=np.int64), (n, 1))
    return _finalize(
        classes=cls, labels=int_labels, sources=[f"array:{i}" for i in range(n)],
        ids=[str(i) for i in range(n)] if ids is None else [str(v) for v in ids],
        source=ArraySource(images), root=None, on_bad_image="fail", verify=False, workers=None,
        shapes=shapes,
    )


def from_npz(
    path: str | Path, *, split: str = "train", classes: Sequence[str] | None = None,
) -> ImageDataset:
    """Dataset from a MedMNIST-style ``.npz`` with ``{split}_images`` and ``{split}_labels``.

    Images ``(N, H, W)`` or ``(N, H, W, C)``, labels ``(N,)`` or ``(N, 1)``. Ids are
    ``"<split>:<i>"``; otherwise as :func:`from_arrays`.
    """
    path = Path(path).expanduser()
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.files)
        need = [f"{split}_images", f"{split}_labels"]
        missing = [k for k in need if k not in keys]
        if missing:
            raise DataError(f"{path}: missing keys {missing}; keys are {keys}")
        images, labels = z[need[0]], z[need[1]]
    ids = [f"{split}:{i}" for i in range(len(images))]
    return from_arrays(images, labels, classes=classes, ids=ids)


# --------------------------------------------------------------------------- Hugging Face
def _hf_value_to_array(v: Any, max_pixels: int | None = None) -> np.ndarray:
    from PIL import Image

    from labeltrace.data.decode import decode_image

    if isinstance(v, Image.Image):  # datasets opens images lazily: the header is read, not the pixels
        check_pixels(v.width, v.height, max_pixels)
        return pil_to_array(v)
    if isinstance(v, np.ndarray):
        return array_to_float(v)
    if isinstance(v, dict):
        if v.get("bytes"):
            try:
                with open_image(BytesIO(v["bytes"]), max_pixels) as img:
                    img.load()
                    return pil_to_array(img)
            except DataError:
                raise
            except Exception as exc:
                raise DataError(f"cannot decode image bytes ({type(exc).__name__}: {exc})") from exc
        if v.get("path"):
            return decode_image(v["path"], max_pixels=max_pixels)
    if v is None:
        raise DataError("image is missing (None)")
    raise DataError(f"unsupported image value of type {type(v).__name__}")


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
        return _hf_value_to_array(self.dataset[int(self.rows[i])][self.column], self.max_pixels)

    def take(self, idx: np.ndarray) -> HFSource:
        return HFSource(self.dataset, self.column, self.rows[np.asarray(idx, dtype=np.int64)],
                        self.max_pixels)

    def path(self, i: int) -> Path | None:
        return None


def from_hf(
    dataset: Any, *, image_column: str = "image", label_column: str = "label",
    id_column: str | None = None, classes: Sequence[str] | None = None,
    on_bad_image: OnBadImage = "fail", verify: bool = True, workers: int | None = None,
    max_pixels: int | None = None,
) -> ImageDataset:
    """Dataset from a Hugging Face ``datasets.Dataset`` (map-style, not streaming).

    Class names come from ``classes=``, else the label column's ``ClassLabel`` names, else as in
    :func:`parse_labels`. Images may be PIL images, arrays or ``{"bytes", "path"}`` dicts.
    Sources are ``"hf:<row>"``; ids the ``id_column`` or ``"<row>"``. ``max_pixels`` as in
    :func:`from_folder`. ``datasets`` itself is not imported.
    """
    pixel_limit(max_pixels)
    if not hasattr(dataset, "column_names") or not hasattr(dataset, "__len__"):
        raise DataError(
            "from_hf needs a map-style datasets.Dataset (not an IterableDataset or DatasetDict)"
        )
    cols = list(dataset.column_names)
    missing = [c for c in (image_column, label_column, id_column) if c and c not in cols]
    if missing:
        raise DataError(f"Hugging Face dataset lacks columns {missing}; columns are {cols}")
    feature = getattr(dataset, "features", {}).get(label_column)
    names = getattr(feature, "names", None)
    values = list(dataset[label_column])
    none = [k for k, v in enumerate(values)
            if v is None or (names is not None and isinstance(v, int) and v < 0)]
    if none:
        raise DataError(f"missing labels (None or -1) at rows {listing(none)}")
    labels, cls = parse_labels(values, classes if classes is not None else names,
                               row_name=lambda k: f"row {k}")
    n = len(values)
    ids = [str(v) for v in dataset[id_column]] if id_column else [str(i) for i in range(n)]
    return _finalize(
        classes=cls, labels=labels, sources=[f"hf:{i}" for i in range(n)], ids=ids,
        source=HFSource(dataset, image_column, np.arange(n), max_pixels), root=None,
        on_bad_image=on_bad_image, verify=verify, workers=workers,
    )
