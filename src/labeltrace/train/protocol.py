"""The recording protocols — the one place that owns their seeds, the auxiliary draw, checkpoints
and resume. ``labeltrace scan`` and ``labeltrace bench`` both call it, so the same data, seed and
settings give the same recording (and the same scores) from either.

* :func:`record_in_sample`: ``runs`` trainings on every sample (the SEI paper's protocol). With
  two runs, each relabels a disjoint auxiliary set (:func:`labeltrace.decide.auxiliary.
  assign_auxiliary_pair`) to an extra class ``K``, whose scores calibrate the cutoff; with one run
  there is no auxiliary class.
* :func:`record_crossfit`: ``folds`` models trained in lockstep, model ``k`` on every fold but
  ``k``; after each epoch every model predicts its held-out fold (one Recorder), and its training
  batches are recorded too (a second Recorder, at no extra cost).
* :func:`cross_validated_probs`: K-fold out-of-fold probabilities at the end of training (the
  input of confident learning and of the ``cleanlab`` package): the same network, or cleanlab's
  recipe, logistic regression on features.

Inputs are one in-memory tensor or a :class:`~labeltrace.train.batches.BatchSource` (images
streamed from their files); data-parallel under ``torchrun`` (:mod:`labeltrace.train.distributed`:
every training runs DDP, only rank 0 writes, every rank returns the same recording); the
cross-fitted recording can stop early once its ranking is stable
(:class:`~labeltrace.train.early_stop.EarlyStop`, part of its fingerprint).

Seeds: everything derives from the user's ``seed`` through :func:`run_seed`,
:func:`crossfit_seed` and :func:`cv_seed` (:mod:`labeltrace.train.seeds`, which also reduces a
seed to the 64 bits torch reads). A recording is written to a
:class:`~labeltrace.record.recording.RecordingDir` with a fingerprint of everything that
determines it; a folder holding another configuration is refused (``FingerprintMismatch``), a
finished one is loaded instead of retrained, an interrupted one resumes from its last epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labeltrace._io import digest
from labeltrace.decide import auxiliary
from labeltrace.record import Recorder
from labeltrace.record.recording import RecordedRun, Recording, RecordingDir
from labeltrace.train import distributed
from labeltrace.train.batches import BatchSource, as_source
from labeltrace.train.checkpoint import Checkpoint, config_key, training_identity
from labeltrace.train.crossval import (  # the first: a protocols' entry point
    cross_validated_probs,
)
from labeltrace.train.distributed import Dist
from labeltrace.train.early_stop import EarlyStop
from labeltrace.train.embedding import common_embedding, network_embedding
from labeltrace.train.folds import stratified_folds
from labeltrace.train.loop import (
    TrainConfig,
    check_finite,
    make_optimizer,
    predict_logits,
    resolve_device,
    run_epoch,
    train_recorded,
    training_labels,
)
from labeltrace.train.recipe import NetworkSpec
from labeltrace.train.seeds import crossfit_seed, cv_seed, run_seed, seed_torch

__all__ = [
    "CrossFit",
    "EarlyStop",
    "InSample",
    "cross_validated_probs",
    "crossfit_recorded",
    "crossfit_seed",
    "cv_seed",
    "record",
    "record_crossfit",
    "record_in_sample",
    "run_seed",
    "stratified_folds",
]

Log = Callable[[str], None]
Inputs = torch.Tensor | BatchSource
_VERSION = 1  # bump when a protocol changes what it records for the same settings
#: the two-run auxiliary draw (decide.auxiliary.assign_auxiliary_pair): 2 = seeds 2s, 2s + 1 (1 = s, s + 1)
AUX_DRAW = 2


# ----------------------------------------------------------------------------- protocols
@dataclass(frozen=True)
class InSample:
    """``runs`` trainings on every sample; two runs use disjoint auxiliary sets."""

    runs: int = 2
    aux_fraction: float | None = None  # default N // (K + 1) samples

    def __post_init__(self) -> None:
        if self.runs not in (1, 2):
            raise ValueError(f"runs must be 1 or 2, got {self.runs}")


@dataclass(frozen=True)
class CrossFit:
    """``folds`` models trained in lockstep, each on every fold but one; ``early_stop`` stops
    them once the ranking is stable (None: train every epoch)."""

    folds: int = 5
    early_stop: EarlyStop | None = None

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")


Protocol = InSample | CrossFit


def auxiliary_masks(protocol: InSample, given: np.ndarray, num_classes: int, seed: int) -> list[np.ndarray]:
    """The runs' auxiliary sets: two disjoint draws, or none for one run."""
    if protocol.runs == 1:
        return [np.zeros(len(given), dtype=bool)]
    return auxiliary.assign_auxiliary_pair(given, num_classes, fraction=protocol.aux_fraction, seed=seed)


def _fingerprint(protocol: Protocol, spec: NetworkSpec, train: TrainConfig, given: np.ndarray, seed: int,
                 data: Mapping[str, Any], keep_probs: int, embedding: bool,
                 classes: list[str] | None, groups: Sequence[str] | None = None,
                 copies: np.ndarray | None = None) -> dict[str, Any]:  # fmt: skip
    proto = {k: (vars(v) if isinstance(v, EarlyStop) else v) for k, v in vars(protocol).items()
             if not (k == "early_stop" and v is None)}  # absent when off: earlier recordings stay valid
    return {
        "version": _VERSION, "protocol": {"kind": type(protocol).__name__, **proto},
        "network": vars(spec), "train": config_key(train=replace(train, seed=0)), "labels": digest(np.asarray(given, np.int64)),
        "seed": int(seed), "data": dict(data), "keep_probs": int(keep_probs),
        # the fold models' common embedding; cross-fitted recordings before it kept the first fold model's
        **({"embedding": "common"} if embedding and isinstance(protocol, CrossFit) else {}),
        **({"aux_draw": AUX_DRAW} if isinstance(protocol, InSample) and protocol.runs > 1 else {}),
        # the class names build CLIP's head from its prompts (the other networks do not read them)
        **({"classes": list(classes or [])} if spec.kind == "clip" else {}),
        # the folds keep a group together (absent without groups: earlier recordings stay valid)
        **({"groups": digest([str(g) for g in groups])} if groups is not None and isinstance(protocol, CrossFit) else {}),
        # exact copies share a fold (absent without copies: earlier recordings stay valid)
        **({"copies": digest(np.asarray(copies, np.int64))} if _has_copies(copies) and isinstance(protocol, CrossFit)
           else {}),
    }  # fmt: skip


def _has_copies(copies: np.ndarray | None) -> bool:
    return copies is not None and bool((np.asarray(copies) >= 0).any())


def record(
    protocol: Protocol,
    spec: NetworkSpec,
    train: TrainConfig,
    inputs: Inputs,
    given: np.ndarray,
    *,
    num_classes: int,
    seed: int,
    directory: str | Path,
    data: Mapping[str, Any] | None = None,
    classes: list[str] | None = None,
    keep_probs: int = 5,
    embedding: bool = False,
    progress: bool = True,
    log: Log | None = None,
    dist: Dist | None = None,
    groups: Sequence[str] | None = None,
    copies: np.ndarray | None = None,
) -> Recording:
    """Record ``protocol`` into ``directory`` (or load it when it is already there).

    ``train`` holds the optimisation settings (its ``seed`` is ignored: the protocol derives the
    seeds from ``seed``); ``data`` describes the inputs for the fingerprint (their identity,
    size, resolution, noise). ``embedding`` keeps a penultimate embedding for the kNN detectors
    (:mod:`labeltrace.train.embedding`): the first in-sample network's, or the fold models' common one.
    ``inputs``: one in-memory tensor, or a :class:`~labeltrace.train.batches.BatchSource`.
    ``dist`` (default: :func:`labeltrace.train.distributed.current`): data-parallel when
    ``torch.distributed`` is initialised; rank 0 writes, every rank returns the recording.
    ``groups`` (one key per sample: a patient, a study): a cross-fit keeps each group in one fold
    (:func:`stratified_folds`); ``copies`` (``(N,)`` exact-duplicate group per sample, ``-1`` alone:
    :func:`labeltrace.data.duplicates.dataset_duplicates`): a cross-fit keeps copies in one fold too.
    """
    d = distributed.current() if dist is None else dist
    store = RecordingDir(directory)
    fp = _fingerprint(protocol, spec, train, given, seed, data or {}, keep_probs, embedding, classes, groups, copies)
    store.check(fp, added=("aux_draw", "classes"))  # recordings before them saved their draws and classes
    if store.finished:
        if log is not None:
            log(f"recording in {store.path} is complete: loaded, nothing retrained")
        return store.load()
    kw: dict[str, Any] = {"num_classes": num_classes, "seed": seed, "store": store, "fingerprint": fp,
                          "classes": classes, "keep_probs": keep_probs, "embedding": embedding,
                          "progress": progress, "log": log, "dist": d}
    if isinstance(protocol, CrossFit):
        rec = _crossfit(protocol, spec, train, inputs, given, groups=groups, copies=copies, **kw)
    else:
        rec = _in_sample(protocol, spec, train, inputs, given, **kw)
    if d.active:
        d.barrier()  # rank 0 has saved the recording: the others read it back
    return rec if rec is not None else store.load()


def record_in_sample(spec: NetworkSpec, train: TrainConfig, inputs: Inputs, given: np.ndarray, *,
                     runs: int = 2, aux_fraction: float | None = None, **kw: Any) -> Recording:  # fmt: skip
    """:func:`record` with :class:`InSample`."""
    return record(InSample(runs, aux_fraction), spec, train, inputs, given, **kw)


def record_crossfit(spec: NetworkSpec, train: TrainConfig, inputs: Inputs, given: np.ndarray, *,
                    folds: int = 5, early_stop: EarlyStop | None = None, **kw: Any) -> Recording:  # fmt: skip
    """:func:`record` with :class:`CrossFit`."""
    return record(CrossFit(folds, early_stop), spec, train, inputs, given, **kw)


def _in_sample(protocol: InSample, spec: NetworkSpec, train: TrainConfig, inputs: Inputs, given: np.ndarray,
               *, num_classes: int, seed: int, store: RecordingDir, fingerprint: dict[str, Any],
               classes: list[str] | None, keep_probs: int, embedding: bool, progress: bool,
               log: Log | None, dist: Dist) -> Recording | None:  # fmt: skip
    K = num_classes
    masks = auxiliary_masks(protocol, given, K, seed)
    key = digest(fingerprint)
    runs, recorders, seconds, acc, emb = [], [], [], [], None
    for r, aux in enumerate(masks):
        n_out = K + 1 if aux.any() else K
        y = auxiliary.auxiliary_labels(given, aux, K) if aux.any() else np.asarray(given)
        s = run_seed(seed, r)
        seed_torch(s)
        net = spec.build(inputs, n_out, classes)
        res = train_recorded(net, inputs, y, num_classes=n_out, config=replace(train, seed=s),
                             checkpoint_dir=store.checkpoint_dir(f"run{r}"), keep_probs=keep_probs,
                             progress=progress, desc=f"run {r + 1}/{len(masks)}", key=key, log=log,
                             recorder_dir=store.rows_dir(f"run{r}"), dist=dist)  # fmt: skip
        es = res.epoch_seconds  # a checkpoint written before it kept them: the lost epochs' times estimated
        seconds.append(float(np.sum(es)) if len(es) >= train.epochs or not es else float(np.mean(es)) * train.epochs)
        acc.append(res.final_train_accuracy)
        if not dist.is_writer:
            continue
        recorders.append(res.recorder)
        runs.append(RecordedRun(res.recorder.dynamics(), aux, K))
        if embedding and r == 0:
            emb = network_embedding(net, inputs)
    if not dist.is_writer:
        return None
    rec = Recording("in-sample", tuple(runs), K, tuple(seconds), tuple(acc), embedding=emb, fingerprint=fingerprint)
    store.save(rec, recorders)
    return rec


def _crossfit(protocol: CrossFit, spec: NetworkSpec, train: TrainConfig, inputs: Inputs, given: np.ndarray,
              *, num_classes: int, seed: int, store: RecordingDir, fingerprint: dict[str, Any],
              classes: list[str] | None, keep_probs: int, embedding: bool, progress: bool,
              log: Log | None, dist: Dist, groups: Sequence[str] | None = None,
              copies: np.ndarray | None = None) -> Recording | None:  # fmt: skip
    K, n = num_classes, len(given)
    base = crossfit_seed(seed)
    built: list[nn.Module] = []

    def build(fold: int) -> nn.Module:
        seed_torch(base + 101 * fold)
        built.append(spec.build(inputs, K, classes))
        return built[-1]

    # every fold model but one updates a sample each epoch, possibly on different ranks: average them all
    in_sample = dist.recorder(n, K, dedupe=False, keep_probs=1, directory=store.rows_dir("run0_in_sample"),
                              max_epochs=train.epochs)  # keep_probs > 0 keeps the softmax sums
    epoch_seconds: list[float] = []
    held, folds = crossfit_recorded(build, inputs, given, num_classes=K, config=replace(train, seed=base),
                                    n_folds=protocol.folds, checkpoint_dir=store.checkpoint_dir("crossfit"),
                                    keep_probs=keep_probs, progress=progress, in_sample=in_sample,
                                    key=digest(fingerprint), log=log, recorder_dir=store.rows_dir("run0"),
                                    dist=dist, early_stop=protocol.early_stop,
                                    epoch_seconds=epoch_seconds, groups=groups, copies=copies)  # fmt: skip
    if not dist.is_writer:
        return None
    dyn = held.dynamics()
    run = RecordedRun(dyn, np.zeros(n, dtype=bool), K, held_out=True, in_sample=in_sample.dynamics())
    rec = Recording("crossfit", (run,), K, (float(np.sum(epoch_seconds)),), (float(np.nanmean(dyn.mean("correct"))),),
                    folds=folds, embedding=common_embedding(built, inputs) if embedding else None,
                    fingerprint=fingerprint)  # fmt: skip
    store.save(rec, [held], in_sample)
    return rec


def crossfit_recorded(
    build_model: Callable[[int], nn.Module],
    inputs: Inputs,
    labels: np.ndarray,
    *,
    num_classes: int,
    config: TrainConfig,
    n_folds: int = 5,
    checkpoint_dir: str | Path | None = None,
    keep_probs: int = 5,
    progress: bool = True,
    desc: str = "cross-fit",
    in_sample: Recorder | None = None,
    key: str = "",
    log: Log | None = None,
    recorder_dir: str | Path | None = None,
    dist: Dist | None = None,
    early_stop: EarlyStop | None = None,
    epoch_seconds: list[float] | None = None,
    groups: Sequence[str] | None = None,
    copies: np.ndarray | None = None,
) -> tuple[Recorder, np.ndarray]:
    """Train ``n_folds`` models in lockstep and record every sample's held-out predictions.

    ``build_model(fold)`` builds fold ``fold``'s network (seed its initialisation inside);
    ``config.seed`` seeds the folds (:func:`stratified_folds`, a group of ``groups`` in one fold, and so are the exact copies of ``copies``) and, as ``seed * 1009 + k``, fold
    ``k``'s batch order. ``in_sample``, when given, also records every training batch of every
    fold model: each sample's in-sample logits from the ``n_folds - 1`` models that train on it
    (averaged within the epoch), at no extra training cost. With ``checkpoint_dir`` every epoch
    is checkpointed (all models, optimizers, recorders) and a restart continues after the last
    finished epoch; ``key`` fingerprints what is trained so a foreign checkpoint is refused (and
    one of the same key written for other labels, folds or inputs: see :func:`train_recorded`).
    ``recorder_dir`` keeps the held-out recorder's (T, N) arrays in files (out of core).
    ``early_stop`` ends training after the epoch at which its rule holds (evaluated on the
    recorders, so a resumed run stops at the same epoch). ``epoch_seconds``, when given, is filled
    with every trained epoch's seconds, those of a resumed checkpoint's epochs included (the
    checkpoint keeps them). ``dist`` (default: the initialised
    process group, if any): data-parallel; ``in_sample`` must then be a DistributedRecorder
    (``dedupe=False``), and the returned recorder is one too (its dynamics live on rank 0).

    Returns the recorder of out-of-fold logits (one update per sample per epoch) and the fold
    of each sample.
    """
    d = distributed.current() if dist is None else dist
    source = as_source(inputs)
    n = int(source.shape[0])
    labels = training_labels(labels, n, num_classes)
    device = resolve_device(config.device)
    folds = stratified_folds(labels, n_folds, seed=config.seed, groups=groups, copies=copies)
    models = [build_model(k).to(device) for k in range(n_folds)]
    opts = [make_optimizer(m, config) for m in models]
    train_ids = [torch.as_tensor(np.flatnonzero(folds != k)) for k in range(n_folds)]
    held_ids = [torch.as_tensor(np.flatnonzero(folds == k)) for k in range(n_folds)]
    y_all = torch.from_numpy(labels)  # training_labels' own copy: labels may be a read-only array
    rec = d.recorder(n, num_classes, keep_probs=keep_probs, directory=recorder_dir, max_epochs=config.epochs)
    recorders = {"held_out": rec} | ({"in_sample": in_sample} if in_sample is not None else {})
    ckpt = None
    start = 0
    if checkpoint_dir is not None:
        ckpt = Checkpoint(checkpoint_dir, config_key(config=config, n=n, num_classes=num_classes, folds=n_folds, key=key),
                          writer=d.is_writer, identity=training_identity(source, labels, folds=folds, content=not key))
        start = ckpt.load(models, opts, recorders, device=device)
        if start and log is not None:
            log(f"{desc}: resuming after epoch {start} of {config.epochs} ({ckpt.dir})")
    seconds = [float(s) for s in ckpt.extra.get("epoch_seconds", [])] if ckpt is not None and start else []
    lost = start - len(seconds)  # > 0: a checkpoint written before it kept them (estimated at the end)
    nets = [d.wrap(m, device) for m in models]

    def stop() -> bool:  # rank 0 holds the dynamics and decides for every rank
        if early_stop is None or rec.num_epochs == 0:
            return False
        if not d.is_writer:
            return bool(d.broadcast(None))
        ins = None if in_sample is None else in_sample.dynamics()
        return bool(d.broadcast(early_stop.should_stop(rec.dynamics(), ins, labels)))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, initial=start, desc=desc, unit="epoch", leave=False)
    for epoch in range(start, config.epochs):
        if stop():  # also right after a resume: the rule reads only what was recorded
            if log is not None:
                log(f"{desc}: ranking stable, stopped early after epoch {epoch} of {config.epochs}")
            break
        t0 = time.perf_counter()
        for k in range(n_folds):
            cfg_k = replace(config, seed=config.seed * 1009 + k)
            run_epoch(nets[k], opts[k], source, y_all, config=cfg_k, epoch=epoch, device=device,
                      subset=train_ids[k], on_batch=None if in_sample is None else in_sample.update,
                      dist=d)  # fmt: skip
            mine, real = d.shard(held_ids[k])
            ids = mine[real]
            d.sync_buffers(models[k])  # every rank predicts its shard with the model rank 0 checkpoints
            logits = check_finite(predict_logits(models[k], source, ids, device=device, precision=config.precision),
                                  epoch, opts[k])  # fmt: skip
            if len(ids):  # a held-out fold smaller than the number of processes leaves some shards empty
                rec.update(ids, logits, y_all.index_select(0, ids))
        for r in recorders.values():
            r.end_epoch()
        seconds.append(time.perf_counter() - t0)
        if ckpt is not None:
            ckpt.save(epoch + 1, models, opts, recorders, extra={"epoch_seconds": seconds})
            d.barrier()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if epoch_seconds is not None:
        epoch_seconds[:] = [float(np.mean(seconds)) if seconds else float("nan")] * max(lost, 0) + seconds
    return rec, folds
