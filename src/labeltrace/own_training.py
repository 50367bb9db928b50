"""A run directory from a training you ran yourself: the report, the review page, the exports and
the queue for a :class:`~labeltrace.Recorder`'s recording.

:func:`write_run` takes the images (a :class:`~labeltrace.data.ImageDataset`, the samples in the
order your training's sample ids number them) and the recorder of a plain training on them (your
loop's, or the Lightning / HF callback's ``.recorder``), scores and flags the samples as
:func:`~labeltrace.find_suspects` does — the one-training mode, at no extra training — and writes
the run directory ``labeltrace scan`` writes: ``samples.parquet``, ``run.json`` and the recording
itself (copied in, so the directory stands alone), which ``labeltrace report``, ``review``,
``export``, ``queue`` and ``score`` read as they read a scan's (:mod:`labeltrace.rundir`).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labeltrace import rundir as rd
from labeltrace._checks import listing
from labeltrace._io import digest
from labeltrace.data import ImageDataset
from labeltrace.decide import detectors
from labeltrace.decide.own_run import one_run_evidence, with_count
from labeltrace.models.inputs import data_identity
from labeltrace.record import Dynamics, Recorder
from labeltrace.record.recording import RecordedRun, Recording
from labeltrace.relabel.store_file import bound_to
from labeltrace.run_files import write_stamps
from labeltrace.run_layout import OWN_TRAINING

if TYPE_CHECKING:
    from labeltrace.scan import ScanResult

__all__ = ["OWN_TRAINING", "write_run"]

#: the last kept epochs the suggested labels average (the scan's ``suggest_last`` default)
SUGGEST_LAST = 5


def write_run(ds: ImageDataset, recorder: Any, out: str | os.PathLike[str], *, features: Any = None,
              detector: str = "single", knn_k: int = 10, true_labels: Any = None, seconds: float | None = None,
              origin: dict[str, Any] | None = None, command: list[str] | None = None, force: bool = False,
              csv: bool = False, log: Callable[[str], None] = print) -> ScanResult:  # fmt: skip
    """Score and flag the samples of your own training and write the run directory ``out``;
    returns a :class:`labeltrace.scan.ScanResult`.

    ``ds``: the images trained on, sample ``i`` the one your training recorded under id ``i``
    (``labeltrace.data.from_folder``, ``from_manifest``, ``from_arrays``, ...); its classes in
    the order of your model's logits. The labels the recorder holds must be the dataset's: a
    sample recorded with another label is named in the error (a dataset read in another order
    than your training's, or classes in another order).
    ``recorder``: a :class:`~labeltrace.Recorder` (or the path of one saved with ``rec.save``,
    or an object with a ``.recorder``: the Lightning and HF callbacks, a ``DistributedRecorder``
    on rank 0) of a plain training — no auxiliary class — every sample recorded in a closed
    epoch. Updates of an epoch not closed are left out, with a warning. The recording is copied
    into ``out`` (its per-epoch files too): the recorder is not changed and ``out`` stands alone.
    ``features``, ``detector``, ``knn_k``: as :func:`labeltrace.find_suspects` (the features,
    e.g. your network's penultimate embedding, are kept as the run's embedding: the queue and
    the review page's live re-ranking read them). ``true_labels``: known clean labels, one class
    id per sample, for the detection metrics. ``seconds``: what the training took (run.json's
    cost), when you know. ``origin``, ``command``: as :func:`labeltrace.scan.scan`'s; ``csv``:
    also write ``samples.csv``.

    ``out`` is claimed as a scan's: a directory holding another run is refused
    (:class:`labeltrace.rundir.RunDirConflict`) unless ``force`` (review decisions about the same
    samples and classes are kept); writing the same recording again rewrites the results.
    """
    from labeltrace.scan import ScanResult, _check_truth
    from labeltrace.scan_outputs import write_results
    from labeltrace.scan_settings import ScanConfig

    t_start = time.perf_counter()
    if not isinstance(ds, ImageDataset):
        raise TypeError(f"ds must be an ImageDataset (labeltrace.data.from_folder(path), from_manifest(csv), "
                        f"from_arrays(images, labels), ...), got {type(ds).__name__}")  # fmt: skip
    rec = _recorder(recorder)
    dyn = rec.dynamics()
    _check_same_samples(ds, dyn)
    truth = _check_truth(ds, ScanConfig(), true_labels)
    if seconds is not None and not (isinstance(seconds, int | float) and np.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"seconds must be a finite number >= 0 (the training's wall time), got {seconds!r}")
    ev = one_run_evidence(dyn, features=features, detector=detector, knn_k=knn_k, groups=ds.groups)
    det = with_count(detectors.detect(detector, ev))  # before the folder is touched: errors are the user's
    given = ds.labels.copy()
    out = Path(out)
    fp = {"own_training": _recording_key(dyn), "data": data_identity(ds), "classes": list(ds.classes),
          "labels": digest(given.astype(np.int64)),
          "truth": None if truth is None else digest(truth.astype(np.int64)), "detector": detector, "knn_k": knn_k,
          "features": None if not ev.has("features") else digest(np.ascontiguousarray(ev.features)),
          **({"groups": digest(list(ds.groups))} if ds.groups is not None else {})}  # fmt: skip

    def fits(db: Path) -> bool:  # the review's decisions stay when they are about these images
        return bound_to(db, classes=list(ds.classes), ids=list(ds.ids), held_ids=rd.held_ids(out))

    with rd.writing(out):
        made = rd.claim(out, fp, force=force, log=log, reviews_fit=fits)
        if command and made != "finished":
            rd.record_command(out, command)
        if ds.root is not None and not (out / rd.IMAGE_FILES).is_file():
            unread = write_stamps([ds.root / s for s in ds.sources], out / rd.IMAGE_FILES)
            if unread:
                log(f"warning: {len(unread)} image files could not be read to stamp them, and will not be shown: "
                    f"{listing(unread)}")  # fmt: skip
        acc = _final_accuracy(dyn)
        embedding = None if not ev.has("features") else np.asarray(ev.features, dtype=np.float32)
        recording = Recording(kind="in-sample", runs=(RecordedRun(dyn, np.zeros(len(ds), bool), ds.n_classes),),
                              num_classes=ds.n_classes, seconds=(float(seconds or 0.0),), accuracy=(acc,),
                              embedding=embedding, fingerprint={"data": digest(fp)})  # fmt: skip
        rd.recording_dir(out).save(recording, [rec], embed=True)
        post = _posterior(dyn, ev)
        described: dict[str, Any] = {
            "command": command, "config": {"detector": detector, "knn_k": knn_k, "suggest_last": SUGGEST_LAST},
            "model": OWN_TRAINING, "model_probe": None, "resolution_probe": None,
            "train": {"epochs": dyn.num_epochs, "final_train_accuracy": [acc],
                      "recorder": {"mode": rec.mode, "keep_probs": rec.keep_probs}},
            "inputs": {"kind": OWN_TRAINING},
            "protocol": {"kind": OWN_TRAINING, "runs": 1, "dynamics": "in-sample", "epochs_planned": dyn.num_epochs,
                         "epochs_trained": dyn.num_epochs, "early_stop": {"enabled": False}},
            "seed": None, "distributed": {"world_size": 1, "backend": None},
            "cost": {"trainings": 1, "seconds": None if seconds is None else float(seconds),
                     "note": "your own training: no training beyond it"},
        }  # fmt: skip
        timings = {"train": 0.0}
        table, meta = write_results(
            out, ds, rec=recording, ev=ev, det=det, post=post, given=given, truth=given if truth is None else truth,
            noise_info=None if truth is None else {"spec": "known true labels",
                                                   "realised_rate": float((truth != given).mean()),
                                                   "n_flipped": int((truth != given).sum())},
            origin=origin, fingerprint=fp, timings=timings, t_start=t_start, described=described, csv=csv,
            model=None,
        )  # fmt: skip
    return ScanResult(out, table, meta, det, timings)


def _recorder(recorder: Any) -> Recorder:
    """The recorder to write: a copy (the caller's is never changed) whose pending updates of an
    unclosed epoch are dropped, with a warning."""
    if isinstance(recorder, str | os.PathLike):
        with warnings.catch_warnings():  # a file saved mid-epoch: said below, in this call's terms
            warnings.filterwarnings("ignore", message=".*was saved mid-epoch", category=UserWarning)
            rec = Recorder.load(recorder)
    elif isinstance(recorder, Recorder):
        rec = Recorder.from_state_dict(recorder.state_dict())
    elif isinstance(getattr(recorder, "recorder", None), Recorder):  # the callbacks, a DistributedRecorder
        rec = Recorder.from_state_dict(recorder.recorder.state_dict())
    else:
        raise TypeError(f"recorder must be a labeltrace Recorder, the path of one saved with rec.save(path), or a "
                        f"callback holding one (.recorder), got {type(recorder).__name__}")  # fmt: skip
    if rec.num_epochs == 0:
        raise ValueError("the recorder holds no closed epoch: close each epoch with rec.end_epoch() after its "
                         "rec.update calls, then write the run")  # fmt: skip
    if rec.epoch_in_progress:
        warnings.warn(f"the recorder holds updates of an epoch not closed (epoch {rec.num_epochs}); the run holds "
                      f"the {rec.num_epochs} closed epochs only (rec.end_epoch() closes it)", UserWarning,
                      stacklevel=3)  # fmt: skip
        rec.clear_pending()
    return rec


def _check_same_samples(ds: ImageDataset, dyn: Dynamics) -> None:
    """The recording is of ``ds``: as many samples, as many classes, the same label for each
    sample it recorded (a sample never recorded is refused by the count's own check)."""
    n, k = len(ds), ds.n_classes
    if dyn.num_samples != n:
        raise ValueError(f"the recorder holds {dyn.num_samples:,} samples, the dataset {n:,}: record with "
                         "Recorder(num_samples=len(dataset)), each sample under its position in the dataset")  # fmt: skip
    if dyn.num_classes != k:
        extra = (" (one more: a model with an auxiliary class; write_run reads plain trainings)"
                 if dyn.num_classes == k + 1 else "")
        raise ValueError(f"the recorder holds {dyn.num_classes} classes{extra}, the dataset {k} "
                         f"({listing(ds.classes)}): record with Recorder(num_classes=len(dataset.classes)), the "
                         "logits in the dataset's class order")  # fmt: skip
    rec_labels = np.asarray(dyn.labels)
    bad = np.flatnonzero((rec_labels >= 0) & (rec_labels != ds.labels))
    if bad.size:
        shown = [f"{i} ({ds.ids[i]}: recorded {ds.classes[rec_labels[i]]!r}, the dataset's {ds.classes[ds.labels[i]]!r})"
                 for i in bad[:5]]  # fmt: skip
        raise ValueError(f"{bad.size:,} of {n:,} samples were recorded with another label than the dataset gives "
                         f"them: {listing(shown, 5)}. Sample i of the dataset must be the one your training "
                         "recorded under id i, and label ids must follow the dataset's classes "
                         f"({listing(ds.classes)}): read the dataset in your training's order (e.g. a manifest "
                         "listing the files in that order), or record with its ids")  # fmt: skip


def _recording_key(dyn: Dynamics) -> str:
    """A digest of what the recording holds (its labels, epochs and per-sample means)."""
    return digest({"epochs": dyn.num_epochs, "labels": digest(np.asarray(dyn.labels, np.int64)),
                   "n_seen": digest(np.asarray(dyn.n_seen, np.int64)),
                   "loss": digest(np.asarray(dyn.mean("loss"), np.float64))})  # fmt: skip


def _final_accuracy(dyn: Dynamics) -> float:
    """The share of the samples seen in the last epoch the model then predicted as labelled."""
    correct = np.asarray(dyn.at("correct", dyn.num_epochs - 1), np.float64)
    seen = ~np.isnan(correct)
    return float(correct[seen].mean()) if seen.any() else float("nan")


def _posterior(dyn: Dynamics, ev: Any) -> np.ndarray:
    """The posterior behind the suggested labels: the mean softmax of the last kept epochs
    (:data:`SUGGEST_LAST` at most); a sample not seen in them, the mean over every epoch it was
    seen in; without a kept softmax, the kNN label shares of the features."""
    if dyn.kept_epochs == 0:
        if not ev.has("features"):
            raise ValueError("the recorder kept no softmax (Recorder(keep_probs=0)), which the suggested labels "
                             "read: record with keep_probs >= 1 (the default 5), or pass features=") from None
        return np.asarray(ev.knn_shares())
    post = dyn.posterior(last=min(SUGGEST_LAST, dyn.kept_epochs))
    gap = np.isnan(post).any(axis=1)
    if gap.any():
        post[gap] = dyn.mean_posterior()[gap]
    return post
