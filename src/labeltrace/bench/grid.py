"""The benchmark grid: cells (dataset x labels x model x seed), their data, and cache keys.

Data come from the library (:mod:`labeltrace.data`, :func:`labeltrace.models.inputs.prepare_inputs`,
the noise injection of ``labeltrace scan --noise``); nothing here trains or scores.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labeltrace._checks import listing
from labeltrace._io import atomic_write_json
from labeltrace.bench.config import BenchConfig, DatasetSpec, ModelSpec
from labeltrace.data.base import stratified_subset
from labeltrace.evaluate import noise
from labeltrace.models.inputs import prepare_inputs, standardize

__all__ = ["Cell", "DatasetData", "expand", "extract_zip", "load_dataset"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class Cell:
    """One benchmark cell: a dataset with one label set, one model, one seed."""

    dataset: DatasetSpec
    labels: str  # "symmetric:0.2", "confusion:0.4", "clean", or a CIFAR-10N set ("aggre", ...)
    model: ModelSpec
    seed: int

    @property
    def noise_kind(self) -> str:
        kind, sep, _ = self.labels.partition(":")
        if sep:  # synthetic noise, on any source
            return kind
        return "clean" if self.labels == "clean" else "real"

    @property
    def nominal_rate(self) -> float | None:
        """The configured noise rate (None for real noise)."""
        _, sep, rate = self.labels.partition(":")
        return float(rate) if sep else (0.0 if self.labels == "clean" else None)

    def __str__(self) -> str:
        return f"{self.dataset.name} | {self.labels} | {self.model.name} | seed {self.seed}"


def expand(cfg: BenchConfig) -> list[Cell]:
    """Every cell of the grid, in config order (dataset, labels, model, seed)."""
    return [
        Cell(d, lab, cfg.models[m], s)
        for d in cfg.datasets
        for lab in d.labels
        for m in d.models
        for s in cfg.seeds
    ]


# ----------------------------------------------------------------------------- data
def extract_zip(zip_path: str | os.PathLike[str], dest: Path, *, marker: str = "labels.csv") -> Path:
    """Extract ``zip_path`` into ``dest`` once: skipped when ``dest/marker`` exists and ``dest`` was
    extracted from an archive of the same content (its members' names, sizes and CRCs, kept in
    ``dest/.archive.json``; an extraction made before that file existed is adopted when its
    marker file equals the archive's), redone otherwise — another or a changed archive is never
    read as the old one's images. Extracted files take the archive's timestamps, so extracting the
    same archive again gives the same files (and the same file fingerprints, e.g. feature caches').

    Extraction goes to a sibling temporary folder renamed into place, so an interrupted
    extraction is never mistaken for a finished one.
    """
    import time

    from labeltrace._io import digest

    zp = Path(zip_path).expanduser()
    if not zp.is_file():
        raise ValueError(f"dataset archive {zp} not found")
    seen = dest / ".archive.json"
    with zipfile.ZipFile(zp) as z:
        infos = z.infolist()
        source = {"content": digest(sorted((i.filename, i.file_size, i.CRC) for i in infos))}
        if (dest / marker).is_file():
            if seen.is_file() and json.loads(seen.read_text()) == source:
                return dest
            if not seen.is_file() and marker in z.namelist() and (dest / marker).read_bytes() == z.read(marker):
                atomic_write_json(seen, source)  # an extraction from before .archive.json, of this archive
                return dest
        bad = [i.filename for i in infos if i.filename.startswith("/") or ".." in Path(i.filename).parts]
        if bad:
            raise ValueError(f"{zp}: refusing unsafe member paths {listing(bad)}")
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        z.extractall(tmp)
        for i in infos:
            if not i.is_dir():
                t = time.mktime((*i.date_time, 0, 0, -1))
                os.utime(tmp / i.filename, (t, t))
    if not (tmp / marker).is_file():
        raise ValueError(f"{zp}: no {marker} at the archive root")
    atomic_write_json(tmp / ".archive.json", source)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


@dataclass
class DatasetData:
    """One dataset, loaded lazily: clean labels, model inputs, features and noisy label sets."""

    spec: DatasetSpec
    cache_dir: Path
    clean: np.ndarray
    num_classes: int
    n_full: int  # samples before any subset
    _dataset: Callable[[], Any]
    real_labels: dict[str, np.ndarray] = field(default_factory=dict)
    subset_idx: np.ndarray | None = None
    progress: bool = False
    log: Log = print
    _inputs: dict[str, tuple[torch.Tensor, str]] = field(default_factory=dict)
    _given: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    _ds: Any = None
    _copies: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.clean.size)

    def dataset(self) -> Any:
        """The :class:`~labeltrace.data.ImageDataset` (clean labels, subset applied)."""
        if self._ds is None:
            ds = self._dataset()
            if self.subset_idx is not None:
                ds = ds.subset(self.subset_idx)
            self._ds = ds
        return self._ds

    def copies(self) -> np.ndarray:
        """``(N,)`` group of exact copies per sample, ``-1`` alone (:func:`labeltrace.data.duplicates.
        dataset_duplicates` on the images, subset applied; cached beside the other inputs)."""
        if "copies" not in self._copies:
            from labeltrace.data.duplicates import dataset_duplicates

            self._copies["copies"] = dataset_duplicates(self.dataset())
        return self._copies["copies"]

    @property
    def base_resolution(self) -> int:
        """The feature resolution the confusion noise's model reads (96 px under ``auto``: the
        labels a user has do not depend on the resolution the scan then picks)."""
        return self.spec.resolution or 96

    def features(self, resolution: int | None = None, precision: str = "float32") -> tuple[torch.Tensor, str]:
        """Standardised frozen EfficientNet-Lite0 features ``(N, 1280)`` at ``resolution`` px
        (default :attr:`base_resolution`), extracted in ``precision``, and their fingerprint.

        From ``spec.features`` (a precomputed float32 ``.npy`` in dataset order; ``{resolution}`` in
        the path stands for the px, a path without it holds the base resolution) when that file
        exists and ``precision`` is float32, else computed through
        :func:`labeltrace.models.inputs.prepare_inputs` (feature cache under ``cache_dir/features``).
        """
        r = resolution or self.base_resolution
        key = f"features:{r}" + ("" if precision == "float32" else f":{precision}")
        if key not in self._inputs:
            from labeltrace.models.backbone import fingerprint_array

            pre = self.spec.features if precision == "float32" else None
            if pre is not None and "{resolution}" in pre:
                pre = pre.replace("{resolution}", str(r))
            elif r != self.base_resolution:
                pre = None
            path = Path(pre).expanduser() if pre else None
            if path is not None and path.is_file():
                f = np.load(path, allow_pickle=False)
                if f.ndim != 2 or f.shape[0] != self.n_full:
                    raise ValueError(f"{path}: features of shape {f.shape} do not match {self.n_full} samples")
                if self.subset_idx is not None:
                    f = f[self.subset_idx]
                self.log(f"{self.spec.name}: features from {path}")
                x = torch.from_numpy(standardize(f.astype(np.float32)))
            else:
                why = f" ({path} is not a file)" if path is not None else ""
                self.log(f"{self.spec.name}: computing EfficientNet-Lite0 features at {r} px"
                         f"{'' if precision == 'float32' else ' in ' + precision} ({self.n} images){why}")
                x = prepare_inputs(self.dataset(), "effnet-lite0", resolution=r, precision=precision,
                                   cache_dir=self.cache_dir / "features", progress=self.progress).tensor  # fmt: skip
            self._inputs[key] = (x, fingerprint_array(x.numpy()))
        return self._inputs[key]

    def resolution_for(self, model: ModelSpec, given: np.ndarray, seed: int) -> int | None:
        """The feature resolution of a cell (None for a model on images): the spec's, or under
        ``auto`` the scan's probe (:func:`labeltrace.models.probe.resolution_probe`) on the cell's
        labels, read from the whole set's features (the probe standardises within its folds, so
        this equals extracting the subset alone, as ``labeltrace scan`` does). Without precomputed
        files that means extracting the whole set at both resolutions once (then cached), even
        where 96 px is picked: give ``features`` with ``{resolution}`` for large sets."""
        if not model.on_features:
            return None
        if self.spec.resolution is not None:
            return self.spec.resolution
        from labeltrace.models.probe import resolution_probe

        probe = resolution_probe(lambda r, idx: self.features(r)[0].numpy()[idx], given,
                                 num_classes=self.num_classes, seed=seed)  # fmt: skip
        return int(probe.model)

    def images(self, image_size: int | None = None) -> tuple[torch.Tensor, str]:
        """Normalised images for the small CNN (:func:`labeltrace.models.inputs.prepare_inputs`)."""
        key = f"images:{image_size}"
        if key not in self._inputs:
            from labeltrace.models.backbone import fingerprint_array

            x = prepare_inputs(self.dataset(), "small-cnn", image_size=image_size).tensor
            self._inputs[key] = (x, fingerprint_array(x.numpy()))
        return self._inputs[key]

    def inputs(self, model: ModelSpec, resolution: int | None = None) -> tuple[torch.Tensor, str]:
        """What ``model`` trains on (frozen features at ``resolution`` px, default the base one),
        and its fingerprint (for cache keys)."""
        if model.kind == "effnet-lite0":  # RGB images in [0, 1]; the network resizes and normalises
            key = "rgb"
            if key not in self._inputs:
                from labeltrace.models.backbone import fingerprint_array

                x = prepare_inputs(self.dataset(), "effnet-lite0", finetune=True).tensor
                self._inputs[key] = (x, fingerprint_array(x.numpy()))
            return self._inputs[key]
        if model.on_features:  # the noise and the resolution probe read float32 features, as labeltrace scan's
            return self.features(resolution, model.backbone_precision)
        return self.images(model.image_size)

    def given_labels(self, labels: str, seed: int) -> np.ndarray:
        """The labels trained on: a CIFAR-10N set, the clean labels, or injected noise.

        Synthetic noise is drawn exactly as ``labeltrace scan --noise SPEC --seed SEED`` draws
        it; its confusion matrix comes from pixels or backbone features (``noise_features``).
        """
        if labels == "clean":
            return self.clean.copy()
        if labels in self.real_labels:
            return self.real_labels[labels].copy()
        k = (labels, seed)
        if k not in self._given:
            if self.spec.noise_features == "backbone":
                nf = self.features()[0].numpy()
            else:
                nf = noise.flat_features(self.images()[0].numpy())
            self._given[k] = noise.inject(labels, self.clean, self.num_classes, nf, seed=seed).labels
        return self._given[k].copy()


def _read_cifar10n(root: Path) -> dict[str, np.ndarray]:
    """The label columns of CIFAR-10N's ``labels.csv`` (clean and the human label sets)."""
    with open(root / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = ("clean", "aggre", "random1", "random2", "random3", "worse")
    missing = [c for c in ("file", *cols) if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{root / 'labels.csv'}: missing columns {missing}")
    return {c: np.array([int(r[c]) for r in rows], dtype=np.int64) for c in cols}


def _read_cifar10h(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """CIFAR-10H's original labels, the human vote majority (the truth), and the class names.

    An original label that ties for the most votes is the truth (it is not wrong when no class
    has more votes than it): 77 of the 10,000 labels are wrong, not the 79 that ``argmax`` gives
    by breaking two such ties towards the lower class index (images 07493 and 09386)."""
    with open(root / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    classes = [c.strip() for c in (root / "classes.txt").read_text().splitlines() if c.strip()]
    missing = [c for c in ("file", "original_label", *(f"votes_{c}" for c in classes)) if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{root / 'labels.csv'}: missing columns {missing}")
    votes = np.array([[int(r[f"votes_{c}"]) for c in classes] for r in rows], dtype=np.int64)
    original = np.array([int(r["original_label"]) for r in rows], dtype=np.int64)
    top = votes.max(axis=1)
    tied = votes[np.arange(len(original)), original] == top
    return original, np.where(tied, original, votes.argmax(1)), classes


def load_dataset(spec: DatasetSpec, cache_dir: Path, *, progress: bool = False, log: Log = print) -> DatasetData:
    """Load a dataset's clean labels (pixels and features are loaded on first use)."""
    from labeltrace import data

    real: dict[str, np.ndarray] = {}
    if spec.source == "digits":
        ds0 = data.example("digits")
        clean, k = ds0.labels.copy(), ds0.n_classes

        def make() -> Any:
            return ds0
    elif spec.source == "npz":
        path = Path(spec.path or "").expanduser()
        if not path.is_file():
            raise ValueError(f"dataset {spec.name!r}: {path} not found")
        ds0 = data.from_npz(path, split=spec.split)
        clean, k = ds0.labels.copy(), ds0.n_classes

        def make() -> Any:
            return ds0
    elif spec.source == "cifar10n":
        root = extract_zip(spec.path or "", cache_dir / "data" / spec.name)
        sets = _read_cifar10n(root)
        clean, k = sets.pop("clean"), 10
        real = sets
        classes = (root / "classes.txt").read_text().split("\n") if (root / "classes.txt").is_file() else None
        classes = [c for c in classes if c.strip()] if classes else [str(i) for i in range(k)]

        def make() -> Any:
            return data.from_manifest(root / "labels.csv", path_column="file", label_column="clean",
                                      classes=classes, root=root, verify=False)  # fmt: skip
    elif spec.source == "cifar10h":
        root = extract_zip(spec.path or "", cache_dir / "data" / spec.name)
        original, clean, classes = _read_cifar10h(root)
        k = len(classes)
        real = {"original": original}

        def make() -> Any:
            return data.from_manifest(root / "labels.csv", path_column="file", label_column="original_label",
                                      classes=classes, root=root, verify=False)  # fmt: skip
    else:  # validated by the config parser
        raise ValueError(f"unknown source {spec.source!r}")
    n_full = int(clean.size)
    idx = None  # positions in the full set, when anything is left out
    if spec.classes is not None:
        missing = [c for c in spec.classes if c >= k]
        if missing:
            raise ValueError(f"dataset {spec.name!r}: classes {missing} do not exist (it has {k})")
        idx = np.flatnonzero(np.isin(clean, spec.classes))
        renumber = np.full(k, -1, dtype=np.int64)
        renumber[list(spec.classes)] = np.arange(len(spec.classes))
        clean, k, real = renumber[clean[idx]], len(spec.classes), {}
    if spec.exclude is not None:
        if spec.exclude >= clean.size:
            raise ValueError(f"dataset {spec.name!r}: exclude = {spec.exclude} leaves nothing of {clean.size} samples")
        rest = np.setdiff1d(np.arange(clean.size), stratified_subset(clean, spec.exclude))
        idx, clean = (rest if idx is None else idx[rest]), clean[rest]
    if spec.subset and spec.subset < clean.size:
        sub = stratified_subset(clean, spec.subset)
        idx, clean = (sub if idx is None else idx[sub]), clean[sub]
    elif spec.subset:
        log(f"note: dataset {spec.name!r}: subset = {spec.subset} is not below its {clean.size} samples; all are used")
    if idx is not None:
        real = {c: v[idx] for c, v in real.items()}
    return DatasetData(spec=spec, cache_dir=cache_dir, clean=clean, num_classes=int(k), n_full=n_full, _dataset=make,
                       real_labels=real, subset_idx=idx, progress=progress, log=log)  # fmt: skip
