"""The run directory: the one place that knows its file names and formats.

A scan writes, and the report, review app, exports and ``labeltrace score`` read::

    RUN_DIR/
      fingerprint.json     everything that determines the result, written when the scan starts
      run.json             config, seed, versions, timings, detector + cutoff, counts, metrics
      samples.parquet      one row per sample (see SAMPLE_COLUMNS), sorted by id
      samples.csv          the same table, when asked for
      dynamics/            the recording (labeltrace.record.recording.RecordingDir): run0.npz,
                           run1.npz (Recorder states), auxiliary masks, folds, checkpoints while
                           a scan runs
      cv_probs.npy         out-of-fold probabilities, when the detector needs them
      images.npy           (N, H, W, C) images, uint8 (uint16 for 16-bit pixels), only for arrays and
                           Hugging Face rows handed over in memory (a .npz or
                           a built-in example is read again from its source: run.json
                           data.image_source; runs written before keep reading their images.npy)
      images_flat.npy      in-memory images of several sizes instead: all pixels one after another,
      images_index.npy     and (offset, h, w, c) per image (labeltrace.run_images)
      queue.parquet        the relabel order the review app serves (labeltrace queue)
      reviews.db           the review app's decisions (SQLite)
      review_context.npz   the review page's context (reduced features, trajectories), cached

Every write is atomic (temporary file in the same folder, then rename). A run directory never
silently mixes two configurations: :func:`claim` compares the fingerprint of a new scan with the
one the directory holds and refuses a different one unless told to replace it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from labeltrace._io import atomic_write, atomic_write_json, write_json, write_table  # re-exported
from labeltrace.record import Dynamics, Recorder
from labeltrace.record.recording import Recording, RecordingDir
from labeltrace.run_images import ImageStore
from labeltrace.run_source import image_source, open_source, source_bits  # image_source re-exported

__all__ = [
    "FORMAT",
    "SAMPLE_COLUMNS",
    "Run",
    "RunDirConflict",
    "atomic_write",
    "claim",
    "release",
    "dynamics_path",
    "image_source",
    "open_run",
    "recording_dir",
    "write_json",
    "write_table",
]

FORMAT = "labeltrace.run/1"
FINGERPRINT = "fingerprint.json"
RECORDING = "dynamics"
CV_PROBS = "cv_probs.npy"
RUN_JSON = "run.json"
SAMPLES = "samples.parquet"
SAMPLES_CSV = "samples.csv"
IMAGES = "images.npy"
#: in-memory images of several sizes: all pixels one after another, and (offset, h, w, c) per image
IMAGES_FLAT = "images_flat.npy"
IMAGES_INDEX = "images_index.npy"
REVIEWS_DB = "reviews.db"
#: what `labeltrace report` and `labeltrace export` write into the run directory by default (derived
#: from the scan: --force removes them with it) and the cleaned labels' default stem (the review's
#: deliverable: --force keeps it aside, as the decisions)
REPORT_HTML = "report.html"
REPORT_PNG = "report"
LABELSTUDIO_TASKS = "labelstudio_tasks.json"
LABELSTUDIO_CONFIG = "labelstudio_tasks.config.xml"
EXPORT_TABLE = "export"  # export.csv / export.parquet
CLEANED = "labels_cleaned"
#: the relabel queue the review app serves (columns ``id, priority, rank``; rank 1 = first)
QUEUE = "queue.parquet"
#: the FiftyOne export's PNGs of in-memory images (written once, reused by later exports of the run)
FIFTYONE_IMAGES = "fiftyone_images"
#: the review page's context cache (labeltrace.review.context), rebuilt when missing
REVIEW_CONTEXT = "review_context.npz"

#: Columns every samples table has (scores add one float column each, e.g. ``sei``, ``aum``).
SAMPLE_COLUMNS: dict[str, str] = {
    "id": "int64: sample id 0..N-1 (row order)",
    "external_id": "string: the dataset's own id (manifest id column or relative path)",
    "path": "string: image file (relative to data_root), 'array:<i>' for array datasets or 'hf:<i>' for "
            "Hugging Face rows",
    "given_label": "string: the label the dataset gave",
    "given_label_id": "int64",
    "suggested_label": "string: argmax of the run's posterior (held-out runs: the whole trajectory's; in-sample "
                       "runs: the last epochs'; confident learning: the cross-validated probabilities; the kNN vote: "
                       "the neighbours' label shares)",
    "suggested_label_id": "int64",
    "suggested_prob": "float64: that posterior probability",
    "score": "float64: the default detector's score (lower = more suspect)",
    "is_suspect": "bool: flagged by the detector's cutoff",
    "rank": "int64: 1 = most suspect (ascending score, ties by id)",
}


def recording_dir(run_dir: str | os.PathLike[str]) -> RecordingDir:
    """The run's recording folder (written by :mod:`labeltrace.train.protocol`)."""
    return RecordingDir(Path(run_dir) / RECORDING)


def dynamics_path(run_dir: str | os.PathLike[str], run_index: int) -> Path:
    """Where the saved Recorder of training run ``run_index`` lives."""
    return recording_dir(run_dir).run_file(int(run_index))


def in_sample_path(run_dir: str | os.PathLike[str], run_index: int) -> Path:
    """Where a cross-fitted run's in-sample companion recording lives."""
    return recording_dir(run_dir).in_sample_file(int(run_index))


class RunDirConflict(ValueError):
    """The run directory holds a scan of another configuration."""


#: what a scan writes into its run directory, and the exports' caches of it (``--force`` removes
#: these, and only these)
_OWNED = (FINGERPRINT, RUN_JSON, SAMPLES, SAMPLES_CSV, IMAGES, IMAGES_FLAT, IMAGES_INDEX, CV_PROBS, QUEUE,
          REVIEW_CONTEXT, RECORDING,
          FIFTYONE_IMAGES, REPORT_HTML, REPORT_PNG, LABELSTUDIO_TASKS, LABELSTUDIO_CONFIG, f"{EXPORT_TABLE}.csv",
          f"{EXPORT_TABLE}.parquet")  # no generic name such as "checkpoints": --force never removes a user's folder


def _diff_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [k for k in sorted(set(a) | set(b))
            if json.dumps(a.get(k), sort_keys=True, default=str) != json.dumps(b.get(k), sort_keys=True, default=str)]


def held_fingerprint(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The fingerprint of the scan ``run_dir`` holds, or None (no directory, no scan)."""
    p = Path(run_dir) / FINGERPRINT
    return json.loads(p.read_text()) if p.is_file() else None


def held_meta(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``run.json`` a finished scan in ``run_dir`` wrote, or {} (none, or unreadable)."""
    try:
        meta = json.loads((Path(run_dir) / RUN_JSON).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def claim(run_dir: str | os.PathLike[str], fingerprint: dict[str, Any], *, force: bool = False,
          log: Any = None) -> str:  # fmt: skip
    """Make ``run_dir`` the home of the scan described by ``fingerprint`` (JSON-serialisable).

    * a new or empty directory (or one holding no scan): the fingerprint is written → ``"new"``;
    * the same fingerprint: ``"finished"`` when ``run.json`` exists (the results are recomputed
      from the saved recording), else ``"resume"``;
    * another fingerprint, or a scan written before fingerprints: :class:`RunDirConflict` naming
      what differs — unless ``force``, which removes what the earlier scan wrote (its review
      decisions are kept aside as ``reviews.db.replaced-<time>``, never deleted) → ``"new"``.
    """
    import shutil
    import time

    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    fp_path = path / FINGERPRINT
    fp = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
    held = [name for name in _OWNED if (path / name).exists()]
    if fp_path.is_file():
        old = json.loads(fp_path.read_text())
        if old == fp:
            return "finished" if (path / RUN_JSON).is_file() else "resume"
        why = f"a scan of another configuration (differs in: {', '.join(_diff_keys(old, fp))})"
    elif held:
        why = f"files of an earlier scan without a fingerprint ({', '.join(held)})"
    else:
        atomic_write_json(fp_path, fp)
        return "new"
    if not force:
        raise RunDirConflict(f"{path} holds {why}; choose another --out, or pass --force to replace it")
    for name in held:
        target = path / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for kept in [path / REVIEWS_DB, *sorted(path.glob(f"{CLEANED}.*"))]:  # the review's work: set aside
        if kept.is_file() and ".replaced-" not in kept.name:
            aside = kept.with_name(f"{kept.name}.replaced-{stamp}")
            kept.rename(aside)
            if log is not None:
                log(f"kept the earlier scan's {'review decisions' if kept.name == REVIEWS_DB else 'cleaned labels'} "
                    f"aside as {aside.name}")
    if log is not None:
        log(f"--force: replaced {why} in {path}")
    atomic_write_json(fp_path, fp)
    return "new"


def release(run_dir: str | os.PathLike[str], *, remove_dir: bool = True) -> None:
    """Undo a :func:`claim` that recorded nothing (a scan refused at a setting after claiming):
    the fingerprint goes when it is all the scan wrote, and the folder when that leaves it empty
    and ``remove_dir`` (the claim made it; a folder the user made stays)."""
    path = Path(run_dir)
    rec = path / RECORDING
    if rec.is_dir() and not any(p.is_file() for p in rec.rglob("*")):  # folders made, nothing recorded
        import shutil

        shutil.rmtree(rec)
    if [name for name in _OWNED if (path / name).exists()] != [FINGERPRINT]:
        return
    (path / FINGERPRINT).unlink()
    if remove_dir and not any(path.iterdir()):
        path.rmdir()


@dataclass
class Run:
    """A finished scan, read back from its directory."""

    path: Path
    meta: dict[str, Any]
    samples: pa.Table
    _images: ImageStore | None = field(default=None, repr=False)
    _source: Any = field(default=None, repr=False)  # the reopened array dataset (image_source)

    @property
    def classes(self) -> list[str]:
        return list(self.meta["data"]["classes"])

    @property
    def num_samples(self) -> int:
        return self.samples.num_rows

    @property
    def data_root(self) -> Path | None:
        root = self.meta["data"].get("root")
        return Path(root) if root else None

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        """Folders the run's image files may lie in, resolved: the scan's decision
        (``run.json`` ``data.allowed_roots``); a run written before it allows its data root."""
        roots = self.meta["data"].get("allowed_roots")
        if roots is None:
            roots = [self.data_root] if self.data_root is not None else []
        return tuple(Path(r).resolve() for r in roots)

    @property
    def max_pixels(self) -> int | None:
        """The pixel limit the scan read images with (None: the default of ``data.decode``)."""
        v = self.meta["data"].get("max_pixels")
        return None if v is None else int(v)

    @property
    def num_runs(self) -> int:
        return int(self.meta.get("runs", 1))

    @property
    def held_out(self) -> bool:
        """True when the dynamics were recorded out-of-fold (a cross-fitted scan)."""
        return (self.meta.get("protocol") or {}).get("dynamics") == "held-out"

    @property
    def recordings(self) -> str:
        """What was trained: ``"5 cross-fitted folds (held-out)"``, ``"2 runs"`` or ``"1 run"``."""
        proto = self.meta.get("protocol") or {}
        if proto.get("kind") == "crossfit":
            return f"{proto['folds']} cross-fitted folds (held-out)"
        k_fold = proto.get("kind") == "k-fold" or (self.path / CV_PROBS).exists()  # confident learning alone
        if self.num_runs == 0 and proto.get("folds") and k_fold:
            return f"{proto['folds']} cross-validated folds (out-of-fold probabilities)"
        if self.num_runs == 0:  # e.g. the kNN vote on frozen features
            return "no training"
        return f"{self.num_runs} run{'s' if self.num_runs != 1 else ''}"

    def column(self, name: str) -> np.ndarray:
        """One column of the samples table as a numpy array."""
        if name not in self.samples.column_names:
            raise ValueError(f"samples table has no column {name!r}; columns: {self.samples.column_names}")
        return self.samples.column(name).to_numpy(zero_copy_only=False)

    def score_columns(self) -> list[str]:
        """Names of the per-sample score columns stored in the table."""
        return list(self.meta.get("scores", []))

    def recorder(self, run_index: int = 0) -> Recorder:
        p = dynamics_path(self.path, run_index)
        if not p.exists():
            raise ValueError(f"run {self.path} has no saved dynamics for training run {run_index} ({p})")
        return Recorder.load(p)

    def recording(self) -> Recording:
        """Everything the scan recorded (runs, auxiliary masks, folds, embedding)."""
        return recording_dir(self.path).load()

    def dynamics(self, run_index: int = 0) -> Dynamics:
        """The recorded dynamics of training run ``run_index``."""
        return self.recorder(run_index).dynamics()

    def in_sample_dynamics(self, run_index: int = 0) -> Dynamics | None:
        """A cross-fitted run's in-sample companion dynamics, or None when it has none."""
        p = in_sample_path(self.path, run_index)
        return Recorder.load(p).dynamics() if p.exists() else None

    def is_auxiliary(self, run_index: int = 0) -> np.ndarray:
        """(N,) bool: samples relabeled to the auxiliary class in training run ``run_index``."""
        name = f"aux_run{run_index}"
        if name not in self.samples.column_names:
            return np.zeros(self.num_samples, dtype=bool)
        return self.column(name).astype(bool)

    def image_file(self, sample_id: int) -> Path | None:
        """The image file of a sample, resolved (symlinks followed) and checked to lie inside one
        of :attr:`allowed_roots` (``ValueError`` otherwise); None for array datasets (a run with no
        data root and no allowed root: whatever its path column says, e.g. a folder named ``hf:x``)."""
        src = str(self.samples.column("path")[int(sample_id)].as_py())
        roots = self.allowed_roots
        if not roots:
            return None
        p = Path(src)
        root = self.data_root
        if not p.is_absolute():
            if root is None:
                raise ValueError(f"sample {sample_id}: relative path {src!r} but the run has no data root")
            p = root / p
        p = p.resolve()
        if not any(p.is_relative_to(r) for r in roots):
            also = f" and the allowed roots {', '.join(map(str, roots[1:]))}" if len(roots) > 1 else ""
            raise ValueError(f"sample {sample_id}: image path {src!r} escapes the data root {root}{also}")
        return p

    def image(self, sample_id: int) -> np.ndarray:
        """A sample's image as (H, W, C) uint8 (C = 1 or 3): kept ``uint16`` pixels scaled by
        255/65535, as the scan's other sources are (:meth:`pixels` gives them as they are)."""
        from labeltrace.data import decode  # lazy: decoding lives at the data edge

        a, _ = self.pixels(sample_id)
        if a.dtype == np.uint8:
            return a
        return decode.to_uint8(a if a.dtype.kind == "f" else decode.array_to_float(a))

    def pixels(self, sample_id: int) -> tuple[np.ndarray, int]:
        """A sample's image as read, and the bits per sample its source stores (16: a 16-bit file
        or a ``uint16`` array, whose data may use a fraction of the range; else 8): an image file or
        the run's array source decoded to (H, W, C) float32 in [0, 1], or the pixels the run kept
        (in-memory arrays: uint16 for a uint16 array, else uint8)."""
        i = int(sample_id)
        if not 0 <= i < self.num_samples:
            raise ValueError(f"sample id {sample_id} out of range [0, {self.num_samples})")
        from labeltrace.data import decode  # lazy: decoding lives at the data edge

        f = self.image_file(i)
        if f is not None:
            return decode.decode_image(f, max_pixels=self.max_pixels), decode.stored_bits(f)
        files = (self.path / IMAGES, self.path / IMAGES_FLAT, self.path / IMAGES_INDEX)
        if self._images is None and ImageStore.exists(*files):  # in-memory arrays, or a run written before
            self._images = ImageStore(*files)
        if self._images is not None:
            a = self._images[i]
            return a, 16 if a.dtype == np.uint16 else 8
        if self._source is None:
            self._source = open_source(self.path, self.meta["data"].get("image_source"), self.num_samples)
        return self._source.load(i), source_bits(self._source)


def open_run(path: str | os.PathLike[str]) -> Run:
    """Read a run directory written by ``labeltrace scan``."""
    path = Path(path)
    meta_p = path / RUN_JSON
    if not meta_p.exists():
        raise ValueError(f"{path} is not a labeltrace run directory ({RUN_JSON} missing)")
    meta = json.loads(meta_p.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_p}: unsupported run format {meta.get('format')!r} (expected {FORMAT!r})")
    sp = path / SAMPLES
    if not sp.exists():
        raise ValueError(f"{path}: {SAMPLES} missing — the scan did not finish")
    return Run(path=path, meta=meta, samples=pq.read_table(sp))
