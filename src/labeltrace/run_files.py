"""The scanned image files' stamps (``image_files.npy`` in the run directory), so that the report,
the review page and the exports never show or link, beside a sample's scores, another picture than
the one the scan read: a file replaced, re-exported or edited since is refused by name instead. The
scan stamps the files when it claims its folder, before it reads them (a file changed while it
trains changes the fingerprint its resume checks, as before).

A stamp is 16 bytes of BLAKE2b over the file's size, its first and its last 4 KiB (the whole file
when it is smaller): two short reads per file, so a scan of 100,000 images pays seconds for it, and
a display one read of 8 KiB. It does not depend on the file's path or time, so a copied or moved
folder (``cp`` without ``-p``, ``labeltrace relocate``) keeps its stamps. An edit that keeps the
size and leaves both ends alone goes unnoticed: a stamp tells another image from the scanned one,
not every changed byte. Runs written before stamps were kept have no file and are not checked.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labeltrace._io import atomic_save_array

__all__ = ["EDGE", "FileStamps", "ImageChanged", "changed_files", "file_stamp", "identical_files", "write_stamps"]

EDGE = 4096
"""Bytes read at each end of a file."""


class ImageChanged(ValueError):
    """An image file is not the one the scan read (its stamp differs)."""


def file_stamp(path: str | os.PathLike[str]) -> bytes:
    """The 16-byte stamp of one file (module docstring)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        h = hashlib.blake2b(str(size).encode() + b"\0", digest_size=16)
        h.update(fh.read(EDGE))
        if size > EDGE:
            fh.seek(max(EDGE, size - EDGE))
            h.update(fh.read(EDGE))
    return h.digest()


def write_stamps(paths: Sequence[str | os.PathLike[str]], out: Path) -> list[str]:
    """Stamp every file of ``paths`` (in sample order) into ``out``, an ``(N, 16)`` uint8 array;
    returns the files that could not be read (their stamp is zeros, which no file has: they are
    refused when shown)."""
    from labeltrace.data.sources import parallel_map

    def one(i: int) -> bytes:
        try:
            return file_stamp(paths[i])
        except OSError:
            return bytes(16)

    stamps = parallel_map(one, range(len(paths)), None)
    arr = np.frombuffer(b"".join(stamps), dtype=np.uint8).reshape(len(paths), 16)
    atomic_save_array(out, arr)
    return [str(paths[i]) for i in np.flatnonzero(~arr.any(axis=1)).tolist()]


class FileStamps:
    """The stamps a run kept, read memory-mapped; :meth:`check` refuses a changed file."""

    def __init__(self, path: Path, num_samples: int) -> None:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        if arr.shape != (num_samples, 16) or arr.dtype != np.uint8:
            raise ValueError(f"{path}: image file stamps of shape {arr.shape}, {arr.dtype}; the run has "
                             f"{num_samples} samples (a damaged run directory? scan it again)")  # fmt: skip
        self._arr = arr

    def matches(self, sample_id: int, path: Path) -> bool:
        """Whether ``path`` is (by its stamp) the file the scan read for ``sample_id``; False for a
        file that cannot be read."""
        try:
            return file_stamp(path) == self._arr[int(sample_id)].tobytes()
        except OSError:
            return False

    def check(self, sample_id: int, path: Path) -> None:
        """Raise ``ValueError`` naming the sample and the file when ``path`` is not the file the
        scan read (module docstring)."""
        if path.is_file() and file_stamp(path) != self._arr[int(sample_id)].tobytes():
            raise ImageChanged(
                f"sample {sample_id}: its image file {path} changed since the scan (another picture than the one "
                "scored); put the scanned file back, or scan the folder again"
            )


def changed_files(stamps: Path, scanned: Sequence[str], root: Path, now: Sequence[str]) -> list[str]:
    """What differs between the files a finished scan read (``scanned``, relative to ``root`` as its
    samples table has them, stamped in ``stamps``) and the files a new scan of ``root`` lists
    (``now``): each changed, gone or new file once, changed first — for a refusal that says
    'differs in: data' to say where."""
    st = FileStamps(stamps, len(scanned))
    listed = set(now)
    changed = [s for i, s in enumerate(scanned) if s in listed and not st.matches(i, root / s)]
    gone = [f"{s} (gone)" for s in scanned if s not in listed]
    before = set(scanned)
    new = [f"{s} (new)" for s in now if s not in before]
    return changed + gone + new


def identical_files(stamps: Path, paths: Sequence[str | os.PathLike[str]]) -> list[list[int]]:
    """Groups of two or more samples whose files are byte for byte the same: equal stamps, each
    candidate then hashed whole (only those: the stamps of distinct files almost never agree).
    ``paths`` in sample order, as stamped in ``stamps``; unreadable files (zero stamps) are left out.
    Each group sorted, the groups by their first sample."""
    arr = np.load(stamps, allow_pickle=False)
    if arr.shape != (len(paths), 16):
        return []
    ids = np.flatnonzero(arr.any(axis=1))
    keys = np.ascontiguousarray(arr[ids]).view("V16").ravel()
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")  # the samples of each stamp together, once
    bounds = np.concatenate([[0], np.cumsum(counts)])
    groups: list[list[int]] = []
    for g in np.flatnonzero(counts > 1).tolist():
        same: dict[bytes, list[int]] = {}
        for i in ids[order[bounds[g] : bounds[g + 1]]].tolist():
            try:
                with open(paths[i], "rb") as fh:
                    same.setdefault(hashlib.file_digest(fh, "blake2b").digest(), []).append(i)
            except OSError:
                continue
        groups += [sorted(v) for v in same.values() if len(v) > 1]
    return sorted(groups)

