"""The model in the loop: a head trained on frozen features, whose posterior (and SEI) the
model-based priorities read.

:func:`train_head` trains a fresh head on standardised features (:func:`standardize`) and the
current labels with :func:`labeltrace.train.train_recorded`, and reads its posterior (mean
softmax over the whole trajectory, or over the last epochs) and its SEI from the same recorded
run. With ``HeadConfig(folds=F)`` (F >= 2) it trains F heads in lockstep instead, each on every
fold but one (:func:`labeltrace.train.protocol.crossfit_recorded`, ``labeltrace scan``'s
cross-fitted protocol), and reads everything from the *held-out* recording: every sample's
posterior comes from the head that never trained on its label, so it does not repeat a wrong
label the way an in-sample posterior does. :class:`HeadRetrainer` is the campaign's
``update_posterior`` hook: it retrains on the current labels, caching by label vector.

Features may come as several *views* of the same images (a list of ``(N, D_v)`` matrices, e.g.
one backbone at several input resolutions): the configured head is trained on each view and
the posteriors (and SEIs) are averaged with equal weights.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np

from labeltrace._checks import describe_ids

if TYPE_CHECKING:  # torch is imported where a head trains: the review server starts without it
    import torch

__all__ = ["FeatureViews", "HeadConfig", "HeadOutput", "HeadRetrainer", "standardize", "train_head"]

#: One ``(N, D)`` feature matrix, or a list of views of the same N images (widths may differ).
FeatureViews: TypeAlias = "np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor]"


_BLOCK = 1 << 22  # float64 elements of one block of columns (32 MiB)


def standardize(features: np.ndarray) -> np.ndarray:
    """(N, D) float32 features with every column shifted to mean 0 and scaled to std 1.

    Constant columns (std below 1e-9 of the column's largest magnitude) are only centred.
    Non-finite values raise ``ValueError`` naming the ids.
    """
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (N, D) array, got shape {x.shape}")
    step = max(1, _BLOCK // x.shape[0])  # a block of columns in float64 at a time, not all of them
    finite = np.ones(x.shape[0], dtype=bool)
    for a in range(0, x.shape[1], step):
        finite &= np.isfinite(np.asarray(x[:, a : a + step], dtype=np.float64)).all(axis=1)
    bad = np.flatnonzero(~finite)
    if bad.size:
        raise ValueError(f"features have NaN or infinite values at {describe_ids(bad)}")
    out = np.empty(x.shape, dtype=np.float32)
    for a in range(0, x.shape[1], step):
        b = np.asarray(x[:, a : a + step], dtype=np.float64)
        sd = b.std(axis=0)
        const = sd <= 1e-9 * np.abs(b).max(axis=0)  # rounding noise of a constant column
        out[:, a : a + step] = (b - b.mean(axis=0)) / np.where(const, 1.0, sd)
    return out


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
    folds : 1 — one head trained on every sample (in-sample posterior); F >= 2 — F cross-fitted
        heads, every sample's posterior and SEI from the head that held it out.
    ensemble : trainings averaged (posterior and SEI), each from its own seed
        (``seed + 7919 j``); 1 — a single training.
    prune : in-sample heads only: after the first training, train a second head (seed
        ``seed + 55``) without the samples whose first-run posterior contradicts their label,
        and read the posterior from it — in-sample for the samples it kept, the trajectory mean
        of its held-out softmax (evaluation mode, after every epoch) for the ones it left out.
        Such a head is not pulled towards the labels it is asked about. SEI and fit stay the
        first run's. Twice the cost of one training.
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
    folds: int = 1
    ensemble: int = 1
    prune: bool = False

    def __post_init__(self) -> None:
        if self.model not in ("mlp", "linear"):
            raise ValueError(f"model must be 'mlp' or 'linear', got {self.model!r}")
        if self.posterior not in ("mean", "last"):
            raise ValueError(f"posterior must be 'mean' or 'last', got {self.posterior!r}")
        for name in ("hidden", "epochs", "batch_size", "last", "folds", "ensemble"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.prune and self.folds > 1:
            raise ValueError("prune retrains an in-sample head: it needs folds = 1")


@dataclass(frozen=True, eq=False)
class HeadOutput:
    """What one training of the head gives the campaign.

    Attributes
    ----------
    posterior : (N, K) float64 rows summing to 1 (see :attr:`HeadConfig.posterior`).
    sei : (N,) Signed Entropy Integral of the same run (lower = more suspect).
    train_accuracy : fraction of the training labels the model fits in the last epoch (held-out
        labels for a cross-fitted head; the mean over an ensemble's heads and the views).
    seconds : wall time of the training (every head of an ensemble, every view).
    """

    posterior: np.ndarray
    sei: np.ndarray
    train_accuracy: float
    seconds: float


def _as_tensor(features: np.ndarray | torch.Tensor) -> torch.Tensor:
    import torch

    x = torch.as_tensor(features, dtype=torch.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (N, D) array, got shape {tuple(x.shape)}")
    return x.contiguous()


def _as_views(features: FeatureViews) -> list[torch.Tensor]:
    """Every view as a float32 tensor; all must have the same number of rows."""
    import torch

    if isinstance(features, (np.ndarray, torch.Tensor)):
        return [_as_tensor(features)]
    views = [_as_tensor(f) for f in features]
    if not views:
        raise ValueError("features: no views given")
    rows = [int(v.shape[0]) for v in views]
    if len(set(rows)) > 1:
        raise ValueError(f"feature views must describe the same images: their row counts differ {rows}")
    return views


def train_head(
    features: FeatureViews,
    labels: np.ndarray,
    *,
    num_classes: int,
    config: HeadConfig = HeadConfig(),
) -> HeadOutput:
    """Train a fresh head on ``features`` with ``labels``, recording its dynamics.

    ``features`` should already be standardised (:func:`standardize`). The result depends only
    on the inputs and ``config.seed``: the initialisation runs in a forked torch RNG seeded with
    it, and :func:`labeltrace.train.train_recorded` orders batches by ``(seed, epoch)``.
    With ``config.ensemble = E > 1`` it trains E heads (seeds ``seed + 7919 j``) and returns the
    mean of their posteriors, SEIs and fits. With several feature views it does so on each view
    (the same seeds) and averages over views and heads alike.
    """
    views = _as_views(features)
    x = views[0]
    lab = np.asarray(labels)
    if lab.shape != (x.shape[0],) or (lab.size and not np.issubdtype(lab.dtype, np.integer)):
        raise ValueError(
            f"labels must be an integer ({x.shape[0]},) array, got {lab.dtype} {lab.shape}"
        )
    if config.folds > 1 and x.shape[0] < 2 * config.folds:
        raise ValueError(f"{x.shape[0]} samples cannot be cross-fitted in {config.folds} folds")
    t0 = time.perf_counter()
    outs = [_train_one(v, lab, num_classes, replace(config, seed=config.seed + 7919 * j))
            for v in views for j in range(config.ensemble)]  # fmt: skip
    post = np.mean([o[0] for o in outs], axis=0)
    return HeadOutput(
        posterior=post / post.sum(axis=1, keepdims=True),
        sei=np.mean([o[1] for o in outs], axis=0),
        train_accuracy=float(np.mean([o[2] for o in outs])),
        seconds=time.perf_counter() - t0,
    )


def _train_one(x: torch.Tensor, lab: np.ndarray, num_classes: int,
               config: HeadConfig) -> tuple[np.ndarray, np.ndarray, float]:  # fmt: skip
    """One training of :func:`train_head`: its (posterior, SEI, fit)."""
    import torch

    from labeltrace.models import build_model
    from labeltrace.score import trajectory as scores
    from labeltrace.train import TrainConfig, train_recorded
    from labeltrace.train.seeds import seed_torch

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
    keep = _kept_epochs(config)
    with torch.random.fork_rng(devices=[]):
        if config.folds > 1:
            from labeltrace.train.protocol import crossfit_recorded

            def build(fold: int) -> torch.nn.Module:
                seed_torch(config.seed + 101 * fold)
                return build_model(config.model, num_classes=num_classes, **opts)

            held, _ = crossfit_recorded(build, x, lab.astype(np.int64), num_classes=num_classes,
                                        config=tcfg, n_folds=config.folds, keep_probs=keep,
                                        progress=False)  # fmt: skip
            dyn = held.dynamics()
            fit = float(np.nanmean(dyn.at("correct", -1)))
        else:
            seed_torch(config.seed)
            model = build_model(config.model, num_classes=num_classes, **opts)
            res = train_recorded(model, x, lab.astype(np.int64), num_classes=num_classes,
                                 config=tcfg, recorder_mode="streaming", keep_probs=keep,
                                 progress=False)  # fmt: skip
            dyn = res.recorder.dynamics()
            fit = float(res.final_train_accuracy)
    post = _posterior(dyn, config)
    sei = np.asarray(scores.compute("sei", dyn), dtype=np.float64)
    if config.prune:
        out = post.argmax(axis=1) != lab
        if out.any() and not out.all():
            post = _retrain_without(x, lab, out, num_classes, opts, tcfg, config)
    post /= post.sum(axis=1, keepdims=True)  # float32 softmax sums: renormalise exactly
    return post, sei, fit


def _kept_epochs(config: HeadConfig) -> int:
    """Per-epoch softmax a run keeps: the last ``config.last`` epochs (``"last"``), else 1."""
    return min(config.last, config.epochs) if config.posterior == "last" else 1


def _posterior(dyn: Any, config: HeadConfig) -> np.ndarray:
    """float64 ``(N, K)`` posterior of a recorded run, read as ``config.posterior`` says."""
    post = dyn.posterior(last=_kept_epochs(config)) if config.posterior == "last" else dyn.mean_posterior()
    return np.asarray(post, dtype=np.float64)


def _retrain_without(x: torch.Tensor, lab: np.ndarray, out: np.ndarray, num_classes: int,
                     opts: dict[str, Any], tcfg: Any, config: HeadConfig) -> np.ndarray:  # fmt: skip
    """(N, K) posterior of a head trained without the ``out`` samples (:attr:`HeadConfig.prune`).

    Kept samples: the recorded in-sample posterior of that training, read as ``config.posterior``
    says. Left-out samples: the mean over the same epochs of its softmax in evaluation mode,
    taken after each epoch.
    """
    import torch

    from labeltrace.models import build_model
    from labeltrace.train import train_recorded
    from labeltrace.train.loop import predict_logits
    from labeltrace.train.seeds import seed_torch

    kept, left = np.flatnonzero(~out), torch.as_tensor(np.flatnonzero(out))
    seed = config.seed + 55
    keep = _kept_epochs(config)
    first = config.epochs - keep if config.posterior == "last" else 0
    held = np.zeros((len(left), num_classes))
    with torch.random.fork_rng(devices=[]):
        seed_torch(seed)
        model = build_model(config.model, num_classes=num_classes, **opts)

        def held_out(epoch: int, _rec: Any) -> None:  # the next epoch puts the model back in training mode
            if epoch >= first:
                logits = predict_logits(model, x, left, device=next(model.parameters()).device)
                held[:] += torch.softmax(logits, 1).cpu().numpy()

        res = train_recorded(model, x[torch.as_tensor(kept)], lab[kept].astype(np.int64),
                             num_classes=num_classes, config=replace(tcfg, seed=seed),
                             recorder_mode="streaming", keep_probs=keep, progress=False,
                             on_epoch=held_out)  # fmt: skip
    post = np.empty((lab.size, num_classes))
    post[kept] = _posterior(res.recorder.dynamics(), config)
    post[left.numpy()] = held / (config.epochs - first)
    return post


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
        features: FeatureViews,
        *,
        num_classes: int,
        config: HeadConfig = HeadConfig(),
        cache: bool = True,
    ) -> None:
        self.features = _as_views(features)
        self.num_classes = int(num_classes)
        self.config = config
        self.cache = bool(cache)
        self.calls = 0
        self.trainings = 0
        self.seconds = 0.0
        self.history: list[np.ndarray] = []
        self._memo: dict[bytes, HeadOutput] = {}

    def fit(self, labels: np.ndarray) -> HeadOutput:
        """The :class:`HeadOutput` for ``labels`` (trained, or from the cache). A label -1 (a
        sample excluded as of no class) leaves the sample out of the training: its row of the
        posterior is uniform, its SEI the others' mean (a settled sample: no ranking reads them)."""
        lab = np.ascontiguousarray(labels, dtype=np.int64)
        key = hashlib.sha1(lab.tobytes()).digest()
        if self.cache and key in self._memo:
            return self._memo[key]
        out = (train_head(self.features, lab, num_classes=self.num_classes, config=self.config)
               if not (lab == -1).any() else self._masked(lab))  # fmt: skip
        self.trainings += 1
        self.seconds += out.seconds
        if self.cache:
            self._memo[key] = out
        return out

    def _masked(self, lab: np.ndarray) -> HeadOutput:
        """:func:`train_head` on the samples labelled, spread back over all (see :meth:`fit`)."""
        keep = np.flatnonzero(lab != -1)
        if keep.size < 2:
            raise ValueError("every sample but one is excluded: no head to train")
        import torch

        rows = torch.as_tensor(keep)
        part = train_head([v[rows] for v in self.features], lab[keep], num_classes=self.num_classes,
                          config=self.config)  # fmt: skip
        post = np.full((lab.size, self.num_classes), 1.0 / self.num_classes)
        post[keep] = part.posterior
        sei = np.full(lab.size, float(np.mean(part.sei)))
        sei[keep] = part.sei
        return replace(part, posterior=post, sei=sei)

    def __call__(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        self.history.append(np.array(labels, dtype=np.int64, copy=True))
        out = self.fit(labels)
        return out.posterior.copy(), out.sei.copy()
