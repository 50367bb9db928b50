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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labeltrace import rundir as rd
from labeltrace._checks import check_finite_float, counted, id_list, listing
from labeltrace._io import digest
from labeltrace.data import ImageDataset
from labeltrace.data.duplicates import neighbour_groups
from labeltrace.data.errors import DataWarning
from labeltrace.data.near_duplicates import dataset_copies
from labeltrace.decide import detectors
from labeltrace.decide.evidence import posterior
from labeltrace.decide.own_run import one_run_evidence, with_count
from labeltrace.models.inputs import data_identity
from labeltrace.record import Dynamics, Recorder
from labeltrace.record.recording import RecordedRun, Recording
from labeltrace.relabel.store_file import bound_to
from labeltrace.run_files import write_stamps
from labeltrace.run_layout import OWN_TRAINING
from labeltrace.scan_settings import ScanConfig

if TYPE_CHECKING:
    from labeltrace.scan import ScanResult

__all__ = ["OWN_TRAINING", "read_recorder", "write_run"]

#: the last kept epochs the suggested labels average (the scan's ``suggest_last`` default)
SUGGEST_LAST: int = ScanConfig.suggest_last


def write_run(ds: ImageDataset, recorder: Any, out: str | os.PathLike[str], *, features: Any = None,
              detector: str = "single", knn_k: int = 10, paths: Sequence[Any] | None = None,
              true_labels: Any = None, seconds: float | None = None, origin: dict[str, Any] | None = None,
              command: list[str] | None = None, force: bool = False, csv: bool = False,
              log: Callable[[str], None] = print) -> ScanResult:  # fmt: skip
    """Score and flag the samples of your own training and write the run directory ``out``;
    returns a :class:`labeltrace.scan.ScanResult`.

    ``ds``: the images trained on, sample ``i`` the one your training recorded under id ``i``
    (``labeltrace.data.from_folder``, ``from_manifest``, ``from_arrays``, ...); its classes in
    the order of your model's logits. ``paths``: the image file your training recorded as id
    ``i``, for every ``i`` (e.g. ``[p for p, _ in image_folder.samples]``), optional: ``ds`` is
    then read in that order. Without it the labels the recorder holds must be the dataset's: a
    sample recorded with another label is named in the error — but two samples of one class in
    swapped places cannot be told apart, so pass ``paths`` unless your training reads its images
    through ``ds`` (or a manifest lists them in your training's order).
    ``recorder``: a :class:`~labeltrace.Recorder` (or the path of a file ``rec.save(path)``
    wrote, a ``rec.state_dict()``, or an object with a ``.recorder``: the Lightning and HF
    callbacks, a ``DistributedRecorder`` on rank 0) of a plain training — no auxiliary class —
    every sample recorded in a closed epoch, its softmax kept (``keep_probs`` >= 1, the
    default 5: the suggested labels, the queue and the review page read it). Updates of an epoch
    not closed are left out, with a warning. The recording is copied into ``out`` (its
    per-epoch files too): the recorder is not changed and ``out`` stands alone.
    ``features``, ``detector``, ``knn_k``: as :func:`labeltrace.find_suspects` (the features,
    e.g. your network's penultimate embedding, are kept as the run's embedding: the queue and
    the review page's live re-ranking read them; without them ``knn_k`` is not read, said in
    ``log``, and the run records its default, so the same run written without it is this one);
    ``ds.groups`` as its ``groups``.
    ``true_labels``: known clean labels, one class id per sample, for the detection metrics.
    ``seconds``: the wall seconds your training took (run.json's ``cost.seconds``: for a scan the time
    of its trainings alone), when you know (null otherwise). ``origin``,
    ``command``: as :func:`labeltrace.scan.scan`'s; ``csv``: also write ``samples.csv``. ``log``: where
    the progress lines go (default ``print``; ``lambda s: None`` silences them). What the data and the
    recording deserve a word about (a class the model contradicts, samples seen in few epochs) is
    said as Python warnings, which ``log`` does not take: filter them with :mod:`warnings`; run.json's
    ``warnings`` keeps them.

    Everything is checked before ``out`` is touched. ``out`` is claimed as a scan's: a directory
    holding another run is refused (:class:`labeltrace.rundir.RunDirConflict`) unless ``force``
    (review decisions about the same samples and classes are kept); writing the same recording
    again rewrites the results.
    """
    from labeltrace.scan import ScanResult
    from labeltrace.scan_labels import known_truth, known_truth_info
    from labeltrace.scan_outputs import held_copies, write_results

    t_start = time.perf_counter()
    if not isinstance(ds, ImageDataset):
        raise TypeError(f"ds must be an ImageDataset (labeltrace.data.from_folder(path), from_manifest(csv), "
                        f"from_arrays(images, labels), ...), got {type(ds).__name__}")  # fmt: skip
    out = Path(out)
    rec = read_recorder(recorder)
    if rec.directory is not None and _inside(rec.directory, out):
        raise ValueError(f"the recorder keeps its per-epoch files in {rec.directory}, inside out {out}, which the run "
                         "directory's own files replace: write the run elsewhere (its copy of the recording goes "
                         f"to {out / rd.RECORDING})")  # fmt: skip
    if paths is not None:
        ds = _in_order(ds, paths)
    dyn = rec.dynamics()
    _check_same_samples(ds, dyn)
    truth = known_truth(ds, true_labels)
    seconds = _seconds(seconds)
    with warnings.catch_warnings(record=True) as caught:  # said, and kept in run.json for the report
        warnings.simplefilter("always")
        if paths is None and (note := _order_note(ds)) is not None:
            warnings.warn(note, DataWarning, stacklevel=2)
        # a copy is its twin's nearest neighbour: the kNN leaves it out (read back from this run of these files)
        held = held_copies(out, ds)
        copies = dataset_copies(ds) if held is None else held
        ev = one_run_evidence(dyn, features=features, detector=detector, knn_k=knn_k,
                              groups=neighbour_groups(ds.groups, copies.exact, None if features is None else knn_k))
        det = with_count(detectors.detect(detector, ev))
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if features is None and knn_k != ScanConfig.knn_k:  # as a scan's setting its detector does not read
        log(f"knn_k {knn_k}: not used without features (it counts each sample's neighbours in them)")
        knn_k = ScanConfig.knn_k  # the fingerprint holds the default: the same run without it is this one
    noted = [*ds.notes, *(str(w.message) for w in caught if issubclass(w.category, UserWarning | RuntimeWarning))]
    run = RecordedRun(dyn, np.zeros(len(ds), bool), ds.n_classes)
    post = posterior([run], last=min(SUGGEST_LAST, dyn.kept_epochs))
    acc = _final_accuracy(dyn)
    if (empty := _empty_epochs(dyn, acc)).size:
        last = empty[-1] == dyn.num_epochs - 1
        noted.append(f"{empty.size} of the {dyn.num_epochs} recorded epochs (counted from 1: {id_list(empty + 1)}) "
                     "recorded no sample (end_epoch() called twice?): each sample's scores average the epochs it "
                     "was seen in" + ("; the final training accuracy is unknown" if last else ""))
    given = ds.labels.copy()
    embedding = None if not ev.has("features") else np.asarray(ev.features, dtype=np.float32)
    fp = {"own_training": _recording_key(dyn), "data": data_identity(ds), "classes": list(ds.classes),
          "labels": digest(given.astype(np.int64)),
          "truth": None if truth is None else digest(truth.astype(np.int64)), "detector": detector, "knn_k": knn_k,
          "features": None if embedding is None else digest(np.ascontiguousarray(ev.features)),
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
        recording = Recording(kind="in-sample", runs=(run,), num_classes=ds.n_classes,
                              seconds=(float("nan") if seconds is None else seconds,), accuracy=(acc,),
                              embedding=embedding,
                              fingerprint={"data": digest(fp)})  # fmt: skip
        rd.recording_dir(out).save(recording, [rec], embed=True)
        described: dict[str, Any] = {
            "command": command, "config": {"detector": detector, "knn_k": knn_k, "suggest_last": SUGGEST_LAST},
            "model": OWN_TRAINING, "model_probe": None, "resolution_probe": None,
            "train": {"epochs": dyn.num_epochs, "final_train_accuracy": [acc],
                      "recorder": {"mode": rec.mode, "keep_probs": rec.keep_probs}},
            "inputs": {"kind": OWN_TRAINING},
            "protocol": {"kind": OWN_TRAINING, "runs": 1, "dynamics": "in-sample", "epochs_planned": dyn.num_epochs,
                         "epochs_trained": dyn.num_epochs, "early_stop": {"enabled": False}},
            "seed": None, "distributed": {"world_size": 1, "backend": None},
            "cost": {"trainings": 1, "seconds": seconds, "note": "your own training: no training beyond it"},
        }  # fmt: skip
        timings: dict[str, float] = {}  # no training here: its time is cost.seconds, when given
        table, meta = write_results(
            out, ds, rec=recording, ev=ev, det=det, post=post, given=given, truth=given if truth is None else truth,
            noise_info=None if truth is None else known_truth_info(given, truth),
            origin=origin, fingerprint=fp, timings=timings, t_start=t_start, described=described, csv=csv,
            model=OWN_TRAINING, noted=noted, copies=copies,
        )  # fmt: skip
    return ScanResult(out, table, meta, det, timings)


def read_recorder(recorder: Any) -> Recorder:
    """The recorder :func:`write_run` writes, from what it was given (its docstring); the caller's
    own is used as it is (never changed), or copied when it holds updates of an unclosed epoch,
    which are dropped with a warning."""
    obj = recorder
    for _ in range(3):  # a callback's .recorder, which under DDP is a DistributedRecorder's
        if isinstance(obj, Recorder | dict | str | os.PathLike):
            break
        try:
            inner = getattr(obj, "recorder", None)
        except RuntimeError as exc:  # a DistributedRecorder on another rank than 0
            raise RuntimeError(f"write_run: {exc}: call it on rank 0 only (if trainer.is_global_zero: / if "
                               "rec.is_writer:), which writes the run directory") from None
        if inner is None:
            break
        obj = inner
    if isinstance(obj, dict) and isinstance(obj.get("recorder"), dict):  # a checkpoint's entry holding one:
        if not obj["recorder"]:  # a DistributedRecorder's state on a rank other than 0
            raise ValueError("the recorder state is empty: a DistributedRecorder's on a rank other than 0; save "
                             "the checkpoint, or call write_run, on rank 0")  # fmt: skip
        if "meta" in obj["recorder"]:  # a Lightning callback's {"recorder": ..., "pending_epoch": ...}
            obj = obj["recorder"]
    if isinstance(obj, str | os.PathLike):
        rec = _load(Path(obj))
    elif isinstance(obj, dict):
        rec = Recorder.from_state_dict(obj)
    elif isinstance(obj, Recorder):
        rec = obj
    else:
        raise TypeError(f"recorder must be a labeltrace Recorder, the path of a file rec.save(path) wrote, a "
                        f"rec.state_dict(), or a callback holding one (.recorder), got {type(recorder).__name__}")
    if rec.num_epochs == 0:
        raise ValueError("the recorder holds no closed epoch: close each epoch with rec.end_epoch() after its "
                         "rec.update calls, then write the run")  # fmt: skip
    if rec.keep_probs == 0:
        raise ValueError("the recorder kept no softmax (Recorder(keep_probs=0)), which the suggested labels, the "
                         "queue and the review page read: record with keep_probs >= 1 (the default 5)")
    if rec.epoch_in_progress:
        warnings.warn(f"the recorder holds updates of an epoch not closed (epoch {rec.num_epochs + 1}); the run "
                      f"holds the {counted(rec.num_epochs, 'closed epoch')} before it only (rec.end_epoch() closes "
                      "it)", DataWarning,
                      stacklevel=3)  # fmt: skip
        rec = Recorder.from_state_dict(rec.state_dict()) if rec is obj else rec
        rec.clear_pending()
    return rec


def _load(p: Path) -> Recorder:
    """A recorder file ``rec.save(path)`` wrote; a folder or another file is named as such."""
    if p.is_dir():
        raise ValueError(f"{p} is a folder: give the file rec.save(path) wrote (a .npz); the folder of a "
                         "Recorder(directory=...) holds its per-epoch arrays, not the recorder")
    try:
        with warnings.catch_warnings():  # a file saved mid-epoch: said by read_recorder, in this call's terms
            warnings.filterwarnings("ignore", message=".*was saved mid-epoch", category=UserWarning)
            return Recorder.load(p)
    except FileNotFoundError:
        raise ValueError(f"{p}: no such recorder file (the file rec.save(path) wrote)") from None
    except (ValueError, OSError, KeyError) as exc:
        raise ValueError(f"{p} is not a recorder file rec.save(path) wrote ({exc}); a recorder kept in a torch "
                         "checkpoint (rec.state_dict(tensors=True)): pass write_run torch.load(path)[key] — a Lightning "
                         "checkpoint's: torch.load(path)['callbacks'][<the callback's name, e.g. 'RecorderCallback'>]"
                         " — or save it with rec.save('recorder.npz') first; from the shell: python -c \"import torch; "
                         "from labeltrace import Recorder; Recorder.from_state_dict(torch.load('last.ckpt')['callbacks']"
                         "['RecorderCallback']['recorder']).save('recorder.npz')\"") from None


def _seconds(seconds: Any) -> float | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool | np.bool_) or check_finite_float(seconds, "seconds") < 0:
        raise ValueError(f"seconds must be a finite number >= 0 (the training's wall time), got {seconds!r}")
    return float(seconds)


def _inside(path: Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def _order_note(ds: ImageDataset) -> str | None:
    """A warning when ``ds`` looks read from a folder (its samples class by class, each class's
    files sorted by path parts, as ``from_folder`` lists them) whose order torchvision's
    ``ImageFolder`` would list otherwise (files beside sub-folders): a training that numbered its
    samples by an ``ImageFolder`` recorded other images under these ids, unseen by the label check."""
    if ds.root is None or len(ds) < 2 or (np.diff(ds.labels) < 0).any():
        return None
    parts = [tuple(Path(s).parts) for s in ds.sources]
    by_parts = sorted(range(len(ds)), key=lambda i: (ds.labels[i], parts[i]))
    if by_parts != list(range(len(ds))):  # not a folder's listing (a manifest's own order)
        return None
    theirs = sorted(range(len(ds)), key=lambda i: (ds.labels[i], str(Path(*parts[i][:-1])), parts[i][-1]))
    if theirs == by_parts:
        return None
    first = next(i for i, (a, b) in enumerate(zip(by_parts, theirs, strict=True)) if a != b)
    return (f"the images lie in nested class folders, which torchvision's ImageFolder lists in another order "
            f"than this dataset (its sample {first} is {ds.sources[theirs[first]]!r}, here {ds.sources[first]!r}): "
            "if your training numbered its samples by an ImageFolder, its scores are written onto other images "
            "of the same class (no label check can see that) — pass write_run paths=[p for p, _ in "
            "folder.samples], or give labeltrace scan --recording a manifest (DATA as .csv) listing the files "
            "in your training's order")


def _in_order(ds: ImageDataset, paths: Sequence[Any]) -> ImageDataset:
    """``ds`` read in the order of ``paths`` (one image file per recorded id; a relative path is
    read against the dataset's root, else the working directory), every file one of its samples,
    each once."""
    if ds.kind != "files":
        raise ValueError("paths= orders a dataset of image files; this one holds in-memory images: build it in "
                         "your training's order")  # fmt: skip
    where = {ds.path(i).resolve(): i for i in range(len(ds))}  # type: ignore[union-attr]
    def found(p: Any) -> Path:
        p = Path(p).expanduser()
        under = (ds.root / p).resolve() if ds.root is not None and not p.is_absolute() else None
        here = p.resolve()
        if under in where and here in where and under != here:
            raise ValueError(f"path {p} names two of the dataset's images, one under its root {ds.root} and one "
                             "under the working directory: give absolute paths")  # fmt: skip
        return under if under in where else here

    asked = [found(p) for p in paths]
    missing = [str(p) for p in asked if p not in where]
    if missing:
        raise ValueError(f"{len(missing)} of the {len(asked)} paths "
                         f"{'is not an image' if len(missing) == 1 else 'are not images'} of the dataset "
                         f"({len(ds)} files under {ds.root}; relative paths read against it, else the working "
                         f"directory): {listing(missing)} — from_folder leaves out hidden files and folders "
                         "(.name), which torchvision's ImageFolder reads: a manifest lists exactly your training's "
                         "files")  # fmt: skip
    idx = np.array([where[p] for p in asked], dtype=np.int64)
    twice = np.flatnonzero(np.bincount(idx, minlength=len(ds)) > 1)
    if twice.size:
        raise ValueError(f"paths names {counted(twice.size, 'file')} more than once: "
                         f"{listing(ds.sources[i] for i in twice)}")
    if idx.size != len(ds):
        left = np.setdiff1d(np.arange(len(ds)), idx)
        raise ValueError(f"paths names {idx.size} of the dataset's {len(ds)} images; not: "
                         f"{listing(ds.sources[i] for i in left)} — read the dataset your training read, or "
                         "subset it (ds.subset)")  # fmt: skip
    return ds.subset(idx)


#: the extensions torchvision's ImageFolder reads (``torchvision.datasets.folder.IMG_EXTENSIONS``); the
#: folder reader takes more (.gif, DICOM), so a training through ImageFolder can hold fewer samples
IMAGEFOLDER_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"})


def _check_same_samples(ds: ImageDataset, dyn: Dynamics) -> None:
    """The recording is of ``ds``: as many samples, as many classes, the same label for each
    sample it recorded (a sample never recorded is refused by the count's own check)."""
    n, k = len(ds), ds.n_classes
    if dyn.num_samples != n:
        files = ds.kind == "files"
        beyond = [str(f) for f in ds.sources if Path(f).suffix.lower() not in IMAGEFOLDER_SUFFIXES] if files else []
        how = ("if your training read the folder with it, give write_run paths= (paths=[p for p, _ in "
               "folder.samples]) or scan a manifest of its files")
        hint = (f"; {counted(len(beyond), 'file')} of the dataset {'has' if len(beyond) == 1 else 'have'} an extension "
                f"torchvision's ImageFolder does not read ({listing(beyond)}): {how}"
                if beyond and len(beyond) == n - dyn.num_samples else
                f"; the folder reader leaves out hidden files (.name), which torchvision's ImageFolder reads: {how}"
                if files and dyn.num_samples > n else "")  # fmt: skip
        raise ValueError(f"the recorder holds {dyn.num_samples:,} samples, the dataset {n:,}: record with "
                         "Recorder(num_samples=len(dataset)), each sample under its position in the dataset"
                         + hint)  # fmt: skip
    if dyn.num_classes != k:
        extra = (" (one more: a model with an auxiliary class, which write_run does not read; or a class the "
                 "dataset's labels never name)" if dyn.num_classes == k + 1 else "")
        fewer = (f"; a dataset that lists only the classes its labels name has fewer than the model: give it "
                 f"all {dyn.num_classes}, in the logits' order (from_arrays(..., classes=[...]), a manifest's "
                 "class list)" if dyn.num_classes > k else "")  # fmt: skip
        raise ValueError(f"the recorder holds {dyn.num_classes} classes{extra}, the dataset {k} "
                         f"({listing(ds.classes)}): record with Recorder(num_classes=len(dataset.classes)), the "
                         f"logits in the dataset's class order{fewer}")  # fmt: skip
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


def _empty_epochs(dyn: Dynamics, final_accuracy: float) -> np.ndarray:
    """The epochs (from 0) in which no sample was recorded; in streaming mode, which keeps no epoch's
    samples, the last one alone can be told (its ``final_accuracy``, :func:`_final_accuracy`, is NaN)."""
    if dyn.streaming:
        return np.array([dyn.num_epochs - 1] if dyn.num_epochs and not np.isfinite(final_accuracy) else [], int)
    return np.flatnonzero(~dyn.seen().any(axis=1))


def _final_accuracy(dyn: Dynamics) -> float:
    """The share of the samples seen in the last epoch the model then predicted as labelled."""
    correct = np.asarray(dyn.at("correct", dyn.num_epochs - 1), np.float64)
    seen = ~np.isnan(correct)
    return float(correct[seen].mean()) if seen.any() else float("nan")

