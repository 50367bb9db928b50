"""A run whose images folder moved (copied to the reviewer's laptop, a disk mounted elsewhere).

``labeltrace relocate RUN_DIR NEW_ROOT`` (:func:`relocate`) writes ``data_moved.json`` beside
``run.json`` — ``{"from": the scan's data root, "to": where it lies now}`` — after checking that the
run's image files are there. :func:`apply_move` (called by :func:`labeltrace.rundir.open_run`) then
reads the data root, the allowed roots and absolute paths under the old root at the new place, for
the report, the review page and the exports alike. ``run.json`` is not rewritten (it is the scan's;
a review server on the run goes on), and a new scan into the folder (``--force``) removes the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labeltrace._io import atomic_write_json, read_json
from labeltrace.run_layout import MOVED

__all__ = ["apply_move", "missing_root_text", "moved_path", "relocate"]


def apply_move(run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` (a run.json) with its data root moved as ``data_moved.json`` says (unchanged without
    one, or with one about another root: a later scan's); ``data.moved_from`` keeps the old root."""
    p = run_dir / MOVED
    if not p.is_file():
        return meta
    move = read_json(p, f"; run labeltrace relocate {run_dir} NEW_ROOT again")
    data = meta.get("data") or {}
    old, new = data.get("root"), move.get("to")
    if not old or move.get("from") != old or not isinstance(new, str):
        return meta
    roots = [str(moved_path(Path(r), Path(old), Path(new))) for r in data.get("allowed_roots") or [old]]
    return {**meta, "data": {**data, "root": new, "allowed_roots": roots, "moved_from": old}}


def missing_root_text(run: Any) -> str | None:
    """A warning when the folder a run reads its images from is not there (moved, another machine),
    naming the command that points it to the new place; None when it is (or the run has none)."""
    root = run.data_root
    if root is None or Path(root).is_dir():
        return None
    return (f"the images folder of {run.path}, {root}, is not there (moved, or the run copied to another "
            f"machine?): its images show as unavailable; `labeltrace relocate {run.path} NEW_ROOT` reads them "
            "where they are now")


def moved_path(p: Path, old: Path, new: Path) -> Path:
    """``p`` at the new place when it lay under the old root, else ``p``."""
    return new / p.relative_to(old) if p.is_absolute() and p.is_relative_to(old) else p


def relocate(run_dir: str | os.PathLike[str], new_root: str | os.PathLike[str]) -> tuple[int, int]:
    """Say that ``run_dir``'s images now lie under ``new_root`` (module doc); returns (found, of N)
    image files there. Refused (``ValueError``) when the run read no image files (arrays, an .npz,
    Hugging Face rows keep their pixels in the run or name their own source), when ``new_root`` is
    no folder, or when none of the run's image files is in it."""
    from labeltrace.rundir import open_run

    run_dir = Path(run_dir)
    run = open_run(run_dir)  # a finished run (its errors), read with any earlier move
    old = run.meta["data"].get("moved_from") or run.meta["data"].get("root")  # the scan's own root
    if not old:
        raise ValueError(f"{run_dir}: its samples came from no image folder (arrays, an .npz or Hugging Face "
                         "rows): there is no data root to move")  # fmt: skip
    new = Path(new_root).expanduser().resolve()
    if not new.is_dir():
        raise ValueError(f"{new}: not a folder")
    paths = [Path(str(p)) for p in run.samples.column("path").to_pylist()]
    files = [moved_path(p, Path(old), new) if p.is_absolute() else new / p for p in paths]
    found = sum(f.is_file() for f in files)
    if found == 0:
        raise ValueError(f"none of the run's {len(files)} image files is under {new} (the first would be "
                         f"{files[0]}): give the folder that holds what the scan read from {old}")  # fmt: skip
    atomic_write_json(run_dir / MOVED, {"from": old, "to": str(new)})
    return found, len(files)
