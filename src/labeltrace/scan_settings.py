"""What a scan is asked to do and what that resolves to: :class:`ScanConfig`, the per-model
defaults, the probes of ``--model auto`` / ``--resolution auto``, the network, training and
recording protocol a configuration means, and the fingerprint that identifies its result.

Pure settings: nothing here trains or writes (:mod:`labeltrace.scan` runs the scan).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from labeltrace._io import digest
from labeltrace.data import ImageDataset, decode
from labeltrace.decide import detectors
from labeltrace.evaluate import noise
from labeltrace.models.inputs import data_identity, should_stream
from labeltrace.scan_unread import unread_message, unread_settings
from labeltrace.train import TrainConfig, check_device, protocol, resolve_device
from labeltrace.train.checkpoint import config_key
from labeltrace.train.precision import PRECISIONS, Precision, resolve_precision
from labeltrace.train.recipe import NetworkSpec

if TYPE_CHECKING:
    from labeltrace.models.probe import Probe

__all__ = [
    "AUTO_BFLOAT16", "FINETUNE_DEFAULTS", "MODEL_DEFAULTS", "ScanConfig", "check", "fingerprint", "network_spec",
    "recording_protocol", "noise_feature_source", "noise_resolution", "on_frozen_features", "parse_noise",
    "probe_dataset", "resolve_model", "resolve_resolution", "settings_used", "streams", "train_config",
    "training_precision", "AUTO_BACKBONE_BFLOAT16", "backbone_precision",
]  # fmt: skip


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
    image_size: int | None = None  # small-cnn input side (default: native if all share one size <= 64, else 64)
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
    precision: str = "auto"  # the training's forward passes: float32 | bfloat16 | auto (training_precision)
    backbone_precision: str = "auto"  # the frozen backbone's: float32 | bfloat16 | auto (backbone_precision)
    cache_dir: str | None = None
    csv: bool = False
    knn_k: int = 10
    clip_model: str | None = None  # clip: local directory (save_pretrained) or cached hub name
    clip_template: str = "a photo of a {}"
    aux_prompt: str = "a photo of something else"  # clip: the auxiliary class's prompt
    early_stop: bool = False  # crossfit: stop training once the ranking is stable (train.early_stop)
    stream: bool | None = None  # decode images batch by batch in workers; None: when the inputs exceed 2 GiB
    workers: int | None = None  # decoding processes when streaming (None: CPUs - 1, at most 8)


def noise_resolution(config: ScanConfig) -> int:
    """The frozen-feature resolution the feature-following noise (``confusion``, ``instance``)
    reads: the one asked for, 96 px under ``auto`` — the labels must not depend on the pick
    (the bench draws them the same way: ``DatasetData.base_resolution``)."""
    return config.resolution or 96


def noise_feature_source(config: ScanConfig, ds: ImageDataset) -> Callable[[], np.ndarray]:
    """The frozen EfficientNet-Lite0 features at :func:`noise_resolution` (cached on disk)."""
    from labeltrace.models.inputs import prepare_inputs

    def features() -> np.ndarray:
        f = prepare_inputs(ds, "effnet-lite0", resolution=noise_resolution(config), cache_dir=config.cache_dir,
                           device=str(resolve_device(config.device))).features  # fmt: skip
        assert f is not None  # in memory: not streamed
        return f

    return features


def probe_dataset(config: ScanConfig, ds: ImageDataset,
                  noise_features: Callable[[], np.ndarray] | None = None) -> tuple[ImageDataset, str]:  # fmt: skip
    """The dataset a probe sees: with the labels the scan trains on, as a user's would (symmetric
    and pair noise drawn as the scan draws it; feature-following noise too when
    ``noise_features`` gives the features it follows). Otherwise that noise follows the chosen
    model's features, so the probe sees the labels before it (said in the returned note)."""
    if not config.noise:
        return ds, ""
    kind = noise.parse_spec(config.noise)[0]
    if kind in ("symmetric", "pair") or noise_features is not None:  # symmetric, pair: the very labels injected later
        feats = np.zeros((len(ds), 0), np.float32) if noise_features is None or kind in ("symmetric", "pair") \
            else noise_features()  # fmt: skip
        nl = noise.inject(config.noise, ds.labels, ds.n_classes, feats, seed=config.seed, classes=ds.classes)
        return ds.with_labels(nl.labels), ""
    return ds, f"; labels before the {kind} noise"


def _probed(choice: Probe, note: str) -> dict[str, Any]:
    d = choice.as_dict()
    d["reason"] += note
    return d


def resolve_model(config: ScanConfig, ds: ImageDataset) -> tuple[str, dict[str, Any] | None]:
    """The network to train, and for ``--model auto`` the probe that chose it
    (:func:`labeltrace.models.probe.choose_model`: held-out accuracy on a subset)."""
    if config.model != "auto":
        if config.model not in MODEL_DEFAULTS:
            raise ValueError(f"unknown model {config.model!r}; choose from auto, {', '.join(MODEL_DEFAULTS)}")
        return config.model, None
    from labeltrace.models.probe import choose_model

    probe_ds, note = probe_dataset(config, ds)
    probe = choose_model(probe_ds, seed=config.seed, cache_dir=config.cache_dir,
                         device=str(resolve_device(config.device)))  # fmt: skip
    return probe.model, _probed(probe, note)


def on_frozen_features(model: str, config: ScanConfig) -> bool:
    """Whether ``model`` trains a head on frozen backbone features (not a network on the images)."""
    return model == "effnet-lite0" and not config.finetune


def resolve_resolution(config: ScanConfig, model: str, ds: ImageDataset) -> tuple[int, dict[str, Any] | None]:
    """The effnet-lite0 resolution: ``config.resolution`` when set; else, for frozen features,
    the probe of :func:`labeltrace.models.probe.choose_resolution` (96 or 224 px) on the labels
    the scan trains on (injected noise included); 96 px for fine-tuning (its input size) and for
    the other models (which do not use it)."""
    if config.resolution is not None:
        if config.resolution <= 0:
            raise ValueError(f"resolution must be positive, got {config.resolution}")
        return config.resolution, None
    if not on_frozen_features(model, config):
        return 96, None
    from labeltrace.models.probe import choose_resolution

    probe_ds, note = probe_dataset(config, ds, noise_feature_source(config, ds))
    probe = choose_resolution(probe_ds, seed=config.seed, cache_dir=config.cache_dir,
                              device=str(resolve_device(config.device)))  # fmt: skip
    return int(probe.model), _probed(probe, note)


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
        precision=training_precision(model, config),
    )  # fmt: skip


#: the models ``--precision auto`` trains in bfloat16 where the device runs it natively, for a
#: detector whose evidence is cross-fitted (``held_out``: crossfit, the default, and its variants):
#: where bfloat16 was measured to keep the results — the small CNN's default detector on the dev cells
#: (results/dev-cnn-precision.md) and the crossfit family on the test cells (results/test-cnn-precision.md,
#: where the kNN vote and SEI of in-sample runs lost F1 under it). Everything else trains in float32
#: unless bfloat16 is asked for by name (a frozen-feature head gains little: its inputs' extraction is
#: the cost).
AUTO_BFLOAT16 = frozenset({"small-cnn"})


def training_precision(model: str, config: ScanConfig) -> Precision:
    """The precision ``model``'s trainings run in: ``float32`` or ``bfloat16`` as asked; ``auto``
    bfloat16 for a model of :data:`AUTO_BFLOAT16` under a cross-fitted detector on a device with
    native bfloat16 (:func:`labeltrace.train.precision.native_bfloat16`), float32 otherwise."""
    if config.precision == "auto" and (model not in AUTO_BFLOAT16
                                       or "held_out" not in detectors.get(config.detector).needs):  # fmt: skip
        return "float32"
    return resolve_precision(config.precision, resolve_device(config.device))


#: whether ``--backbone-precision auto`` extracts the frozen EfficientNet-Lite0 features in bfloat16
#: where the device runs it natively (the head they train still trains as ``--precision`` says):
#: a candidate on the frozen-feature dev cells (results/dev-extract-precision.md: crossfit ΔF1 +0.0005
#: [−0.0045, +0.0055], ΔAUROC −0.0004 [−0.0017, +0.0010], extraction at 224 px 1.6–2.8 × faster on an
#: AMD EPYC with AVX512-BF16), then gated on 17 frozen-feature test cells before it became the default
#: (results/test-extract-precision.md: ΔF1 +0.0013 [−0.0009, +0.0035], ΔAUROC +0.0008 [−0.0001, +0.0018])
AUTO_BACKBONE_BFLOAT16 = True


def backbone_precision(model: str, config: ScanConfig) -> Precision:
    """The precision the frozen backbone's forward passes run in for ``model``: ``float32`` where
    ``model`` reads no frozen EfficientNet features (a network on the images, fine-tuning); else as
    ``config.backbone_precision`` asks, ``auto`` bfloat16 on a device with native bfloat16 while
    :data:`AUTO_BACKBONE_BFLOAT16` holds, float32 otherwise."""
    if not on_frozen_features(model, config) or (config.backbone_precision == "auto" and not AUTO_BACKBONE_BFLOAT16):
        return "float32"
    return resolve_precision(config.backbone_precision, resolve_device(config.device))


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


def settings_used(config: ScanConfig, *, frozen_features: bool) -> ScanConfig:
    """``config`` with each protocol setting the detector does not read back at its default:
    ``runs`` (in-sample runs; the one-training detectors always train once), ``aux_fraction``
    (two in-sample runs alone draw auxiliary sets), ``folds`` (a cross-fitted recording or K-fold
    probabilities) and ``suggest_last`` (the in-sample posterior behind suggested labels; also the
    softmax epochs the recording keeps). What identifies a scan's result: ``--runs 1`` under
    crossfit trains the same folds as ``--runs 2``."""
    from labeltrace.scan_account import k_fold

    plan = recording_protocol(config.detector, config, frozen_features=frozen_features)
    in_sample = isinstance(plan, protocol.InSample)
    used = {"runs": in_sample and "single" not in detectors.get(config.detector).needs,
            "aux_fraction": in_sample and plan.runs > 1,  # type: ignore[union-attr]
            "folds": isinstance(plan, protocol.CrossFit) or k_fold(config), "suggest_last": in_sample}  # fmt: skip
    return replace(config, **{k: getattr(ScanConfig, k) for k, on in used.items() if not on})


_WHOLE = ("epochs", "runs", "folds", "batch_size", "image_size", "width", "hidden", "resolution", "suggest_last", "seed",
          "knn_k", "workers")
_REAL = ("lr", "momentum", "weight_decay", "aux_fraction")
_FLAGS = ("augment", "finetune", "csv", "early_stop", "stream")
_TEXT = ("model", "schedule", "head", "detector", "device", "precision")


def _check_types(config: ScanConfig) -> None:
    """Each field of the type it is read as, named as the flag and the field (``ScanConfig(epochs="10")``
    from Python failed deep inside: "'<' not supported between 'str' and 'int'", or ``folds=5.0`` in
    the trainer)."""
    def refuse(name: str, what: str, v: Any) -> None:
        raise ValueError(f"--{name.replace('_', '-')} (ScanConfig.{name}) must be {what}, got {v!r} "
                         f"({type(v).__name__})")  # fmt: skip

    for name in _WHOLE:
        v = getattr(config, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | np.integer)):
            refuse(name, "a whole number" + (" or None" if name not in ("runs", "folds", "seed", "knn_k",
                                                                        "suggest_last") else ""), v)  # fmt: skip
    for name in _REAL:
        v = getattr(config, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating)):
            refuse(name, "a number" + ("" if name == "momentum" else " or None"), v)  # its range: checked below
    for name in _FLAGS:
        v = getattr(config, name)
        if v is not None and not isinstance(v, bool | np.bool_):
            refuse(name, "True or False" + (" or None" if name in ("augment", "stream") else ""), v)
    for name in _TEXT:
        if not isinstance(getattr(config, name), str):
            refuse(name, "a string", getattr(config, name))


def check(config: ScanConfig, model: str | None, n: int | None) -> None:
    """Refuse settings that cannot run, each error naming its flag; ``model`` None (``auto``, not
    probed yet) checks what does not depend on it — the scan checks before it probes and after;
    ``n`` None (the data not read yet, as the CLI checks first) what does not depend on the size."""
    _check_types(config)
    needs = detectors.get(config.detector).needs  # unknown → a clear error
    detectors.check_installed(config.detector)  # before the folder is claimed: nothing left behind to resume
    if config.runs not in (1, 2):
        raise ValueError(f"--runs must be 1 or 2, got {config.runs}")
    for flag, v in (("--epochs", config.epochs), ("--batch-size", config.batch_size), ("--hidden", config.hidden),
                    ("--width", config.width), ("--image-size", config.image_size)):  # fmt: skip
        if v is not None and v < 1:  # 0 is no "default": the flag left out is
            raise ValueError(f"{flag} must be >= 1, got {v}")
    if config.lr is not None and not 0 < config.lr < math.inf:
        raise ValueError(f"--lr must be a finite number > 0, got {config.lr}")
    if config.weight_decay is not None and not 0 <= config.weight_decay < math.inf:
        raise ValueError(f"--weight-decay must be a finite number >= 0, got {config.weight_decay}")
    for flag, side in (("--image-size", config.image_size), ("--resolution", config.resolution)):
        if side is not None and side**2 > decode.MAX_PIXELS:  # the decoders' pixel limit
            raise ValueError(f"{flag} {side} makes {side**2:,}-pixel inputs, over the limit of "
                             f"{decode.MAX_PIXELS:,} pixels per image")  # fmt: skip
    if config.workers is not None and config.workers < 0:
        raise ValueError(f"--workers must be >= 0, got {config.workers}")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ValueError(f"--seed must be a whole number >= 0, got {config.seed!r}")
    if model == "clip" and not config.clip_model:
        raise ValueError("--model clip needs --clip-model: a local CLIP directory or a cached hub name")
    if n is None:
        if ("held_out" in needs or "cv_probs" in needs) and config.folds < 2:
            raise ValueError(f"--folds must be >= 2 for --detector {config.detector}, got {config.folds}")
    elif ("held_out" in needs or "cv_probs" in needs) and not 2 <= config.folds <= n // 2:
        raise ValueError(f"--folds must be in [2, N/2 = {n // 2}] for --detector {config.detector}, got {config.folds}")
    if n is not None and "features" in needs and n <= config.knn_k + 1:
        raise ValueError(f"--detector {config.detector} votes among each sample's {config.knn_k} nearest neighbours: "
                         f"it needs more than {config.knn_k + 1} samples, got {n}")
    if config.early_stop and "held_out" not in needs:  # it would be ignored, and still bind the folder's fingerprint
        raise ValueError(f"--early-stop stops a cross-fitted recording (a detector with held-out dynamics, such as "
                         f"crossfit); --detector {config.detector} does not record one: leave --early-stop out")
    if config.finetune and model != "effnet-lite0":  # auto too: before its probe, which might pick another
        raise ValueError("--finetune applies to effnet-lite0: give --model effnet-lite0"
                         + (f", not {model}" if model is not None and model != "auto" else
                            " (--model auto chooses between frozen features and a CNN from scratch)"))
    if config.noise:
        noise.parse_spec(config.noise)
    if model is not None and config.model != "auto" and (unread := unread_settings(config, model)):
        raise ValueError(f"--model {model} does not read {unread_message(config, model, unread)}: leave "
                         f"{'it' if len(unread) == 1 else 'them'} out (a run folder scanned with "
                         f"{'it' if len(unread) == 1 else 'them'} resumes without)")
    for flag, asked in (("--precision", config.precision), ("--backbone-precision", config.backbone_precision)):
        if asked not in PRECISIONS:
            raise ValueError(f"{flag} must be one of {', '.join(PRECISIONS)}, got {asked!r}")
    check_device(config.device)


def streams(config: ScanConfig, model: str, ds: ImageDataset) -> bool:
    """Whether the scan streams its inputs: ``config.stream``, else :func:`should_stream`."""
    if config.stream is not None:
        return bool(config.stream)
    return should_stream(ds, model, image_size=config.image_size, finetune=config.finetune)


def fingerprint(ds: ImageDataset, config: ScanConfig, model: str, true_labels: np.ndarray | None, *,
                stream: bool = False, world_size: int = 1, copies: np.ndarray | None = None) -> dict[str, Any]:  # fmt: skip
    """Everything that determines a scan's result: the data's identity and labels (and its exact
    copies, ``copies``, which the folds keep together: a key only where there are any), the noise,
    the inputs (streamed: normalisation statistics from a streaming pass), the network, the
    training (data-parallel: the world size), the protocol (early stop), the detector and the seed.
    Settings at their earlier behaviour add no key, so earlier run directories stay valid; a
    protocol setting the detector does not use holds its default (:func:`settings_used`)."""
    if config.resolution is None:
        raise ValueError("fingerprint: resolve the resolution first (resolve_resolution)")
    spec, tcfg = network_spec(model, config), train_config(model, config)
    # a network cross-fitted on the images keeps the fold models' common embedding (labeltrace.train.
    # embedding); a run directory that kept the first fold model's is another configuration
    frozen = on_frozen_features(model, config)
    common = not frozen and isinstance(recording_protocol(config.detector, config, frozen_features=frozen),
                                       protocol.CrossFit)  # fmt: skip
    used = settings_used(config, frozen_features=frozen)  # an unused setting at its default: the same result
    return {
        "data": data_identity(ds), "classes": list(ds.classes), "labels": digest(ds.labels.astype(np.int64)),
        "truth": None if true_labels is None else digest(np.asarray(true_labels, np.int64)),
        "noise": config.noise, "model": model, "network": asdict(spec), "train": config_key(train=tcfg),
        "inputs": {"image_size": config.image_size, "resolution": config.resolution, "finetune": config.finetune,
                   **({"stream": True} if stream else {}),
                   # features extracted in bfloat16 are other inputs (float32, as before the setting: no key)
                   **({"precision": "bfloat16"} if backbone_precision(model, config) == "bfloat16" else {})},
        "protocol": {"runs": used.runs, "folds": used.folds, "aux_fraction": used.aux_fraction,
                     "suggest_last": used.suggest_last,
                     **({"early_stop": asdict(protocol.EarlyStop())} if config.early_stop else {}),
                     **({"embedding": "common"} if common else {})},
        "detector": config.detector, "seed": config.seed, "knn_k": config.knn_k,
        **({"world_size": world_size} if world_size > 1 else {}),
        **({"groups": digest(list(ds.groups))} if ds.groups is not None else {}),  # folds and neighbours read them
        # the folds keep exact copies together (a scan before them, of data with copies, is another configuration)
        **({"duplicates": digest(np.asarray(copies, np.int64))} if copies is not None and (copies >= 0).any() else {}),
    }  # fmt: skip
