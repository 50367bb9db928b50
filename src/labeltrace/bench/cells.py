"""One benchmark cell: recorded runs and cross-validated probabilities (cached), every detector,
metrics against the known truth.

All method logic comes from the library: :func:`labeltrace.detect.detect` for the registered
detectors, :mod:`labeltrace.scores` / :mod:`labeltrace.threshold` for the extras,
:func:`labeltrace.crossval.crossval_probs` and :mod:`labeltrace.probs` for confident learning,
:func:`labeltrace.knn.knn_vote`, :mod:`labeltrace.metrics` for the numbers. The real
``cleanlab`` package is imported lazily, only here (it is a bench extra).

Cache layout under ``cache_dir`` (a killed benchmark resumes where it stopped)::

    runs/<key>/dynamics.npz, meta.json[, embedding.npy]   one recorded training run
    runs/<key>/ckpt/                                      per-epoch checkpoint while training
    crossfit/<key>/dynamics.npz, in_sample.npz, meta.json the cross-fitted recording (held-out + in-sample)
    cv/<key>.npz                                          K-fold out-of-fold probabilities
    results/<cell key>/<detector>.json, sei_curve.json    computed rows

Cost accounting per detector: ``n_trainings`` model fits it needs (2 for the two recorded runs,
``n_folds`` for the cross-fitted recording of ``crossfit``,
``n_folds`` for confident learning, 0 for kNN on frozen features) and ``wall_seconds`` = the
measured training time of those fits (taken when they were computed, kept in the cache) plus
the detector's own compute time. Feature extraction, shared by every method, is not counted.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labeltrace import __version__
from labeltrace.bench.config import BenchConfig, ModelSpec
from labeltrace.bench.grid import Cell, DatasetData, digest
from labeltrace.decide import cutoffs as threshold
from labeltrace.decide import detectors as detect
from labeltrace.evaluate import metrics
from labeltrace.record import Recorder
from labeltrace.score import trajectory as scores
from labeltrace.train import TrainConfig, train_recorded

__all__ = ["CSV_COLUMNS", "CURVE_COLUMNS", "CellRunner", "run_cell"]

Log = Callable[[str], None]

CSV_COLUMNS: tuple[str, ...] = (
    "dataset", "labels", "noise", "rate", "true_rate", "model", "detector", "seed",
    "precision", "recall", "f1", "auroc", "ap", "n_flagged", "f1_at_true_rate",
    "wall_seconds", "n_trainings", "n", "n_noisy", "rule", "cutoff", "note",
)  # fmt: skip
CURVE_COLUMNS: tuple[str, ...] = (
    "dataset", "labels", "rate", "model", "seed", "epochs", "f1", "f1_at_true_rate", "auroc",
)  # fmt: skip

_CACHE_VERSION = 1
_RUN_SEED_STRIDE = 7919  # as labeltrace.scan: run r of seed s trains with seed s * 7919 + r
_CV_SEED_OFFSET = 1000  # fold f of the "same"-model cross-validation: seed s * 7919 + 1000 + f
_CROSSFIT_SEED_OFFSET = 2000  # the cross-fitted recording (fold f initialised with + 101 f)


# ----------------------------------------------------------------------------- small helpers
def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, default=_json_default)
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz.tmp")
    with os.fdopen(fd, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def _train_config(model: ModelSpec, seed: int, device: str) -> TrainConfig:
    return TrainConfig(
        epochs=model.epochs, batch_size=model.batch_size, lr=model.lr, momentum=model.momentum,
        weight_decay=model.weight_decay, schedule=model.schedule, augment=model.augment,  # type: ignore[arg-type]
        seed=seed, device=device,
    )  # fmt: skip


def build_network(model: ModelSpec, inputs: torch.Tensor, n_out: int) -> torch.nn.Module:
    """The network of ``model`` for these inputs (small-cnn as ``labeltrace scan`` builds it)."""
    from labeltrace.models import build_model

    if model.kind == "small-cnn":
        side = int(inputs.shape[-1])
        width = model.width or (16 if side <= 16 else 32)
        return build_model("small-cnn", num_classes=n_out, in_channels=int(inputs.shape[1]),
                           image_size=side, width=width)  # fmt: skip
    if model.kind == "mlp":
        return build_model("mlp", num_classes=n_out, in_dim=int(inputs.shape[1]), hidden=model.hidden)
    return build_model("linear", num_classes=n_out, in_dim=int(inputs.shape[1]))


def _predict_proba(net: torch.nn.Module, x: torch.Tensor, chunk: int = 2048) -> np.ndarray:
    net.eval()
    dev = next(net.parameters()).device
    with torch.inference_mode():
        out = [torch.softmax(net(x[i : i + chunk].to(dev)).float(), 1).cpu() for i in range(0, len(x), chunk)]
    return torch.cat(out).numpy().astype(np.float64)


class _TorchEstimator:
    """scikit-learn-style wrapper so :func:`crossval_probs` can cross-validate a torch model.

    ``fit`` takes the flattened inputs (crossval_probs needs 2-D features) and reshapes them.
    """

    def __init__(self, model: ModelSpec, shape: tuple[int, ...], k: int, seed: int, device: str) -> None:
        self.model, self.shape, self.k, self.seed, self.device = model, shape, k, seed, device
        self.classes_ = np.arange(k)
        self.net: torch.nn.Module | None = None

    def _x(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32).reshape(-1, *self.shape))

    def fit(self, x: np.ndarray, y: np.ndarray) -> _TorchEstimator:
        xt = self._x(x)
        torch.manual_seed(self.seed)
        self.net = build_network(self.model, xt, self.k)
        train_recorded(self.net, xt, np.asarray(y), num_classes=self.k,
                       config=_train_config(self.model, self.seed, self.device), recorder_mode="streaming",
                       keep_probs=0, progress=False)  # fmt: skip
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        assert self.net is not None, "fit first"
        return _predict_proba(self.net, self._x(x))


# ----------------------------------------------------------------------------- one cell
@dataclass
class _Trained:
    runs: list[detect.RecordedRun]
    seconds: list[float]
    embedding: np.ndarray | None


class CellRunner:
    """Everything a cell needs, computed on first use and cached on disk."""

    def __init__(self, cell: Cell, data: DatasetData, cfg: BenchConfig, *, progress: bool = False,
                 log: Log = print) -> None:  # fmt: skip
        self.cell, self.data, self.cfg, self.progress, self.log = cell, data, cfg, progress, log
        self.cache = cfg.cache_path
        self.x, self.input_fp = data.inputs(cell.model)
        self.given = data.given_labels(cell.labels, cell.seed)
        self.truth = self.given != data.clean
        self.k = data.num_classes
        self._trained: _Trained | None = None
        self._cv: tuple[np.ndarray, float] | None = None
        self.key = digest({
            "v": _CACHE_VERSION, "inputs": self.input_fp, "given": digest(self.given),
            "model": cell.model.key(), "seed": cell.seed, "n_folds": cfg.n_folds, "knn_k": cfg.knn_k,
            "aux_fraction": cfg.aux_fraction, "labeltrace": __version__,
        })  # fmt: skip
        self.result_dir = self.cache / "results" / self.key

    # ------------------------------------------------------------------ recorded runs
    def aux_masks(self) -> list[np.ndarray]:
        """Two disjoint auxiliary sets, drawn as ``labeltrace scan`` draws them."""
        return threshold.assign_auxiliary_pair(self.given, self.k, fraction=self.cfg.aux_fraction, seed=self.cell.seed)

    def trained(self) -> _Trained:
        if self._trained is None:
            runs, secs, emb = [], [], None
            for r, aux in enumerate(self.aux_masks()):
                run, sec, e = self._run(r, aux)
                runs.append(run)
                secs.append(sec)
                emb = e if r == 0 else emb
            self._trained = _Trained(runs, secs, emb)
        return self._trained

    def _run(self, r: int, aux: np.ndarray) -> tuple[detect.RecordedRun, float, np.ndarray | None]:
        m, seed = self.cell.model, self.cell.seed * _RUN_SEED_STRIDE + r
        n_out = self.k + 1
        key = digest({"v": _CACHE_VERSION, "kind": "run", "inputs": self.input_fp, "given": digest(self.given),
                      "aux": digest(aux), "model": m.key(), "seed": seed})  # fmt: skip
        d = self.cache / "runs" / key
        meta_p = d / "meta.json"
        want_emb = r == 0 and not m.on_features
        if not meta_p.is_file():
            self.log(f"  train run {r + 1}/2 ({m.name}, {m.epochs} epochs, N={len(self.given)})")
            y = threshold.auxiliary_labels(self.given, aux, self.k)
            torch.manual_seed(seed)
            net = build_network(m, self.x, n_out)
            res = train_recorded(net, self.x, y, num_classes=n_out, config=_train_config(m, seed, self.cfg.device),
                                 checkpoint_dir=d / "ckpt", progress=self.progress, desc=f"run {r + 1}/2")  # fmt: skip
            es = res.epoch_seconds
            # resumed part-way: the earlier epochs' times are lost, estimate them from these
            sec = float(np.sum(es)) if res.resumed_from == 0 or not es else float(np.mean(es)) * m.epochs
            res.recorder.save(d / "dynamics.npz")
            if want_emb:
                net.eval()
                dev = next(net.parameters()).device
                with torch.inference_mode():
                    emb = torch.cat([net.features(self.x[i : i + 1024].to(dev)).cpu()  # type: ignore[operator]
                                     for i in range(0, len(self.x), 1024)]).numpy()  # fmt: skip
                _save_npz(d / "embedding.npz", embedding=emb)
            _write_json(meta_p, {"seconds": sec, "resumed_from": res.resumed_from, "seed": seed,
                                 "final_train_accuracy": res.final_train_accuracy, "cell": str(self.cell)})  # fmt: skip
            shutil.rmtree(d / "ckpt", ignore_errors=True)
        meta = json.loads(meta_p.read_text())
        dyn = Recorder.load(d / "dynamics.npz").dynamics()
        emb_arr = None
        if want_emb:
            with np.load(d / "embedding.npz", allow_pickle=False) as z:
                emb_arr = z["embedding"]
        return detect.RecordedRun(dyn, aux, self.k), float(meta["seconds"]), emb_arr

    # ------------------------------------------------------------------ cross-fitted (held-out) recording
    def held_out(self) -> tuple[detect.RecordedRun, float]:
        """The cross-fitted recording: ``n_folds`` models in lockstep, each sample recorded every
        epoch by the model that never trained on it (as ``labeltrace scan`` records it), and the
        seconds it took."""
        from labeltrace.train.crossfit import crossfit_recorded

        m, seed = self.cell.model, self.cell.seed * _RUN_SEED_STRIDE + _CROSSFIT_SEED_OFFSET
        key = digest({"v": _CACHE_VERSION, "kind": "crossfit", "inputs": self.input_fp, "given": digest(self.given),
                      "model": m.key(), "seed": seed, "n_folds": self.cfg.n_folds, "in_sample": True})  # fmt: skip
        d = self.cache / "crossfit" / key
        meta_p = d / "meta.json"
        if not meta_p.is_file():
            self.log(f"  cross-fit {self.cfg.n_folds} folds ({m.name}, {m.epochs} epochs, N={len(self.given)})")
            t0 = time.perf_counter()

            def build(fold: int) -> torch.nn.Module:
                torch.manual_seed(seed + 101 * fold)
                return build_network(m, self.x, self.k)

            in_sample = Recorder(len(self.given), self.k, keep_probs=1)
            rec, _ = crossfit_recorded(build, self.x, self.given, num_classes=self.k,
                                       config=_train_config(m, seed, self.cfg.device), n_folds=self.cfg.n_folds,
                                       checkpoint_dir=d / "ckpt", progress=self.progress, in_sample=in_sample)  # fmt: skip
            rec.save(d / "dynamics.npz")
            in_sample.save(d / "in_sample.npz")
            _write_json(meta_p, {"seconds": time.perf_counter() - t0, "seed": seed, "cell": str(self.cell)})
            shutil.rmtree(d / "ckpt", ignore_errors=True)
        meta = json.loads(meta_p.read_text())
        dyn = Recorder.load(d / "dynamics.npz").dynamics()
        ins = Recorder.load(d / "in_sample.npz").dynamics()
        return (detect.RecordedRun(dyn, np.zeros(len(self.given), bool), self.k, held_out=True, in_sample=ins),
                float(meta["seconds"]))  # fmt: skip

    # ------------------------------------------------------------------ cross-validated probabilities
    def cv_probs(self) -> tuple[np.ndarray, float]:
        """Out-of-fold probabilities (N, K) and the seconds they took (``n_folds`` fits)."""
        if self._cv is None:
            m = self.cell.model
            cv_key = {"cv": m.cv, "n_folds": self.cfg.n_folds, "seed": self.cell.seed}
            cv_key |= {"C": m.cv_C, "max_iter": m.cv_max_iter} if m.cv == "logreg" else {"model": m.key()}
            key = digest({"v": _CACHE_VERSION, "kind": "cv", "inputs": self.input_fp, "given": digest(self.given),
                          **cv_key})  # fmt: skip
            p = self.cache / "cv" / f"{key}.npz"
            if not p.is_file():
                from labeltrace.train.crossval import crossval_probs

                self.log(f"  {self.cfg.n_folds}-fold cross-validated probabilities ({m.cv})")
                t0 = time.perf_counter()
                if m.cv == "logreg":
                    probs = crossval_probs(self.x.numpy(), self.given, n_folds=self.cfg.n_folds, C=m.cv_C,
                                           max_iter=m.cv_max_iter, seed=self.cell.seed, num_classes=self.k)  # fmt: skip
                else:
                    shape = tuple(self.x.shape[1:])
                    fold = iter(range(self.cfg.n_folds))

                    def factory() -> _TorchEstimator:
                        s = self.cell.seed * _RUN_SEED_STRIDE + _CV_SEED_OFFSET + next(fold)
                        return _TorchEstimator(m, shape, self.k, s, self.cfg.device)

                    flat = self.x.reshape(len(self.x), -1).numpy()
                    probs = crossval_probs(flat, self.given, n_folds=self.cfg.n_folds, seed=self.cell.seed,
                                           standardize=False, num_classes=self.k, estimator_factory=factory)  # fmt: skip
                _save_npz(p, probs=probs, seconds=np.array(time.perf_counter() - t0))
            with np.load(p, allow_pickle=False) as z:
                self._cv = (z["probs"], float(z["seconds"]))
        return self._cv

    # ------------------------------------------------------------------ detectors
    def detector(self, name: str) -> dict[str, Any]:
        """Score, flags and cost of one detector: keys score, flagged, rule, cutoff, n_trainings,
        wall_seconds."""
        if name in detect.available() and detect.needs_held_out(name):
            run, sec = self.held_out()
            t0 = time.perf_counter()
            det = detect.detect(name, [run])
            return self._out(det.score, det.flagged, det.rule, det.cutoff, self.cfg.n_folds, sec, t0)
        if name in detect.available():
            tr = self.trained()
            t0 = time.perf_counter()
            det = detect.detect(name, tr.runs)
            flagged = det.flagged
            return self._out(det.score, flagged, det.rule, det.cutoff, 2, sum(tr.seconds), t0)
        if name == "se_mid":
            tr = self.trained()
            t0 = time.perf_counter()
            mid = tr.runs[0].dynamics.num_epochs // 2
            s = detect.combined_score("se_at", tr.runs, epoch=mid)
            per = [scores.compute("se_at", r.dynamics, epoch=mid) for r in tr.runs]
            cut = threshold.pooled_auxiliary_cutoff(per[0], per[1], tr.runs[0].is_auxiliary,
                                                    tr.runs[1].is_auxiliary, rule="mean")  # fmt: skip
            return self._out(s, threshold.flag(s, cut), f"auxiliary-mean (epoch {mid})", cut, 2, sum(tr.seconds), t0)
        if name == "forgetting":
            from labeltrace.score.probs import estimate_noise_rate

            tr = self.trained()
            t0 = time.perf_counter()
            s = detect.combined_score("forgetting", tr.runs)
            rate = float(estimate_noise_rate(detect.posterior(tr.runs), self.given))
            cut = threshold.top_fraction(s, rate)
            return self._out(s, threshold.flag(s, cut), f"top-k at estimated rate {rate:.3f}", cut, 2,
                             sum(tr.seconds), t0)  # fmt: skip
        if name == "knn_vote":
            from labeltrace.score.knn import knn_vote

            if self.cell.model.on_features:
                feats, n_fit, sec = self.x.numpy(), 0, 0.0
            else:  # penultimate embedding of the first recorded run's network
                tr = self.trained()
                feats, n_fit, sec = tr.embedding, 1, tr.seconds[0]
            t0 = time.perf_counter()
            s = knn_vote(feats, self.given, k=self.cfg.knn_k)
            return self._out(s, s < 0.5, "vote < 0.5", 0.5, n_fit, sec, t0)
        if name == "cl":
            from labeltrace.score import probs as P

            p, sec = self.cv_probs()
            t0 = time.perf_counter()
            flagged = P.find_label_issues(p, self.given, filter_by="prune_by_noise_rate")
            s = P.confident_learning(p, self.given, filter_by="prune_by_noise_rate")
            return self._out(s, flagged, "prune_by_noise_rate", P.CL_CUTOFF, self.cfg.n_folds, sec, t0)
        if name == "cleanlab":
            p, sec = self.cv_probs()
            try:
                from cleanlab.filter import find_label_issues
                from cleanlab.rank import get_label_quality_scores
            except ImportError:
                raise ValueError("the cleanlab package is not installed (pip install labeltrace[bench])") from None
            t0 = time.perf_counter()
            flagged = np.asarray(find_label_issues(self.given, p, filter_by="prune_by_noise_rate", n_jobs=1))
            s = np.asarray(get_label_quality_scores(self.given, p), dtype=np.float64)
            return self._out(s, flagged.astype(bool), "cleanlab prune_by_noise_rate", float("nan"),
                             self.cfg.n_folds, sec, t0)  # fmt: skip
        raise ValueError(f"unknown detector {name!r}")

    @staticmethod
    def _out(score: np.ndarray, flagged: np.ndarray, rule: str, cutoff: float, n_fit: int, fit_sec: float,
             t0: float) -> dict[str, Any]:  # fmt: skip
        return {"score": np.asarray(score, dtype=np.float64), "flagged": np.asarray(flagged, dtype=bool),
                "rule": rule, "cutoff": float(cutoff), "n_trainings": n_fit,
                "wall_seconds": float(fit_sec) + time.perf_counter() - t0}  # fmt: skip

    def base_row(self) -> dict[str, Any]:
        c = self.cell
        true_rate = float(self.truth.mean())
        return {
            "dataset": c.dataset.name, "labels": c.labels, "noise": c.noise_kind,
            "rate": c.nominal_rate if c.nominal_rate is not None else round(true_rate, 4),
            "true_rate": true_rate, "model": c.model.name, "seed": c.seed, "n": int(self.truth.size),
            "n_noisy": int(self.truth.sum()),
        }  # fmt: skip

    def row(self, name: str) -> dict[str, Any]:
        """The CSV row of one detector (metrics against the truth ``given != clean``)."""
        row = self.base_row() | {"detector": name, "note": ""}
        try:
            d = self.detector(name)
        except ValueError as e:  # e.g. a GMM cutoff on scores that are not bimodal
            nan = float("nan")
            return row | {k: nan for k in ("precision", "recall", "f1", "auroc", "ap", "f1_at_true_rate",
                                           "wall_seconds", "cutoff")} | {
                "n_flagged": -1, "n_trainings": -1, "rule": "", "note": f"failed: {e}"}  # fmt: skip
        rep = metrics.detection_report(self.truth, d["flagged"], d["score"], nan_policy="omit")
        at = metrics.report_at_true_rate(self.truth, d["score"], nan_policy="omit")
        return row | {
            "precision": rep["precision"], "recall": rep["recall"], "f1": rep["f1"], "auroc": rep["auroc"],
            "ap": rep["average_precision"], "n_flagged": rep["n_flagged"], "f1_at_true_rate": at["f1"],
            "wall_seconds": d["wall_seconds"], "n_trainings": d["n_trainings"], "rule": d["rule"],
            "cutoff": d["cutoff"],
        }  # fmt: skip

    def sei_curve(self) -> list[dict[str, Any]]:
        """SEI integrated over the first t epochs, t = 1..T, with the auxiliary-mean cutoff of the
        same window: F1 (own cutoff), F1 at the true rate and AUROC per t."""
        tr = self.trained()
        a, b = (r.is_auxiliary for r in tr.runs)
        base = self.base_row()
        out = []
        for t in range(1, tr.runs[0].dynamics.num_epochs + 1):
            w = slice(0, t)
            per = [scores.compute("sei", r.dynamics, epochs=w) for r in tr.runs]
            s = detect.combined_score("sei", tr.runs, epochs=w)
            cut = threshold.pooled_auxiliary_cutoff(per[0], per[1], a, b, rule="mean")
            rep = metrics.detection_report(self.truth, threshold.flag(s, cut), s, nan_policy="omit")
            at = metrics.report_at_true_rate(self.truth, s, nan_policy="omit")
            out.append({k: base[k] for k in ("dataset", "labels", "rate", "model", "seed")}
                       | {"epochs": t, "f1": rep["f1"], "f1_at_true_rate": at["f1"], "auroc": rep["auroc"]})  # fmt: skip
        return out


def run_cell(
    cell: Cell,
    data: DatasetData,
    cfg: BenchConfig,
    detectors: list[str],
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
    rows = []
    for name in detectors:
        p = runner.result_dir / f"{name}.json"
        if p.is_file() and not recompute_scores:
            rows.append(json.loads(p.read_text()))
            continue
        row = runner.row(name)
        _write_json(p, row)
        rows.append(row)
    curve: list[dict[str, Any]] = []
    if cfg.sei_curve:
        p = runner.result_dir / "sei_curve.json"
        if p.is_file() and not recompute_scores:
            curve = json.loads(p.read_text())
        else:
            curve = runner.sei_curve()
            _write_json(p, curve)
    return rows, curve
