"""One scan: dataset → (noise) → inputs → training runs with the recorder → detection → run dir.

This is the product's main job (``labeltrace scan``). It stitches the stages together and
writes everything through :mod:`labeltrace.rundir`; the method itself lives in
:mod:`labeltrace.detect`, :mod:`labeltrace.scores` and :mod:`labeltrace.threshold`.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from labeltrace import __version__
from labeltrace import rundir as rd
from labeltrace.data import ImageDataset
from labeltrace.decide import cutoffs as threshold
from labeltrace.decide import detectors as detect
from labeltrace.evaluate import metrics, noise
from labeltrace.record import Recorder
from labeltrace.score import trajectory as scores
from labeltrace.train import TrainConfig, train_recorded

__all__ = ["MODEL_DEFAULTS", "ScanConfig", "ScanResult", "parse_noise", "prepare_inputs", "scan"]

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

TRAJECTORY_COLUMNS = ("sei", "ei", "se_last", "se_mid", "aum", "loss", "forgetting", "confidence", "variability")


@dataclass(frozen=True)
class ScanConfig:
    """Everything a scan depends on (written to run.json)."""

    model: str = "auto"  # small-cnn | effnet-lite0 | clip | auto
    epochs: int | None = None  # None: the model's default
    runs: int = 2  # in-sample detectors: 2 runs with disjoint auxiliary sets; 1: one run, no auxiliary class
    folds: int = 5  # held-out detectors (crossfit): models trained in lockstep, each on all folds but one
    batch_size: int | None = None  # None: the model's default
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None  # None: the model's default
    schedule: str = "cosine"
    augment: bool | None = None
    image_size: int | None = None  # small-cnn input side (default: native if <= 64, else 64)
    width: int | None = None  # small-cnn base width (default: 16 for images <= 16 px, else 32)
    head: str = "mlp"  # effnet-lite0: linear | mlp
    hidden: int | None = None  # effnet-lite0 mlp head width (None: the model's default)
    resolution: int = 96  # effnet-lite0 feature resolution
    finetune: bool = False  # effnet-lite0: train the whole network on the images, not a head on cached features
    aux_fraction: float | None = None  # default 1 / (K + 1)
    detector: str = "crossfit"  # see labeltrace.detect; crossfit is cross-fitted, the others in-sample
    suggest_last: int = 5  # epochs averaged for the suggested label
    noise: str | None = None  # e.g. "symmetric:0.2"
    seed: int = 0
    device: str = "auto"
    cache_dir: str | None = None
    csv: bool = False
    knn_k: int = 10
    clip_model: str | None = None  # clip: local directory (save_pretrained) or cached hub name
    clip_template: str = "a photo of a {}"
    aux_prompt: str = "a photo of something else"  # clip: the auxiliary class's prompt


@dataclass
class ScanResult:
    run_dir: Path
    table: pa.Table
    meta: dict[str, Any]
    detection: detect.Detection
    timings: dict[str, float] = field(default_factory=dict)


def parse_noise(spec: str) -> tuple[str, float]:
    """``"symmetric:0.2"`` → ``("symmetric", 0.2)``; kinds: symmetric, pair, confusion, instance."""
    kind, sep, rate = spec.partition(":")
    if not sep or kind not in ("symmetric", "pair", "confusion", "instance"):
        raise ValueError(f"--noise must look like symmetric:0.2, pair:0.2, confusion:0.3 or instance:0.2; got {spec!r}")
    try:
        r = float(rate)
    except ValueError:
        raise ValueError(f"--noise rate must be a number, got {rate!r}") from None
    if not 0.0 < r < 1.0:
        raise ValueError(f"--noise rate must be in (0, 1), got {r}")
    return kind, r


def _flat_features(x: np.ndarray, size: int = 16) -> np.ndarray:
    t = torch.as_tensor(x)
    if t.ndim == 4 and t.shape[-1] > size:
        t = torch.nn.functional.adaptive_avg_pool2d(t, size)
    return t.reshape(len(t), -1).numpy()


def _inject_noise(spec: str, labels: np.ndarray, k: int, feats: np.ndarray, seed: int) -> noise.NoisyLabels:
    kind, rate = parse_noise(spec)
    if kind == "symmetric":
        return noise.symmetric(labels, rate, k, seed=seed)
    if kind == "pair":
        return noise.pair(labels, rate, k, seed=seed)
    if kind == "instance":
        return noise.instance_dependent(feats, labels, rate, k, seed=seed)
    # confusion: flips follow a model's confusion matrix, from 3-fold logistic regression on clean labels
    from labeltrace.train.crossval import crossval_probs

    p = crossval_probs(feats, labels, n_folds=3, C=1.0, seed=seed)
    cm = np.zeros((k, k))
    np.add.at(cm, (labels, p.argmax(1)), 1.0)
    return noise.confusion_calibrated(labels, rate, cm, seed=seed)


def resolve_model(config: ScanConfig, ds: ImageDataset) -> str:
    if config.model != "auto":
        if config.model not in MODEL_DEFAULTS:
            raise ValueError(f"unknown model {config.model!r}; choose from auto, {', '.join(MODEL_DEFAULTS)}")
        return config.model
    shape = ds.image_shape
    small = shape is not None and max(shape[:2]) <= 64
    if small:
        return "small-cnn"
    try:
        import efficientnet_lite_pytorch  # noqa: F401

        return "effnet-lite0"
    except ImportError:
        return "small-cnn"


def prepare_inputs(
    ds: ImageDataset, model_name: str, config: ScanConfig, *, progress: bool
) -> tuple[torch.Tensor, dict[str, Any], np.ndarray | None]:
    """Model inputs as one CPU tensor, a description, and features for kNN/noise (if any)."""
    if model_name == "small-cnn":
        shape = ds.image_shape
        size = config.image_size or (None if shape is not None and max(shape[:2]) <= 64 else 64)
        x = ds.materialize(size=size, channels=None)
        mean = x.mean(axis=(0, 2, 3), keepdims=True)
        std = x.std(axis=(0, 2, 3), keepdims=True) + 1e-6
        xt = torch.from_numpy(((x - mean) / std).astype(np.float32))
        return xt, {"kind": "images", "shape": list(x.shape[1:])}, None
    if model_name == "clip" or (model_name == "effnet-lite0" and config.finetune):
        shape = ds.image_shape
        size = config.image_size or (None if shape is not None else 224)
        x = ds.materialize(size=size, channels=3)  # the classifier resizes, crops and normalises
        return torch.from_numpy(x), {"kind": "images", "shape": list(x.shape[1:])}, None
    if model_name == "effnet-lite0":
        from labeltrace.models import backbone

        res = config.resolution

        def compute() -> np.ndarray:
            batch = 256
            chunks = (
                ds.load_batch(np.arange(i, min(i + batch, len(ds))), size=32 if ds.image_shape is None else None,
                              channels=3)
                for i in range(0, len(ds), batch)
            )  # fmt: skip
            return backbone.extract_features(chunks, resolution=res, progress=progress,
                                             device=str(_device(config)))  # fmt: skip

        fp = backbone.fingerprint_files([str(ds.root / s) if ds.root else s for s in ds.sources]) \
            if ds.root is not None else backbone.fingerprint_array(ds.materialize(dtype=np.uint8))
        cache = Path(config.cache_dir or Path.home() / ".cache" / "labeltrace" / "features")
        feats = backbone.cached_features(
            {"data": fp, "n": len(ds), "model": "efficientnet-lite0", "resolution": res}, compute, cache_dir=cache
        )
        f = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
        return torch.from_numpy(f.astype(np.float32)), {"kind": "features", "dim": int(f.shape[1]),
                                                        "resolution": res, "cache_dir": str(cache)}, f
    raise ValueError(f"model {model_name!r} is not supported by scan")


def _device(config: ScanConfig) -> torch.device:
    from labeltrace.train import resolve_device

    return resolve_device(config.device)


def _build(model_name: str, config: ScanConfig, inputs: torch.Tensor, n_out: int,
           classes: list[str]) -> torch.nn.Module:  # fmt: skip
    from labeltrace.models import build_model

    if model_name == "clip":  # (scan checked that config.clip_model is set)
        return build_model("clip", num_classes=n_out, in_channels=int(inputs.shape[1]), class_names=classes,
                           model_name_or_path=config.clip_model, template=config.clip_template,
                           aux_prompt=config.aux_prompt if n_out > len(classes) else None)  # fmt: skip

    if model_name == "small-cnn":
        side = int(inputs.shape[-1])
        width = config.width or (16 if side <= 16 else 32)
        return build_model("small-cnn", num_classes=n_out, in_channels=int(inputs.shape[1]),
                           image_size=side, width=width)  # fmt: skip
    hidden = config.hidden or MODEL_DEFAULTS["effnet-lite0"]["hidden"]
    if config.finetune:  # the whole network; images in, resized and normalised inside
        head_kw = {"hidden": hidden} if config.head == "mlp" else {}
        return build_model("effnet-lite0", num_classes=n_out, in_channels=3, head=config.head, finetune=True,
                           resolution=config.resolution, **head_kw)  # fmt: skip
    if config.head == "mlp":
        return build_model("mlp", num_classes=n_out, in_dim=int(inputs.shape[1]),
                           hidden=hidden)  # fmt: skip
    return build_model(config.head, num_classes=n_out, in_dim=int(inputs.shape[1]))


def _aux_masks(config: ScanConfig, given: np.ndarray, k: int) -> list[np.ndarray]:
    """Two disjoint auxiliary sets (``runs=2``) or none (``runs=1``)."""
    if config.runs == 1:
        return [np.zeros(len(given), dtype=bool)]
    return threshold.assign_auxiliary_pair(given, k, fraction=config.aux_fraction, seed=config.seed)


def _record_in_sample(
    model_name: str, config: ScanConfig, tcfg: TrainConfig, inputs: torch.Tensor, given: np.ndarray,
    ds: ImageDataset, out: Path, aux_masks: list[np.ndarray], *, progress: bool,
) -> tuple[list[detect.RecordedRun], list[float], torch.nn.Module]:  # fmt: skip
    """One recorded training per auxiliary mask, each on every sample (the SEI paper's protocol)."""
    K = ds.n_classes
    runs: list[detect.RecordedRun] = []
    train_acc: list[float] = []
    model: torch.nn.Module | None = None
    for r, aux in enumerate(aux_masks):
        n_out = K + 1 if aux.any() else K
        y = threshold.auxiliary_labels(given, aux, K) if aux.any() else given
        torch.manual_seed(config.seed * 7919 + r)
        model = _build(model_name, config, inputs, n_out, list(ds.classes))
        res = train_recorded(
            model, inputs, y, num_classes=n_out, config=replace(tcfg, seed=config.seed * 7919 + r),
            checkpoint_dir=out / rd.CHECKPOINTS / f"run{r}", keep_probs=config.suggest_last,
            progress=progress, desc=f"run {r + 1}/{len(aux_masks)}",
        )  # fmt: skip
        res.recorder.save(rd.dynamics_path(out, r))
        runs.append(detect.RecordedRun(res.recorder.dynamics(), aux, K))
        train_acc.append(res.final_train_accuracy)
    assert model is not None
    return runs, train_acc, model


def _record_crossfit(
    model_name: str, config: ScanConfig, tcfg: TrainConfig, inputs: torch.Tensor, given: np.ndarray,
    ds: ImageDataset, out: Path, *, progress: bool,
) -> tuple[detect.RecordedRun, np.ndarray, list[float], torch.nn.Module]:  # fmt: skip
    """``config.folds`` models in lockstep, every sample recorded each epoch by the model that
    never trained on it (:func:`labeltrace.crossfit.crossfit_recorded`)."""
    from labeltrace.train.crossfit import crossfit_recorded

    K = ds.n_classes
    built: list[torch.nn.Module] = []

    def build(fold: int) -> torch.nn.Module:
        torch.manual_seed(config.seed * 7919 + 101 * fold)
        built.append(_build(model_name, config, inputs, K, list(ds.classes)))
        return built[-1]

    in_sample = Recorder(len(given), K, keep_probs=1)  # keep_probs > 0 keeps the softmax sums
    rec, folds = crossfit_recorded(
        build, inputs, given, num_classes=K, config=replace(tcfg, seed=config.seed * 7919), n_folds=config.folds,
        checkpoint_dir=out / rd.CHECKPOINTS / "crossfit", keep_probs=config.suggest_last, progress=progress,
        desc=f"cross-fit ({config.folds} folds)", in_sample=in_sample,
    )  # fmt: skip
    rec.save(rd.dynamics_path(out, 0))
    in_sample.save(rd.in_sample_path(out, 0))
    dyn = rec.dynamics()
    held_out_acc = float(np.nanmean(dyn.mean("correct")))
    run = detect.RecordedRun(dyn, np.zeros(len(given), dtype=bool), K, held_out=True, in_sample=in_sample.dynamics())
    return run, folds, [held_out_acc], built[0]


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
) -> ScanResult:
    """Score every sample of ``ds`` and write the run directory ``out``.

    A killed scan restarted with the same ``out`` and config resumes from the last finished
    epoch of each training run (checkpoints under ``out/checkpoints``). ``origin`` describes where
    the dataset came from (``kind``: folder | manifest | npz | example | arrays, ``source``, and
    for manifests the column names) so that cleaned labels can be written back in that format.
    ``true_labels`` (known clean labels, e.g. CIFAR-10N's ``clean``) turns on the detection
    metrics against real noise, exactly as ``config.noise`` does for injected noise.
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    K, N = ds.n_classes, len(ds)
    if config.runs not in (1, 2):
        raise ValueError(f"runs must be 1 or 2, got {config.runs}")
    if config.detector not in detect.available():
        raise ValueError(f"unknown detector {config.detector!r}; available: {', '.join(detect.available())}")
    model_name = resolve_model(config, ds)
    if model_name == "clip" and not config.clip_model:
        raise ValueError("--model clip needs --clip-model: a local CLIP directory or a cached hub name")
    if detect.needs_held_out(config.detector) and not 2 <= config.folds <= N // 2:
        raise ValueError(f"folds must be in [2, N/2 = {N // 2}], got {config.folds}")
    if config.finetune and model_name != "effnet-lite0":
        raise ValueError(f"--finetune applies to effnet-lite0, not {model_name}")
    d = MODEL_DEFAULTS[model_name] | (FINETUNE_DEFAULTS if config.finetune else {})
    tcfg = TrainConfig(
        epochs=config.epochs or d["epochs"], batch_size=config.batch_size or d["batch_size"], lr=config.lr or d["lr"],
        momentum=config.momentum,
        weight_decay=d["weight_decay"] if config.weight_decay is None else config.weight_decay,
        schedule=config.schedule,  # type: ignore[arg-type]
        augment=d["augment"] if config.augment is None else config.augment, seed=config.seed, device=config.device,
    )  # fmt: skip
    torch.manual_seed(config.seed)
    t0 = time.perf_counter()
    inputs, input_desc, feats = prepare_inputs(ds, model_name, config, progress=progress)
    timings["prepare_inputs"] = time.perf_counter() - t0

    given = ds.labels.copy()
    noise_info: dict[str, Any] | None = None
    if true_labels is not None:
        if config.noise:
            raise ValueError("give either known true labels or --noise, not both")
        true_labels = np.asarray(true_labels, dtype=np.int64)
        if true_labels.shape != given.shape:
            raise ValueError(f"true labels have shape {true_labels.shape}, the dataset {given.shape}")
        noise_info = {"spec": "known true labels", "realised_rate": float((true_labels != given).mean()),
                      "n_flipped": int((true_labels != given).sum())}  # fmt: skip
    else:
        true_labels = given.copy()
    if config.noise:
        nf = feats if feats is not None else _flat_features(inputs.numpy())
        nl = _inject_noise(config.noise, true_labels, K, nf, config.seed)
        given = nl.labels
        noise_info = {"spec": config.noise, "realised_rate": nl.rate, "n_flipped": int(nl.flipped.sum())}
        log(f"injected {config.noise} noise: {int(nl.flipped.sum())} of {N} labels flipped ({nl.rate:.1%})")

    # ---- training runs: cross-fitted (held-out) for detectors that need it, else in-sample
    t0 = time.perf_counter()
    folds: np.ndarray | None = None
    if detect.needs_held_out(config.detector):
        aux_masks = [np.zeros(N, dtype=bool)]
        run, folds, train_acc, last_model = _record_crossfit(model_name, config, tcfg, inputs, given, ds, out,
                                                             progress=progress)  # fmt: skip
        runs = [run]
    else:
        aux_masks = _aux_masks(config, given, K)
        runs, train_acc, last_model = _record_in_sample(model_name, config, tcfg, inputs, given, ds, out, aux_masks,
                                                        progress=progress)  # fmt: skip
    timings["train"] = time.perf_counter() - t0

    # ---- scores and detection
    t0 = time.perf_counter()
    T = runs[0].dynamics.num_epochs
    cols: dict[str, np.ndarray] = {}
    for c in TRAJECTORY_COLUMNS:
        name, kw = {"se_last": ("se_at", {"epoch": -1}), "se_mid": ("se_at", {"epoch": T // 2})}.get(c, (c, {}))
        cols[c] = detect.combined_score(name, runs, **kw)
    # suggested labels: held-out runs average the whole trajectory (an ensemble of honest
    # predictions); in-sample runs the last epochs (the early ones are still underfit)
    post = detect.posterior(runs, last=None if runs[0].held_out else min(config.suggest_last, T))
    from labeltrace.score import probs as probs_mod

    cols["self_confidence"] = probs_mod.self_confidence(post, given)
    cols["normalized_margin"] = probs_mod.normalized_margin(post, given)
    if feats is None and last_model is not None and hasattr(last_model, "features"):
        with torch.no_grad():
            last_model.eval()
            dev = next(last_model.parameters()).device
            emb = torch.cat([last_model.features(inputs[i : i + 512].to(dev)).cpu()
                             for i in range(0, N, 512)]).numpy()  # fmt: skip
    else:
        emb = feats
    if emb is not None and N > config.knn_k + 1:
        from labeltrace.score.knn import knn_vote

        cols["knn_vote"] = knn_vote(emb, given, k=config.knn_k)
    det = detect.detect(config.detector, runs)
    noise_rate_est = float(threshold.estimate_noise_rate(post, given))
    timings["score"] = time.perf_counter() - t0

    flagged = det.flagged
    score = det.score
    order = np.lexsort((np.arange(N), np.where(np.isnan(score), np.inf, score)))
    rank = np.empty(N, dtype=np.int64)
    rank[order] = np.arange(1, N + 1)
    sugg = post.argmax(1)
    classes = list(ds.classes)
    table_cols: dict[str, Any] = {
        "id": np.arange(N, dtype=np.int64),
        "external_id": list(ds.ids),
        "path": list(ds.sources),
        "given_label": [classes[i] for i in given],
        "given_label_id": given.astype(np.int64),
        "suggested_label": [classes[i] for i in sugg],
        "suggested_label_id": sugg.astype(np.int64),
        "suggested_prob": post[np.arange(N), sugg],
        "score": score,
        "is_suspect": flagged,
        "rank": rank,
    }
    table_cols.update(cols)
    for r, aux in enumerate(aux_masks):
        if aux.any():
            table_cols[f"aux_run{r}"] = aux
    if folds is not None:
        table_cols["fold"] = folds.astype(np.int64)
    report = None
    if noise_info is not None:
        is_noisy = given != true_labels
        table_cols["true_label"] = [classes[i] for i in true_labels]
        table_cols["true_label_id"] = true_labels.astype(np.int64)
        table_cols["is_noisy"] = is_noisy
        report = metrics.detection_report(is_noisy, flagged, score)
        # every score's ranking (AUROC, F1 when flagging exactly the true number) and every
        # detector with its own decision rule, side by side
        noise_info["per_score"] = {
            c: {k: metrics.report_at_true_rate(is_noisy, v, nan_policy="omit")[k] for k in ("auroc", "f1")}
            for c, v in cols.items()
        }
        per_det = {}
        for name in detect.available():
            if not detect.applicable(name, runs):
                continue
            d_ = det if name == det.name else detect.detect(name, runs)
            r_ = metrics.detection_report(is_noisy, d_.flagged, d_.score, nan_policy="omit")
            per_det[name] = {"rule": d_.rule, **{k: r_[k] for k in ("precision", "recall", "f1", "auroc")},
                             "f1_at_true_rate": metrics.report_at_true_rate(is_noisy, d_.score, nan_policy="omit")["f1"]}
        noise_info["per_detector"] = per_det
    table = pa.table(table_cols)
    rd.write_table(out / rd.SAMPLES, table)
    if config.csv:
        rd.write_table(out / rd.SAMPLES_CSV, table)
    if ds.root is None:  # array datasets: keep the pixels so reports and review can show them
        imgs = ds.materialize(dtype=np.uint8).transpose(0, 2, 3, 1)
        rd.atomic_write(out / rd.IMAGES, lambda fh: np.save(fh, imgs, allow_pickle=False))
    timings["total"] = time.perf_counter() - t_start
    meta: dict[str, Any] = {
        "format": rd.FORMAT,
        "labeltrace_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "config": asdict(config),
        "model": model_name,
        "train": asdict(tcfg) | ({"held_out_accuracy": train_acc} if folds is not None
                                 else {"final_train_accuracy": train_acc}),
        "inputs": input_desc,
        "runs": len(aux_masks),
        "protocol": ({"kind": "crossfit", "folds": config.folds, "dynamics": "held-out"} if folds is not None
                     else {"kind": "in-sample", "runs": len(aux_masks), "dynamics": "in-sample"}),
        "data": {
            "kind": ds.kind,
            **(origin or {}),
            "root": str(ds.root) if ds.root else None,
            "allowed_roots": [str(r) for r in ds.allowed_roots],  # image files outside are never read
            "num_samples": N,
            "classes": classes,
            "skipped": [list(s) for s in ds.skipped],
        },
        "seed": config.seed,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
                     "platform": platform.platform()},  # fmt: skip
        "timings": timings,
        "detector": {"name": det.name, "rule": det.rule, "cutoff": det.cutoff, "score_column": "score"},
        "scores": list(cols),
        "counts": {"n": N, "flagged": int(flagged.sum()), "auxiliary_per_run": [int(a.sum()) for a in aux_masks]},
        "noise_rate_estimate": noise_rate_est,
        "noise": noise_info,
        "metrics": report,
    }
    rd.write_json(out / rd.RUN_JSON, meta)
    return ScanResult(out, table, meta, det, timings)


def available_scores() -> list[str]:
    return scores.available()
