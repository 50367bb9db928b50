"""Benchmark configuration: a TOML file naming datasets x labels x models x detectors x seeds.

Example (see ``benchmarks/configs/default.toml``)::

    name = "default"
    seeds = [0, 1, 2]
    detectors = ["*"]                 # every detector (see below), or a list of names

    [models.small-cnn]                # a model: architecture + training settings
    kind = "small-cnn"                # small-cnn (images) | mlp | linear (frozen EfficientNet features)
    epochs = 20
    lr = 0.05
    cv = "same"                       # cross-validated probabilities: same model, or "logreg" (mlp / linear)

    [[datasets]]
    name = "digits"
    source = "digits"                 # digits | npz | cifar10n | cifar10h
    labels = ["symmetric:0.2", "confusion:0.4"]
    models = ["small-cnn"]

    [quick]                           # applied by --quick
    seeds = [0]
    epochs = 4
    subset = 300
    datasets = ["digits"]

Detector names: the rows of the detector table (:func:`labeltrace.decide.detectors.available`).
``"*"`` selects all of them, so a detector registered later is benchmarked without any change
here; each cell records (and caches) only what the chosen detectors need (the SEI-vs-epochs curve,
``sei_curve = true`` by default, only when ``sei`` is chosen). Top-level settings besides these:
``name``, ``cache_dir``, ``device``, ``threads`` (of torch and of numpy's / scikit-learn's maths
libraries, so that every detector's cost is measured on the same cores), ``n_folds``, ``knn_k``,
``aux_fraction``, ``sei_curve``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labeltrace.bench._toml import check_keys as _check_keys
from labeltrace.bench._toml import check_name, seed_list, str_list
from labeltrace.bench._toml import err as _err
from labeltrace.bench._toml import typed as _typed
from labeltrace.bench.quick import QUICK_DEFAULTS, apply_quick, check_quick

if TYPE_CHECKING:
    from labeltrace.train import TrainConfig
    from labeltrace.train.recipe import NetworkSpec

__all__ = [
    "QUICK_DEFAULTS",
    "BenchConfig",
    "DatasetSpec",
    "ModelSpec",
    "apply_quick",
    "load_config",
    "parse_config",
    "resolve_detectors",
]

#: effnet-lite0: the whole pretrained EfficientNet-Lite0 fine-tuned on the images (``resolution`` px)
MODEL_KINDS = ("small-cnn", "mlp", "linear", "effnet-lite0")
SOURCES = ("digits", "npz", "cifar10n", "cifar10h")
CV_KINDS = ("same", "logreg")
CIFAR10N_LABELS = ("aggre", "random1", "random2", "random3", "worse", "clean")
#: CIFAR-10H (the CIFAR-10 test set): its original labels; truth = the human vote majority
CIFAR10H_LABELS = ("original",)

@dataclass(frozen=True)
class ModelSpec:
    """A model to train with the recorder, and how its cross-validated probabilities are made."""

    name: str
    kind: str = "small-cnn"
    epochs: int = 20
    lr: float = 0.05
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    augment: bool = False
    width: int | None = None  # small-cnn base width (default: 16 for images <= 32 px, else 32)
    image_size: int | None = None  # small-cnn input side (default: native if <= 64, else 64)
    hidden: int = 512  # mlp hidden units
    cv: str = "same"  # "same": K trainings of this model; "logreg": cleanlab's logistic regression
    cv_C: float = 0.05
    cv_max_iter: int = 1000
    resolution: int = 64  # effnet-lite0 (fine-tuned) input resolution
    precision: str = "float32"  # the trainings' forward passes: float32 | bfloat16 (train.precision)
    backbone_precision: str = "float32"  # a head's frozen features, extracted in float32 | bfloat16

    @property
    def on_features(self) -> bool:
        """True for heads trained on frozen EfficientNet-Lite0 features."""
        return self.kind in ("mlp", "linear")

    def key(self) -> dict[str, Any]:
        """Everything that changes what is trained (the cache key part)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "name"}
        if self.kind != "effnet-lite0":  # the field came later: the other kinds' cache keys stay as they were
            d.pop("resolution")
        if self.precision == "float32":  # so did this one
            d.pop("precision")
        d.pop("backbone_precision")  # the features' own fingerprint is in every key that reads them
        if self.kind == "small-cnn" and self.width is None:  # the default width the network is built with
            from labeltrace.train.recipe import SMALL_CNN_WIDTH

            d["width"] = ["default", *SMALL_CNN_WIDTH]
        return d

    def network(self) -> NetworkSpec:
        """The network, as :class:`labeltrace.train.recipe.NetworkSpec` (the one builder)."""
        from labeltrace.train.recipe import NetworkSpec

        if self.kind == "effnet-lite0":
            return NetworkSpec(self.kind, resolution=self.resolution, head="linear")
        return NetworkSpec(self.kind, width=self.width, hidden=self.hidden)

    def train_config(self, device: str) -> TrainConfig:
        """The optimisation settings (the protocol derives the seeds)."""
        from labeltrace.train import TrainConfig

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, momentum=self.momentum,
                           weight_decay=self.weight_decay, schedule=self.schedule,  # type: ignore[arg-type]
                           augment=self.augment, device=device, precision=self.precision)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset and the label sets (noise) to benchmark on it."""

    name: str
    source: str
    labels: tuple[str, ...]
    models: tuple[str, ...]
    path: str | None = None  # npz file, or the cifar10n / cifar10h zip
    split: str = "train"
    # precomputed (N, 1280) EfficientNet-Lite0 features (.npy); "{resolution}" in the path stands for the px
    features: str | None = None
    # feature resolution; None ("auto" in the TOML): per cell, the probe of ``labeltrace scan --resolution auto``
    resolution: int | None = 96
    subset: int | None = None  # stratified subset size (fixed, seed 0)
    noise_features: str = "pixels"  # what the confusion noise's model sees: pixels | backbone
    # keep only these classes (ids of the source), renumbered 0.. in this order; synthetic noise and
    # clean labels only (a source's real label sets may leave the kept classes)
    classes: tuple[int, ...] | None = None
    # leave out the stratified subset of this size (seed 0) before ``subset``: the images of the cells
    # that take ``subset = exclude`` of the same split, so a dev cell can use the rest
    exclude: int | None = None


@dataclass(frozen=True)
class BenchConfig:
    name: str
    seeds: tuple[int, ...]
    detectors: tuple[str, ...]
    models: dict[str, ModelSpec]
    datasets: tuple[DatasetSpec, ...]
    cache_dir: str = "~/.cache/labeltrace/bench"
    n_folds: int = 5
    knn_k: int = 10
    aux_fraction: float | None = None
    sei_curve: bool = True
    device: str = "cpu"
    threads: int | None = None
    quick: dict[str, Any] = field(default_factory=dict)

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser()


# ----------------------------------------------------------------------------- parsing
def _parse_label_spec(spec: str, source: str, where: str) -> str:
    """The label set as the bench names it: a source's own, or synthetic noise written one way
    (``symmetric:0.20`` and ``symmetric:.2`` are ``symmetric:0.2``: one cell, not two)."""
    from labeltrace.evaluate.noise import parse_spec

    real = {"cifar10n": CIFAR10N_LABELS, "cifar10h": CIFAR10H_LABELS}.get(source)
    if spec in (real or ("clean",)):
        return spec
    try:  # synthetic noise on the clean labels, any source
        kind, rate = parse_spec(spec)
    except ValueError as e:
        names = f"; or a label set of the source: {real}" if real else "; or 'clean'"
        raise _err(where, f"labels {spec!r}: {str(e).removeprefix('--noise ')}{names}") from None
    return f"{kind}:{rate!r}"


def _parse_model(name: str, d: Mapping[str, Any]) -> ModelSpec:
    where = f"[models.{name}]"
    if not isinstance(d, Mapping):
        raise _err(where, "must be a table")
    allowed = set(ModelSpec.__dataclass_fields__) - {"name"}
    _check_keys(d, allowed, where)
    kw: dict[str, Any] = {}
    ints = {"epochs", "batch_size", "width", "image_size", "hidden", "cv_max_iter", "resolution"}
    floats = {"lr", "momentum", "weight_decay", "cv_C"}
    for k in d:
        if k in ints:
            kw[k] = _typed(d, k, int, where)
            if kw[k] < 1:
                raise _err(where, f"{k!r} must be >= 1, got {kw[k]}")
        elif k in floats:
            kw[k] = float(_typed(d, k, (int, float), where))
        elif k == "augment":
            kw[k] = _typed(d, k, bool, where)
        else:
            kw[k] = _typed(d, k, str, where)
    spec = ModelSpec(name=name, **kw)
    if spec.kind not in MODEL_KINDS:
        raise _err(where, f"kind must be one of {MODEL_KINDS}, got {spec.kind!r}")
    if spec.cv not in CV_KINDS:
        raise _err(where, f"cv must be one of {CV_KINDS}, got {spec.cv!r}")
    if spec.schedule not in ("cosine", "step", "constant"):
        raise _err(where, f"schedule must be cosine, step or constant, got {spec.schedule!r}")
    for k in ("precision", "backbone_precision"):  # a benchmark names what it measures: no "auto"
        if getattr(spec, k) not in ("float32", "bfloat16"):
            raise _err(where, f"{k} must be float32 or bfloat16, got {getattr(spec, k)!r}")
    if "backbone_precision" in d and not spec.on_features:
        raise _err(where, f"'backbone_precision' is the frozen features' extraction; a {spec.kind!r} model "
                          "trains on images: leave it out (its forward passes: 'precision')")
    if spec.lr <= 0 or spec.cv_C <= 0:
        raise _err(where, "lr and cv_C must be > 0")
    if spec.cv == "logreg" and not spec.on_features:  # cleanlab's recipe fits features, not images
        raise _err(where, f"cv = 'logreg' fits a logistic regression on frozen features; a {spec.kind!r} model "
                          "trains on images: use cv = 'same' (or kind 'mlp' / 'linear')")
    reads = {"width": spec.kind == "small-cnn", "image_size": spec.kind == "small-cnn", "hidden": spec.kind == "mlp",
             "cv_C": spec.cv == "logreg", "cv_max_iter": spec.cv == "logreg"}  # fmt: skip
    if unread := [k for k, read in reads.items() if k in d and not read]:  # accepted, they retrained every
        raise _err(where, f"{', '.join(map(repr, unread))}: not read by a {spec.kind!r} model with cv = "  # cell
                          f"{spec.cv!r} (width and image_size: the small CNN's; hidden: the mlp head's; cv_C and "
                          "cv_max_iter: cv = 'logreg''s): leave them out")  # fmt: skip
    if "resolution" in d and spec.kind != "effnet-lite0":  # a head's features take the dataset's resolution
        raise _err(where, f"'resolution' is the fine-tuned effnet-lite0's input size; a {spec.kind!r} model "
                          "reads the dataset's features: set 'resolution' in its [[datasets]] table")
    return spec


def _str_list(d: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    return tuple(str_list(d[key], key, where))


def _parse_dataset(i: int, d: Mapping[str, Any], models: Mapping[str, ModelSpec]) -> DatasetSpec:
    where = f"[[datasets]] #{i + 1}"
    if not isinstance(d, Mapping):
        raise _err(where, "must be a table")
    allowed = set(DatasetSpec.__dataclass_fields__)
    _check_keys(d, allowed, where)
    for req in ("name", "source", "labels", "models"):
        if req not in d:
            raise _err(where, f"missing key {req!r}")
    name = _typed(d, "name", str, where)
    where = f"dataset {name!r}"
    source = _typed(d, "source", str, where)
    if source not in SOURCES:
        raise _err(where, f"source must be one of {SOURCES}, got {source!r}")
    given = _str_list(d, "labels", where)
    labels = tuple(_parse_label_spec(spec, source, where) for spec in given)
    twice = [f"{a!r} and {b!r}" for i, (a, c) in enumerate(zip(given, labels)) for b, e in
             zip(given[i + 1 :], labels[i + 1 :]) if c == e]  # fmt: skip
    if twice:
        raise _err(where, f"labels {', '.join(twice)} are the same label set")
    mnames = _str_list(d, "models", where)
    missing = [m for m in mnames if m not in models]
    if missing:
        raise _err(where, f"models {missing} are not defined in [models.*] ({sorted(models)})")
    kw: dict[str, Any] = {}
    for k in ("path", "split", "features", "noise_features"):
        if k in d:
            kw[k] = _typed(d, k, str, where)
    auto = d.get("resolution") == "auto"
    if auto:
        kw["resolution"] = None
    for k in ("resolution", "subset", "exclude"):
        if k in d and not (k == "resolution" and auto):
            kw[k] = _typed(d, k, int, where)
            if kw[k] < 2:
                raise _err(where, f"{k!r} must be >= 2, got {kw[k]}")
    if source in ("npz", "cifar10n", "cifar10h") and "path" not in kw:
        raise _err(where, f"source {source!r} needs 'path'")
    unused = [k for k in ("path", "split") if k in kw and (source == "digits" or (k == "split" and source != "npz"))]
    if unused:  # accepted and ignored, a typo would go unnoticed
        raise _err(where, f"source {source!r} does not read {', '.join(map(repr, unused))}")
    if kw.get("noise_features", "pixels") not in ("pixels", "backbone"):
        raise _err(where, f"noise_features must be 'pixels' or 'backbone', got {kw['noise_features']!r}")
    if "classes" in d:
        cls = d["classes"]
        if (not isinstance(cls, list) or len(cls) < 2 or len(set(cls)) != len(cls)
                or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cls)):  # fmt: skip
            raise _err(where, f"'classes' must list at least two distinct class ids (ints >= 0), got {cls!r}")
        real = [s for s in labels if s in CIFAR10N_LABELS + CIFAR10H_LABELS and s != "clean"]
        if real:
            raise _err(where, f"with 'classes', only synthetic noise and 'clean' labels are allowed, got {real}")
        kw["classes"] = tuple(cls)
    return DatasetSpec(name=name, source=source, labels=labels, models=mnames, **kw)


_TOP_KEYS = {
    "name", "seeds", "detectors", "models", "datasets", "cache_dir", "n_folds", "knn_k",
    "aux_fraction", "sei_curve", "device", "threads", "quick",
}  # fmt: skip


def parse_config(raw: Mapping[str, Any]) -> BenchConfig:
    """Validate a parsed TOML mapping into a :class:`BenchConfig` (``ValueError`` on problems)."""
    _check_keys(raw, _TOP_KEYS, "(top level)")
    for req in ("models", "datasets"):
        if req not in raw:
            raise _err("(top level)", f"missing {req!r}")
    if not isinstance(raw["models"], Mapping) or not raw["models"]:
        raise _err("[models]", "define at least one model table [models.NAME]")
    models = {n: _parse_model(n, m) for n, m in raw["models"].items()}
    if not isinstance(raw["datasets"], list) or not raw["datasets"]:
        raise _err("[[datasets]]", "define at least one [[datasets]] table")
    datasets = tuple(_parse_dataset(i, d, models) for i, d in enumerate(raw["datasets"]))
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise _err("[[datasets]]", f"dataset names must be unique, got {names}")
    seeds = seed_list(raw.get("seeds", [0]), "(top level)")
    detectors = _str_list(raw, "detectors", "(top level)") if "detectors" in raw else ("*",)
    try:  # named where the config says it (the other config errors name their table and key)
        resolve_detectors(detectors)
    except ValueError as e:
        raise _err("(top level)", f"detectors: {e}") from None
    kw: dict[str, Any] = {}
    for k, typ in (("name", str), ("cache_dir", str), ("device", str), ("n_folds", int),
                   ("knn_k", int), ("sei_curve", bool), ("threads", int)):  # fmt: skip
        if k in raw:
            kw[k] = _typed(raw, k, typ, "(top level)")
    if "aux_fraction" in raw:
        f = float(_typed(raw, "aux_fraction", (int, float), "(top level)"))
        if not 0 < f < 1:
            raise _err("(top level)", f"aux_fraction must be in (0, 1), got {f}")
        kw["aux_fraction"] = f
    if kw.get("n_folds", 5) < 2:
        raise _err("(top level)", "n_folds must be >= 2")
    if kw.get("knn_k", 10) < 1:
        raise _err("(top level)", "knn_k must be >= 1")
    if "threads" in kw and kw["threads"] < 1:
        raise _err("(top level)", f"threads must be >= 1, got {kw['threads']}")
    if "name" in kw:
        check_name(kw["name"], "name")
    quick = check_quick(raw.get("quick", {}), datasets, models)
    kw.setdefault("name", "bench")
    return BenchConfig(seeds=tuple(seeds), detectors=detectors, models=models, datasets=datasets,
                       quick=dict(quick), **kw)  # fmt: skip


def load_config(path: str | Path, *, quick: bool = False) -> BenchConfig:
    """Read and validate a TOML config; with ``quick`` apply its ``[quick]`` overrides.

    Relative dataset ``path`` / ``features`` are taken relative to the config file's folder.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"bench config {p} not found")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"bench config {p}: not valid TOML: {e}") from None
    try:
        cfg = parse_config(raw)
    except ValueError as e:  # which file: a grid is often several configs
        raise ValueError(f"{p}: {e}") from None
    cfg = replace(cfg, datasets=tuple(_resolve_paths(d, p.parent) for d in cfg.datasets))
    return apply_quick(cfg) if quick else cfg


def _resolve_paths(d: DatasetSpec, base: Path) -> DatasetSpec:
    """``path`` and ``features`` relative to the config file's folder (``~`` expanded)."""
    out: dict[str, Any] = {}
    for k in ("path", "features"):
        v = getattr(d, k)
        if v is not None:
            q = Path(v).expanduser()
            out[k] = str(q if q.is_absolute() else (base / q).resolve())
    return replace(d, **out)


def resolve_detectors(requested: tuple[str, ...] | list[str]) -> list[str]:
    """Expand ``"*"`` to every detector of the table and check the names (``ValueError`` names
    unknown ones), in table order."""
    from labeltrace.decide import detectors

    everything = detectors.available()
    out: list[str] = []
    for name in requested:
        names = everything if name == "*" else [name]
        for n in names:
            if n not in everything:
                raise ValueError(f"unknown detector {n!r}; available: {', '.join(everything)}")
            if n not in out:
                out.append(n)
    return out
