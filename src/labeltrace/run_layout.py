"""The run directory's layout: its file names and the samples table's columns (the folder itself is
described in :mod:`labeltrace.rundir`)."""

from __future__ import annotations

import os
from pathlib import Path

from labeltrace.record.recording import RecordingDir

__all__ = [
    "CLEANED", "CV_PROBS", "DUPLICATES", "DUPLICATES_CSV", "NEAR_DUPLICATES", "NEAR_DUPLICATES_CSV", "EXPORT_TABLE", "FIFTYONE_IMAGES", "FINGERPRINT", "FORMAT", "IMAGES", "IMAGES_FLAT",
    "IMAGES_INDEX", "IMAGE_FILES", "LABELSTUDIO_CONFIG", "LABELSTUDIO_TASKS", "OWNED", "QUEUE", "RECORDING", "REPORT_HTML", "REPORT_PNG",
    "MOVED", "OWN_TRAINING", "REVIEWS_DB", "REVIEW_CONTEXT", "RUN_JSON", "SAMPLES", "SCAN_COMMAND", "SAMPLES_CSV", "SAMPLE_COLUMNS", "dynamics_path",
    "in_sample_path", "recording_dir",
]  # fmt: skip

FORMAT = "labeltrace.run/1"
FINGERPRINT = "fingerprint.json"
#: the command line of the scan that claimed the folder (a stopped scan's, to rerun it)
SCAN_COMMAND = "command.json"
#: where the images folder lies now, when it moved since the scan (labeltrace relocate)
MOVED = "data_moved.json"
RECORDING = "dynamics"
#: run.json's ``protocol.kind`` and ``model`` of a run written from the user's own training
#: (labeltrace.write_run), not by a scan
OWN_TRAINING = "own training"
CV_PROBS = "cv_probs.npy"
RUN_JSON = "run.json"
SAMPLES = "samples.parquet"
SAMPLES_CSV = "samples.csv"
#: the groups of exact duplicate images (labeltrace.data.duplicates), written when the data holds any
DUPLICATES = "duplicates.parquet"
DUPLICATES_CSV = "duplicates.csv"
#: the groups of likely copies (labeltrace.data.near_duplicates: re-encoded, resized, edited), written when there are any
NEAR_DUPLICATES = "near_duplicates.parquet"
NEAR_DUPLICATES_CSV = "near_duplicates.csv"
IMAGES = "images.npy"
#: in-memory images of several sizes: all pixels one after another, and (offset, h, w, c) per image
IMAGES_FLAT = "images_flat.npy"
IMAGES_INDEX = "images_index.npy"
#: the scanned image files' stamps (labeltrace.run_files): a file changed since is not shown
IMAGE_FILES = "image_files.npy"
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


#: what a scan writes into its run directory, and the exports' caches of it (``--force`` removes
#: these, and only these)
OWNED = (FINGERPRINT, SCAN_COMMAND, MOVED, RUN_JSON, SAMPLES, SAMPLES_CSV, DUPLICATES, DUPLICATES_CSV, NEAR_DUPLICATES,
         NEAR_DUPLICATES_CSV, IMAGES, IMAGES_FLAT, IMAGES_INDEX, IMAGE_FILES, CV_PROBS, QUEUE,
         REVIEW_CONTEXT, RECORDING,
         FIFTYONE_IMAGES, REPORT_HTML, REPORT_PNG, LABELSTUDIO_TASKS, LABELSTUDIO_CONFIG, f"{EXPORT_TABLE}.csv",
         f"{EXPORT_TABLE}.parquet")  # no generic name such as "checkpoints": --force never removes a user's folder
