"""One benchmark cell: the recordings its detectors need (cached), every detector of the table,
metrics against the known truth.

No method logic lives here: recordings come from :mod:`labeltrace.train.protocol` (the same
protocol, seeds and auxiliary draw as ``labeltrace scan``), detectors from the detector table
(:mod:`labeltrace.decide.detectors`), metrics from :mod:`labeltrace.evaluate.metrics`. A cell
hands the table an :class:`~labeltrace.decide.evidence.Evidence` whose items are computed on
first use, so only what the chosen detectors need is trained.

Cache layout under ``cache_dir`` (a killed benchmark resumes where it stopped)::

    runs/<key>/        the in-sample recording (two runs with disjoint auxiliary sets), a RecordingDir
    single/<key>/      one plain training (no auxiliary class), a RecordingDir
    crossfit/<key>/    the cross-fitted recording (held-out + in-sample), a RecordingDir
    cv/<key>.npz       K-fold out-of-fold probabilities
    results/<cell key>/<detector>.json, sei_curve.json    computed rows (each with the digest of the
                       code that computed it, :func:`code_digest`; a failed row is not kept)

Cost accounting per detector: ``n_trainings`` model fits its evidence needs (2 for the two
in-sample runs, ``n_folds`` for the cross-fitted recording or the cross-validated probabilities,
0 for kNN on frozen features and 1 for kNN on a network's embedding) and ``wall_seconds`` = the
measured training time of those fits (kept in the cache) plus the detector's own compute time.
Feature extraction, shared by every method, is not counted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from labeltrace import __version__
from labeltrace._io import atomic_write, atomic_write_json, digest, entry_lock
from labeltrace.bench.config import BenchConfig
from labeltrace.bench.grid import Cell, DatasetData
from labeltrace.bench.keys import _ROW_PACKAGES, code_digest, torch_key
from labeltrace.data.duplicates import neighbour_groups
from labeltrace.decide import auxiliary, cutoffs, detectors
from labeltrace.decide.evidence import Evidence, combined_score
from labeltrace.diagnostics import MOST
from labeltrace.evaluate import metrics
from labeltrace.record.recording import FingerprintMismatch, Recording, RecordingDir
from labeltrace.score import trajectory
from labeltrace.train import protocol

__all__ = ["CSV_COLUMNS", "CURVE_COLUMNS", "CellRunner", "failure", "flag_warning", "run_cell", "settings_digest",
           "warning"]

Log = Callable[[str], None]

CSV_COLUMNS: tuple[str, ...] = (
    "dataset", "labels", "noise", "rate", "true_rate", "model", "detector", "seed",
    "precision", "recall", "f1", "auroc", "ap", "n_flagged", "f1_at_true_rate", "recall_at_200",
    "wall_seconds", "n_trainings", "n", "n_noisy", "rule", "cutoff", "note", "resolution", "settings",
)  # fmt: skip
CURVE_COLUMNS: tuple[str, ...] = (
    "dataset", "labels", "rate", "model", "seed", "epochs", "f1", "f1_at_true_rate", "auroc",
)  # fmt: skip

_CACHE_VERSION = 2  # 2: recordings written by labeltrace.train.protocol (RecordingDir)
_FAILED = "failed:"  # how the note of a detector's row that failed begins, before the reason


_WARNING = "warning:"  # how the note of a row whose flagged set looks like a collapsed model begins


def failure(row: dict[str, Any]) -> str | None:
    """Why the detector of a CSV row failed (its note), or None when it did not."""
    note = str(row.get("note", ""))
    return note[len(_FAILED):].strip() if note.startswith(_FAILED) else None


def warning(row: dict[str, Any]) -> str | None:
    """What a CSV row's note warns of (:func:`flag_warning`), or None."""
    note = str(row.get("note", ""))
    return note[len(_WARNING):].strip() if note.startswith(_WARNING) else None


def flag_warning(flagged: np.ndarray, given: np.ndarray, num_classes: int) -> str:
    """The note of a row whose flagged set says more about its model than about the labels, else "":
    it flags most samples (:data:`labeltrace.diagnostics.MOST`), or every sample of a class of at least
    ten — what a model that collapsed to the majority class does (the rare class's labels all
    contradicted), which the metrics alone hide among the other seeds' rows. (Two flagged samples of
    a class of two say little.)"""
    f = np.asarray(flagged, dtype=bool)
    g = np.asarray(given, dtype=np.int64)
    said = []
    if f.size and f.sum() > MOST * f.size:
        said.append(f"flags {int(f.sum()):,} of {f.size:,} samples ({f.mean():.0%})")
    sizes = np.bincount(g, minlength=num_classes)
    whole = np.flatnonzero((np.bincount(g[f], minlength=num_classes) == sizes) & (sizes >= 10))
    if whole.size and not f.all():  # every sample flagged: said by the share above
        said.append("flags every sample labelled " + ", ".join(f"class {c} ({sizes[c]:,})" for c in whole))
    return f"{_WARNING} {'; '.join(said)}" if said else ""


def settings_digest(cell: Cell, cfg: BenchConfig) -> str:
    """12 hex characters naming everything besides the label set and the seed that a cell's rows
    depend on — the model's settings (epochs, learning rate, ...), the dataset's (subset, split,
    classes, resolution; not its file's path) and the bench's (folds, k, auxiliary fraction) — so
    that rows of two settings of one cell are never pooled as more seeds (``summarize.py``)."""
    from dataclasses import MISSING, fields

    # the dataset's settings that differ from their defaults: a field added later leaves digests as they were
    spec = {f.name: getattr(cell.dataset, f.name) for f in fields(cell.dataset)
            if f.name not in ("name", "path", "features", "labels", "models")
            and (f.default is MISSING or getattr(cell.dataset, f.name) != f.default)}  # fmt: skip
    return digest({"model": cell.model.key(), "dataset": spec, "n_folds": cfg.n_folds, "knn_k": cfg.knn_k,
                   "aux_fraction": cfg.aux_fraction})[:12]  # fmt: skip


class CellRunner:
    """Everything a cell needs, computed on first use and cached on disk."""

    def __init__(self, cell: Cell, data: DatasetData, cfg: BenchConfig, *, progress: bool = False,
                 log: Log = print) -> None:  # fmt: skip
        self.cell, self.data, self.cfg, self.progress, self.log = cell, data, cfg, progress, log
        self.cache = cfg.cache_path
        self.given = data.given_labels(cell.labels, cell.seed)
        self.resolution = data.resolution_for(cell.model, self.given, cell.seed)
        self.x, self.input_fp = data.inputs(cell.model, self.resolution)
        self.truth = self.given != data.clean
        self.k = data.num_classes
        self.copies = data.copies()  # exact copies share a fold, as in labeltrace scan
        # a key part only where there are copies: the cached recordings of data without them stay valid
        self._copies_key = {"copies": digest(self.copies)} if (self.copies >= 0).any() else {}
        self._recordings: dict[str, Recording] = {}
        self._cv: tuple[np.ndarray, float] | None = None
        # the rows' key: what the trainings read, and what the rows say — the truth they are scored
        # against and the cell they name (two cells with the same images and labels, e.g. two label
        # sets, datasets or models that coincide, must not share rows); the trainings' keys leave both out
        self.key = digest({
            "v": _CACHE_VERSION, "inputs": self.input_fp, "given": digest(self.given),
            "truth": digest(self.truth), "cell": [cell.dataset.name, cell.labels, cell.model.name],
            "model": cell.model.key(), "seed": cell.seed, "n_folds": cfg.n_folds, "knn_k": cfg.knn_k,
            "aux_fraction": cfg.aux_fraction, "labeltrace": __version__, "aux_draw": protocol.AUX_DRAW,
            **self._copies_key, **torch_key(),  # the rows read the recordings, which the torch made
        })  # fmt: skip
        self.result_dir = self.cache / "results" / self.key
        self.settings = settings_digest(cell, cfg)

    # ------------------------------------------------------------------ recordings
    def _record(self, plan: protocol.Protocol, folder: str, what: str) -> Recording:
        m = self.cell.model
        # a network's embedding (for the kNN detectors) is kept by every recording, as ``labeltrace scan``
        # keeps it: the in-sample runs' first network's, the cross-fitted fold models' common one
        embedding = not m.on_features
        parts = {"v": _CACHE_VERSION, "plan": [type(plan).__name__, vars(plan)], "inputs": self.input_fp,
                 "given": digest(self.given), "model": m.key(), "seed": self.cell.seed, **torch_key()}  # fmt: skip
        if embedding and isinstance(plan, protocol.CrossFit):  # without it, then the first fold's: other keys
            parts["embedding"] = "common"
        if isinstance(plan, protocol.InSample) and plan.runs > 1:  # the recording's fingerprint has it too
            parts["aux_draw"] = protocol.AUX_DRAW
        if isinstance(plan, protocol.CrossFit):
            parts |= self._copies_key
        d = self.cache / folder / digest(parts)
        # two benches on one cache take turns at an entry (the second finds it finished): side by side
        # they wrote one recording's files at once and left it damaged for good (an audit's finding)
        with entry_lock(d):
            if not RecordingDir(d).finished:
                self.log(f"  {what} ({m.name}, {m.epochs} epochs, N={len(self.given)})")
            return protocol.record(plan, m.network(), m.train_config(self.cfg.device), self.x, self.given,
                                   num_classes=self.k, seed=self.cell.seed, directory=d,
                                   data={"inputs": self.input_fp}, embedding=embedding, progress=self.progress,
                                   copies=self.copies)  # fmt: skip

    def in_sample(self) -> Recording:
        """Two in-sample runs with disjoint auxiliary sets, drawn and seeded as ``labeltrace scan``."""
        if "in_sample" not in self._recordings:
            self._recordings["in_sample"] = self._record(protocol.InSample(2, self.cfg.aux_fraction), "runs",
                                                         "train 2 in-sample runs")  # fmt: skip
        return self._recordings["in_sample"]

    def single(self) -> Recording:
        """One plain training on every sample, no auxiliary class (the one-training mode)."""
        if "single" not in self._recordings:
            self._recordings["single"] = self._record(protocol.InSample(1), "single", "train 1 plain run")
        return self._recordings["single"]

    def held_out(self) -> Recording:
        """The cross-fitted recording: ``n_folds`` models in lockstep (as ``labeltrace scan``)."""
        if "held_out" not in self._recordings:
            self._recordings["held_out"] = self._record(protocol.CrossFit(self.cfg.n_folds), "crossfit",
                                                        f"cross-fit {self.cfg.n_folds} folds")  # fmt: skip
        return self._recordings["held_out"]

    def cv_probs(self) -> tuple[np.ndarray, float]:
        """Out-of-fold probabilities (N, K) and the seconds they took (``n_folds`` fits)."""
        if self._cv is None:
            m = self.cell.model
            cv_key = {"cv": m.cv, "n_folds": self.cfg.n_folds, "seed": self.cell.seed}
            cv_key |= {"C": m.cv_C, "max_iter": m.cv_max_iter} if m.cv == "logreg" else {"model": m.key()}
            key = digest({"v": _CACHE_VERSION, "kind": "cv", "inputs": self.input_fp, "given": digest(self.given),
                          **cv_key, **self._copies_key, **(torch_key() if m.cv == "same" else {})})  # fmt: skip
            p = self.cache / "cv" / f"{key}.npz"
            with entry_lock(p):  # one bench fits them, another waits and reads them
                if not p.is_file():
                    self.log(f"  {self.cfg.n_folds}-fold cross-validated probabilities ({m.cv})")
                    t0 = time.perf_counter()
                    same = m.cv == "same"
                    probs = protocol.cross_validated_probs(
                        m.network() if same else None, m.train_config(self.cfg.device) if same else None, self.x,
                        self.given, num_classes=self.k, seed=self.cell.seed, folds=self.cfg.n_folds, C=m.cv_C,
                        max_iter=m.cv_max_iter, copies=self.copies,
                    )  # fmt: skip
                    sec = np.array(time.perf_counter() - t0)
                    atomic_write(p, lambda fh: np.savez(fh, probs=probs, seconds=sec))
            with np.load(p, allow_pickle=False) as z:
                self._cv = (z["probs"], float(z["seconds"]))
        return self._cv

    def evidence(self, *, embedding_from: str = "in_sample") -> Evidence:
        """The detectors' evidence, each item recorded (or loaded from the cache) on first use.
        A network's features are the embedding kept by the ``embedding_from`` recording
        (``in_sample``, ``held_out`` or ``single``), as ``labeltrace scan`` takes them from what it
        recorded."""
        frozen = self.cell.model.on_features
        source = {"in_sample": self.in_sample, "held_out": self.held_out, "single": self.single}[embedding_from]

        def features() -> np.ndarray:
            emb = source().embedding
            assert emb is not None, f"the {embedding_from.replace('_', '-')} recording kept no embedding"
            return emb

        return Evidence(
            self.given, self.k, in_sample=lambda: self.in_sample().runs, single=lambda: self.single().runs[0],
            held_out=lambda: self.held_out().runs[0],
            cv_probs=lambda: self.cv_probs()[0], features=self.x.numpy() if frozen else features,
            knn_k=self.cfg.knn_k, features_frozen=frozen,
            groups=neighbour_groups(None, self.copies, self.cfg.knn_k),
            cost={"in_sample": lambda: (2, sum(self.in_sample().seconds)),
                  "single": lambda: (1, sum(self.single().seconds)),
                  "held_out": lambda: (self.cfg.n_folds, sum(self.held_out().seconds)),
                  "cv_probs": lambda: (self.cfg.n_folds, self.cv_probs()[1]),
                  "features": (0, 0.0) if frozen or embedding_from != "in_sample"
                  else lambda: (1, self.in_sample().seconds[0])},
        )  # fmt: skip

    # ------------------------------------------------------------------ detectors
    def detector(self, name: str, ev: Evidence | None = None) -> dict[str, Any]:
        """Score, flags and cost of one detector: keys score, flagged, rule, cutoff, n_trainings,
        wall_seconds."""
        ev = ev or self.evidence()
        needs = detectors.get(name).needs
        if "features" in needs and "held_out" in needs and not self.cell.model.on_features:
            ev = self.evidence(embedding_from="held_out")  # the fold models' common embedding, as scan's
        if "single" in needs and not self.cell.model.on_features:
            ev = self.evidence(embedding_from="single")  # its count may read the run's own embedding, as scan's
        if "features" in needs and ("in_sample" in needs or "held_out" in needs):  # comes with the recording
            needs = tuple(n for n in needs if n != "features")
        # the fits first (trained or loaded here), so that their time is not counted twice: once
        # as training seconds and again inside the detector's own compute time
        n_fit, sec = ev.cost(needs)
        t0 = time.perf_counter()
        det = detectors.detect(name, ev)
        own = time.perf_counter() - t0
        return {"score": det.score, "flagged": det.flagged, "rule": det.rule, "cutoff": det.cutoff,
                "n_trainings": n_fit, "wall_seconds": sec + own}  # fmt: skip

    def base_row(self) -> dict[str, Any]:
        c = self.cell
        true_rate = float(self.truth.mean())
        return {
            "dataset": c.dataset.name, "labels": c.labels, "noise": c.noise_kind,
            "rate": c.nominal_rate if c.nominal_rate is not None else round(true_rate, 4),
            "true_rate": true_rate, "model": c.model.name, "seed": c.seed, "n": int(self.truth.size),
            "n_noisy": int(self.truth.sum()), "resolution": self.resolution or "", "settings": self.settings,
        }  # fmt: skip

    def row(self, name: str, ev: Evidence | None = None) -> dict[str, Any]:
        """The CSV row of one detector (metrics against the truth ``given != clean``)."""
        row = self.base_row() | {"detector": name, "note": ""}
        try:
            d = self.detector(name, ev)
        except FingerprintMismatch:  # a stale recording in the cache: the cell fails, it is not a row
            raise
        except ValueError as e:  # e.g. a GMM cutoff on scores that are not bimodal
            nan = float("nan")
            return row | {k: nan for k in ("precision", "recall", "f1", "auroc", "ap", "f1_at_true_rate",
                                           "recall_at_200", "wall_seconds", "cutoff")} | {
                "n_flagged": -1, "n_trainings": -1, "rule": "", "note": f"{_FAILED} {e}"}  # fmt: skip
        rep = metrics.detection_report(self.truth, d["flagged"], d["score"], nan_policy="omit")
        at = metrics.report_at_true_rate(self.truth, d["score"], nan_policy="omit")
        top = metrics.expected_hits(self.truth, d["score"], min(200, int((~np.isnan(d["score"])).sum())),
                                    nan_policy="omit")  # fmt: skip
        return row | {
            "recall_at_200": top / float(self.truth.sum()) if self.truth.any() else float("nan"),
            "precision": rep["precision"], "recall": rep["recall"], "f1": rep["f1"], "auroc": rep["auroc"],
            "ap": rep["average_precision"], "n_flagged": rep["n_flagged"], "f1_at_true_rate": at["f1"],
            "wall_seconds": d["wall_seconds"], "n_trainings": d["n_trainings"], "rule": d["rule"],
            "cutoff": d["cutoff"], "note": flag_warning(d["flagged"], self.given, self.k),
        }  # fmt: skip

    def sei_curve(self) -> list[dict[str, Any]]:
        """SEI integrated over the first t epochs, t = 1..T, with the auxiliary-mean cutoff of the
        same window: F1 (own cutoff), F1 at the true rate and AUROC per t."""
        runs = self.in_sample().runs
        a, b = (r.is_auxiliary for r in runs)
        base = self.base_row()
        out = []
        for t in range(1, runs[0].dynamics.num_epochs + 1):
            w = slice(0, t)
            per = [trajectory.compute("sei", r.dynamics, epochs=w) for r in runs]
            s = combined_score("sei", runs, epochs=w)
            cut = auxiliary.pooled_auxiliary_cutoff(per[0], per[1], a, b, rule="mean")
            rep = metrics.detection_report(self.truth, cutoffs.flag(s, cut), s, nan_policy="omit")
            at = metrics.report_at_true_rate(self.truth, s, nan_policy="omit")
            out.append({k: base[k] for k in ("dataset", "labels", "rate", "model", "seed")}
                       | {"epochs": t, "f1": rep["f1"], "f1_at_true_rate": at["f1"], "auroc": rep["auroc"]})  # fmt: skip
        return out


def run_cell(
    cell: Cell,
    data: DatasetData,
    cfg: BenchConfig,
    names: list[str],
    *,
    recompute_scores: bool = False,
    progress: bool = False,
    log: Log = print,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows (one per detector) and SEI-vs-epochs rows of one cell, from the cache when present.

    Trainings and cross-validated probabilities are always reused from the cache;
    ``recompute_scores`` recomputes the detectors' rows from them (e.g. after a detector changed).
    """
    runner = CellRunner(cell, data, cfg, progress=progress, log=log)
    ev = runner.evidence()
    rows, older = [], []
    for name in names:
        p = runner.result_dir / f"{name}.json"
        if p.is_file() and not recompute_scores:  # rows cached before the resolution / settings columns get them here
            row = json.loads(p.read_text())
            if row.pop("_code", None) != code_digest():
                older.append(name)
            rows.append(row | {"resolution": runner.resolution or "", "settings": runner.settings})
            continue
        row = runner.row(name, ev)
        if failure(row) is not None:  # a failure is computed again next time, not kept
            p.unlink(missing_ok=True)
        else:
            atomic_write_json(p, row | {"_code": code_digest()})
        rows.append(row)
    if older:
        log(f"  note: {len(older)} cached rows ({', '.join(older)}) were computed by other code than this "
            f"labeltrace's detectors and metrics, or under other versions of {', '.join(_ROW_PACKAGES)}; "
            "--recompute-scores computes them again")  # fmt: skip
    curve: list[dict[str, Any]] = []
    if cfg.sei_curve and "sei" in names:  # its in-sample runs are trained for SEI, not for the others
        p = runner.result_dir / "sei_curve.json"
        if p.is_file() and not recompute_scores:
            curve = json.loads(p.read_text())
        else:
            try:
                curve = runner.sei_curve()
            except ValueError as e:  # as the sei row's own failure: the cell's other rows stand
                log(f"  sei curve FAILED: {e}")
                curve = []
            else:
                atomic_write_json(p, curve)
    return rows, curve
