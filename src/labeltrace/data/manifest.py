"""CSV/TSV and Parquet manifests (one row per image: path, label, optional id) -> :class:`ImageDataset`."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from labeltrace._checks import counted, id_list, listing
from labeltrace.data.base import ImageDataset, _duplicates
from labeltrace.data.decode import pixel_limit
from labeltrace.data.errors import DataError, keeps_warnings
from labeltrace.data.sources import FileSource
from labeltrace.data.validate import (
    MISSING_VALUES,
    OnBadImage,
    distinct_files,
    finalize,
    inside_roots,
    is_empty,
    is_missing,
    marker_set,
    parse_labels,
    resolve_roots,
)

__all__ = ["MANIFEST_SUFFIXES", "from_manifest", "manifest_columns", "manifest_id_column", "read_classes_file", "read_columns", "row_ids",
           "truth_column"]

T = TypeVar("T")

#: what names a manifest given as DATA (``labeltrace scan DATA``)
MANIFEST_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


def read_classes_file(path: Path) -> tuple[str, ...]:
    """The class names of a classes file, one per line in id order (blank lines ignored)."""
    if not path.is_file():
        raise DataError(f"{path}: no such classes file" + (" (a folder)" if path.is_dir() else "")
                        + "; give a text file with one class name per line in id order")
    lines = [ln.strip() for ln in _text(path, lambda: path.read_text(encoding="utf-8-sig")).splitlines()]
    at: dict[str, list[int]] = {}
    for k, ln in enumerate(lines):
        if ln:
            at.setdefault(ln, []).append(k + 1)
    dup = {name: ks for name, ks in at.items() if len(ks) > 1}
    if dup:
        raise DataError(f"{path}: class names listed more than once: "
                        + listing(f"{name!r} (lines {listing(ks)})" for name, ks in dup.items()) + "; list each class once")
    if not at:
        raise DataError(f"{path}: no class names in the classes file; list one per line, in id order")
    return tuple(ln for ln in lines if ln)


def _text(path: Path, read: Callable[[], T]) -> T:
    """``read()`` of a text file, a file that is not UTF-8 named in a DataError."""
    try:
        return read()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8") from None


def _parquet(path: Path, read: Callable[[], T]) -> T:
    """``read()`` of a Parquet file, a damaged or cut-short one named in a DataError (pyarrow's
    own message names no file)."""
    import pyarrow as pa

    try:
        return read()
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None


def _csv(path: Path, reader: Any, read: Callable[[], T]) -> T:
    """``read()`` of the ``csv`` reader ``reader`` over ``path`` (its header or its rows); the
    module's own error (a field over its size limit: a stray double quote runs a field on to the
    next quote) named with the file and line."""
    try:
        return read()
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num + 1} cannot be read as CSV ({exc}); a stray double quote? "
                        "A field that opens with one runs on, across lines, to the next") from None


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _check_path_texts(path: Path, root: Path, raw: Sequence[str]) -> None:
    """Paths that cannot be local files as written are refused naming their rows: a NUL byte, a URL
    (``s3://``, ``https://``: not downloaded), a Windows path with backslashes naming no file."""
    def rows(ks: Sequence[int]) -> str:
        return listing(f"row {k + 1} ({raw[k]!r})" for k in ks)

    nul = [k for k, v in enumerate(raw) if "\x00" in v]
    if nul:
        raise DataError(f"{path}: paths with a NUL byte (a damaged file or a binary cell?): {rows(nul)}")
    urls = [k for k, v in enumerate(raw) if _URL.match(v)]
    if urls:
        raise DataError(f"{path}: paths that are URLs: {rows(urls)}; labeltrace reads local files: download the "
                        "images and list their paths (relative to the manifest's folder, or absolute)")  # fmt: skip
    back = [k for k, v in enumerate(raw) if "\\" in v and not (root / v).exists()]
    if back:
        raise DataError(f"{path}: paths with backslashes name no file: {rows(back)}; Windows paths? Write them "
                        "with '/' (a/b.png)")  # fmt: skip


def row_ids(values: Sequence[Any], *, paths: bool) -> list[str]:
    """The sample ids a manifest column gives its rows: an id column's values stripped; a path
    column's stripped paths in POSIX form (``./a.png`` is ``a.png``), as :func:`from_manifest`
    names its samples."""
    raw = [str(v).strip() for v in values]
    return [Path(p).as_posix() for p in raw] if paths else raw


def manifest_columns(path: Path) -> list[str]:
    """The column names of a CSV/TSV or Parquet manifest (its header only is read)."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return list(_parquet(path, lambda: pq.read_schema(path)).names)
    if suffix in (".csv", ".tsv", ".txt"):
        def header() -> list[str]:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh, delimiter="\t" if suffix == ".tsv" else ",")
                return _csv(path, reader, lambda: list(next(reader, [])))

        return _text(path, header)
    raise DataError(f"{path}: manifest must be .csv, .tsv or .parquet")


def manifest_id_column(
    path: str | Path, id_column: str | None = None, *, path_column: str = "path",
    label_column: str = "label",
) -> str | None:
    """The column a manifest's rows are identified by: ``id_column`` when given, else a column
    named ``id`` when the manifest has one, else None (the paths are the ids)."""
    if id_column:
        return id_column
    if "id" in (path_column, label_column):
        return None
    return "id" if "id" in manifest_columns(Path(path)) else None


#: how a user names other columns (the same words wherever a manifest's columns are missing)
_COLUMN_HINT = " (labeltrace scan --path-column / --label-column / --id-column name others)"


def _unique_header(path: Path, names: list[str]) -> None:
    """A header that names a column twice is refused: a reader would keep one of the two silently."""
    dup = _duplicates(names)
    if dup:
        raise DataError(f"{path}: the header names {listing(repr(c) for c in dup)} more than once; "
                        "give every column its own name")


def read_columns(path: Path, columns: list[str]) -> dict[str, list[Any]]:
    """Columns of a CSV/TSV or Parquet table as lists (missing and repeated column names named in a
    DataError)."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        names = manifest_columns(path)
        _unique_header(path, names)
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(f"{path}: missing columns {missing}; columns are {names}{_COLUMN_HINT}")
        table = _parquet(path, lambda: pq.read_table(path, columns=columns))
        return {c: table.column(c).to_pylist() for c in columns}
    if suffix in (".csv", ".tsv", ".txt"):
        def table() -> tuple[list[str], list[dict[Any, Any]]]:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
                names = _csv(path, reader, lambda: list(reader.fieldnames or []))
                return names, _csv(path, reader, lambda: list(reader))

        names, rows = _text(path, table)
        _unique_header(path, names)
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(f"{path}: missing columns {missing}; columns are {names}{_COLUMN_HINT}")
        # csv.DictReader files surplus cells under None and fills absent ones with None
        uneven = [k for k, r in enumerate(rows) if None in r or any(v is None for v in r.values())]
        if uneven:
            raise DataError(
                f"{path}: data rows {id_list([k + 1 for k in uneven])} (header excluded) do not have the "
                f"{len(names)} fields of the header (an unquoted comma or tab in a path or label?)"
            )
        return {c: [r[c] for r in rows] for c in columns}
    raise DataError(f"{path}: manifest must be .csv, .tsv or .parquet")


@keeps_warnings
def from_manifest(
    path: str | Path, *, path_column: str = "path", label_column: str = "label",
    id_column: str | None = None, classes: Sequence[str] | None = None,
    root: str | Path | None = None, on_bad_image: OnBadImage = "fail", verify: bool = True,
    workers: int | None = None, max_pixels: int | None = None,
    allow_roots: Sequence[str | Path] = (), missing_values: Collection[str] = MISSING_VALUES,
    group_column: str | None = None,
) -> ImageDataset:
    """Dataset from a CSV/TSV or Parquet manifest with one row per image.

    Paths are relative to ``root`` (default: the manifest's folder) or absolute; a path that
    leads out of ``root`` (``..``, an absolute path elsewhere, a symlink) is refused with a
    :class:`DataError` naming the rows, unless it lies in a folder of ``allow_roots``. Labels are class
    names or integer ids; classes come from ``classes=``, else a ``classes.txt`` (one name
    per line) beside the manifest, else ``"0".."K-1"`` for integers or the sorted names.
    Rows are counted from 1, header excluded, in error messages.

    A label or id that is empty, null, NaN or one of ``missing_values`` (default
    :data:`MISSING_VALUES`: ``NaN``, ``N/A``, ``NA``, ``null``, ``None``, ``-``, ... in any case)
    is missing, and missing values are refused naming the rows -- never made into a class.
    A column named ``id`` is the id column unless ``id_column`` names another; duplicate ids
    are refused naming the rows.

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.tsv`` or ``.parquet`` file.
    path_column, label_column : str
        Column names.
    id_column : str, optional
        Column of external ids (default: ``id`` when the manifest has one, else the path as
        written; pass ``path_column`` to key rows by path although an ``id`` column exists).
    classes : sequence of str, optional
        Class names in id order.
    root : str or Path, optional
        Image folder that relative paths start from (default: the manifest's folder).
    on_bad_image, verify, workers, max_pixels, allow_roots
        As in :func:`from_folder`.
    missing_values : collection of str
        Label and id values read as missing (case-insensitive); ``()`` keeps only empty cells
        and nulls missing, e.g. for a class named ``NA``.
    group_column : str, optional
        Column of each image's group — a patient, a study: images alike because they share it
        (:attr:`ImageDataset.groups`); missing values are refused naming the rows.
    """
    pixel_limit(max_pixels)
    # relative paths start at the folder the manifest is in as given: a symlinked manifest's own folder,
    # not its target's
    path = Path(path).expanduser().absolute()
    path = path.parent.resolve() / path.name
    if not path.is_file():
        raise DataError(f"{path}: manifest not found")
    named = id_column
    id_column = manifest_id_column(path, id_column, path_column=path_column, label_column=label_column)
    cols = [path_column, label_column] + ([id_column] if id_column else []) + ([group_column] if group_column else [])
    if group_column and group_column not in (names := manifest_columns(path)):
        raise DataError(f"--group-column {group_column!r} is not a column of {path}; its columns are {names}")
    if group_column and group_column in (path_column, label_column):  # every class one group / no group at all
        raise DataError(f"--group-column {group_column!r} is the {'label' if group_column == label_column else 'path'} "
                        "column: name the column of each image's patient or study")  # fmt: skip
    table = read_columns(path, list(dict.fromkeys(cols)))
    empty = [k for k, v in enumerate(table[path_column]) if is_empty(v)]
    if empty:
        raise DataError(f"{path}: empty {path_column!r} in rows {listing(k + 1 for k in empty)}")
    markers = marker_set(missing_values)
    for c in dict.fromkeys(cols[1:]):
        if c == path_column:
            continue
        miss = [k for k, v in enumerate(table[c]) if is_missing(v, markers)]
        if miss:
            n = len(miss)
            rows = (f"row {k + 1} ({str(table[path_column][k]).strip()}) {table[c][k]!r}" for k in miss)
            raise DataError(
                f"{path}: missing {c!r} in {n} row{'s' if n != 1 else ''} "
                + ("(empty, null, or a missing-value marker such as NaN, N/A, null, None, -)" if markers
                   else "(empty or null; --no-missing-markers reads every marker as a value)")
                + f": {listing(rows)}"
                + (f"; fill them in the file, or read such {c!r} values as they are (labeltrace scan "
                   "--no-missing-markers; in Python, missing_values=())" if markers else "")
            )
    root = path.parent if root is None else Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root}: image root is not a folder")
    roots = resolve_roots(root, allow_roots)
    if classes is None:  # a classes.txt beside the manifest, or beside the file a symlinked manifest points to
        beside = [p / "classes.txt" for p in dict.fromkeys((path.parent, path.resolve().parent))]
        found = next((c for c in beside if c.is_file()), None)
        classes = read_classes_file(found) if found is not None else None
    raw_paths = [str(v).strip() for v in table[path_column]]
    _check_path_texts(path, root, raw_paths)
    labels, cls = parse_labels(table[label_column], classes,
                               row_name=lambda k: f"row {k + 1} ({raw_paths[k]})")
    sources = row_ids(raw_paths, paths=True)
    files = inside_roots([root / p for p in raw_paths], sources, roots)  # absolute p: p itself
    distinct_files(files, sources, f" ({path})", name=lambda k: f"row {k + 1} ({sources[k]})")
    ids = row_ids(table[id_column], paths=False) if id_column else sources
    dup = _duplicates(ids)
    if dup:
        raise DataError(
            f"{path}: duplicate ids: "
            + listing(f"{v!r} (rows {listing(k + 1 for k in ks)})" for v, ks in dup.items())
            + ("" if named else f"; the column {id_column!r} is read as the sample ids (found by its name): if "
               f"rows share one (several images of a patient), key the rows by their paths with --id-column "
               f"{path_column} (in Python: id_column={path_column!r})")
        )
    return finalize(
        classes=cls, labels=labels, sources=sources, ids=ids, source=FileSource(files, max_pixels),
        root=root, on_bad_image=on_bad_image, verify=verify, workers=workers,
        where=f" ({path}; relative paths start at {root})",
        allowed_roots=roots, groups=[str(v).strip() for v in table[group_column]] if group_column else None,
    )


def truth_column(path: Path, column: str, ds: ImageDataset, *, id_column: str | None,
                 path_column: str, missing_values: Collection[str] = MISSING_VALUES) -> np.ndarray:  # fmt: skip
    """(N,) int64 known true labels of ``ds``'s samples from the manifest ``path``'s ``column``
    (class names or ids, as the label column is read: ``missing_values`` as :func:`from_manifest`'s),
    matched by ``id_column`` (else the path)."""
    names = manifest_columns(path)
    if column not in names:
        raise DataError(f"--truth-column {column!r} is not a column of {path}; its columns are {names}")
    key = id_column or path_column
    table = read_columns(path, list(dict.fromkeys([key, column])))
    where = [str(v).strip() for v in table[key]]
    markers = marker_set(missing_values)
    miss = [k for k, v in enumerate(table[column]) if is_missing(v, markers)]
    if miss:  # as the label column reads them; a sample with no known truth cannot be scored against it
        what = "empty, NaN, N/A, ...; --no-missing-markers reads N/A, None, ... as class names" if markers else "empty"
        raise DataError(f"{path}: --truth-column {column!r} has no value in {counted(len(miss), 'row')} ({what}): "
                        + listing(f"row {k + 1} ({where[k]})" for k in miss)
                        + "; every sample needs its known true label: fill them, or leave --truth-column out")
    try:
        truth, _ = parse_labels(table[column], ds.classes, row_name=lambda k: f"row {k + 1} ({where[k]})")
    except ValueError as e:  # name the column and the file, as the label column's errors do
        raise DataError(f"{path}: --truth-column {column!r}: {e}") from None
    pos = {v: i for i, v in enumerate(row_ids(table[key], paths=not id_column))}
    return np.array([truth[pos[i]] for i in ds.ids], dtype=np.int64)
