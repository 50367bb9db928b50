"""Who owns a run directory: one scan at a time (:func:`writing`), of one configuration
(:func:`claim` compares fingerprints; :func:`release` undoes a claim that recorded nothing)."""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

from labeltrace._checks import utf8_text
from labeltrace._diffs import differences
from labeltrace._io import atomic_write_json, read_json, temporaries
from labeltrace.run_layout import (
    CLEANED,
    CV_PROBS,
    FINGERPRINT,
    IMAGE_FILES,
    IMAGES,
    IMAGES_FLAT,
    IMAGES_INDEX,
    OWNED,
    RECORDING,
    REVIEWS_DB,
    RUN_JSON,
    SAMPLES,
    SAMPLES_CSV,
    SCAN_COMMAND,
)

__all__ = ["RunDirConflict", "claim", "held_array", "held_command", "held_column", "held_fingerprint", "held_ids", "held_meta", "record_command",
           "release",
           "scan_running", "sharing", "using", "writing"]

#: the files a scan itself writes into its folder (other commands write the rest of OWNED)
_SCAN_WRITES = (FINGERPRINT, SCAN_COMMAND, RUN_JSON, SAMPLES, SAMPLES_CSV, IMAGES, IMAGES_FLAT, IMAGES_INDEX, CV_PROBS)


class RunDirConflict(ValueError):
    """The run directory holds a scan of another configuration."""


def as_stored(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """``fingerprint`` as its file holds it (JSON, keys sorted, paths and other values as strings):
    what a fingerprint read back from a folder is compared with."""
    return json.loads(json.dumps(fingerprint, sort_keys=True, default=str))  # type: ignore[no-any-return]


def held_fingerprint(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The fingerprint of the scan ``run_dir`` holds, or None (no directory, no scan)."""
    p = Path(run_dir) / FINGERPRINT
    try:
        return read_json(p) if p.is_file() else None
    except ValueError:  # damaged: no scan to keep a setting of (claim names it)
        return None


def record_command(run_dir: str | os.PathLike[str], command: list[str]) -> None:
    """Keep the command line of the scan that claimed ``run_dir``, with its process id: until its
    ``run.json`` is written, a stopped scan's folder can say which command resumes it, and a running
    one which process holds it."""
    atomic_write_json(Path(run_dir) / SCAN_COMMAND, {"command": [str(a) for a in command], "pid": os.getpid()})


def _holder(run_dir: Path) -> str:
    """`` (process N: labeltrace scan ...)`` for the scan that recorded its command in ``run_dir``
    when it has not finished (no ``run.json``) and its process is alive, else ``""``."""
    if (run_dir / RUN_JSON).exists():  # finished: whoever holds the folder now, not that scan
        return ""
    try:
        pid = int(read_json(run_dir / SCAN_COMMAND).get("pid"))
        os.kill(pid, 0)  # alive (signal 0 sends nothing)
    except (OSError, ValueError, TypeError, AttributeError):
        return ""
    cmd = held_command(run_dir)
    return f" (process {pid}" + (f": {cmd})" if cmd else ")")


def held_command(run_dir: str | os.PathLike[str]) -> str | None:
    """The command line (shell-quoted) of the scan that claimed ``run_dir``, or None."""
    import shlex

    try:
        command = read_json(Path(run_dir) / SCAN_COMMAND).get("command")
    except (OSError, ValueError, AttributeError):
        return None
    return shlex.join(command) if isinstance(command, list) and all(isinstance(a, str) for a in command) else None


def held_meta(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``run.json`` a finished scan in ``run_dir`` wrote, or {} (none, or unreadable)."""
    try:
        meta = json.loads((Path(run_dir) / RUN_JSON).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def held_array(run_dir: str | os.PathLike[str], column: str) -> Any | None:
    """A column of the samples table of the finished scan ``run_dir`` holds, as its pyarrow
    ``ChunkedArray`` (typed, nulls kept), or None (none, or unreadable)."""
    p = Path(run_dir) / SAMPLES
    try:
        import pyarrow.parquet as pq

        return pq.read_table(p, columns=[column]).column(0)
    except Exception:  # noqa: BLE001 - missing, damaged or of another layout: unknown
        return None


def held_column(run_dir: str | os.PathLike[str], column: str) -> list[str] | None:
    """A column of the samples table of the finished scan ``run_dir`` holds, as text, or None
    (none, or unreadable): :func:`held_array`'s values."""
    col = held_array(run_dir, column)
    return None if col is None else [str(v) for v in col.to_pylist()]


def held_ids(run_dir: str | os.PathLike[str]) -> list[str] | None:
    """The sample ids (``external_id``) of the finished scan ``run_dir`` holds, or None (none, or
    unreadable): what an older decisions file there, which does not keep its ids, is about."""
    return held_column(run_dir, "external_id")


def claim(run_dir: str | os.PathLike[str], fingerprint: dict[str, Any], *, force: bool = False,
          log: Any = None, reviews_fit: Callable[[Path], bool] | None = None) -> str:  # fmt: skip
    """Make ``run_dir`` the home of the scan described by ``fingerprint`` (JSON-serialisable).

    * a new or empty directory (or one holding no scan): the fingerprint is written → ``"new"``;
    * the same fingerprint: ``"finished"`` when ``run.json`` exists (the results are recomputed
      from the saved recording), else ``"resume"``;
    * another fingerprint (or a damaged one), or a scan written before fingerprints: :class:`RunDirConflict` naming
      what differs — unless ``force``, which removes what the earlier scan wrote (its review
      decisions are kept aside as ``reviews.db.replaced-<time>``, never deleted — or kept in place
      where ``reviews_fit(path_of_reviews_db)`` says they are about the new scan's samples and
      classes too) → ``"new"``. A ``"new"`` claim with no decisions file takes back the newest
      set-aside one that fits.

    Half-written files a killed scan left (``samples.parquet.<random>.tmp``, ...) are removed.
    """
    import shutil
    import time

    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    _remove_temporaries(path, _SCAN_WRITES)  # a killed scan's; not those of a queue or review writing now
    fp_path = path / FINGERPRINT
    fp = as_stored(fingerprint)
    held = [name for name in OWNED if (path / name).exists()]
    if fp_path.is_file():
        try:
            old = read_json(fp_path)
        except ValueError as exc:  # --force replaces it like any other scan's
            why = f"a damaged fingerprint ({exc})"
        else:
            if old == fp:
                return "finished" if (path / RUN_JSON).is_file() else "resume"
            why = f"a scan of another configuration (differs in: {'; '.join(differences(old, fp))})"
    elif held:
        why = f"files of an earlier scan without a fingerprint ({', '.join(held)})"
    else:
        _take_back_decisions(path, reviews_fit, log)
        atomic_write_json(fp_path, fp)
        return "new"
    if not force:
        raise RunDirConflict(f"{path} holds {why}; choose another --out, or pass --force (from Python: force=True) "
                             "to replace it")
    db = path / REVIEWS_DB
    keep = db.is_file() and reviews_fit is not None and reviews_fit(db)  # before the earlier scan's table goes
    for name in held:
        target = path / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    _remove_temporaries(path, OWNED)  # replaced: a killed queue's, review's or export's go with it
    if keep:  # decisions about these very images
        if log is not None:
            log(f"kept the review decisions in {REVIEWS_DB}: this scan has the same samples and classes")
    for kept in [*([] if keep else [db]), *sorted(path.glob(f"{CLEANED}.*"))]:  # set aside
        if kept.is_file() and ".replaced-" not in kept.name and not kept.name.endswith(".tmp"):
            aside = kept.with_name(f"{kept.name}.replaced-{stamp}")
            kept.rename(aside)
            for side in ("-wal", "-shm"):  # SQLite's write-ahead log: committed decisions may sit there
                if kept.with_name(kept.name + side).is_file():
                    kept.with_name(kept.name + side).rename(aside.with_name(aside.name + side))
            # a warning, not a log line: said under --quiet too (the user's work moved)
            warnings.warn(f"kept the earlier scan's {'review decisions' if kept.name == REVIEWS_DB else 'cleaned labels'} "
                          f"aside as {aside.name} in {path}", UserWarning, stacklevel=2)  # fmt: skip
    if log is not None:
        log(f"--force: replaced {why} in {path}")
    _take_back_decisions(path, reviews_fit, log)
    atomic_write_json(fp_path, fp)
    return "new"


def _take_back_decisions(path: Path, reviews_fit: Callable[[Path], bool] | None, log: Any) -> None:
    """A new scan without a decisions file takes back the newest set-aside one (``reviews.db.replaced-
    <time>``) that ``reviews_fit`` says is about its samples and classes: a ``--force`` by mistake,
    stopped and followed by the first scan's own command again, had left its decisions aside for good."""
    if reviews_fit is None or (path / REVIEWS_DB).exists():
        return
    aside = sorted((p for p in path.glob(f"{glob_escape(REVIEWS_DB)}.replaced-*")
                    if not p.name.endswith(("-wal", "-shm"))), key=lambda p: p.name, reverse=True)  # fmt: skip
    for db in aside:
        if db.is_file() and reviews_fit(db):
            for side in ("", "-wal", "-shm"):  # the write-ahead log goes back with it
                if db.with_name(db.name + side).is_file():
                    db.with_name(db.name + side).rename(path / (REVIEWS_DB + side))
            if log is not None:
                log(f"took back the review decisions set aside as {db.name}: they are about this scan's samples "
                    "and classes")  # fmt: skip
            return


def _remove_temporaries(path: Path, names: tuple[str, ...]) -> None:
    """Remove the half-written files ``atomic_write`` leaves beside ``names`` (:func:`temporaries`)
    when its process is killed."""
    for name in names:
        for tmp in temporaries(path / name):
            tmp.unlink(missing_ok=True)


@contextmanager
def writing(run_dir: str | os.PathLike[str]) -> Iterator[bool]:
    """Hold ``run_dir`` for one scan; yields whether it was made for it (a folder the user made
    stays, even empty). The folder is made and locked (``flock`` on the folder itself, released
    when the scan ends or its process dies): a second scan into it meanwhile is refused with
    :class:`RunDirConflict`. Where the file system refuses locks, none is held. A folder made here
    and still empty at the end is removed. A path that is not UTF-8 text is refused first: the
    run's tables could not be written (pyarrow takes UTF-8 paths alone).
    """
    path = Path(run_dir)
    if not utf8_text(str(path)):
        raise ValueError(f"the run directory {str(path)!r} is not UTF-8 text (a name in another encoding?): its "
                         "tables are written with pyarrow, which takes UTF-8 paths alone; give it in UTF-8")
    made = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    fd: int | None = None
    held = False  # this call holds the folder (locked, or no lock to be had): it may remove what it made
    try:
        try:
            fd = _lock(path, exclusive=True)
        except BlockingIOError:
            who = _holder(path)
            raise RunDirConflict(f"{path}: " + (f"another scan is writing into it now{who}" if who else
                                 "another labeltrace command is using it now (a scan, or a queue, report or export "
                                 "writing its file)") + "; wait for it to end, or choose another --out") from None
        held = True
        _HELD.add(path.resolve())
        yield made
    finally:
        if held:  # a refused call leaves the hold of the one that has it
            _HELD.discard(path.resolve())
        if held and made and path.is_dir() and not any(path.iterdir()):  # before the lock goes
            with contextlib.suppress(OSError):  # never in place of the scan's own error
                path.rmdir()
        _unlock(fd)


#: folders this process holds for a scan (:func:`writing`): what it writes there needs no other hold
_HELD: set[Path] = set()


#: the descriptors of the folders this process has locked (:func:`_lock`): a forked child closes them
_LOCK_FDS: set[int] = set()


def _close_locks_in_child() -> None:
    """In a process just forked (a streaming scan's decoding workers): its copies of the parent's
    lock descriptors closed, so the lock goes with the parent (a killed scan's orphaned workers held
    it for seconds, and the same command run at once was refused as 'another command is using it')."""
    for fd in list(_LOCK_FDS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _LOCK_FDS.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_close_locks_in_child)


def _lock(path: Path, *, exclusive: bool) -> int | None:
    """The folder opened and ``flock``-ed, without waiting: its descriptor, or None where nothing
    can be locked (Windows, a folder we may not read, a network file system without locks);
    ``BlockingIOError`` when another process holds it the other way. Close it with :func:`_unlock`."""
    try:
        import fcntl

        fd = os.open(path, os.O_RDONLY)
    except (ImportError, OSError):  # Windows opens no folder so
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise
    except OSError:  # e.g. ENOLCK on a network file system: unlocked
        pass
    _LOCK_FDS.add(fd)
    return fd


def _unlock(fd: int | None) -> None:
    """Close a descriptor of :func:`_lock` (which releases its lock)."""
    if fd is not None:
        _LOCK_FDS.discard(fd)
        os.close(fd)


@contextmanager
def using(run_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold a finished scan's folder while a command reads it and writes its file (a queue, report,
    export): shared with other such commands, never with a scan. A scan into the folder meanwhile
    (``--force`` would remove the file being written, or leave it beside another scan's results) is
    refused by :func:`writing`; so is this while a scan writes (:class:`RunDirConflict`)."""
    path = Path(run_dir)
    if not path.is_dir() or path.resolve() in _HELD:
        yield
        return
    try:
        fd = _lock(path, exclusive=False)
    except BlockingIOError:
        raise RunDirConflict(f"{path}: a scan is writing into it now{_holder(path)}; wait for it to end") from None
    try:
        yield
    finally:
        _unlock(fd)


def sharing(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn(run_dir, ...)`` run inside :func:`using` its ``run_dir``."""
    import functools

    @functools.wraps(fn)
    def held(run_dir: str | os.PathLike[str], *args: Any, **kw: Any) -> Any:
        with using(run_dir):
            return fn(run_dir, *args, **kw)

    return held


def scan_running(run_dir: str | os.PathLike[str]) -> str | None:
    """`` (process N: command)`` or ``""`` when a scan holds ``run_dir`` now, else None."""
    path = Path(run_dir)
    try:
        fd = _lock(path, exclusive=False)
    except BlockingIOError:
        return _holder(path)
    _unlock(fd)
    return None


def release(run_dir: str | os.PathLike[str], *, remove_dir: bool = True) -> None:
    """Undo a :func:`claim` that recorded nothing (a scan refused at a setting after claiming):
    the fingerprint goes when it is all the scan wrote, and the folder when that leaves it empty
    and ``remove_dir`` (the claim made it; a folder the user made stays)."""
    path = Path(run_dir)
    rec = path / RECORDING
    if rec.is_dir() and not any(p.is_file() for p in rec.rglob("*")):  # folders made, nothing recorded
        import shutil

        shutil.rmtree(rec)
    # what a claim writes before anything is recorded: the fingerprint, the command, the files' stamps
    if not {FINGERPRINT} <= {name for name in OWNED if (path / name).exists()} <= {FINGERPRINT, SCAN_COMMAND,
                                                                                  IMAGE_FILES}:
        return
    (path / SCAN_COMMAND).unlink(missing_ok=True)
    (path / IMAGE_FILES).unlink(missing_ok=True)
    (path / FINGERPRINT).unlink()
    if remove_dir and not any(path.iterdir()):
        path.rmdir()
