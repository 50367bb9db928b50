"""The vote table of the relabel simulator: real annotators' votes per image and class
(:func:`load_votes`; CIFAR-10H's layout, or an ``(N, K)`` ``.npy`` of counts)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from labeltrace._checks import describe_ids, id_list, listing

__all__ = ["load_votes"]


def load_votes(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
    """Read a vote table: ``(votes (N, K) float64, class names)``.

    ``.npy``: an ``(N, K)`` array of non-negative counts; classes are named ``"0" … "K-1"``.
    ``.csv``: one row per image; every column whose name starts with ``votes_`` is one class
    (the name after the prefix), in column order — the CIFAR-10H layout
    ``index,file,original_label,votes_airplane,…``. Other columns are ignored, except that an
    ``index`` column must read ``0 … N-1`` in order (rows are sample ids, aligned with a
    feature file by position).

    Raises
    ------
    ValueError
        No ``votes_`` columns, fewer than 2 classes, empty / non-numeric / negative / non-finite
        cells (naming the rows and columns), an ``index`` column out of order, or images with
        no votes at all (naming the sample ids).
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"votes file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:  # pickled objects, a truncated file: numpy's words named no file
            raise ValueError(f"votes file {path} cannot be read as a .npy array of counts: {exc}") from None
        if arr.ndim != 2:
            raise ValueError(f"{path}: expected an (N, K) vote array, got shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ValueError(f"{path}: vote counts must be numbers, got dtype {arr.dtype}")
        votes = arr.astype(np.float64)
        classes = [str(j) for j in range(votes.shape[1])]
    elif suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as fh:  # a spreadsheet's byte-order mark is not a name
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                raise ValueError(f"{path} is empty") from None
            rows = list(reader)
        cols = [j for j, name in enumerate(header) if name.startswith("votes_")]
        if not cols:
            raise ValueError(
                f"{path}: no vote columns (names starting with 'votes_'); columns: {header}. A votes file has one "
                "count column per class, votes_<class> (CIFAR-10H's layout): count annotators' label columns (such "
                "as CIFAR-10N's random1, random2, random3) into such columns first"
            )
        classes = [header[j][len("votes_") :] for j in cols]
        repeated = sorted({c for c in classes if classes.count(c) > 1})
        if repeated:
            raise ValueError(f"{path}: vote columns repeat the classes {listing(repeated)}")
        short = [r for r, row in enumerate(rows) if len(row) != len(header)]
        if short:
            raise ValueError(
                f"{path}: data rows {id_list(short)} (0-based, header excluded) do not have the "
                f"{len(header)} fields of the header"
            )
        if not rows:
            raise ValueError(f"{path} has a header but no rows")
        cells = np.array([[row[j] for j in cols] for row in rows], dtype=object)
        votes = np.full(cells.shape, np.nan)
        bad: list[tuple[int, str]] = []
        for c in range(cells.shape[1]):  # one vectorised conversion per column
            col = cells[:, c]
            try:
                votes[:, c] = col.astype(np.float64)
            except ValueError:
                for r, v in enumerate(col):
                    try:
                        votes[r, c] = float(v)
                    except ValueError:
                        bad.append((r, header[cols[c]]))
        if bad:
            shown = listing(f"row {r} column {name}" for r, name in bad)
            raise ValueError(f"{path}: non-numeric vote counts at {shown}")
        if "index" in header:
            j = header.index("index")
            try:
                idx = np.array([int(row[j]) for row in rows])
            except ValueError:
                raise ValueError(f"{path}: the index column must hold integers") from None
            off = np.flatnonzero(idx != np.arange(len(rows)))
            if off.size:
                raise ValueError(
                    f"{path}: the index column must read 0..{len(rows) - 1} in row order; "
                    f"it does not at rows {id_list(off)}"
                )
        for name in ("id", "sample_id"):  # the ids 0..N-1 out of order: rows shuffled against the features
            at = header.index(name) if name in header else -1
            ids = [row[at].strip() for row in rows] if at >= 0 else []
            if ids and all(t.isdigit() for t in ids):
                got = np.array([int(t) for t in ids])
                off = np.flatnonzero(got != np.arange(len(rows)))
                if off.size and np.array_equal(np.sort(got), np.arange(len(rows))):
                    raise ValueError(f"{path}: its {name} column holds the ids 0..{len(rows) - 1} out of row order "
                                     f"(rows {id_list(off)}): rows are sample ids, aligned with the features by "
                                     "position — sort the file by it first")  # fmt: skip
    else:
        raise ValueError(f"{path}: unsupported votes file (use .csv with votes_* columns or .npy)")
    if votes.shape[1] < 2:
        raise ValueError(f"{path}: need at least 2 classes, got {votes.shape[1]}")
    bad_ids = np.flatnonzero(~np.isfinite(votes).all(axis=1) | (votes < 0).any(axis=1))
    if bad_ids.size:
        raise ValueError(f"{path}: negative or non-finite vote counts at {describe_ids(bad_ids)}")
    empty = np.flatnonzero(votes.sum(axis=1) <= 0)
    if empty.size:
        raise ValueError(f"{path}: images without any vote at {describe_ids(empty)}")
    rest = votes.sum(axis=1, keepdims=True) - votes  # each column against the sum of the others
    if total := [classes[c] for c in np.flatnonzero(np.all(np.isclose(votes, rest), axis=0))]:
        raise ValueError(f"{path}: the vote column{'s' if len(total) > 1 else ''} {listing(total)} hold each row's sum "
                         "of the other vote columns: a total, not a class's votes (every image would be of that "
                         "class); rename or drop it (every votes_* column is a class)")  # fmt: skip
    return votes, classes
