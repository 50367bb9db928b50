"""The cleaned labels of a run scanned from a MedMNIST-style ``.npz``, written as an ``.npz`` again:
the file ``labeltrace scan`` reads for the next round (``labeltrace review RUN --export clean.npz``).

Every array of the scanned file is copied; the scanned split's ``{split}_images`` and
``{split}_labels`` keep the images the review did not exclude (in their order) and take the
cleaned labels: integer positions in the class list written beside (``<stem>.classes.txt``,
:func:`labeltrace.export.cleaned.classes_path`; a class the review emptied is left out of it and
the positions after it shift), or class names where the file gave names or no class list can be
written. A
``{split}_ids`` array keeps each image's id of the first scan (``"train:17"``), so the next run's
``external_id`` still names the image of the original file, and ``{split}_review_decision`` /
``{split}_review_status`` hold the review's columns of a cleaned manifest (an earlier round's
renamed ``_1``, ``_2``, ...), which the next round's queue reads
(:func:`labeltrace.relabel.earlier.settled_before`). Any other ``{split}_*`` array with one row per
image loses the excluded images' rows too; the rest is copied as it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labeltrace._io import atomic_write
from labeltrace.relabel.earlier import DECISION, STATUS
from labeltrace.rundir import Run

__all__ = ["npz_source", "write_cleaned_npz"]


def npz_source(run: Run) -> dict | None:
    """The ``.npz`` the run read its images from (run.json ``data.image_source``, with a
    ``labeltrace relocate`` applied), or None for a run that read none."""
    src = run.meta["data"].get("image_source") or {}
    return src if src.get("kind") == "npz" else None


def write_cleaned_npz(run: Run, out: Path, final: np.ndarray, class_list: list[str] | None, *,
                      decision: np.ndarray, status: np.ndarray) -> Path:  # fmt: skip
    """Write the cleaned ``.npz`` of ``run`` at ``out`` (module doc). ``final``: each sample's label
    id in ``run.classes``, -1 for an excluded one; ``class_list``: the classes written beside, or None;
    ``decision``, ``status``: each sample's ``review_decision`` / ``review_status`` text."""
    from labeltrace.export.cleaned_manifest import kept_rounds
    from labeltrace.run_source import open_source

    src = npz_source(run)
    if src is None:
        raise ValueError(f"{out}: an .npz of cleaned labels is written for a run scanned from an .npz (labeltrace "
                         "scan FILE.npz); this run's images came another way: export them as .npy or .csv")  # fmt: skip
    if out.resolve() == Path(src["path"]).resolve():
        raise ValueError(f"{out} is the original .npz; write the cleaned labels elsewhere")
    # the scanned pixels, checked as the report reads them: a file changed since the scan is refused
    open_source(run.path, src, run.num_samples, (run.meta.get("fingerprint") or {}).get("data"))
    split, n = str(src["split"]), run.num_samples
    pre = f"{split}_"
    with np.load(src["path"], allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    keep = np.flatnonzero(final >= 0)
    names = np.asarray(run.classes, dtype=str)[final[keep]]
    if class_list is not None and arrays[pre + "labels"].dtype.kind not in "US":  # ids, as the file gave them
        position = {c: j for j, c in enumerate(class_list)}
        labels: np.ndarray = np.array([position[c] for c in names.tolist()], dtype=np.int64)
    else:
        labels = names
    if arrays[pre + "labels"].ndim == 2:  # MedMNIST's (N, 1): kept so
        labels = labels.reshape(-1, 1)
    for key, a in arrays.items():  # the split's per-image arrays: the kept rows
        if key.startswith(pre) and a.ndim and a.shape[0] == n:
            arrays[key] = a[keep]
    arrays[pre + "labels"] = labels
    arrays[pre + "ids"] = np.asarray(run.column("external_id"), dtype=str)[keep]
    own = [k.removeprefix(pre) for k in arrays if k.startswith(pre)]
    renamed = dict(zip(own, kept_rounds(own), strict=True))  # an earlier round's review arrays: _1, _2, ...
    arrays = {pre + renamed[k.removeprefix(pre)] if k.startswith(pre) else k: a for k, a in arrays.items()}
    arrays[pre + DECISION] = np.asarray(decision, dtype=str)[keep]
    arrays[pre + STATUS] = np.asarray(status, dtype=str)[keep]
    return atomic_write(out, lambda f: np.savez_compressed(f, **arrays))  # type: ignore[arg-type]

