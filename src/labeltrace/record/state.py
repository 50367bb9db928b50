"""A :class:`~labeltrace.record.Recorder`'s state: what ``state_dict`` / ``save`` write and
``load_state_dict`` / ``load`` read back — plain numpy arrays in an ``.npz``, no pickle.

Format ``labeltrace.recorder/2``: a JSON ``meta`` entry (settings, ``num_epochs`` and where the
per-epoch arrays are), the O(N) running state, the unfinished epoch's updates as sparse
``pending_*`` arrays (empty between epochs), and either

* ``rows`` (F, T, N) float32 and ``seen_rows`` (T, N) bool — embedded arrays, or
* ``row_tokens`` (T,) int64 — the per-epoch arrays stay in a directory of files (``meta`` holds
  the directory, relative to the ``.npz`` when written by ``save``, and the store id), whose
  rows are checked against these tokens when loading.

Format ``labeltrace.recorder/1`` (dense accumulators, always embedded) is still read.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from labeltrace._io import atomic_write
from labeltrace._warn import warn_caller
from labeltrace.record.batch import FIELDS
from labeltrace.record.storage import FileStore, MemoryStore

if TYPE_CHECKING:
    from labeltrace.record.recorder import Recorder

__all__ = ["FORMAT", "as_arrays", "build", "read_meta", "read_npz", "restore", "save"]

FORMAT = "labeltrace.recorder/2"
_OLD_FORMAT = "labeltrace.recorder/1"
_NF = len(FIELDS)
_BLOCK_BYTES = 16 << 20
_MAP_BYTES = 1 << 20  # stored entries at least this large are memory-mapped by read_npz(mmap=True)


def read_meta(state: dict[str, Any]) -> dict[str, Any]:
    if isinstance(state, dict) and "meta" not in state:
        if isinstance(state.get("recorder"), dict):  # a Lightning checkpoint's ckpt["callbacks"]["RecorderCallback"]
            raise ValueError("this is a RecorderCallback's checkpoint entry ({'recorder': ..., 'pending_epoch': ...}), "
                             'not a recorder state: the recorder\'s state is its ["recorder"] '
                             '(Recorder.from_state_dict(entry["recorder"]); labeltrace.write_run reads the entry whole)')
        keys = [repr(str(k)) for k in state]
        held = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "") if keys else "nothing"
        raise ValueError(f"not a labeltrace recorder state: no 'meta' entry (it holds {held})")
    try:
        meta = json.loads(str(np.asarray(state["meta"])))
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"not a labeltrace recorder state: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") not in (FORMAT, _OLD_FORMAT):
        got = meta.get("format") if isinstance(meta, dict) else meta
        raise ValueError(f"unsupported recorder state format {got!r}")
    if meta.get("fields") != list(FIELDS):
        raise ValueError(f"recorder state has fields {meta.get('fields')}, expected {list(FIELDS)}")
    return meta


def _embedded(rec: Recorder, embed: bool | None) -> bool:
    in_memory = isinstance(rec._store, MemoryStore) or (rec._store is None and rec.directory is None)
    return rec.mode == "full" and (in_memory or bool(embed))


def build(rec: Recorder, *, embed: bool | None, base: Path | None,
          lazy_rows: bool = False) -> dict[str, Any]:  # fmt: skip
    """The state of ``rec`` (arrays are the recorder's own or views: copy before handing out).

    ``base``: write the directory relative to it (``save``); ``lazy_rows``: give ``rows`` as a
    list of per-field (T, N) views for :func:`_write_npz` instead of one stacked array.
    """
    if isinstance(rec._store, FileStore):
        rec._store.flush()  # rows on disk before any state that counts them
    T = rec.num_epochs
    storage: dict[str, Any] = {"kind": "none"}
    if _embedded(rec, embed):
        storage = {"kind": "embedded"}
    elif rec.mode == "full":
        assert rec.directory is not None
        d = rec.directory.resolve()
        if base is not None:
            try:
                d = Path(os.path.relpath(d, base.resolve()))
            except ValueError:  # another drive
                pass
        store_id = rec._store.store_id if isinstance(rec._store, FileStore) else None
        storage = {"kind": "files", "directory": str(d), "store_id": store_id}
    meta = {
        "format": FORMAT, "num_samples": rec.num_samples, "num_classes": rec.num_classes,
        "mode": rec.mode, "keep_probs": rec.keep_probs, "num_epochs": T, "fields": list(FIELDS),
        "max_epochs": rec.max_epochs, "storage": storage,
    }  # fmt: skip
    N, K = rec.num_samples, rec.num_classes
    p = rec.pending()
    st: dict[str, Any] = {
        "meta": np.array(json.dumps(meta)),
        "labels": rec.labels,
        "pending_ids": p.ids, "pending_sums": p.sums, "pending_counts": p.counts, "pending_probs": p.prob_sums,
        "psum": rec._psum, "sums": rec._sums, "sumsq": rec._sumsq, "n_seen": rec._n_seen,
        "last": rec._last, "last_seen": rec._last_seen, "prev_correct": rec._prev_correct,
        "forget": rec._forget, "ever_correct": rec._ever_correct,
        "probs": np.stack(rec._probs) if rec._probs else np.zeros((0, N, K), np.float32),
        "probs_seen": np.stack(rec._probs_seen) if rec._probs_seen else np.zeros((0, N), bool),
    }  # fmt: skip
    if storage["kind"] == "embedded":
        if rec._store is None:
            values: Sequence[np.ndarray] = [np.zeros((0, N), np.float32)] * _NF
            seen = np.zeros((0, N), bool)
        else:
            values, seen = rec._store.views(T)
        st["rows"] = list(values) if lazy_rows else np.stack(values)
        st["seen_rows"] = seen
    elif storage["kind"] == "files":
        st["row_tokens"] = rec._row_tokens[:T]
    return st


def save(rec: Recorder, path: Path, *, embed: bool | None) -> Path:
    st = build(rec, embed=embed, base=path.parent, lazy_rows=True)
    return atomic_write(path, lambda fh: _write_npz(fh, st))


def _write_npz(fh: IO[bytes], arrays: dict[str, Any]) -> None:
    """``np.savez`` that streams a list of equal (T, N) arrays as one stacked entry."""
    with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            with zf.open(name + ".npy", mode="w", force_zip64=True) as out:
                if not isinstance(arr, list):
                    np.lib.format.write_array(out, np.asanyarray(arr), allow_pickle=False)
                    continue
                first = arr[0]
                header = {"descr": np.lib.format.dtype_to_descr(first.dtype), "fortran_order": False,
                          "shape": (len(arr), *first.shape)}  # fmt: skip
                np.lib.format.write_array_header_2_0(out, header)
                for part in arr:
                    for block in _row_blocks(part):
                        out.write(np.ascontiguousarray(block).data)


def read_npz(path: Path, *, mmap: bool = False) -> dict[str, np.ndarray]:
    """Every entry of the ``.npz`` at ``path`` (no pickle); ``mmap``: entries stored uncompressed
    (as :func:`save` writes them) of at least 1 MiB are read-only memory maps of the file, not
    copies in memory, so a finished recording's kept softmax (N × K × kept epochs) is read from
    disk as it is used. Cut-short or damaged files raise from numpy or :mod:`zipfile`; a mapped
    entry's sizes are checked, its CRC-32 is not (that would read it whole). Windows keeps a
    mapped file from being replaced or removed: there every entry is read into memory."""
    if not mmap or os.name == "nt":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        for info in zf.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED or info.file_size < _MAP_BYTES:
                with zf.open(info) as member:
                    out[name] = np.lib.format.read_array(member, allow_pickle=False)
                continue
            fh.seek(info.header_offset)
            local = fh.read(30)  # the local file header: its name and extra field lengths close it
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                raise zipfile.BadZipFile(f"entry {info.filename!r}: no local header")
            start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
            fh.seek(start)
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            if dtype.hasobject:
                raise ValueError(f"entry {info.filename!r} holds Python objects")
            header = fh.tell() - start
            if header + int(np.prod(shape)) * dtype.itemsize != info.file_size:  # a damaged header maps the next entry
                raise ValueError(f"entry {info.filename!r}: its header's shape {shape} does not fill its "
                                 f"{info.file_size} bytes")  # fmt: skip
            # through the handle the zip was read with: a file replaced meanwhile is not mapped at these offsets
            out[name] = np.memmap(fh, dtype=dtype, mode="r", offset=fh.tell(), shape=shape,
                                  order="F" if fortran else "C")  # fmt: skip
    return out


def _row_blocks(a: np.ndarray) -> Iterable[np.ndarray]:
    step = max(1, _BLOCK_BYTES // max(1, a[0].nbytes if len(a) else 1))
    for i in range(0, len(a), step):
        yield a[i : i + step]


def _array(state: dict[str, Any], key: str, shape: tuple[int, ...], dtype: Any, *, copy: bool = True) -> np.ndarray:
    if key not in state or tuple(np.shape(state[key])) != shape:
        got = tuple(np.shape(state[key])) if key in state else None
        raise ValueError(f"recorder state entry {key!r} missing or not of shape {shape} (got {got})")
    return np.array(state[key], dtype=dtype) if copy else np.asarray(state[key], dtype=dtype)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def restore(rec: Recorder, state: dict[str, Any], *, base: Path | None, owned: bool = False,
            files_at: Path | None = None) -> None:  # fmt: skip
    """Load ``state`` into ``rec`` (see :meth:`Recorder.load_state_dict`); ``owned``: the state's
    arrays are nobody else's, so embedded rows are used as they are (no copy); ``files_at``: the
    dynamics files' folder, instead of the one the state names (moved since)."""
    meta = read_meta(state)
    mine = (rec.num_samples, rec.num_classes, rec.mode, rec.keep_probs)
    theirs = (meta["num_samples"], meta["num_classes"], meta["mode"], meta["keep_probs"])
    if mine != theirs:
        raise ValueError(
            "recorder state does not match this recorder: (num_samples, num_classes, mode, keep_probs) "
            f"= {theirs} vs {mine}"
        )
    N, K, T = rec.num_samples, rec.num_classes, int(meta["num_epochs"])
    W = min(T, rec.keep_probs)
    KP = K if rec.keep_probs else 0
    f64, f32 = np.float64, np.float32
    labels = _array(state, "labels", (N,), np.int64)
    acc, cnt, pacc = np.zeros((_NF, N)), np.zeros(N, np.int64), np.zeros((N, KP))
    if meta["format"] == _OLD_FORMAT:
        acc = _array(state, "acc", (_NF, N), f64)
        cnt = _array(state, "cnt", (N,), np.int64)
        if KP:
            pacc = _array(state, "pacc", (N, K), f64)
    else:
        ids = np.asarray(state.get("pending_ids", np.zeros(0)), dtype=np.int64)
        M = ids.size
        if ids.ndim != 1 or ((ids < 0) | (ids >= N)).any():
            raise ValueError("recorder state entry 'pending_ids' is not a list of sample ids")
        acc[:, ids] = _array(state, "pending_sums", (_NF, M), f64)
        cnt[ids] = _array(state, "pending_counts", (M,), np.int64)
        if KP:
            pacc[ids] = _array(state, "pending_probs", (M, K), f64)
    new = {
        "sums": _array(state, "sums", (_NF, N), f64), "sumsq": _array(state, "sumsq", (_NF, N), f64),
        "n_seen": _array(state, "n_seen", (N,), np.int64), "last": _array(state, "last", (_NF, N), f32),
        "last_seen": _array(state, "last_seen", (N,), bool),
        "prev_correct": _array(state, "prev_correct", (N,), np.int8),
        "forget": _array(state, "forget", (N,), np.int64),
        "ever_correct": _array(state, "ever_correct", (N,), bool),
        "psum": _array(state, "psum", (N, K) if KP else (0, 0), f64, copy=not owned),
    }  # fmt: skip
    probs = _array(state, "probs", (W, N, K), f32, copy=not owned)
    probs_seen = _array(state, "probs_seen", (W, N), bool)
    storage = meta.get("storage", {"kind": "embedded" if rec.mode == "full" else "none"})
    store: MemoryStore | FileStore | None = None
    directory = rec.directory
    tokens = np.zeros(0, np.int64)
    if rec.mode == "full" and storage["kind"] == "embedded":
        rows = np.asarray(state.get("rows", np.zeros(0)))
        seen_rows = np.asarray(state.get("seen_rows", np.zeros(0)))
        if rows.shape != (_NF, T, N) or seen_rows.shape != (T, N):
            raise ValueError(f"recorder state holds rows of shape {rows.shape}, meta says {T} epochs of {N} samples")
        if directory is not None:  # an embedded state loaded into a recorder with a directory
            store = FileStore.create(directory, FIELDS, N, max(T, rec.max_epochs or 0) or None)
            tokens = np.array([store.write(t, rows[:, t], seen_rows[t]) for t in range(T)], dtype=np.int64)
        elif owned and T > 0:
            store = MemoryStore.wrap([rows[f] for f in range(_NF)], seen_rows)  # grows on the next epoch
        elif T > 0:
            store = MemoryStore(_NF, N, max(T, rec.max_epochs or 0))
            for f in range(_NF):
                store._values[f][:T] = rows[f]
            store._seen[:T] = seen_rows
    elif rec.mode == "full" and storage["kind"] == "files":
        directory = Path(storage["directory"]) if files_at is None else files_at
        if not directory.is_absolute() and base is not None and files_at is None:
            directory = base / directory
        if T and not directory.is_dir():
            raise ValueError(f"the recorder state's dynamics files are in {directory}, which is not a folder "
                             + ("" if files_at is not None else "(moved since the state was taken?)")
                             + ": pass directory= the folder that holds them now "
                             "(Recorder.from_state_dict(state, directory=...), Recorder.load(path, directory=...))")  # fmt: skip
        if storage.get("store_id") is not None:
            tokens = _array(state, "row_tokens", (T,), np.int64)
            store = FileStore.open(directory, FIELDS, N, storage["store_id"], T)
            store.check_tokens(tokens)
            store.check_rows(tokens)
        elif T:
            raise ValueError(f"recorder state counts {T} epochs but names no dynamics files")
    elif rec.mode == "full":
        raise ValueError(f"recorder state in full mode has storage {storage['kind']!r}")
    # all checks passed: apply
    rec.num_epochs = T
    rec.max_epochs = meta.get("max_epochs", rec.max_epochs)
    rec.labels = labels
    rec._acc, rec._cnt, rec._pacc = acc, cnt, pacc
    for key, arr in new.items():
        setattr(rec, "_" + key, _frozen(arr))
    rec._probs = [_frozen(probs[w]) for w in range(W)]  # views of the one array read: no second copy
    rec._probs_seen = [_frozen(probs_seen[w]) for w in range(W)]
    rec._store, rec.directory, rec._row_tokens = store, directory, tokens


def npz_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as :meth:`Recorder.save` writes it: with ``.npz`` appended unless it ends so."""
    p = Path(path)
    return p if p.suffix == ".npz" else p.with_name(p.name + ".npz")


def as_arrays(state: dict[str, Any]) -> dict[str, Any]:
    """A :meth:`~labeltrace.record.Recorder.state_dict` as numpy arrays: torch tensors (``tensors=True``'s, or any that
    went through a checkpoint on a device) as their CPU values, the settings' ``str`` as an array."""
    out: dict[str, Any] = {}
    for k, v in state.items():
        if k == "meta" and isinstance(v, str):
            v = np.array(v)
        elif hasattr(v, "detach") and hasattr(v, "cpu"):  # a torch tensor, without importing torch
            v = v.detach().cpu().numpy()
        out[k] = v
    return out


def warn_if_mid_epoch(rec: Recorder, what: str) -> None:
    """The warning of a state restored mid-epoch (:meth:`Recorder.load`, :meth:`Recorder.from_state_dict`)."""
    if rec.epoch_in_progress:
        warn_caller(f"{what} was saved mid-epoch, with {int(np.count_nonzero(rec._cnt)):,} samples' updates of "
                    f"epoch {rec.num_epochs + 1} (counted from 1) pending: they are averaged with this epoch's next "
                    "ones. A loop that restarts the epoch (from a model checkpoint taken at its start) records "
                    "them twice: call rec.clear_pending() first")  # fmt: skip
