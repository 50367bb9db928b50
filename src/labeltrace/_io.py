"""Atomic file writes (bytes, JSON, tables) and content digests: the one helper for each, used by
every writer."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["atomic_batch", "atomic_remove", "atomic_save_array", "atomic_write", "atomic_write_bytes", "atomic_write_json", "digest", "entry_lock", "iter_json_items", "json_default", "read_json", "reading",
           "temporaries", "write_json", "write_json_array", "write_table"]


#: inside :func:`atomic_batch`: the (temporary, final) pairs written so far, renamed at its end
_BATCH: ContextVar[list[tuple[str | None, Path]] | None] = ContextVar("labeltrace_atomic_batch", default=None)


#: a temporary file of a target untouched this long was left by a killed writer (a live one writes on)
STALE_SECONDS = 3600.0


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, fsync, then rename over ``path``
    (inside :func:`atomic_batch`: at the batch's end, with the batch's other files). Temporary files
    of ``path`` that a killed writer left (untouched for :data:`STALE_SECONDS`) are removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        batch = _BATCH.get()
        if batch is not None:
            batch.append((tmp, path))
            return path
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) and exc.filename is None:  # a bare errno names no file
            free = shutil.disk_usage(path.parent).free
            raise OSError(exc.errno, f"{exc.strerror} (writing {path}; {free:,} bytes free there: is the disk full?)",
                          str(path)) from exc  # fmt: skip
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_dir(path.parent)
    return path


@contextmanager
def atomic_batch() -> Iterator[None]:
    """Files that belong together (a label file and its companions): every :func:`atomic_write`
    inside writes its temporary file, and all are renamed one after the other once the block ends
    without error (none is, on an error). So two writers of the same files, or one killed while
    writing, leave the files of one writer, not a mix (bar a kill in the microseconds of the renames)."""
    if _BATCH.get() is not None:  # nested: the outer batch renames
        yield
        return
    batch: list[tuple[str | None, Path]] = []
    token = _BATCH.set(batch)
    try:
        yield
    except BaseException:
        for tmp, _ in batch:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        _BATCH.reset(token)
    try:
        for k, (tmp, path) in enumerate(batch):
            if tmp is None:  # atomic_remove's: gone with the batch's files, not before them
                path.unlink(missing_ok=True)
            else:
                os.replace(tmp, path)
    except BaseException:
        for tmp, _ in batch[k:]:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        raise
    for folder in dict.fromkeys(path.parent for _, path in batch):
        _sync_dir(folder)


def atomic_remove(path: str | os.PathLike[str]) -> None:
    """Remove ``path`` if it exists (inside :func:`atomic_batch`: when the batch's files are renamed,
    so that a failed batch leaves the older files together)."""
    batch = _BATCH.get()
    if batch is not None:
        batch.append((None, Path(path)))
    else:
        Path(path).unlink(missing_ok=True)


def temporaries(path: str | os.PathLike[str]) -> Iterator[Path]:
    """The temporary files (``<name>.<random>.tmp``) :func:`atomic_write` makes beside ``path``: a
    live writer's, or those a killed one left."""
    from glob import escape

    path = Path(path)
    return path.parent.glob(f"{escape(path.name)}.*.tmp")


def _remove_stale(path: Path) -> None:
    """Remove :func:`temporaries` of ``path`` not modified for :data:`STALE_SECONDS`."""
    import time

    old = time.time() - STALE_SECONDS
    for tmp in temporaries(path):
        try:
            if tmp.stat().st_mtime < old:
                tmp.unlink()
        except OSError:  # gone meanwhile, or not ours to remove
            pass


def _temporary(path: Path) -> tuple[int, str]:
    """A new file ``<name>.<random>.tmp`` beside ``path``, open for writing, with the permissions
    the process's umask gives any new file (created so: the kernel applies the umask of now)."""
    for _ in range(100):
        tmp = str(path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp"))
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _sync_dir(directory: Path) -> None:
    """fsync a folder, so that a rename into it survives a power cut (where the OS allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # e.g. a file system that cannot sync folders
        pass
    finally:
        os.close(fd)


@contextmanager
def reading(path: str | os.PathLike[str], hint: str = "") -> Iterator[None]:
    """Around the reading of one file: a damaged or cut-short file's decoding error (a zip, ``.npz``
    or torch archive, JSON) becomes a ``ValueError`` naming ``path``, then ``hint`` (what to do)."""
    try:
        yield
    except (zipfile.BadZipFile, EOFError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
        if type(exc).__name__ == "OutOfMemoryError" or any(
            w in str(exc).lower() for w in ("out of memory", "can't allocate memory", "not enough memory")
        ):  # torch's (CUDA's or the CPU allocator's): the file is fine, the memory is full
            raise
        raise ValueError(f"{path}: unreadable, damaged or cut short ({type(exc).__name__}: {exc}){hint}") from exc


def read_json(path: str | os.PathLike[str], hint: str = "") -> Any:
    """The JSON in ``path``; a damaged file raises ``ValueError`` naming it (:func:`reading`)."""
    with reading(path, hint):
        return json.loads(Path(path).read_text(encoding="utf-8"))


def iter_json_items(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> Iterator[Any]:
    """The items of a JSON file holding one array, parsed one at a time (a file of one object: that
    object), so that a large export is never held whole, as text or as objects. ``JSONDecodeError``
    (a ``ValueError``) for a file that is not such JSON; its position counts from the item it is in."""
    dec = json.JSONDecoder()
    with open(path, encoding="utf-8") as fh:
        buf, pos = "", 0

        def fill() -> bool:  # more text after buf[pos:]; reads at least as much as it holds (linear overall)
            nonlocal buf, pos
            s = fh.read(max(chunk, len(buf) - pos))
            buf, pos = buf[pos:] + s, 0
            return bool(s)

        def skip_space() -> bool:  # True when a character follows
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buf) or not fill():
                    return pos < len(buf)

        def fail(what: str) -> json.JSONDecodeError:
            return json.JSONDecodeError(what, buf, pos)

        if not skip_space():
            raise fail("an empty file (expected a JSON array)")
        if buf[pos] != "[":  # one object (or another value): parsed whole
            while fill():
                pass
            yield json.loads(buf)
            return
        pos += 1
        if skip_space() and buf[pos] == "]":
            pos += 1
        else:
            while True:
                if not skip_space():
                    raise fail("the array is cut short")
                while True:
                    try:
                        item, end = dec.raw_decode(buf, pos)
                    except json.JSONDecodeError:
                        if fill():
                            continue
                        raise
                    # a number cut by the chunk parses as its first part ("0." of "0.5" as 0): an item
                    # is whole only where a delimiter follows it (or the file ends)
                    if (end == len(buf) or buf[end] not in " \t\r\n,]") and fill():
                        continue
                    break
                yield item
                pos = end
                if not skip_space():
                    raise fail("the array is cut short")
                if buf[pos] == ",":
                    pos += 1
                    continue
                if buf[pos] != "]":
                    raise fail("expected ',' or ']' after an item")
                pos += 1
                break
        if skip_space():
            raise fail("extra data after the array")


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays and paths."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically write ``data``."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_save_array(path: str | os.PathLike[str], arr: np.ndarray) -> Path:
    """Atomically write ``arr`` as a ``.npy`` file (no pickled objects)."""
    return atomic_write(path, lambda fh: np.save(fh, arr, allow_pickle=False))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as compact JSON (numpy scalars as Python numbers)."""
    return atomic_write_bytes(path, json.dumps(obj, default=json_default, sort_keys=True).encode())


def digest(obj: Any) -> str:
    """sha256 (hex, 24 chars) of an array's bytes (with its shape and dtype) or of a
    JSON-serialisable object (keys sorted): the one fingerprint helper."""
    h = hashlib.sha256()
    if isinstance(obj, np.ndarray):
        h.update(repr((obj.shape, obj.dtype.str)).encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    else:
        h.update(json.dumps(obj, sort_keys=True, default=str).encode())
    return h.hexdigest()[:24]


def _clean(o: Any) -> Any:
    """``o`` with non-finite floats as None (JSON has no NaN) and dict keys as strings."""
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.floating):
        return _clean(float(o))
    return o


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (NaN written as null)."""
    return atomic_write_bytes(path, json.dumps(_clean(obj), indent=2, default=json_default).encode())


def write_json_array(path: str | os.PathLike[str], items: Iterable[Any], *,
                     done: Callable[[int], None] | None = None) -> Path:  # fmt: skip
    """Atomically write ``items`` as a JSON array (NaN written as null), one item at a time: never
    all of them in memory. ``done(count)`` runs after the last item, before the file takes its
    place; an error raised there (or by the items) leaves no file."""

    def write(fh: IO[bytes]) -> None:
        n = 0
        fh.write(b"[")
        for item in items:
            fh.write((b",\n" if n else b"\n") + json.dumps(_clean(item), indent=2, default=json_default).encode())
            n += 1
        fh.write(b"\n]" if n else b"]")
        if done is not None:
            done(n)

    return atomic_write(path, write)


def write_table(path: str | os.PathLike[str], table: pa.Table) -> Path:
    """Atomically write a table as Parquet (``.parquet``) or CSV (``.csv``: a table for people,
    its text cells that a spreadsheet would run as formulas prefixed with ``'``,
    :mod:`labeltrace._spreadsheet`)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from labeltrace._spreadsheet import spreadsheet_safe

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: give the table's file name (.parquet or .csv)")
    if path.suffix.lower() == ".parquet":
        return atomic_write(path, lambda fh: pq.write_table(table, fh))
    if path.suffix.lower() == ".csv":
        safe = spreadsheet_safe(table)
        return atomic_write(path, lambda fh: pacsv.write_csv(safe, fh))
    raise ValueError(f"unsupported table format {path.suffix!r} (use .parquet or .csv)")


@contextmanager
def entry_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<path without its suffix>.lock`` beside the cache entry ``path``
    (a feature file, a bench recording or its probabilities): two processes making the same entry
    take turns, the second finding the first's finished one. Where ``fcntl`` is missing (not POSIX)
    or the file system refuses locks, no lock is held (a second maker then only repeats the work,
    where the entry's writer accepts one finished by another, as the feature extraction does)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None  # type: ignore[assignment]
    if fcntl is None:  # pragma: no cover
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)  # the entry's folder, made before its first entry
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # e.g. ENOLCK on a network file system: go on unlocked
            pass
        yield
    finally:
        os.close(fd)  # closing releases the lock
