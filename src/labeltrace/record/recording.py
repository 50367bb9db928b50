"""What a recording protocol produced, and its folder on disk.

A :class:`Recording` is one of

* ``"in-sample"``: one or two trainings on every sample (the SEI paper's protocol); with two, each
  run relabels a disjoint auxiliary set to an extra class ``K`` (:class:`RecordedRun.is_auxiliary`);
* ``"crossfit"``: K models trained in lockstep on all folds but one; every sample is recorded each
  epoch by the model that never trained on it (held out) and, at no extra cost, by the models that
  train on it (in sample).

On disk (written by :mod:`labeltrace.train.protocol`, read by it to resume, by ``labeltrace
bench``'s cache and by :mod:`labeltrace.rundir`)::

    <dir>/recording.json       kind, classes, fingerprint, files, seconds, accuracy (written last:
                               its presence means the recording finished)
    <dir>/run0.npz, run1.npz   each run's Recorder (Recorder.load): O(N) state pointing to
    <dir>/run0.rows/, ...      its per-epoch (T, N) arrays, written in place every epoch
    <dir>/run0_in_sample.npz   a cross-fitted run's in-sample companion
    <dir>/run0_aux.npy         an in-sample run's auxiliary mask
    <dir>/folds.npy            a cross-fitted recording's fold of each sample
    <dir>/embedding.npy        a penultimate embedding for kNN, when kept (labeltrace.train.embedding)
    <dir>/checkpoints/         per-epoch state while recording (removed once finished)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from labeltrace._diffs import differing_keys
from labeltrace._io import (
    atomic_save_array,
    atomic_write_json,
    read_json,
    reading,
)
from labeltrace.record import Dynamics, Recorder

__all__ = ["FingerprintMismatch", "RecordedRun", "Recording", "RecordingDir"]

FORMAT = "labeltrace.recording/1"
Kind = Literal["in-sample", "crossfit"]


@dataclass(frozen=True)
class RecordedRun:
    """One training run: its dynamics and which samples were auxiliary (relabeled to class K)."""

    dynamics: Dynamics
    is_auxiliary: np.ndarray  # (N,) bool; all False when the run had no auxiliary class
    num_classes: int  # real classes K (the dynamics have K + 1 logits when auxiliary)
    held_out: bool = False  # True: every sample was recorded by models that never trained on it
    #: for a held-out run: the same fold models' in-sample dynamics (each sample recorded while the
    #: models that train on it see it), recorded at no extra training cost
    in_sample: Dynamics | None = None

    @property
    def has_auxiliary(self) -> bool:
        return bool(self.is_auxiliary.any())


@dataclass(frozen=True)
class Recording:
    """The runs a protocol recorded, with what they cost."""

    kind: Kind
    runs: tuple[RecordedRun, ...]
    num_classes: int
    seconds: tuple[float, ...]  # wall seconds of each training (crossfit: one entry, all folds)
    accuracy: tuple[float, ...]  # final training accuracy per run, or the mean held-out accuracy
    folds: np.ndarray | None = None
    embedding: np.ndarray | None = None
    fingerprint: Mapping[str, Any] = field(default_factory=dict)

    @property
    def held_out(self) -> bool:
        return self.kind == "crossfit"

    @property
    def num_trainings(self) -> int:
        """Model fits this recording cost: its runs, or its folds."""
        return int(self.folds.max()) + 1 if self.folds is not None else len(self.runs)

    def in_sample_runs(self) -> tuple[RecordedRun, ...]:
        """The in-sample view: the runs themselves, or a cross-fitted recording's in-sample
        companion as one run without an auxiliary class."""
        if not self.held_out:
            return self.runs
        run = self.runs[0]
        if run.in_sample is None:
            raise ValueError("this cross-fitted recording kept no in-sample companion")
        return (RecordedRun(run.in_sample, np.zeros(run.is_auxiliary.size, bool), self.num_classes),)


class FingerprintMismatch(ValueError):
    """A recording folder holds another configuration than the one asked for."""


class RecordingDir:
    """The folder of one recording: its file names, the fingerprint check, save and load."""

    META = "recording.json"
    CHECKPOINTS = "checkpoints"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def run_file(self, r: int) -> Path:
        return self.path / f"run{r}.npz"

    def in_sample_file(self, r: int) -> Path:
        return self.path / f"run{r}_in_sample.npz"

    def rows_dir(self, name: str) -> Path:
        """Where run ``name``'s per-epoch (T, N) arrays live (the Recorder's out-of-core store)."""
        return self.path / f"{name}.rows"

    def checkpoint_dir(self, name: str) -> Path:
        return self.path / self.CHECKPOINTS / name

    @property
    def finished(self) -> bool:
        return (self.path / self.META).is_file()

    def meta(self) -> dict[str, Any]:
        p = self.path / self.META
        meta = read_json(p)
        if meta.get("format") != FORMAT:
            raise ValueError(f"{p}: unsupported recording format {meta.get('format')!r} (expected {FORMAT!r})")
        return meta

    def check(self, fingerprint: Mapping[str, Any], *, added: Sequence[str] = ()) -> None:
        """Refuse (:class:`FingerprintMismatch`) a finished recording of another configuration.

        ``added``: keys that fingerprints gained after this recording may have been written; a
        finished recording without them is still this configuration's (what they describe is
        saved with it, e.g. the auxiliary sets drawn), so it is loaded, not refused."""
        if not self.finished:
            return
        theirs = self.meta().get("fingerprint", {})
        diff = [k for k in differing_keys(theirs, fingerprint) if not (k in added and k not in theirs)]
        if diff:
            raise FingerprintMismatch(
                f"{self.path} holds a recording of another configuration (differs in: {', '.join(diff)}); "
                "record into another folder, or remove this one (labeltrace scan: --force) to record again"
            )

    def save(self, rec: Recording, recorders: Sequence[Recorder], in_sample: Recorder | None = None, *,
             embed: bool | None = None) -> None:  # fmt: skip
        """Write ``rec`` (its runs' recorders given in order); ``recording.json`` last. ``embed``:
        :meth:`Recorder.save`'s (True copies a recorder's per-epoch files into its run file)."""
        self.path.mkdir(parents=True, exist_ok=True)
        runs: list[dict[str, Any]] = []
        for r, (run, recorder) in enumerate(zip(rec.runs, recorders, strict=True)):
            recorder.save(self.run_file(r), embed=embed)
            entry: dict[str, Any] = {"dynamics": self.run_file(r).name, "auxiliary": None, "in_sample": None}
            if run.has_auxiliary:
                entry["auxiliary"] = f"run{r}_aux.npy"
                atomic_save_array(self.path / entry["auxiliary"], run.is_auxiliary)
            if in_sample is not None and r == 0:
                in_sample.save(self.in_sample_file(r))
                entry["in_sample"] = self.in_sample_file(r).name
            runs.append(entry)
        files = {}
        for name, arr in (("folds", rec.folds), ("embedding", rec.embedding)):
            if arr is not None:
                files[name] = f"{name}.npy"
                atomic_save_array(self.path / files[name], arr)
        atomic_write_json(self.path / self.META, {
            "format": FORMAT, "kind": rec.kind, "num_classes": rec.num_classes, "runs": runs, **files,
            "seconds": _finite(rec.seconds), "accuracy": _finite(rec.accuracy), "fingerprint": dict(rec.fingerprint),
        })  # fmt: skip
        shutil.rmtree(self.path / self.CHECKPOINTS, ignore_errors=True)

    def load(self) -> Recording:
        """Read a finished recording back: its large arrays (each run's kept softmax, the
        embedding) as read-only memory maps of the files (:meth:`Recorder.load`'s ``mmap``)."""
        if not self.finished:
            raise ValueError(f"{self.path}: no finished recording ({self.META} missing)")
        meta = self.meta()
        k = int(meta["num_classes"])
        held = meta["kind"] == "crossfit"

        def npy(name: str | None) -> np.ndarray | None:
            if name is None:
                return None
            with reading(self.path / name):
                return np.load(self.path / name, allow_pickle=False, mmap_mode="r")

        runs = []
        for entry in meta["runs"]:
            dyn = Recorder.load(self.path / entry["dynamics"], mmap=True).dynamics()
            aux = npy(entry["auxiliary"])
            ins = entry.get("in_sample")
            runs.append(RecordedRun(
                dyn, aux.astype(bool) if aux is not None else np.zeros(dyn.num_samples, bool), k, held_out=held,
                in_sample=Recorder.load(self.path / ins, mmap=True).dynamics() if ins else None,
            ))  # fmt: skip
        return Recording(
            kind=meta["kind"], runs=tuple(runs), num_classes=k, seconds=_floats(meta["seconds"]),
            accuracy=_floats(meta["accuracy"]), folds=npy(meta.get("folds")), embedding=npy(meta.get("embedding")),
            fingerprint=meta.get("fingerprint", {}),
        )  # fmt: skip


def _finite(values: Sequence[float]) -> list[float | None]:
    """JSON numbers: an unknown value (NaN: a training's time not given, an epoch with no sample) as null."""
    return [float(v) if np.isfinite(v) else None for v in values]


def _floats(values: Sequence[float | None]) -> tuple[float, ...]:
    return tuple(float("nan") if v is None else float(v) for v in values)
