"""Where a full-mode :class:`~labeltrace.record.Recorder` keeps its per-epoch ``(T, N)`` arrays.

One array per field (float32, 0 where unseen) plus the ``seen`` mask (bool), epoch-major, so
epoch ``t`` is one contiguous row of each and growing ``T`` appends rows:

* :class:`MemoryStore` — preallocated numpy arrays that double their epoch capacity when full;
* :class:`FileStore` — one raw little-endian file per field in a directory, memory-mapped
  read-only for :meth:`views` and written in place (plain writes at the row's offset, so the
  written pages count in the page cache, not in the process's memory). Growing extends the
  files; nothing is ever copied or shrunk.

A FileStore directory holds::

    store.json          format, N, fields and dtypes, a random store id
    <field>.f32 …       (capacity, N) float32 each, raw C order, no header
    seen.u8             (capacity, N) bool
    rows.crc            (capacity,) int64: 1 + CRC-32 of each written epoch row (all files),
                        0 while a row is being written or was never written

A recorder state (checkpoint) keeps only O(N) numbers plus the directory, the store id and the
row tokens of its epochs; :meth:`FileStore.check_tokens` refuses a directory whose rows were
rewritten since (by a later recording or a resume from an older checkpoint), and
:meth:`FileStore.check_rows` one whose bytes were damaged since.

One directory holds one store: a new recording there replaces the old one's files (unlinked, so
snapshots already taken keep reading theirs). A FileStore maps and writes its files by path, so it
checks ``store.json``'s id whenever it opens or maps them, writes a row or flushes: a recorder
whose directory another recorder took over raises instead of reading (or counting) the other's rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labeltrace._checks import id_list
from labeltrace._io import atomic_write_bytes

__all__ = ["STORE_FORMAT", "FileStore", "MemoryStore"]

STORE_FORMAT = "labeltrace.epochs/1"
_META = "store.json"
_TOKENS = "rows.crc"
_DEFAULT_CAPACITY = 16


def _readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


def _row_crc(rows: Sequence[np.ndarray], t: int) -> int:
    """CRC-32 of epoch ``t``'s row of every file, in file order (as :meth:`FileStore.write` sums it)."""
    crc = 0
    for r in rows:
        crc = zlib.crc32(np.ascontiguousarray(r[t]).data.cast("B"), crc)
    return crc


class MemoryStore:
    """Per-field ``(capacity, N)`` arrays in memory; capacity doubles when an epoch does not fit."""

    kind = "memory"

    def __init__(self, num_fields: int, num_samples: int, capacity: int | None = None) -> None:
        cap = max(int(capacity or _DEFAULT_CAPACITY), 1)
        self.num_samples = int(num_samples)
        self._values = [np.zeros((cap, num_samples), np.float32) for _ in range(num_fields)]
        self._seen = np.zeros((cap, num_samples), bool)

    @classmethod
    def wrap(cls, values: Sequence[np.ndarray], seen: np.ndarray) -> MemoryStore:
        """A store holding ``values`` (F arrays of (T, N)) and ``seen`` (T, N) as they are (no copy
        when they are float32 / bool and C-contiguous)."""
        st = cls.__new__(cls)
        st.num_samples = int(seen.shape[1])
        st._values = [np.ascontiguousarray(v, dtype=np.float32) for v in values]
        st._seen = np.ascontiguousarray(seen, dtype=bool)
        return st

    @property
    def capacity(self) -> int:
        return int(self._seen.shape[0])

    def _grow(self, need: int) -> None:
        cap = max(2 * self.capacity, need)
        N = self.num_samples
        # new arrays (never in place): Dynamics snapshots keep their views of the old ones
        values = [np.zeros((cap, N), np.float32) for _ in self._values]
        for new, old in zip(values, self._values, strict=True):
            new[: old.shape[0]] = old
        seen = np.zeros((cap, N), bool)
        seen[: self._seen.shape[0]] = self._seen
        self._values, self._seen = values, seen

    def write(self, t: int, values: np.ndarray, seen: np.ndarray) -> int:
        """Store epoch ``t``: ``values`` (F, N) float32 and ``seen`` (N,) bool (returns 0: memory
        rows need no token)."""
        if t >= self.capacity:
            self._grow(t + 1)
        for f, arr in enumerate(self._values):
            arr[t] = values[f]
        self._seen[t] = seen
        return 0

    def views(self, T: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """Read-only ``(T, N)`` views of every field and of ``seen`` (no copy)."""
        return tuple(_readonly(v[:T]) for v in self._values), _readonly(self._seen[:T])

    def flush(self) -> None:
        """Nothing to do in memory."""


class FileStore:
    """Per-field raw files in ``directory`` (see the module docstring for the layout)."""

    kind = "files"

    def __init__(self, directory: Path, fields: Sequence[str], num_samples: int, store_id: str) -> None:
        self.directory = Path(directory)
        self.fields = tuple(fields)
        self.num_samples = int(num_samples)
        self.store_id = store_id
        self._handles: list[Any] | None = None  # write handles, opened on the first write
        self._maps: tuple[int, tuple[np.ndarray, ...], np.ndarray] | None = None
        self._dirty = False
        self._capacity = -1  # epochs the files can hold; read from the tokens file when unknown

    # ------------------------------------------------------------------ files
    def _paths(self) -> list[Path]:
        return [self.directory / f"{f}.f32" for f in self.fields] + [self.directory / "seen.u8"]

    @property
    def _itemsizes(self) -> list[int]:
        return [4] * len(self.fields) + [1]

    def _row_bytes(self) -> list[int]:
        """Bytes per epoch row of each file, the tokens file last."""
        return [s * self.num_samples for s in self._itemsizes] + [8]

    @classmethod
    def create(cls, directory: str | os.PathLike[str], fields: Sequence[str], num_samples: int,
               capacity: int | None = None) -> FileStore:  # fmt: skip
        """A new, empty store in ``directory``, replacing any store there.

        The old files are unlinked, not truncated: a process that still maps them (an older
        :class:`Dynamics`) keeps reading them safely.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        st = cls(d, fields, num_samples, uuid.uuid4().hex)
        for p in [*st._paths(), d / _TOKENS, d / _META]:
            p.unlink(missing_ok=True)
        cap = max(int(capacity or _DEFAULT_CAPACITY), 1)
        for p, nbytes in zip([*st._paths(), d / _TOKENS], st._row_bytes(), strict=True):
            with open(p, "xb") as fh:
                fh.truncate(cap * nbytes)  # sparse: unwritten epochs take no disk
        meta = {
            "format": STORE_FORMAT,
            "num_samples": int(num_samples),
            "fields": {**{f: "float32" for f in fields}, "seen": "bool"},
            "files": [p.name for p in st._paths()],
            "layout": "epoch-major (epoch, sample), C order, little-endian, no header",
            "store_id": st.store_id,
        }
        atomic_write_bytes(d / _META, json.dumps(meta, indent=1).encode())
        return st

    @classmethod
    def open(cls, directory: str | os.PathLike[str], fields: Sequence[str], num_samples: int,
             store_id: str, num_epochs: int) -> FileStore:  # fmt: skip
        """The existing store in ``directory``; checks it is the one a state refers to."""
        d = Path(directory)
        try:
            meta = json.loads((d / _META).read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"no readable dynamics store in {d} ({e})") from None
        if meta.get("format") != STORE_FORMAT:
            raise ValueError(f"{d / _META}: unsupported store format {meta.get('format')!r}")
        if meta.get("store_id") != store_id:
            raise ValueError(
                f"the dynamics files in {d} belong to another recording (store id {meta.get('store_id')}, "
                f"this state expects {store_id}); they were replaced after this state was saved"
            )
        if meta.get("num_samples") != num_samples or list(meta.get("fields", {}))[:-1] != list(fields):
            raise ValueError(f"{d / _META} does not describe {num_samples} samples with fields {list(fields)}")
        st = cls(d, fields, num_samples, store_id)
        for p, nbytes in zip([*st._paths(), d / _TOKENS], st._row_bytes(), strict=True):
            need = num_epochs * nbytes
            have = p.stat().st_size if p.exists() else -1
            if have < need:
                raise ValueError(f"dynamics file {p} is missing or truncated ({have} bytes, {num_epochs} epochs need {need})")
        return st

    @property
    def capacity(self) -> int:
        if self._capacity < 0:
            self._capacity = (self.directory / _TOKENS).stat().st_size // 8
        return self._capacity

    def check_owner(self) -> None:
        """Refuse a directory whose store is no longer this one (another recorder created its own
        there since): its files are the other recording's rows."""
        try:
            now = json.loads((self.directory / _META).read_text()).get("store_id")
        except (OSError, ValueError, AttributeError):
            now = None
        if now != self.store_id:
            raise ValueError(
                f"the dynamics directory {self.directory} now holds another recording's store (store id {now}, "
                f"this recorder's is {self.store_id}): two recorders cannot share one directory, and this "
                "one's epochs there were replaced; give each Recorder its own directory="
            )

    def _open_handles(self) -> list[Any]:
        if self._handles is None:
            paths = [*self._paths(), self.directory / _TOKENS]
            self._handles = [open(p, "r+b", buffering=0) for p in paths]  # noqa: SIM115 - kept open, closed in close()
            try:
                self.check_owner()  # after opening: the files opened are this store's
            except ValueError:
                self.close()
                raise
        return self._handles

    def close(self) -> None:
        """Close the write handles (the memory maps stay valid)."""
        for h in self._handles or []:
            h.close()
        self._handles = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown
            self.close()

    # ------------------------------------------------------------------ rows
    def write(self, t: int, values: np.ndarray, seen: np.ndarray) -> int:
        """Write epoch ``t`` in place: token 0, the rows, then the row's token (returned)."""
        hs = self._open_handles()
        self.check_owner()  # the handles write this store's files, which another may have replaced since
        N = self.num_samples
        cap = self.capacity
        if t >= cap:
            cap = max(2 * cap, t + 1)
            for h, nbytes in zip(hs, self._row_bytes(), strict=True):
                os.ftruncate(h.fileno(), cap * nbytes)  # extend only: existing maps stay valid
            self._capacity = cap
        tok = hs[-1]
        tok.seek(8 * t)
        tok.write(np.int64(0).tobytes())
        crc = 0
        rows = [np.ascontiguousarray(values[f], dtype="<f4") for f in range(len(self.fields))]
        rows.append(np.ascontiguousarray(seen, dtype=bool))
        for h, row, size in zip(hs[:-1], rows, self._itemsizes, strict=True):
            buf = row.data.cast("B")
            h.seek(t * size * N)
            written = 0
            while written < len(buf):  # raw writes may be partial
                written += h.write(buf[written:])
            crc = zlib.crc32(buf, crc)
        tok.seek(8 * t)
        tok.write(np.int64(crc + 1).tobytes())
        self._dirty = True
        return crc + 1

    def tokens(self, T: int) -> np.ndarray:
        """(T,) int64 tokens of the first ``T`` rows as they are on disk now."""
        return np.fromfile(self.directory / _TOKENS, dtype="<i8", count=T).astype(np.int64)

    def check_tokens(self, expected: np.ndarray) -> None:
        """Refuse a store whose first ``len(expected)`` rows differ from those of a saved state."""
        T = len(expected)
        have = self.tokens(T)
        diff = np.flatnonzero(have != expected)
        if diff.size:
            raise ValueError(
                f"the dynamics files in {self.directory} no longer hold the epochs this state recorded: "
                f"epochs {id_list(diff + 1)} were rewritten since (by a later recording, or by a resume "
                "from an older checkpoint); resume from the latest checkpoint of that directory"
            )

    def check_rows(self, expected: np.ndarray) -> None:
        """Refuse rows whose bytes no longer give the CRC-32 written with them (a damaged file: a
        disk error, a copy cut or altered); one sequential read of the first ``len(expected)``
        rows, an epoch at a time."""
        T = len(expected)
        if T == 0:
            return
        N = self.num_samples  # mapped here, not kept: views() maps (and checks the owner) on its first use
        rows = [np.memmap(p, dtype=dt, mode="r", shape=(T, N)) for p, dt in
                zip(self._paths(), ["<f4"] * len(self.fields) + [bool], strict=True)]  # fmt: skip
        self.check_owner()  # after mapping by path: another recording's rows are not "damaged"
        got = np.array([_row_crc(rows, t) + 1 for t in range(T)], dtype=np.int64)
        del rows
        bad = np.flatnonzero(got != np.asarray(expected, dtype=np.int64))
        if bad.size:
            raise ValueError(
                f"the dynamics files in {self.directory} are damaged: epochs {id_list(bad + 1)} no longer hold the "
                "values recorded (their CRC-32 differs); record them again (labeltrace scan --force)"
            )

    def views(self, T: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """Read-only memory-mapped ``(T, N)`` views of every field and of ``seen`` (no copy)."""
        N = self.num_samples
        if T == 0:
            empty = _readonly(np.zeros((0, N), np.float32))
            return tuple(empty for _ in self.fields), _readonly(np.zeros((0, N), bool))
        cap = self.capacity
        if self._maps is None or self._maps[0] < T:
            maps = [np.memmap(p, dtype="<f4", mode="r", shape=(cap, N)) for p in self._paths()[:-1]]
            seen = np.memmap(self._paths()[-1], dtype=bool, mode="r", shape=(cap, N))
            self.check_owner()  # after mapping by path: the files mapped are this store's
            self._maps = (cap, tuple(maps), seen)
        _, maps_t, seen_m = self._maps
        return tuple(np.asarray(m[:T]) for m in maps_t), np.asarray(seen_m[:T])

    def flush(self) -> None:
        """Make every written row durable (before a state that counts it is saved); refuse a
        directory another store took over (a state saved now would point to its rows)."""
        self.check_owner()
        if self._dirty and self._handles is not None:
            for h in self._handles:
                os.fsync(h.fileno())
            self._dirty = False
