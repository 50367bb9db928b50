"""One scan: dataset → (noise) → inputs → recording protocol → detectors → run directory.

This is the product's main job (``labeltrace scan``), a short sequence of stage calls: the
protocols live in :mod:`labeltrace.train.protocol`, the detectors in
:mod:`labeltrace.decide.detectors` (the table), the outputs in :mod:`labeltrace.scan_outputs`
and every file name in :mod:`labeltrace.rundir`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from labeltrace import rundir as rd
from labeltrace._io import digest
from labeltrace.data import ImageDataset
from labeltrace.decide import detectors
from labeltrace.decide.evidence import Evidence, posterior
from labeltrace.evaluate import noise
from labeltrace.models.inputs import Inputs, data_identity, prepare_inputs, should_stream
from labeltrace.record.recording import Recording
from labeltrace.train import TrainConfig, distributed, protocol, resolve_device
from labeltrace.train.checkpoint import config_key
from labeltrace.train.recipe import NetworkSpec

__all__ = ["MODEL_DEFAULTS", "ScanConfig", "ScanResult", "parse_noise", "scan"]

#: Per-model defaults (epochs, lr, weight decay, batch size, augment, head width) — sized so the
#: digits example runs in well under a minute here. The effnet-lite0 head is the one measured best
#: on CIFAR-10N for the crossfit detector (benchmarks/RESULTS.md): MLP 1280→256, 10 epochs, wd 1e-3.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "small-cnn": {"epochs": 20, "lr": 0.05, "weight_decay": 1e-4, "batch_size": 128, "augment": False},
    "effnet-lite0": {"epochs": 10, "lr": 0.05, "weight_decay": 1e-3, "batch_size": 256, "augment": False,
                     "hidden": 256},
    "clip": {"epochs": 10, "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 128, "augment": False},
}
#: effnet-lite0 with ``finetune=True``: the whole network trains on the images (a GPU job), at the
#: paper's fine-tuning learning rate.
FINETUNE_DEFAULTS: dict[str, Any] = {"lr": 1e-3, "batch_size": 128, "weight_decay": 1e-4}

parse_noise = noise.parse_spec


@dataclass(frozen=True)
class ScanConfig:
    """Everything a scan depends on (written to run.json)."""

    model: str = "auto"  # small-cnn | effnet-lite0 | clip | auto
    epochs: int | None = None  # None: the model's default
    runs: int = 2  # in-sample detectors: 2 runs with disjoint auxiliary sets; 1: one run, no auxiliary class
    folds: int = 5  # held-out detectors (crossfit) and cross-validated probabilities: number of folds
    batch_size: int | None = None  # None: the model's default
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None  # None: the model's default
    schedule: str = "cosine"
    augment: bool | None = None
    image_size: int | None = None  # small-cnn input side (default: native if <= 64, else 64)
    width: int | None = None  # small-cnn base width (default: 16 for images <= 32 px, else 32)
    head: str = "mlp"  # effnet-lite0: linear | mlp
    hidden: int | None = None  # effnet-lite0 mlp head width (None: the model's default)
    resolution: int | None = None  # effnet-lite0 feature resolution; None: auto (96 or 224 px by a probe)
    finetune: bool = False  # effnet-lite0: train the whole network on the images, not a head on cached features
    aux_fraction: float | None = None  # default 1 / (K + 1)
    detector: str = "crossfit"  # a row of labeltrace.decide.detectors
    suggest_last: int = 5  # epochs averaged for the suggested label (in-sample recordings)
    noise: str | None = None  # e.g. "symmetric:0.2"
    seed: int = 0
    device: str = "auto"
    cache_dir: str | None = None
    csv: bool = False
    knn_k: int = 10
    clip_model: str | None = None  # clip: local directory (save_pretrained) or cached hub name
    clip_template: str = "a photo of a {}"
    aux_prompt: str = "a photo of something else"  # clip: the auxiliary class's prompt
    early_stop: bool = False  # crossfit: stop training once the ranking is stable (train.early_stop)
    stream: bool | None = None  # decode images batch by batch in workers; None: when the inputs exceed 2 GiB
    workers: int | None = None  # decoding processes when streaming (None: CPUs - 1, at most 8)


@dataclass
class ScanResult:
    run_dir: Path
    table: pa.Table
    meta: dict[str, Any]
    detection: detectors.Detection
    timings: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------- settings
def _probe_dataset(config: ScanConfig, ds: ImageDataset) -> tuple[ImageDataset, str]:
    """The dataset a probe sees: with the labels the scan trains on, as a user's would (symmetric
    and pair noise drawn as :func:`_labels` draws it); other noise follows the chosen model's
    features, so the probe sees the labels before it (said in the returned note)."""
    if not config.noise:
        return ds, ""
    kind = noise.parse_spec(config.noise)[0]
    if kind in ("symmetric", "pair"):  # needs no features: the very labels injected later
        nl = noise.inject(config.noise, ds.labels, ds.n_classes, np.zeros((len(ds), 0), np.float32), seed=config.seed)
        return ds.with_labels(nl.labels), ""
    return ds, f"; labels before the {kind} noise"


def resolve_model(config: ScanConfig, ds: ImageDataset) -> tuple[str, dict[str, Any] | None]:
    """The network to train, and for ``--model auto`` the probe that chose it
    (:func:`labeltrace.models.probe.choose_model`: held-out accuracy on a subset)."""
    if config.model != "auto":
        if config.model not in MODEL_DEFAULTS:
            raise ValueError(f"unknown model {config.model!r}; choose from auto, {', '.join(MODEL_DEFAULTS)}")
        return config.model, None
    from labeltrace.models.probe import choose_model

    probe_ds, note = _probe_dataset(config, ds)
    probe = choose_model(probe_ds, seed=config.seed, cache_dir=config.cache_dir,
                         device=str(resolve_device(config.device)))  # fmt: skip
    d = probe.as_dict()
    d["reason"] += note
    return probe.model, d


def resolve_resolution(config: ScanConfig, model: str, ds: ImageDataset) -> tuple[int, dict[str, Any] | None]:
    """The effnet-lite0 resolution: ``config.resolution`` when set; else, for frozen features,
    the probe of :func:`labeltrace.models.probe.choose_resolution` (96 or 224 px), and 96 px for
    fine-tuning and the other models (where it is not used)."""
    if config.resolution is not None:
        if config.resolution <= 0:
            raise ValueError(f"resolution must be positive, got {config.resolution}")
        return config.resolution, None
    if model != "effnet-lite0" or config.finetune:
        return 96, None
    from labeltrace.models.probe import choose_resolution

    probe_ds, note = _probe_dataset(config, ds)
    probe = choose_resolution(probe_ds, seed=config.seed, cache_dir=config.cache_dir,
                              device=str(resolve_device(config.device)))  # fmt: skip
    d = probe.as_dict()
    d["reason"] += note
    return int(probe.model), d


def network_spec(model: str, config: ScanConfig) -> NetworkSpec:
    """The network of ``model`` under ``config`` (the frozen-feature effnet path trains a head)."""
    hidden = config.hidden or MODEL_DEFAULTS["effnet-lite0"]["hidden"]
    if model == "effnet-lite0":
        kind = "effnet-lite0" if config.finetune else config.head
        if config.resolution is None:
            raise ValueError("network_spec: resolve the resolution first (resolve_resolution)")
        return NetworkSpec(kind, hidden=hidden, head=config.head, resolution=config.resolution)
    if model == "clip":
        return NetworkSpec("clip", clip_model=config.clip_model, clip_template=config.clip_template,
                           aux_prompt=config.aux_prompt)  # fmt: skip
    return NetworkSpec("small-cnn", width=config.width)


def train_config(model: str, config: ScanConfig) -> TrainConfig:
    d = MODEL_DEFAULTS[model] | (FINETUNE_DEFAULTS if config.finetune else {})
    return TrainConfig(
        epochs=config.epochs or d["epochs"], batch_size=config.batch_size or d["batch_size"], lr=config.lr or d["lr"],
        momentum=config.momentum, weight_decay=d["weight_decay"] if config.weight_decay is None else config.weight_decay,
        schedule=config.schedule,  # type: ignore[arg-type]
        augment=d["augment"] if config.augment is None else config.augment, seed=config.seed, device=config.device,
    )  # fmt: skip


def recording_protocol(detector: str, config: ScanConfig, *, frozen_features: bool) -> protocol.Protocol | None:
    """What to record for ``detector``: cross-fitted folds when it needs held-out dynamics,
    in-sample runs when it needs in-sample dynamics (or a network's embedding as its features),
    nothing when cross-validated probabilities or frozen features are all it needs."""
    needs = detectors.get(detector).needs
    if "held_out" in needs:
        return protocol.CrossFit(config.folds, protocol.EarlyStop() if config.early_stop else None)
    if "single" in needs:
        return protocol.InSample(1)
    if "in_sample" in needs or ("features" in needs and not frozen_features):
        return protocol.InSample(config.runs, config.aux_fraction)
    return None


def _check(config: ScanConfig, model: str, n: int) -> None:
    detectors.get(config.detector)  # unknown → a clear error
    if config.runs not in (1, 2):
        raise ValueError(f"runs must be 1 or 2, got {config.runs}")
    if model == "clip" and not config.clip_model:
        raise ValueError("--model clip needs --clip-model: a local CLIP directory or a cached hub name")
    if not 2 <= config.folds <= n // 2:
        raise ValueError(f"folds must be in [2, N/2 = {n // 2}], got {config.folds}")
    if config.finetune and model != "effnet-lite0":
        raise ValueError(f"--finetune applies to effnet-lite0, not {model}")
    if config.noise:
        noise.parse_spec(config.noise)


def streams(config: ScanConfig, model: str, ds: ImageDataset) -> bool:
    """Whether the scan streams its inputs: ``config.stream``, else :func:`should_stream`."""
    if config.stream is not None:
        return bool(config.stream)
    return should_stream(ds, model, image_size=config.image_size, finetune=config.finetune)


def fingerprint(ds: ImageDataset, config: ScanConfig, model: str, true_labels: np.ndarray | None, *,
                stream: bool = False, world_size: int = 1) -> dict[str, Any]:  # fmt: skip
    """Everything that determines a scan's result: the data's identity and labels, the noise,
    the inputs (streamed: normalisation statistics from a streaming pass), the network, the
    training (data-parallel: the world size), the protocol (early stop), the detector and the seed.
    Settings at their earlier behaviour add no key, so earlier run directories stay valid."""
    spec, tcfg = network_spec(model, config), train_config(model, config)
    return {
        "data": data_identity(ds), "classes": list(ds.classes), "labels": digest(ds.labels.astype(np.int64)),
        "truth": None if true_labels is None else digest(np.asarray(true_labels, np.int64)),
        "noise": config.noise, "model": model, "network": asdict(spec), "train": config_key(train=tcfg),
        "inputs": {"image_size": config.image_size, "resolution": config.resolution, "finetune": config.finetune,
                   **({"stream": True} if stream else {})},
        "protocol": {"runs": config.runs, "folds": config.folds, "aux_fraction": config.aux_fraction,
                     "suggest_last": config.suggest_last,
                     **({"early_stop": asdict(protocol.EarlyStop())} if config.early_stop else {})},
        "detector": config.detector, "seed": config.seed, "knn_k": config.knn_k,
        **({"world_size": world_size} if world_size > 1 else {}),
    }  # fmt: skip


# ----------------------------------------------------------------------------- stages
def _labels(ds: ImageDataset, config: ScanConfig, inputs: Inputs, true_labels: np.ndarray | None,
            log: Callable[[str], None]) -> tuple[np.ndarray, np.ndarray, dict[str, Any] | None]:  # fmt: skip
    """(given labels trained on, true labels, noise description or None)."""
    given = ds.labels.copy()
    info: dict[str, Any] | None = None
    if true_labels is not None:
        if config.noise:
            raise ValueError("give either known true labels or --noise, not both")
        true_labels = np.asarray(true_labels, dtype=np.int64)
        if true_labels.shape != given.shape:
            raise ValueError(f"true labels have shape {true_labels.shape}, the dataset {given.shape}")
        info = {"spec": "known true labels", "realised_rate": float((true_labels != given).mean()),
                "n_flipped": int((true_labels != given).sum())}  # fmt: skip
        return given, true_labels, info
    if config.noise:
        feats = _noise_features(inputs) if noise.parse_spec(config.noise)[0] in ("instance", "confusion") \
            else np.zeros((len(given), 0), np.float32)  # fmt: skip
        nl = noise.inject(config.noise, given, ds.n_classes, feats, seed=config.seed)
        log(f"injected {config.noise} noise: {int(nl.flipped.sum())} of {len(ds)} labels flipped ({nl.rate:.1%})")
        info = {"spec": config.noise, "realised_rate": nl.rate, "n_flipped": int(nl.flipped.sum())}
        return nl.labels, given, info
    return given, given.copy(), None


def _noise_features(inputs: Inputs) -> np.ndarray:
    """(N, D) features the noise models follow: the frozen features, else the inputs pooled to
    16 px a side (batch by batch when streamed)."""
    if inputs.features is not None:
        return inputs.features
    if not inputs.streamed:
        return noise.flat_features(inputs.tensor.numpy())
    n = inputs.source.shape[0]
    return np.concatenate([noise.flat_features(x.numpy()) for _, x in inputs.source.batches(torch.arange(n), 1024)])


def _evidence(rec: Recording | None, inputs: Inputs, given: np.ndarray, k: int, config: ScanConfig,
              cv: Callable[[], np.ndarray] | None) -> Evidence:  # fmt: skip
    feats = inputs.features if inputs.features is not None else (rec.embedding if rec is not None else None)
    return Evidence(
        given, k, in_sample=rec.in_sample_runs() if rec is not None else None,
        single=rec.runs[0] if rec is not None and not rec.held_out and len(rec.runs) == 1 else None,
        held_out=rec.runs[0] if rec is not None and rec.held_out else None, cv_probs=cv,
        features=feats if feats is not None and len(given) > config.knn_k + 1 else None, knn_k=config.knn_k,
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
    from labeltrace.score.knn import knn_probs

    return knn_probs(ev.features, ev.labels, k=config.knn_k)


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
    """
    from labeltrace.scan_outputs import write_outputs

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(out)
    d = distributed.current()  # under torchrun: every rank trains its shard, rank 0 writes
    if not d.is_writer:
        log = _quiet
    with d.writer_first():  # rank 0 fills the probe's cache, the others read it
        model, probe = resolve_model(config, ds)
        resolution, rprobe = resolve_resolution(config, model, ds)
    config = replace(config, resolution=resolution)
    for flag, choice, pr in (("--model", model, probe), ("--resolution", f"{resolution} px", rprobe)):
        if pr is not None:
            log(f"{flag} auto: {choice} ({pr['reason']}: {', '.join(f'{m} {a:.3f}' for m, a in pr['accuracy'].items())})"
                if pr["accuracy"] else f"{flag} auto: {choice} ({pr['reason']})")
    _check(config, model, len(ds))
    stream = streams(config, model, ds)
    if stream and "cv_probs" in detectors.get(config.detector).needs:
        raise ValueError(f"--detector {config.detector} needs cross-validated probabilities, computed on the inputs "
                         "in memory: scan with --no-stream")  # fmt: skip
    fp = fingerprint(ds, config, model, true_labels, stream=stream, world_size=d.world_size)
    claimed = _on_writer(d, lambda: rd.claim(out, fp, force=force, log=log))
    if claimed == "finished":
        log(f"{out} already holds this finished scan: results recomputed from its saved recording, nothing retrained")
    spec, tcfg = network_spec(model, config), train_config(model, config)
    torch.manual_seed(config.seed)

    t0 = time.perf_counter()
    if stream:
        log(f"streaming the inputs: decoded batch by batch ({'--stream' if config.stream else 'over 2 GiB in memory'})")
    with d.writer_first() if model == "effnet-lite0" and not config.finetune else nullcontext():
        inputs = prepare_inputs(ds, model, image_size=config.image_size, resolution=config.resolution,
                                finetune=config.finetune, cache_dir=config.cache_dir,
                                device=str(resolve_device(config.device)), progress=progress and d.is_writer,
                                stream=stream, workers=config.workers)  # fmt: skip
    given, truth, noise_info = _labels(ds, config, inputs, true_labels, log)
    timings["prepare_inputs"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    plan = recording_protocol(config.detector, config, frozen_features=inputs.frozen_features)
    rec = None
    if plan is not None:
        rec = protocol.record(plan, spec, tcfg, inputs.source, given, num_classes=ds.n_classes, seed=config.seed,
                              directory=rd.recording_dir(out).path, data={"fingerprint": digest(fp)},
                              classes=list(ds.classes), keep_probs=config.suggest_last,
                              embedding=not inputs.frozen_features, progress=progress and d.is_writer, log=log,
                              dist=d)  # fmt: skip
    if not d.is_writer:  # rank 0 scores and writes the run directory; the others read it back
        d.barrier()
        return _read_back(out, timings)
    cv = None
    if "cv_probs" in detectors.get(config.detector).needs:
        def cv() -> np.ndarray:  # noqa: E306 - cached in the run directory
            p = out / rd.CV_PROBS
            if p.is_file():
                return np.load(p, allow_pickle=False)
            probs = protocol.cross_validated_probs(spec, tcfg, inputs.tensor, given, num_classes=ds.n_classes,
                                                   seed=config.seed, folds=config.folds)  # fmt: skip
            rd.atomic_write(p, lambda fh: np.save(fh, probs, allow_pickle=False))
            return probs
    ev = _evidence(rec, inputs, given, ds.n_classes, config, cv)
    det = detectors.detect(config.detector, ev)  # the chosen detector first: its errors are the user's
    timings["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    post = _posterior(rec, ev, config)
    table, meta = write_outputs(
        out, ds, config, model=model, rec=rec, ev=ev, det=det, post=post, given=given, truth=truth,
        noise_info=noise_info, inputs=inputs, tcfg=tcfg, command=command, origin=origin, fingerprint=fp,
        timings=timings, t_start=t_start, probe=probe, resolution_probe=rprobe, distributed=d.describe(),
    )  # fmt: skip
    d.barrier()
    return ScanResult(out, table, meta, det, timings)


def _quiet(_: str) -> None:
    pass


def _on_writer(d: distributed.Dist, fn: Callable[[], str]) -> str:
    """``fn()`` on rank 0 and its result on every rank; its error is raised on every rank."""
    if not d.active:
        return fn()
    result, error, exc = "", None, None
    if d.is_writer:
        try:
            result = fn()
        except (ValueError, OSError) as e:
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
                              float("nan") if m["cutoff"] is None else float(m["cutoff"]), m["rule"])  # fmt: skip
    return ScanResult(out, run.samples, run.meta, det, timings)
