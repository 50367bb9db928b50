"""A relabeling campaign with a model in the loop: votes + features → simulated campaign.

Glue between real annotator votes (:mod:`labeltrace.simulate`), a feature head trained with the
recorder (:mod:`labeltrace.train`, :mod:`labeltrace.record`) and the relabel priorities
(:mod:`labeltrace.queue`):

1. :func:`load_votes` reads a vote table — a CSV with one row per image and ``votes_<class>``
   count columns (the CIFAR-10H layout) or an ``(N, K)`` ``.npy``;
2. for every seed, :func:`run_simulation` draws initial noisy labels at a target noise rate
   (temperature-scaled draws from the votes), trains a head on the standardised features and
   those noisy labels (:func:`train_head`), takes its posterior (mean softmax over the last
   epochs, or over the whole trajectory) and its SEI from the same recorded run, and runs every
   selector on that seed's labels with :func:`labeltrace.simulate.compare_selectors`;
3. with ``active_every=M`` the model-based selectors retrain the head on the current labels at
   the first image boundary after every ``M`` relabels (:class:`HeadRetrainer`, the
   ``update_posterior`` callback of the active loop).

The budget is ``budget_factor × round(noise_rate × N)`` relabels, the same for every seed so
the curves can be averaged (the realised number of noisy labels of each seed is reported).
"""

from __future__ import annotations

import csv
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from labeltrace._checks import describe_ids
from labeltrace.relabel import simulate as _sim
from labeltrace.relabel.simulate import Aggregate, CampaignResult

__all__ = [
    "MODEL_SELECTORS",
    "HeadConfig",
    "HeadOutput",
    "HeadRetrainer",
    "SimulationResult",
    "format_summary",
    "load_features",
    "load_votes",
    "ratio_to_random",
    "run_simulation",
    "standardize",
    "train_head",
    "write_simulation",
]

MODEL_SELECTORS: frozenset[str] = frozenset({"cross_entropy", "joint", "sei", "sei_joint"})
"""Selectors that need a trained model (posterior and/or SEI)."""

DEFAULT_SELECTORS: tuple[str, ...] = (
    "random",
    "cross_entropy",
    "joint",
    "sei",
    "sei_joint",
    "oracle",
)

# --------------------------------------------------------------------------- inputs


def load_votes(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read a vote table: ``(votes (N, K) float64, class names)``.

    ``.npy``: an ``(N, K)`` array of non-negative counts; classes are named ``"0" … "K-1"``.
    ``.csv``: one row per image; every column whose name starts with ``votes_`` is one class
    (the name after the prefix), in column order — the CIFAR-10H layout
    ``index,file,original_label,votes_airplane,…``. Other columns are ignored, except that an
    ``index`` column must read ``0 … N-1`` in order (rows are sample ids, aligned with a
    feature file by position).

    Raises
    ------
    ValueError
        No ``votes_`` columns, fewer than 2 classes, empty / non-numeric / negative / non-finite
        cells (naming the rows and columns), an ``index`` column out of order, or images with
        no votes at all (naming the sample ids).
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"votes file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 2:
            raise ValueError(f"{path}: expected an (N, K) vote array, got shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ValueError(f"{path}: vote counts must be numbers, got dtype {arr.dtype}")
        votes = arr.astype(np.float64)
        classes = [str(j) for j in range(votes.shape[1])]
    elif suffix == ".csv":
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                raise ValueError(f"{path} is empty") from None
            rows = list(reader)
        cols = [j for j, name in enumerate(header) if name.startswith("votes_")]
        if not cols:
            raise ValueError(
                f"{path}: no vote columns (names starting with 'votes_'); columns: {header}"
            )
        classes = [header[j][len("votes_") :] for j in cols]
        short = [r for r, row in enumerate(rows) if len(row) != len(header)]
        if short:
            raise ValueError(
                f"{path}: data rows {short[:10]} (0-based, header excluded) do not have the "
                f"{len(header)} fields of the header"
            )
        if not rows:
            raise ValueError(f"{path} has a header but no rows")
        cells = np.array([[row[j] for j in cols] for row in rows], dtype=object)
        votes = np.full(cells.shape, np.nan)
        bad: list[tuple[int, str]] = []
        for c in range(cells.shape[1]):  # one vectorised conversion per column
            col = cells[:, c]
            try:
                votes[:, c] = col.astype(np.float64)
            except ValueError:
                for r, v in enumerate(col):
                    try:
                        votes[r, c] = float(v)
                    except ValueError:
                        bad.append((r, header[cols[c]]))
        if bad:
            shown = ", ".join(f"row {r} column {name}" for r, name in bad[:10])
            raise ValueError(f"{path}: non-numeric vote counts at {shown} ({len(bad)} in all)")
        if "index" in header:
            j = header.index("index")
            try:
                idx = np.array([int(row[j]) for row in rows])
            except ValueError:
                raise ValueError(f"{path}: the index column must hold integers") from None
            off = np.flatnonzero(idx != np.arange(len(rows)))
            if off.size:
                raise ValueError(
                    f"{path}: the index column must read 0..{len(rows) - 1} in row order; "
                    f"it does not at rows {off[:10].tolist()}"
                )
    else:
        raise ValueError(f"{path}: unsupported votes file (use .csv with votes_* columns or .npy)")
    if votes.shape[1] < 2:
        raise ValueError(f"{path}: need at least 2 classes, got {votes.shape[1]}")
    bad_ids = np.flatnonzero(~np.isfinite(votes).all(axis=1) | (votes < 0).any(axis=1))
    if bad_ids.size:
        raise ValueError(f"{path}: negative or non-finite vote counts at {describe_ids(bad_ids)}")
    empty = np.flatnonzero(votes.sum(axis=1) <= 0)
    if empty.size:
        raise ValueError(f"{path}: images without any vote at {describe_ids(empty)}")
    return votes, classes


def load_features(path: str | Path, *, n: int | None = None) -> np.ndarray:
    """Read an ``(N, D)`` ``.npy`` feature matrix (float32), checking ``N`` against ``n``."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"features file {path} does not exist")
    if path.suffix.lower() != ".npy":
        raise ValueError(f"{path}: features must be an (N, D) .npy array")
    x = np.load(path, allow_pickle=False)
    if x.ndim != 2:
        raise ValueError(f"{path}: expected an (N, D) feature array, got shape {x.shape}")
    if n is not None and x.shape[0] != n:
        raise ValueError(f"{path} has {x.shape[0]} rows but the votes have {n} images")
    return np.asarray(x, dtype=np.float32)


def standardize(features: np.ndarray) -> np.ndarray:
    """(N, D) float32 features with every column shifted to mean 0 and scaled to std 1.

    Constant columns (std below 1e-9 of the column's largest magnitude) are only centred.
    Non-finite values raise ``ValueError`` naming the ids.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (N, D) array, got shape {x.shape}")
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        raise ValueError(f"features have NaN or infinite values at {describe_ids(bad)}")
    sd = x.std(axis=0)
    const = sd <= 1e-9 * np.abs(x).max(axis=0)  # rounding noise of a constant column
    return ((x - x.mean(axis=0)) / np.where(const, 1.0, sd)).astype(np.float32)


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class HeadConfig:
    """The head trained on frozen features and how its posterior is read.

    Attributes
    ----------
    model : ``"mlp"`` (one hidden layer of ``hidden`` units) or ``"linear"``.
    epochs, batch_size, lr, weight_decay : SGD (momentum 0.9, cosine schedule) settings. The
        default ``lr = 0.01`` keeps a 256-unit MLP on 10,000 standardised 1280-d features from
        memorising the noisy labels within 20 epochs (``lr = 0.05`` fits 100 % of them, and the
        posterior then mostly repeats the noisy label).
    posterior : ``"mean"`` — mean softmax over every epoch (trajectory mean, less memorised);
        ``"last"`` — mean softmax over the last ``last`` epochs.
    seed : seeds the initialisation and the batch order (a simulation adds its seed).
    """

    model: Literal["mlp", "linear"] = "mlp"
    hidden: int = 256
    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.01
    weight_decay: float = 5e-4
    posterior: Literal["mean", "last"] = "mean"
    last: int = 5
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.model not in ("mlp", "linear"):
            raise ValueError(f"model must be 'mlp' or 'linear', got {self.model!r}")
        if self.posterior not in ("mean", "last"):
            raise ValueError(f"posterior must be 'mean' or 'last', got {self.posterior!r}")
        for name in ("hidden", "epochs", "batch_size", "last"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")


@dataclass(frozen=True, eq=False)
class HeadOutput:
    """What one training of the head gives the campaign.

    Attributes
    ----------
    posterior : (N, K) float64 rows summing to 1 (see :attr:`HeadConfig.posterior`).
    sei : (N,) Signed Entropy Integral of the same run (lower = more suspect).
    train_accuracy : fraction of the training labels the model fits in the last epoch.
    seconds : wall time of the training.
    """

    posterior: np.ndarray
    sei: np.ndarray
    train_accuracy: float
    seconds: float


def _as_tensor(features: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(features, dtype=torch.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (N, D) array, got shape {tuple(x.shape)}")
    return x.contiguous()


def train_head(
    features: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    *,
    num_classes: int,
    config: HeadConfig = HeadConfig(),
) -> HeadOutput:
    """Train a fresh head on ``features`` with ``labels``, recording its dynamics.

    ``features`` should already be standardised (:func:`standardize`). The result depends only
    on the inputs and ``config.seed``: the initialisation runs in a forked torch RNG seeded with
    it, and :func:`labeltrace.train.train_recorded` orders batches by ``(seed, epoch)``.
    """
    from labeltrace.models import build_model
    from labeltrace.score import trajectory as scores
    from labeltrace.train import TrainConfig, train_recorded

    x = _as_tensor(features)
    lab = np.asarray(labels)
    if lab.shape != (x.shape[0],) or (lab.size and not np.issubdtype(lab.dtype, np.integer)):
        raise ValueError(
            f"labels must be an integer ({x.shape[0]},) array, got {lab.dtype} {lab.shape}"
        )
    t0 = time.perf_counter()
    opts: dict[str, Any] = {"in_dim": int(x.shape[1])}
    if config.model == "mlp":
        opts["hidden"] = config.hidden
    tcfg = TrainConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        weight_decay=config.weight_decay,
        schedule="cosine",
        seed=config.seed,
        device=config.device,
    )
    keep = min(config.last, config.epochs) if config.posterior == "last" else 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.model, num_classes=num_classes, **opts)
        res = train_recorded(
            model,
            x,
            lab.astype(np.int64),
            num_classes=num_classes,
            config=tcfg,
            recorder_mode="streaming",
            keep_probs=keep,
            progress=False,
        )
    dyn = res.recorder.dynamics()
    post = dyn.posterior(last=keep) if config.posterior == "last" else dyn.mean_posterior()
    post = np.asarray(post, dtype=np.float64)
    post /= post.sum(axis=1, keepdims=True)  # float32 softmax sums: renormalise exactly
    return HeadOutput(
        posterior=post,
        sei=np.asarray(scores.compute("sei", dyn), dtype=np.float64),
        train_accuracy=float(res.final_train_accuracy),
        seconds=time.perf_counter() - t0,
    )


class HeadRetrainer:
    """The active loop's ``update_posterior``: retrain the head on the current labels.

    ``retrainer(labels) -> (posterior, sei)``. Each call trains a fresh head (same
    ``config.seed``) on ``labels``; results are cached by the label vector, so the initial
    training is shared by every selector of a seed and a label state is never trained twice.

    Attributes
    ----------
    calls : number of calls; ``trainings`` : number of actual trainings (cache misses).
    history : the label vectors of every call, in order (copies).
    seconds : total training time.
    """

    def __init__(
        self,
        features: np.ndarray | torch.Tensor,
        *,
        num_classes: int,
        config: HeadConfig = HeadConfig(),
        cache: bool = True,
    ) -> None:
        self.features = _as_tensor(features)
        self.num_classes = int(num_classes)
        self.config = config
        self.cache = bool(cache)
        self.calls = 0
        self.trainings = 0
        self.seconds = 0.0
        self.history: list[np.ndarray] = []
        self._memo: dict[bytes, HeadOutput] = {}

    def fit(self, labels: np.ndarray) -> HeadOutput:
        """The :class:`HeadOutput` for ``labels`` (trained, or from the cache)."""
        lab = np.ascontiguousarray(labels, dtype=np.int64)
        key = hashlib.sha1(lab.tobytes()).digest()
        if self.cache and key in self._memo:
            return self._memo[key]
        out = train_head(self.features, lab, num_classes=self.num_classes, config=self.config)
        self.trainings += 1
        self.seconds += out.seconds
        if self.cache:
            self._memo[key] = out
        return out

    def __call__(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        self.history.append(np.array(labels, dtype=np.int64, copy=True))
        out = self.fit(labels)
        return out.posterior.copy(), out.sei.copy()


# --------------------------------------------------------------------------- the simulation


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Campaigns of every selector over seeds, with what each seed started from.

    Attributes
    ----------
    results : {selector: [CampaignResult per seed, in ``seeds`` order]}.
    aggregates : {selector: mean curves and 95 % t-intervals over seeds}.
    budget, noise_rate, budget_factor, seeds, active_every : the settings.
    temperatures, n_noisy : per seed, the temperature of the initial draw and the realised
        number of noisy initial labels.
    head_accuracy : per seed, the fraction of images whose posterior argmax equals the vote
        majority (the initial model; NaN without a model).
    head_noisy_recall : per seed, the fraction of initially noisy images whose posterior argmax
        differs from their noisy label (NaN without a model).
    retrainings : per seed, head trainings performed (initial one included).
    seconds : wall time.
    """

    results: dict[str, list[CampaignResult]]
    aggregates: dict[str, Aggregate]
    budget: int
    noise_rate: float
    budget_factor: float
    seeds: list[int]
    active_every: int | None
    temperatures: list[float]
    n_noisy: list[int]
    head_accuracy: list[float]
    head_noisy_recall: list[float]
    retrainings: list[int]
    head: HeadConfig | None
    seconds: float


def run_simulation(
    votes: np.ndarray,
    *,
    features: np.ndarray | None = None,
    selectors: Sequence[str] = DEFAULT_SELECTORS,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    noise_rate: float = 0.15,
    budget_factor: float = 3.0,
    budget: int | None = None,
    head: HeadConfig = HeadConfig(),
    active_every: int | None = None,
    gamma: float = 0.3,
    log: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Simulate relabeling campaigns of every selector on real votes with a model in the loop.

    Parameters
    ----------
    votes : (N, K) annotator vote counts (truth = majority; the simulated annotator).
    features : (N, D) raw features (standardised here); required by ``cross_entropy``,
        ``joint``, ``sei`` and ``sei_joint``.
    selectors : names from :func:`labeltrace.queue.available`; ``oracle`` sets the normalised
        gains.
    seeds : per seed ``s``: the initial labels (``temperature_for_rate(votes, noise_rate,
        seed=s)`` then ``sample_initial_labels(..., seed=s)``), the head (``head.seed + s``),
        the annotator and the ``random`` order.
    noise_rate : target fraction of initial labels that differ from the vote majority (realised
        exactly up to ties: the smallest temperature reaching it).
    budget_factor, budget : relabels = ``budget`` if given, else
        ``round(budget_factor × round(noise_rate × N))``.
    head : the head and its posterior.
    active_every : retrain the head on the current labels every this many relabels (model
        selectors only); None keeps the initial model's posterior and SEI throughout.
    gamma : ambiguity threshold of ``joint`` / ``sei_joint``.
    log : called with one progress line per seed.
    """
    dist = _sim.vote_distribution(votes)
    n, k = dist.shape
    sel = list(selectors)
    if not sel:
        raise ValueError("no selectors given")
    from labeltrace.relabel import priority as _q

    unknown = [s for s in sel if s not in _q.available()]
    if unknown:
        raise ValueError(f"unknown selectors {unknown}; available: {', '.join(_q.available())}")
    if len(set(sel)) != len(sel):
        raise ValueError(f"selectors repeat: {sel}")
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds}")
    needs_model = sorted(set(sel) & MODEL_SELECTORS)
    x = None
    if needs_model:
        if features is None:
            raise ValueError(
                f"selectors {needs_model} need a model posterior/SEI: give features "
                "(an (N, D) array) or keep only random and oracle"
            )
        x = standardize(features)
        if x.shape[0] != n:
            raise ValueError(f"features have {x.shape[0]} rows but the votes have {n} images")
    if not 0.0 < noise_rate < 1.0:
        raise ValueError(f"noise_rate must lie in (0, 1), got {noise_rate}")
    if budget is None:
        if not budget_factor > 0:
            raise ValueError(f"budget_factor must be > 0, got {budget_factor}")
        budget = round(budget_factor * round(noise_rate * n))
    if int(budget) != budget or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget}")
    budget = int(budget)
    if active_every is not None and (int(active_every) != active_every or active_every < 1):
        raise ValueError(f"active_every must be a positive integer, got {active_every}")

    truth = dist.argmax(axis=1)
    t_start = time.perf_counter()
    results: dict[str, list[CampaignResult]] = {s: [] for s in sel}
    temps: list[float] = []
    n_noisy: list[int] = []
    head_acc: list[float] = []
    head_rec: list[float] = []
    trainings: list[int] = []
    for s in seeds:
        t0 = time.perf_counter()
        tau = _sim.temperature_for_rate(votes, noise_rate, seed=s)
        init = _sim.sample_initial_labels(votes, temperature=tau, seed=s)
        noisy = init.labels != truth
        temps.append(float(tau))
        n_noisy.append(int(noisy.sum()))
        post = sei = None
        retrainer = None
        if x is not None:
            retrainer = HeadRetrainer(x, num_classes=k, config=replace(head, seed=head.seed + s))
            first = retrainer.fit(init.labels)
            post, sei = first.posterior, first.sei
            pred = post.argmax(axis=1)
            head_acc.append(float(np.mean(pred == truth)))
            head_rec.append(
                float(np.mean(pred[noisy] != init.labels[noisy])) if noisy.any() else math.nan
            )
        else:
            head_acc.append(float("nan"))
            head_rec.append(float("nan"))
        out = _sim.compare_selectors(
            votes,
            init,
            budget=budget,
            selectors=sel,
            seeds=[s],
            posterior=post,
            sei=sei,
            gamma=gamma,
            update_posterior=retrainer if active_every is not None else None,
            update_every=int(active_every) if active_every is not None else None,
        )
        for name, rs in out.items():
            results[name].extend(rs)
        trainings.append(retrainer.trainings if retrainer is not None else 0)
        if log is not None:
            log(
                f"seed {s}: tau {tau:.3g}, {int(noisy.sum())} noisy, "
                + (f"head acc {head_acc[-1]:.3f}, " if x is not None else "")
                + f"{trainings[-1]} trainings, {time.perf_counter() - t0:.1f}s"
            )
    aggregates = {name: _sim.aggregate(rs) for name, rs in results.items()}
    return SimulationResult(
        results=results,
        aggregates=aggregates,
        budget=budget,
        noise_rate=float(noise_rate),
        budget_factor=float(budget_factor),
        seeds=seeds,
        active_every=None if active_every is None else int(active_every),
        temperatures=temps,
        n_noisy=n_noisy,
        head_accuracy=head_acc,
        head_noisy_recall=head_rec,
        retrainings=trainings,
        head=head if x is not None else None,
        seconds=time.perf_counter() - t_start,
    )


# --------------------------------------------------------------------------- outputs


def ratio_to_random(
    sim: SimulationResult, selector: str, fraction: float
) -> tuple[float, float, float]:
    """Per-seed ratio of noisy labels fixed by ``selector`` to those fixed by ``random`` after
    ``fraction`` of the budget: ``(mean, low, high)`` over seeds (NaN where random fixed none)."""
    if "random" not in sim.results:
        raise ValueError("the simulation has no 'random' selector to compare with")
    r = max(1, round(fraction * sim.budget))
    vals = []
    for a, b in zip(sim.results[selector], sim.results["random"], strict=True):
        vals.append(a.fixed[r] / b.fixed[r] if b.fixed[r] > 0 else float("nan"))
    return _sim.t_interval(np.asarray(vals))


def format_summary(sim: SimulationResult) -> str:
    """A plain-text table: per selector AUC, normalised gain, fixed per 100 relabels at 10/25/50 %
    of the budget and final accuracy (mean [95 % interval] over seeds)."""

    def cell(m: tuple[float, float, float], scale: float = 1.0, fmt: str = ".3f") -> str:
        mean, lo, hi = (v * scale for v in m)
        if not math.isfinite(mean):
            return "n/a"
        if math.isfinite(lo):
            return f"{mean:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"
        return f"{mean:{fmt}}"

    fr = ["0.1", "0.25", "0.5"]
    head = ["selector", "AUC", "gain/oracle"] + [f"fixed/100@{f}" for f in fr] + ["final acc %"]
    rows = [head]
    for name, a in sim.aggregates.items():
        m = a.metrics
        rows.append(
            [name, cell(m["auc"]), cell(m["normalized_gain"], fmt=".2f")]
            + [cell(m.get(f"fixed_per_100@{f}", (math.nan,) * 3), fmt=".1f") for f in fr]
            + [cell(m["final_accuracy"], 100.0, ".2f")]
        )
    widths = [max(len(r[j]) for r in rows) for j in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    n = sim.results[next(iter(sim.results))][0].initial_labels.size
    info = (
        f"{n} images, {len(sim.seeds)} seeds, target noise {sim.noise_rate:.0%} "
        f"(realised {min(sim.n_noisy)}–{max(sim.n_noisy)} noisy), budget {sim.budget} relabels"
        + (f", retrain every {sim.active_every}" if sim.active_every else ", static model")
    )
    acc = [a for a in sim.head_accuracy if math.isfinite(a)]
    if acc:
        info += f"; initial head agrees with the majority on {100 * np.mean(acc):.1f}%"
    return info + "\n" + "\n".join(lines)


def write_simulation(
    sim: SimulationResult,
    out_dir: str | Path,
    *,
    title: str | None = None,
    every: int = 1,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``curves.csv``, ``summary.csv``, ``campaign.png`` and ``simulation.json`` to
    ``out_dir``; return their paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "curves": _sim.write_curves_csv(sim.results, out / "curves.csv", every=every),
        "summary": _sim.write_summary_csv(sim.aggregates.values(), out / "summary.csv"),
        "plot": _sim.plot_campaigns(sim.aggregates.values(), out / "campaign.png", title=title),
    }
    ratios: dict[str, dict[str, list[float]]] = {}
    if "random" in sim.results:
        for name in sim.results:
            ratios[name] = {
                f"{f:g}": list(ratio_to_random(sim, name, f)) for f in _sim.DEFAULT_FRACTIONS
            }
    info = {
        "budget": sim.budget,
        "noise_rate": sim.noise_rate,
        "budget_factor": sim.budget_factor,
        "seeds": sim.seeds,
        "active_every": sim.active_every,
        "temperatures": sim.temperatures,
        "n_noisy": sim.n_noisy,
        "head_accuracy": sim.head_accuracy,
        "head_noisy_recall": sim.head_noisy_recall,
        "trainings_per_seed": sim.retrainings,
        "head": asdict(sim.head) if sim.head is not None else None,
        "seconds": sim.seconds,
        "fixed_ratio_to_random": ratios,
        **(dict(meta) if meta else {}),
    }
    from labeltrace.rundir import write_json

    paths["json"] = write_json(out / "simulation.json", info)
    return paths
