"""A run whose images folder (or ``.npz``) moved (copied to the reviewer's laptop, a disk mounted
elsewhere).

``labeltrace relocate RUN_DIR NEW_ROOT`` (:func:`relocate`) writes ``data_moved.json`` beside
``run.json`` — ``{"from": the scan's data root, "to": where it lies now}`` — after checking that the
run's image files are there. :func:`apply_move` (called by :func:`labeltrace.rundir.open_run`) then
reads the data root, the allowed roots and absolute paths under the old root at the new place, for
the report, the review page and the exports alike. A run scanned from an ``.npz`` is pointed at the
file's new place the same way (``{"npz_from": ..., "to": ..., "size": ..., "mtime_ns": ...}``, after
checking that the file holds the scanned pixels). ``run.json`` is not rewritten (it is the scan's;
a review server on the run goes on), and a new scan into the folder (``--force``) removes the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labeltrace._io import atomic_write_json, read_json
from labeltrace.run_layout import IMAGE_FILES, MOVED

__all__ = ["apply_move", "missing_root_text", "moved_path", "relocate"]


def apply_move(run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` (a run.json) with its data root moved as ``data_moved.json`` says (unchanged without
    one, or with one about another root: a later scan's); ``data.moved_from`` keeps the old root."""
    p = run_dir / MOVED
    if not p.is_file():
        return meta
    move = read_json(p, f"; run labeltrace relocate {run_dir} NEW_ROOT again")
    data = meta.get("data") or {}
    src = data.get("image_source") or {}
    if "npz_from" in move:  # an .npz moved: read at its new place, with its own size and time
        if src.get("kind") != "npz" or src.get("path") != move["npz_from"] or not isinstance(move.get("to"), str):
            return meta
        moved = {**src, "path": move["to"], "size": move.get("size"), "mtime_ns": move.get("mtime_ns"),
                 "moved_from": src["path"]}  # fmt: skip
        return {**meta, "data": {**data, "image_source": moved}}
    old, new = data.get("root"), move.get("to")
    if not old or move.get("from") != old or not isinstance(new, str):
        return meta
    roots = [str(moved_path(Path(r), Path(old), Path(new))) for r in data.get("allowed_roots") or [old]]
    return {**meta, "data": {**data, "root": new, "allowed_roots": roots, "moved_from": old}}


def missing_root_text(run: Any) -> str | None:
    """A warning when the folder (or ``.npz``) a run reads its images from is not there (moved,
    another machine), naming the command that points it to the new place; None when it is (or the
    run has none)."""
    root = run.data_root
    src = run.meta["data"].get("image_source") or {}
    if root is None and src.get("kind") == "npz" and not Path(src["path"]).is_file():
        return (f"the .npz the images of {run.path} came from, {src['path']}, is not there (moved, or the run "
                "copied to another machine?): its images show as unavailable; `labeltrace relocate "
                f"{run.path} NEW.npz` reads them where the file is now")
    if root is None or Path(root).is_dir():
        return None
    return (f"the images folder of {run.path}, {root}, is not there (moved, or the run copied to another "
            f"machine?): its images show as unavailable; `labeltrace relocate {run.path} NEW_ROOT` reads them "
            "where they are now")


def moved_path(p: Path, old: Path, new: Path) -> Path:
    """``p`` at the new place when it lay under the old root, else ``p``."""
    return new / p.relative_to(old) if p.is_absolute() and p.is_relative_to(old) else p


def _relocate_npz(run: Any, src: dict[str, Any], new: Path) -> tuple[int, int]:
    """Point a run scanned from an ``.npz`` at the file ``new`` (checked to hold the scanned pixels)."""
    from labeltrace import data
    from labeltrace.run_source import same_pixels

    if not new.is_file():
        raise ValueError(f"{new}: not a file (the run's images came from the .npz {src['path']}: give where that "
                         "file lies now)")  # fmt: skip
    ds = data.from_npz(new, split=src.get("split", "train"))
    if len(ds) != run.num_samples or not same_pixels(ds, (run.meta.get("fingerprint") or {}).get("data")):
        raise ValueError(f"{new} holds other images than the scan read from {src.get('moved_from') or src['path']} "
                         f"(its {src.get('split', 'train')!r} split: {len(ds)} images, the run {run.num_samples})")  # fmt: skip
    st = new.stat()
    atomic_write_json(run.path / MOVED, {"npz_from": src.get("moved_from") or src["path"], "to": str(new),
                                         "size": st.st_size, "mtime_ns": st.st_mtime_ns})  # fmt: skip
    return len(ds), len(ds)


def relocate(run_dir: str | os.PathLike[str], new_root: str | os.PathLike[str]) -> tuple[int, int]:
    """Say that ``run_dir``'s images now lie under ``new_root`` (module doc); returns (found, of N)
    image files there (the scanned files, told by their stamps where the run kept them). A run
    scanned from an ``.npz`` takes the file's new path as ``new_root``, checked to hold the scanned
    pixels. Refused (``ValueError``) when the run read no image files nor an ``.npz`` (arrays and
    Hugging Face rows keep their pixels in the run), when ``new_root`` is no folder (no such
    file), or when none of the run's image files is in it (other pixels)."""
    from labeltrace.rundir import open_run

    run_dir = Path(run_dir)
    run = open_run(run_dir)  # a finished run (its errors), read with any earlier move
    src = run.meta["data"].get("image_source") or {}
    if src.get("kind") == "npz":
        return _relocate_npz(run, src, Path(new_root).expanduser().resolve())
    old = run.meta["data"].get("moved_from") or run.meta["data"].get("root")  # the scan's own root
    if not old:
        raise ValueError(f"{run_dir}: its samples came from no image folder or .npz (arrays or Hugging Face rows "
                         "handed over in memory, whose pixels the run keeps): there is nothing to move")  # fmt: skip
    new = Path(new_root).expanduser().resolve()
    if not new.is_dir():
        raise ValueError(f"{new}: not a folder")
    paths = [Path(str(p)) for p in run.samples.column("path").to_pylist()]
    files = [moved_path(p, Path(old), new) if p.is_absolute() else new / p for p in paths]
    found = sum(f.is_file() for f in files)
    if found == 0:
        raise ValueError(f"none of the run's {len(files)} image files is under {new} (the first would be "
                         f"{files[0]}): give the folder that holds what the scan read from {old}")  # fmt: skip
    if (run.path / IMAGE_FILES).is_file():  # the files the scan read, not others under their names
        from labeltrace.run_files import FileStamps

        stamps = FileStamps(run.path / IMAGE_FILES, run.num_samples)
        found = sum(f.is_file() and stamps.matches(i, f) for i, f in enumerate(files))
        if found == 0:
            raise ValueError(f"{new} holds files under the names of the run's images, but none of them is the file "
                             f"the scan read from {old} (other pictures): give the folder that holds the scanned "
                             "images")  # fmt: skip
    atomic_write_json(run_dir / MOVED, {"from": old, "to": str(new)})
    return found, len(files)
