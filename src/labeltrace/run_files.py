"""The scanned image files' stamps (``image_files.npy`` in the run directory), so that the report,
the review page and the exports never show, beside a sample's scores, another picture than the one
the scan read: a file replaced, re-exported or edited since is refused by name instead.

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

__all__ = ["EDGE", "FileStamps", "file_stamp", "write_stamps"]

EDGE = 4096
"""Bytes read at each end of a file."""


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


def write_stamps(paths: Sequence[str | os.PathLike[str]], out: Path) -> Path:
    """Stamp every file of ``paths`` (in sample order) into ``out``, an ``(N, 16)`` uint8 array."""
    from labeltrace.data.sources import parallel_map

    stamps = parallel_map(lambda i: file_stamp(paths[i]), range(len(paths)), None)
    arr = np.frombuffer(b"".join(stamps), dtype=np.uint8).reshape(len(paths), 16)
    return atomic_save_array(out, arr)


class FileStamps:
    """The stamps a run kept, read memory-mapped; :meth:`check` refuses a changed file."""

    def __init__(self, path: Path, num_samples: int) -> None:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        if arr.shape != (num_samples, 16) or arr.dtype != np.uint8:
            raise ValueError(f"{path}: image file stamps of shape {arr.shape}, {arr.dtype}; the run has "
                             f"{num_samples} samples (a damaged run directory? scan it again)")  # fmt: skip
        self._arr = arr

    def check(self, sample_id: int, path: Path) -> None:
        """Raise ``ValueError`` naming the sample and the file when ``path`` is not the file the
        scan read (module docstring)."""
        if file_stamp(path) != self._arr[int(sample_id)].tobytes():
            raise ValueError(
                f"sample {sample_id}: its image file {path} changed since the scan (another picture than the one "
                "scored); put the scanned file back, or scan the folder again"
            )
