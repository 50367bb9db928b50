"""The run directory: its layout, its claim and its writers (the file names themselves live in
:mod:`labeltrace.run_layout`).

A scan writes, and the report, review app, exports and ``labeltrace score`` read::

    RUN_DIR/
      fingerprint.json     everything that determines the result, written when the scan starts
      command.json         the scan's command line, written when it claims the folder (a stopped
                           scan's folder names the command that resumes it)
      data_moved.json      where the images folder lies now, when it moved (labeltrace relocate)
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
      image_files.npy      image files: a stamp of each scanned file (labeltrace.run_files), so that
                           a file changed since the scan is refused, never shown as the scanned one
      queue.parquet        the relabel order the review app serves (labeltrace queue)
      reviews.db           the review app's decisions (SQLite)
      review_context.npz   the review page's context (reduced features, trajectories), cached
      report.html, report/ (--format png), export.csv / .parquet, labelstudio_tasks.json (+ .config.xml),
      fiftyone_images/     the report and exports at their default paths (a scan with --force
                           removes them with the rest; reviews.db stays, or is set aside)

Every write is atomic (temporary file in the same folder, then rename). A run directory never
silently mixes two configurations: :func:`~labeltrace.run_claim.claim` compares the fingerprint of
a new scan with the one the directory holds and refuses a different one unless told to replace it,
and one scan at a time writes it (:func:`~labeltrace.run_claim.writing`). The file names live in
:mod:`labeltrace.run_layout`; this module re-exports them with the claim and the writers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from labeltrace._io import atomic_write, read_json, write_json, write_table
from labeltrace.record import Dynamics, Recorder
from labeltrace.record.recording import Recording
from labeltrace.run_claim import (
    RunDirConflict,
    as_stored,
    claim,
    held_array,
    held_column,
    held_command,
    held_fingerprint,
    held_ids,
    held_meta,
    record_command,
    release,
    scan_running,
    writing,
)
from labeltrace.run_files import FileStamps
from labeltrace.run_images import ImageStore
from labeltrace.run_layout import (
    CLEANED,
    CV_PROBS,
    DUPLICATES,
    DUPLICATES_CSV,
    EXPORT_TABLE,
    FIFTYONE_IMAGES,
    FINGERPRINT,
    FORMAT,
    IMAGE_FILES,
    IMAGES,
    IMAGES_FLAT,
    IMAGES_INDEX,
    LABELSTUDIO_CONFIG,
    LABELSTUDIO_TASKS,
    MOVED,
    NEAR_DUPLICATES,
    NEAR_DUPLICATES_CSV,
    OWN_TRAINING,
    QUEUE,
    RECORDING,
    REPORT_HTML,
    REPORT_PNG,
    REVIEW_CONTEXT,
    REVIEWS_DB,
    RUN_JSON,
    SAMPLE_COLUMNS,
    SAMPLES,
    SAMPLES_CSV,
    SCAN_COMMAND,
    dynamics_path,
    in_sample_path,
    recording_dir,
)
from labeltrace.run_moved import apply_move, moved_path
from labeltrace.run_source import image_source, open_source, source_bits

# the run directory's one import for its callers: the layout's names, the claim and the writers
__all__ = [
    "CLEANED", "CV_PROBS", "DUPLICATES", "DUPLICATES_CSV", "NEAR_DUPLICATES", "NEAR_DUPLICATES_CSV", "EXPORT_TABLE", "FIFTYONE_IMAGES", "FINGERPRINT", "FORMAT",
    "IMAGES", "IMAGES_FLAT", "IMAGES_INDEX", "IMAGE_FILES", "LABELSTUDIO_CONFIG", "LABELSTUDIO_TASKS", "QUEUE", "RECORDING", "REPORT_HTML", "REPORT_PNG",
    "MOVED", "OWN_TRAINING", "REVIEWS_DB", "REVIEW_CONTEXT", "RUN_JSON", "SAMPLES", "SAMPLES_CSV", "SCAN_COMMAND", "SAMPLE_COLUMNS", "Run", "RunDirConflict", "file_mark", "scan_mark",
    "as_stored", "atomic_write", "claim", "dynamics_path", "held_array", "held_column", "held_command", "held_fingerprint", "held_ids", "held_meta", "image_source", "in_sample_path",
    "open_run", "record_command", "recording_dir", "release", "write_json", "write_table", "writing",
]  # fmt: skip


@dataclass
class Run:
    """A finished scan, read back from its directory."""

    path: Path
    meta: dict[str, Any] = field(repr=False)  # a notebook shows the path, not 13,000 characters
    samples: pa.Table = field(repr=False)
    _images: ImageStore | None = field(default=None, repr=False)
    _source: Any = field(default=None, repr=False)  # the reopened array dataset (image_source), or why not
    _stamps: FileStamps | None = field(default=None, repr=False)

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
    def own_training(self) -> bool:
        """True for a run :func:`labeltrace.write_run` (``labeltrace scan --recording``) wrote from a
        recording of your own training: no training of ours made it, and only yours repeats it."""
        return (self.meta.get("protocol") or {}).get("kind") == OWN_TRAINING

    @property
    def held_out(self) -> bool:
        """True when the dynamics were recorded out-of-fold (a cross-fitted scan)."""
        return (self.meta.get("protocol") or {}).get("dynamics") == "held-out"

    @property
    def _k_fold(self) -> bool:
        """The scan kept K-fold cross-validated probabilities (confident learning alone)."""
        return (self.meta.get("protocol") or {}).get("kind") == "k-fold" or (self.path / CV_PROBS).exists()

    @property
    def trained(self) -> str:
        """How the posterior behind the suggestions was made: ``"crossfit"`` (cross-fitted folds),
        ``"k-fold"`` (out-of-fold probabilities, no recording), ``"none"`` (no training: the kNN
        vote on frozen features) or ``"runs"`` (in-sample runs)."""
        proto = self.meta.get("protocol") or {}
        if proto.get("kind") == "crossfit":
            return "crossfit"
        if self.num_runs == 0:
            return "k-fold" if proto.get("folds") and self._k_fold else "none"
        return "runs"

    @property
    def recordings(self) -> str:
        """What was trained: ``"5 cross-fitted folds (held-out)"``, ``"2 runs"`` or ``"1 run"``."""
        folds = (self.meta.get("protocol") or {}).get("folds")
        return {"crossfit": f"{folds} cross-fitted folds (held-out)",
                "k-fold": f"{folds} cross-validated folds (out-of-fold probabilities)",
                "none": "no training"}.get(self.trained, f"{self.num_runs} run{'s' if self.num_runs != 1 else ''}")

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
        return Recorder.load(p, mmap=True)

    def recording(self) -> Recording:
        """Everything the scan recorded (runs, auxiliary masks, folds, embedding)."""
        rec = recording_dir(self.path)
        if not rec.path.exists() and self.num_runs == 0:  # cl / cleanlab, or the kNN vote on frozen features
            kept = "keeps only cross-validated probabilities" if self._k_fold else "trained no network"
            raise ValueError(f"{self.path} holds no recording of training dynamics: its detector "
                             f"{self.meta.get('detector', {}).get('name', '?')!r} {kept}; the queue, `labeltrace "
                             "score` and live re-ranking read a recording (scan with --detector crossfit, the "
                             "default, or an in-sample detector)")  # fmt: skip
        return rec.load()

    def dynamics(self, run_index: int = 0, *, held_out: bool | None = None) -> Dynamics:
        """The recorded dynamics of training run ``run_index``.

        A cross-fitted run (``--detector crossfit``, the default) recorded each sample two ways, so
        ``held_out`` must say which: True the held-out view (by the fold models that never trained on
        it: the queue's posterior), False the in-sample one (by those that train on it: what the
        table's trajectory scores such as ``sei`` and ``labeltrace score`` read). An in-sample run
        has the one view (``held_out`` None or False)."""
        if self.held_out:
            if held_out is None:
                raise ValueError(f"{self.path} is a cross-fitted run with two views of each sample: ask "
                                 "dynamics(held_out=True) for the held-out one (the queue's posterior) or "
                                 "dynamics(held_out=False) for the in-sample one (the table's sei and other "
                                 "trajectory scores)")  # fmt: skip
            if not held_out:
                ins = self.in_sample_dynamics(run_index)
                if ins is None:
                    raise ValueError(f"{self.path} kept no in-sample dynamics of its cross-fitted run")
                return ins
        elif held_out:
            raise ValueError(f"{self.path} is not cross-fitted: it has in-sample dynamics only (held_out=False)")
        return self.recorder(run_index).dynamics()

    def in_sample_dynamics(self, run_index: int = 0) -> Dynamics | None:
        """A cross-fitted run's in-sample companion dynamics, or None when it has none."""
        p = in_sample_path(self.path, run_index)
        return Recorder.load(p, mmap=True).dynamics() if p.exists() else None

    def is_auxiliary(self, run_index: int = 0) -> np.ndarray:
        """(N,) bool: samples relabeled to the auxiliary class in training run ``run_index``."""
        name = f"aux_run{run_index}"
        if name not in self.samples.column_names:
            return np.zeros(self.num_samples, dtype=bool)
        return self.column(name).astype(bool)

    def listed_image_path(self, sample_id: int) -> Path | None:
        """The image path of a sample as the dataset lists it, made absolute under the data root
        but not resolved (a symlink stays the link: what a tool serving files under a root, such as
        Label Studio's local files, is given); None for array datasets. Not checked: use
        :meth:`image_file` to read the file."""
        if not self.allowed_roots:
            return None
        src = str(self.samples.column("path")[int(sample_id)].as_py())
        p = Path(src)
        root = self.data_root
        moved_from = self.meta["data"].get("moved_from")
        if moved_from and root is not None:  # labeltrace relocate: absolute paths under the old root moved too
            p = moved_path(p, Path(moved_from), root)
        if not p.is_absolute():
            if root is None:
                raise ValueError(f"sample {sample_id}: relative path {src!r} but the run has no data root")
            p = root / p
        return Path(os.path.normpath(p))

    def image_file(self, sample_id: int) -> Path | None:
        """The image file of a sample, resolved (symlinks followed) and checked to lie inside one
        of :attr:`allowed_roots` (``ValueError`` otherwise); None for array datasets (a run with no
        data root and no allowed root: whatever its path column says, e.g. a folder named ``hf:x``)."""
        listed = self.listed_image_path(sample_id)
        if listed is None:
            return None
        src, root, roots = str(self.samples.column("path")[int(sample_id)].as_py()), self.data_root, self.allowed_roots
        p = listed.resolve()
        if not any(p.is_relative_to(r) for r in roots):
            also = f" and the allowed roots {', '.join(map(str, roots[1:]))}" if len(roots) > 1 else ""
            raise ValueError(f"sample {sample_id}: image path {src!r} escapes the data root {root}{also}")
        return p

    def scanned_image_file(self, sample_id: int) -> Path | None:
        """:meth:`image_file`, checked to be the file the scan read (its stamp,
        :mod:`labeltrace.run_files`; runs written before stamps were kept are not checked):
        ``ValueError`` naming the sample and the file when it changed since, ``FileNotFoundError``
        when it is gone (an export linking it would show nothing)."""
        f = self.image_file(sample_id)
        if f is not None:
            if not f.is_file():
                raise FileNotFoundError(f"sample {sample_id}: its image file {f} is not there (moved or deleted "
                                        "since the scan; labeltrace relocate RUN_DIR NEW_ROOT if the data moved)")
            if self._stamps is None and (self.path / IMAGE_FILES).is_file():
                self._stamps = FileStamps(self.path / IMAGE_FILES, self.num_samples)
            if self._stamps is not None:
                self._stamps.check(int(sample_id), f)
        return f

    def image(self, sample_id: int) -> np.ndarray:
        """A sample's image as (H, W, C) uint8 (C = 1 or 3): kept ``uint16`` pixels scaled by
        255/65535, as the scan's other sources are (:meth:`pixels` gives them as they are)."""
        from labeltrace.data import decode, transforms  # lazy: decoding lives at the data edge

        a, _ = self.pixels(sample_id)
        if a.dtype == np.uint8:
            return a
        return transforms.to_uint8(a if a.dtype.kind == "f" else decode.array_to_float(a))

    def pixels(self, sample_id: int) -> tuple[np.ndarray, int]:
        """A sample's image as read, and the bits per sample its source stores (16: a 16-bit file
        or a ``uint16`` array, whose data may use a fraction of the range; else 8): an image file or
        the run's array source decoded to (H, W, C) float32 in [0, 1], or the pixels the run kept
        (in-memory arrays: uint16 for a uint16 array, else uint8)."""
        i = int(sample_id)
        if not 0 <= i < self.num_samples:
            raise ValueError(f"sample id {sample_id} out of range [0, {self.num_samples})")
        from labeltrace.data import decode  # lazy: decoding lives at the data edge

        f = self.scanned_image_file(i)
        if f is not None:
            return decode.decode_image(f, max_pixels=self.max_pixels), decode.stored_bits(f)
        files = (self.path / IMAGES, self.path / IMAGES_FLAT, self.path / IMAGES_INDEX)
        if self._images is None and ImageStore.exists(*files):  # in-memory arrays, or a run written before
            self._images = ImageStore(*files)
        if self._images is not None:
            a = self._images[i]
            return a, 16 if a.dtype == np.uint16 else 8
        if isinstance(self._source, ValueError):  # refused once: not opened (and fingerprinted) again per image
            raise self._source
        if self._source is None:
            try:
                self._source = open_source(self.path, self.meta["data"].get("image_source"), self.num_samples,
                                           (self.meta.get("fingerprint") or {}).get("data"))
            except ValueError as exc:
                self._source = exc
                raise
        return self._source.load(i), source_bits(self._source)


def open_run(path: str | os.PathLike[str]) -> Run:
    """Read a run directory written by ``labeltrace scan``."""
    path = Path(path)
    meta_p = path / RUN_JSON
    if not meta_p.exists():
        if (path / FINGERPRINT).is_file():  # claimed by a scan that has not finished (stopped, or running)
            running = scan_running(path)
            if running is not None:
                raise ValueError(f"{path}: a scan is writing into it now{running}; wait for it to end "
                                 f"({RUN_JSON} is written at its end)")  # fmt: skip
            cmd = held_command(path)
            if "own_training" in (held_fingerprint(path) or {}):  # labeltrace.write_run's: nothing to resume
                raise ValueError(f"{path} holds a run written from your own training that has not finished: write it "
                                 "again (" + (f"`{cmd}`" if cmd else "write_run with the same recording") + ")")
            raise ValueError(f"{path} holds a scan that has not finished ({RUN_JSON} is written at its end): run "
                             + (f"its command again, `{cmd}`," if cmd else "the scan's command again")
                             + " to resume it from its last finished epoch (with --force too: it replaces a scan of "
                             "another configuration, and resumes this one's), or scan into another --out to start "
                             "over")  # fmt: skip
        raise ValueError(f"{path} is not a labeltrace run directory ({RUN_JSON} missing)")
    meta = read_json(meta_p, "; scan again into the folder to write it anew")
    if not isinstance(meta, dict) or (meta.get("format") == FORMAT and not (
            isinstance(meta.get("data"), dict) and isinstance(meta["data"].get("classes"), list)
            and isinstance(meta.get("detector"), dict))):  # fmt: skip
        # JSON of another shape ('[]', null, a run.json cut down by hand): AttributeError, KeyError 'data'
        raise ValueError(f"{meta_p} is damaged: not a run's description (an object with its data, classes and "
                         "detector); scan again into the folder to write it anew")  # fmt: skip
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_p}: unsupported run format {meta.get('format')!r} (expected {FORMAT!r})")
    sp = path / SAMPLES
    if not sp.exists():
        raise ValueError(f"{path}: {SAMPLES} missing — the scan did not finish")
    return Run(path=path, meta=apply_move(path, meta), samples=pq.read_table(sp))  # its images moved: read there


def scan_mark(run_dir: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """Which scan ``run_dir`` holds now: its ``run.json``'s :func:`file_mark`. A scan writes
    ``run.json`` last and anew (an atomic replace), so any later scan into the folder (``--force``,
    or the same one run again) changes the mark."""
    return file_mark(Path(run_dir) / RUN_JSON)


def file_mark(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """Which file ``path`` is now: its inode, modification time and size, or None when there is
    none (a file replaced or rewritten since has another mark)."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
