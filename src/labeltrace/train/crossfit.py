"""Cross-fitted (out-of-fold) training dynamics.

K models are trained in lockstep, model k on every fold but k. After each epoch, every model
predicts its held-out fold in eval mode and the :class:`~labeltrace.record.Recorder` records
those logits, so every sample is recorded once per epoch by a model that never trained on it.
The trajectory-averaged out-of-fold posterior is an ensemble over epochs of honest
predictions — what confident learning needs — and the recorded quantities (signed entropy,
margin, p(given)) are the held-out versions of the usual dynamics.

Cost: K trainings, each on (K−1)/K of the data (cleanlab's recipe also fits K models).
Resume: with ``checkpoint_dir`` every epoch is checkpointed (all K models, optimizers, the
recorder); a restart continues after the last finished epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from labeltrace._io import atomic_write
from labeltrace.record import Recorder
from labeltrace.train.loop import (
    TrainConfig,
    _config_key,
    make_optimizer,
    predict_logits,
    resolve_device,
    run_epoch,
)

__all__ = ["crossfit_recorded", "stratified_folds"]


def stratified_folds(labels: np.ndarray, n_folds: int, *, seed: int) -> np.ndarray:
    """(N,) fold index per sample: each class spread evenly over the folds, seeded."""
    labels = np.asarray(labels)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if len(labels) < n_folds:
        raise ValueError(f"{len(labels)} samples cannot be split into {n_folds} folds")
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(labels)), labels))  # by class, random within class
    folds = np.empty(len(labels), dtype=np.int64)
    folds[order] = np.arange(len(labels)) % n_folds
    return folds


def crossfit_recorded(
    build_model: Callable[[int], nn.Module],
    inputs: torch.Tensor,
    labels: np.ndarray,
    *,
    num_classes: int,
    config: TrainConfig,
    n_folds: int = 5,
    checkpoint_dir: str | Path | None = None,
    keep_probs: int = 5,
    progress: bool = True,
    desc: str = "cross-fit",
    in_sample: Recorder | None = None,
) -> tuple[Recorder, np.ndarray]:
    """Train ``n_folds`` models in lockstep and record every sample's held-out predictions.

    Parameters
    ----------
    build_model:
        ``build_model(fold) -> nn.Module`` (seed its initialisation inside if you want it
        reproducible per fold).
    inputs, labels, num_classes, config:
        As in :func:`labeltrace.train.train_recorded`.

    in_sample:
        Optional second recorder (``Recorder(N, num_classes)``) that also records every training
        batch of every fold model: each sample's *in-sample* logits from the ``n_folds - 1``
        models that train on it (averaged within the epoch), at no extra training cost.
        Checkpointed and resumed with the rest.

    Returns
    -------
    (recorder, folds)
        The recorder of out-of-fold logits (one update per sample per epoch) and the fold of
        each sample.
    """
    labels = np.asarray(labels)
    n = int(inputs.shape[0])
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise ValueError(f"labels out of range [0, {num_classes}) for sample ids {bad[:10].tolist()}")
    device = resolve_device(config.device)
    folds = stratified_folds(labels, n_folds, seed=config.seed)
    models = [build_model(k).to(device) for k in range(n_folds)]
    opts = [make_optimizer(m, config) for m in models]
    train_ids = [torch.as_tensor(np.flatnonzero(folds != k)) for k in range(n_folds)]
    held_ids = [torch.as_tensor(np.flatnonzero(folds == k)) for k in range(n_folds)]
    y_all = torch.tensor(labels, dtype=torch.long)  # a copy: labels may be a read-only array
    rec = Recorder(n, num_classes, keep_probs=keep_probs)
    key = _config_key(config, n, num_classes) + f"|crossfit:{n_folds}"
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    start = 0
    if ckpt is not None and (ckpt / "state.pt").exists():
        state = torch.load(ckpt / "state.pt", map_location=device, weights_only=True)
        if state["key"] != key:
            raise ValueError(f"checkpoint {ckpt} was written by a different configuration; use another directory")
        for m, o, ms, os_ in zip(models, opts, state["models"], state["optimizers"], strict=True):
            m.load_state_dict(ms)
            o.load_state_dict(os_)
        torch.set_rng_state(state["torch_rng"].cpu())
        rec = Recorder.load(ckpt / state["recorder"])
        if in_sample is not None:
            if "in_sample" not in state:
                raise ValueError(f"checkpoint {ckpt} has no in-sample recording; use another directory")
            in_sample.load_state_dict(Recorder.load(ckpt / state["in_sample"]).state_dict())
        start = int(state["epoch"])
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, initial=start, desc=desc, unit="epoch", leave=False)
    for epoch in range(start, config.epochs):
        for k in range(n_folds):
            cfg_k = replace(config, seed=config.seed * 1009 + k)
            run_epoch(models[k], opts[k], inputs, y_all, config=cfg_k, epoch=epoch, device=device,
                      subset=train_ids[k], on_batch=None if in_sample is None else in_sample.update)  # fmt: skip
            logits = predict_logits(models[k], inputs, held_ids[k], device=device)
            rec.update(held_ids[k], logits, y_all.index_select(0, held_ids[k]))
        rec.end_epoch()
        if in_sample is not None:
            in_sample.end_epoch()
        if ckpt is not None:
            name = f"recorder-{epoch + 1:05d}.npz"
            rec.save(ckpt / name)
            state = {"epoch": epoch + 1, "key": key, "recorder": name, "torch_rng": torch.get_rng_state(),
                     "models": [m.state_dict() for m in models], "optimizers": [o.state_dict() for o in opts]}  # fmt: skip
            keep = {name}
            if in_sample is not None:
                state["in_sample"] = f"in-sample-{epoch + 1:05d}.npz"
                in_sample.save(ckpt / state["in_sample"])
                keep.add(state["in_sample"])
            atomic_write(ckpt / "state.pt", lambda fh: torch.save(state, fh))
            for pattern in ("recorder-*.npz", "in-sample-*.npz"):
                for old in ckpt.glob(pattern):
                    if old.name not in keep:
                        old.unlink(missing_ok=True)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return rec, folds
