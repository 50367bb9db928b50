"""One scan: dataset → (noise) → inputs → recording protocol → detectors → run directory.

This is the product's main job (``labeltrace scan``), a short sequence of stage calls: the
protocols live in :mod:`labeltrace.train.protocol`, the detectors in
:mod:`labeltrace.decide.detectors` (the table), the outputs in :mod:`labeltrace.scan_outputs`,
the settings a configuration resolves to in :mod:`labeltrace.scan_settings`, the labels it trains on
(given, noised, beside known true ones) in :mod:`labeltrace.scan_labels`, the run directory in
:mod:`labeltrace.rundir` (its file names in :mod:`labeltrace.run_layout`)."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from labeltrace import rundir as rd
from labeltrace._checks import listing
from labeltrace._io import digest
from labeltrace.data import ImageDataset
from labeltrace.data.duplicates import neighbour_groups
from labeltrace.data.near_duplicates import Copies, dataset_copies
from labeltrace.decide import count, detectors
from labeltrace.decide.evidence import Evidence, posterior
from labeltrace.models.features import FeatureBatches
from labeltrace.models.inputs import Inputs, prepare_inputs
from labeltrace.models.probe import close_call, no_better_than_majority
from labeltrace.record.recording import Recording
from labeltrace.relabel.store_file import bound_to
from labeltrace.run_files import changed_files, write_stamps
from labeltrace.scan_labels import (  # the labels a scan trains on
    check_truth,
    labels_trained_on,
    noise_source,
)
from labeltrace.scan_precision import extracting_in, training_in
from labeltrace.scan_settings import (  # re-exported: the scan's settings live there
    FINETUNE_DEFAULTS,
    MODEL_DEFAULTS,
    ScanConfig,
    check,
    fingerprint,
    network_spec,
    on_frozen_features,
    parse_noise,
    recording_protocol,
    resolve_model,
    resolve_resolution,
    settings_used,
    streams,
    train_config,
)
from labeltrace.scan_unread import held_unread, unread_message, unread_settings, without_unread
from labeltrace.train import distributed, protocol, resolve_device
from labeltrace.train.folds import ClassHeldOut, said_elsewhere
from labeltrace.train.seeds import seed_torch

__all__ = [
    "FINETUNE_DEFAULTS", "MODEL_DEFAULTS", "ScanConfig", "ScanResult", "fingerprint", "network_spec", "parse_noise",
    "recording_protocol", "resolve_model", "resolve_resolution", "scan", "streams", "train_config",
]  # fmt: skip

T = TypeVar("T")


@dataclass
class ScanResult:
    run_dir: Path
    table: pa.Table
    meta: dict[str, Any]
    detection: detectors.Detection
    timings: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------- stages
def _frozen_features(inputs: Inputs, n: int, log: Callable[[str], None]) -> np.ndarray | None:
    """The frozen features the kNN evidence reads: in memory, or, streamed, read back from the
    feature cache on a set under :data:`count.LARGE` samples (where the default detector mixes in
    their kNN label shares: streaming must not change its result); None otherwise."""
    if inputs.features is not None or not inputs.frozen_features:
        return inputs.features
    if n < count.LARGE and isinstance(inputs.source, FeatureBatches):
        return inputs.source.matrix()
    log(f"--stream: the frozen features of {n:,} samples are not read into memory, so the kNN detectors' "
        "columns (knn_vote, crossfit_knn) are left out; scan with --no-stream to have them")
    return None


def _evidence(rec: Recording | None, inputs: Inputs, given: np.ndarray, k: int, config: ScanConfig,
              cv: Callable[[], np.ndarray] | None, log: Callable[[str], None],
              groups: Sequence[str] | None = None) -> Evidence:  # fmt: skip
    frozen = _frozen_features(inputs, len(given), log)
    feats = frozen if frozen is not None else (rec.embedding if rec is not None else None)
    return Evidence(
        given, k, in_sample=rec.in_sample_runs() if rec is not None else None,
        single=rec.runs[0] if rec is not None and not rec.held_out and len(rec.runs) == 1 else None,
        held_out=rec.runs[0] if rec is not None and rec.held_out else None, cv_probs=cv,
        features=feats if feats is not None and len(given) > config.knn_k + 1 else None, knn_k=config.knn_k,
        features_frozen=frozen is not None, groups=groups,
    )  # fmt: skip


def _posterior(rec: Recording | None, ev: Evidence, config: ScanConfig) -> np.ndarray:
    """The posterior behind suggested labels: held-out runs average the whole trajectory (an
    ensemble of honest predictions), in-sample runs the last epochs (the early ones underfit),
    else the cross-validated probabilities, else the kNN neighbourhood."""
    if rec is not None:
        if rec.held_out:
            return posterior(rec.runs, last=None)
        return posterior(rec.runs, last=min(config.suggest_last, rec.runs[0].dynamics.num_epochs))
    if ev.has("cv_probs"):
        return ev.cv_probs
    return ev.knn_shares()  # the kNN vote's own neighbours (outside each sample's group)


def scan(
    ds: ImageDataset,
    out: str | os.PathLike[str],
    config: ScanConfig = ScanConfig(),
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    command: list[str] | None = None,
    origin: dict[str, Any] | None = None,
    true_labels: np.ndarray | None = None,
    force: bool = False,
) -> ScanResult:
    """Score every sample of ``ds`` and write the run directory ``out``.

    A killed scan restarted with the same ``out`` and config resumes from the last finished
    epoch; a finished one is re-scored from its saved recording; a directory holding another
    configuration is refused (:class:`labeltrace.rundir.RunDirConflict`) unless ``force``.
    ``origin`` describes where the dataset came from (``kind``: folder | manifest | npz | example
    | arrays, ``source``, and for manifests the column names) so that cleaned labels can be
    written back in that format. ``true_labels`` (known clean labels, e.g. CIFAR-10N's
    ``clean``) turns on the detection metrics against real noise, as ``config.noise`` does.
    Rank 0 holds ``out`` for the whole scan (:func:`labeltrace.rundir.writing`): a second scan
    into it meanwhile is refused.
    """
    if not isinstance(ds, ImageDataset):
        raise TypeError(f"ds must be an ImageDataset (labeltrace.data.from_folder(path), from_manifest(csv), "
                        f"from_npz(path), from_arrays(images, labels), from_hf(dataset)), got {type(ds).__name__}")
    if not isinstance(config, ScanConfig):
        raise TypeError(f"config must be a ScanConfig (labeltrace.scan.ScanConfig(epochs=..., ...)), got "
                        f"{type(config).__name__}")  # fmt: skip
    out = Path(out)
    d = distributed.current()  # under torchrun: every rank trains its shard, rank 0 writes
    with ExitStack() as held:  # rank 0 holds the folder; its refusal reaches every rank
        made = _on_writer(d, lambda: held.enter_context(rd.writing(out)))
        return _scan(ds, out, config, d, made, progress=progress, log=log if d.is_writer else _quiet,
                     command=command, origin=origin, true_labels=true_labels, force=force)  # fmt: skip


def _scan(ds: ImageDataset, out: Path, config: ScanConfig, d: distributed.Dist, made: bool, *, progress: bool,
          log: Callable[[str], None], command: list[str] | None, origin: dict[str, Any] | None,
          true_labels: np.ndarray | None, force: bool) -> ScanResult:  # fmt: skip
    """:func:`scan` in a folder held for it; ``made``: the folder was made for it."""
    from labeltrace.scan_outputs import held_copies, write_outputs

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    true_labels = check_truth(ds, config, true_labels)
    check(config, None if config.model == "auto" else config.model, len(ds))  # before any probe
    asked = config  # before the auto settings resolve
    # rank 0 probes and every rank takes its picks: ranks never train on different settings
    t0 = time.perf_counter()
    model, probe, resolution, rprobe = _on_writer(d, lambda: _resolve(config, ds, out, force))
    timings["probe"] = time.perf_counter() - t0  # --model / --resolution auto: on frozen features, most of a scan
    precision, why = _on_writer(d, lambda: training_in(config, model, out, force))
    bprecision, bwhy = _on_writer(d, lambda: extracting_in(config, model, out, force))
    config = replace(config, resolution=resolution, precision=precision, backbone_precision=bprecision)
    for flag, p, w in (("--precision", precision, why), ("--backbone-precision", bprecision, bwhy)):
        if w is not None:
            log(f"{flag} auto: {p} ({w})")
    for flag, choice, pr in (("--model", model, probe), ("--resolution", f"{resolution} px", rprobe)):
        if pr is not None:
            log(f"{flag} auto: {choice} ({pr['reason']}: {', '.join(f'{m} {a:.3f}' for m, a in pr['accuracy'].items())})"
                if pr["accuracy"] else f"{flag} auto: {choice} ({pr['reason']})")
            close = close_call(pr["accuracy"], int(pr.get("n") or 0)) if flag == "--model" else None
            if close is not None:
                log(f"  {close}; {flag} {'effnet-lite0' if choice == 'small-cnn' else 'small-cnn'} scans with the "
                    f"other, {flag} {choice} keeps this one")  # fmt: skip
            if (weak := no_better_than_majority(pr)) is not None:
                log(f"  {weak}; the scan's warnings say whether its models did")
    check(asked, model, len(ds))  # what was asked, of the model chosen
    if unread := unread_settings(asked, model):  # --model auto (a named model refuses them): built without
        log(f"--model auto: {model} does not read {unread_message(asked, model, unread)}: not used")
        config = without_unread(config, unread)
    used = settings_used(config, frozen_features=on_frozen_features(model, config))  # the detector's protocol
    if off := [f"--{k.replace('_', '-')} {getattr(config, k)}" for k in ("runs", "folds", "aux_fraction", "suggest_last")
               if getattr(used, k) != getattr(config, k)]:  # fmt: skip
        log(f"--detector {config.detector} does not read {', '.join(off)}: not used")
    stream = streams(config, model, ds)
    if stream and "cv_probs" in detectors.get(config.detector).needs:
        raise ValueError(f"--detector {config.detector} needs cross-validated probabilities, computed on the inputs "
                         "in memory: scan with --no-stream")  # fmt: skip
    t0 = time.perf_counter()
    def copies_of() -> Copies:  # exact copies share a fold; a finished scan of these files found them
        held = held_copies(out, ds)  # else one pass over the pixels finds the exact copies and the near ones
        return dataset_copies(ds, workers=config.workers) if held is None else held

    copies = _on_writer(d, copies_of)
    timings["duplicates"] = time.perf_counter() - t0
    fp = fingerprint(ds, config, model, true_labels, stream=stream, world_size=d.world_size, copies=copies.exact)
    if not force:  # a folder scanned with settings its model does not read: resumed with them
        config, fp = _on_writer(d, lambda: _as_held(out, ds, config, model, fp, true_labels, stream=stream,
                                                    world_size=d.world_size, copies=copies.exact, log=log))  # fmt: skip
    def fits(db: Path) -> bool:  # the review's decisions stay when they are about these images
        return bound_to(db, classes=list(ds.classes), ids=list(ds.ids), held_ids=rd.held_ids(out))

    try:
        claimed = _on_writer(d, lambda: rd.claim(out, fp, force=force, log=log, reviews_fit=fits))
    except rd.RunDirConflict as exc:  # other images: say which
        if d.is_writer and (which := _changed_images(out, ds, fp)):
            raise rd.RunDirConflict(f"{exc} (the images that differ from that scan's: {listing(which)})") from None
        raise
    if command and claimed in ("new", "resume") and d.is_writer:  # a stopped scan's folder names it
        rd.record_command(out, command)
    if ds.root is not None and d.is_writer and not (out / rd.IMAGE_FILES).is_file():  # before the files are read
        unread = write_stamps([ds.root / s for s in ds.sources], out / rd.IMAGE_FILES)
        if unread:
            log(f"warning: {len(unread)} image files could not be read to stamp them, and will not be shown: "
                f"{listing(unread)}")  # fmt: skip
    rescored = claimed == "finished" and (rd.recording_dir(out).finished or not {"held_out", "single", "in_sample"}
                                          & set(detectors.get(config.detector).needs))  # fmt: skip
    if claimed == "finished":
        log(f"{out} already holds this finished scan: results recomputed from its saved recording, nothing retrained"
            if rescored else f"{out} already holds this finished scan, but not its recording: training again")
    spec, tcfg = network_spec(model, config), train_config(model, config)
    seed_torch(config.seed)

    t0 = time.perf_counter()
    if stream:
        log(f"streaming the inputs: decoded batch by batch ({'--stream' if config.stream else 'over 2 GiB in memory'})")
    try:
        with d.writer_first() if on_frozen_features(model, config) else nullcontext():
            inputs = prepare_inputs(ds, model, image_size=config.image_size, resolution=resolution,
                                    finetune=config.finetune, cache_dir=config.cache_dir,
                                    device=str(resolve_device(config.device)), progress=progress and d.is_writer,
                                    stream=stream, workers=config.workers,
                                    precision=config.backbone_precision)  # fmt: skip
        noise_features = noise_source(ds, inputs, model, config, asked, stream)
        given, truth, noise_info = labels_trained_on(ds, config, noise_features, true_labels, log)
        timings["prepare_inputs"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        plan = recording_protocol(config.detector, config, frozen_features=inputs.frozen_features)
        rec = None
        if plan is not None:
            with warnings.catch_warnings():  # copies the folds split: said by the outputs, naming the files
                warnings.filterwarnings("ignore", message=r"\d+ sets? of exact copies left in different folds")
                rec = protocol.record(plan, spec, tcfg, inputs.source, given, num_classes=ds.n_classes, seed=config.seed,
                                      directory=rd.recording_dir(out).path, data={"fingerprint": digest(fp)},
                                      classes=list(ds.classes),  # the softmax epochs an in-sample posterior reads
                                      keep_probs=settings_used(config, frozen_features=inputs.frozen_features).suggest_last,
                                      embedding=not inputs.frozen_features, progress=progress and d.is_writer, log=log,
                                      dist=d, groups=ds.groups, copies=copies.exact)  # fmt: skip
    except BaseException as stopped:  # Ctrl-C too: a folder stopped before recording anything is not this scan's
        if claimed == "new" and d.is_writer:  # (a bad setting, a model that does not load); a resume stays
            try:
                rd.release(out, remove_dir=made)
            except OSError as exc:  # never in place of the error that stopped the scan
                log(f"could not release {out}: {exc}")
        if isinstance(stopped, ClassHeldOut):  # the folds know label ids; the user, class names
            raise ValueError(stopped.named(list(ds.classes))) from None
        raise
    if not d.is_writer:  # rank 0 scores and writes the run directory; the others read it back
        d.barrier()
        return _read_back(out, timings)
    cv = None
    cv_seconds: dict[str, float] = {}  # the K fits' wall seconds, when this call made them (run.json's cost)
    if "cv_probs" in detectors.get(config.detector).needs:
        def cv() -> np.ndarray:  # noqa: E306 - cached in the run directory
            p = out / rd.CV_PROBS
            if p.is_file():
                return np.load(p, allow_pickle=False)
            t_cv = time.perf_counter()
            with said_elsewhere():  # small classes, and the copies the folds leave apart (scan_outputs._k_folds)
                try:
                    probs = protocol.cross_validated_probs(spec, tcfg, inputs.tensor, given, num_classes=ds.n_classes,
                                                           seed=config.seed, folds=config.folds, groups=ds.groups,
                                                           copies=copies.exact)  # fmt: skip
                except ClassHeldOut as exc:  # named as the class-by-name refusal above
                    raise ValueError(exc.named(list(ds.classes))) from None
            cv_seconds["seconds"] = time.perf_counter() - t_cv
            rd.atomic_write(p, lambda fh: np.save(fh, probs, allow_pickle=False))
            return probs
    near = neighbour_groups(ds.groups, copies.exact, config.knn_k)  # a sample's copies are no neighbours of it
    ev = _evidence(rec, inputs, given, ds.n_classes, config, cv, log, near)
    det = detectors.detect(config.detector, ev)  # the chosen detector first: its errors are the user's
    timings["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    post = _posterior(rec, ev, config)
    table, meta = write_outputs(
        out, ds, config, model=model, rec=rec, ev=ev, det=det, post=post, given=given, truth=truth,
        noise_info=noise_info, inputs=inputs, tcfg=tcfg, command=command, origin=origin, fingerprint=fp,
        timings=timings, t_start=t_start, probe=probe, resolution_probe=rprobe, distributed=d.describe(),
        copies=copies, cv_seconds=cv_seconds.get("seconds"), rescored=rescored,
    )  # fmt: skip
    d.barrier()
    return ScanResult(out, table, meta, det, timings)


def _quiet(_: str) -> None:
    pass


def _resolve(config: ScanConfig, ds: ImageDataset, out: Path, force: bool) -> tuple[str, Any, int, Any]:
    """The model and the resolution (and the probes that chose them). Under ``--resolution
    auto`` a run directory that already holds a scan of this model keeps its resolution (unless
    ``force``), so the same command resumes it even where a probe would read differently now."""
    model, probe = resolve_model(config, ds)
    probed = config.resolution is None and on_frozen_features(model, config)  # the other models read no resolution
    held = rd.held_fingerprint(out) if probed and not force else None
    if held is not None and held.get("model") == model and isinstance(held.get("inputs", {}).get("resolution"), int):
        r = int(held["inputs"]["resolution"])
        return model, probe, r, {"model": str(r), "accuracy": {}, "n": 0,
                                 "reason": "kept from the scan already in the run directory (--force probes again)"}
    return (model, probe, *resolve_resolution(config, model, ds))


def _as_held(out: Path, ds: ImageDataset, config: ScanConfig, model: str, fp: dict[str, Any],
             true_labels: np.ndarray | None, *, log: Callable[[str], None], **kw: Any
             ) -> tuple[ScanConfig, dict[str, Any]]:  # fmt: skip
    """``(config, fp)``, or, where the scan ``out`` holds is this one but for settings its model does
    not read (scanned before they were refused or left out), ``config`` with their values back from
    that scan's fingerprint (:func:`~labeltrace.scan_unread.held_unread`) and the fingerprint that
    makes: the network, training and recording it was filed under."""
    held = rd.held_fingerprint(out)
    if held is None or rd.as_stored(fp) == held:
        return config, fp
    back = held_unread(held, config, model)
    alt = replace(config, **back)
    if not back or alt == config:
        return config, fp
    alt_fp = fingerprint(ds, alt, model, true_labels, **kw)
    if rd.as_stored(alt_fp) != held:
        return config, fp  # another scan: the claim says what differs
    said = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in back.items() if getattr(config, k) != v)
    log(f"{out} holds this scan made with {said}, which {model} does not read: resumed with {'it' if ',' not in said else 'them'}")
    return alt, alt_fp


def _changed_images(out: Path, ds: ImageDataset, fp: dict[str, Any]) -> list[str]:
    """The image files that differ between the finished scan ``out`` holds and ``ds``, when the
    images are what differs (empty when either is no image folder, or the scan kept no stamps)."""
    stamps = out / rd.IMAGE_FILES
    if ds.root is None or not stamps.is_file():
        return []
    try:
        if (rd.held_fingerprint(out) or {}).get("data") == fp.get("data"):
            return []
        scanned = rd.held_column(out, "path")
        return [] if scanned is None else changed_files(stamps, scanned, ds.root, [str(s) for s in ds.sources])
    except (OSError, ValueError):  # damaged stamps or fingerprint: the refusal as it was
        return []


def _on_writer(d: distributed.Dist, fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0 and its result on every rank; its error is raised on every rank."""
    if not d.active:
        return fn()
    result: Any = None
    error, exc = None, None
    if d.is_writer:
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - re-raised on every rank
            error, exc = f"{type(e).__name__}: {e}", e
    result, error = d.broadcast((result, error))
    if exc is not None:
        raise exc
    if error is not None:
        raise RuntimeError(f"rank 0 failed: {error}")
    return result


def _read_back(out: Path, timings: dict[str, float]) -> ScanResult:
    """Another rank's view of the run rank 0 wrote."""
    run = rd.open_run(out)
    m = run.meta["detector"]
    det = detectors.Detection(m["name"], run.column("score"), run.column("is_suspect").astype(bool),
                              float("nan") if m["cutoff"] is None else float(m["cutoff"]), m["rule"],
                              m.get("n_hat"))  # fmt: skip
    return ScanResult(out, run.samples, run.meta, det, timings)
