"""Training with the recorder: the epoch loop, checkpoints, and the recording protocols."""

from labeltrace.train.loop import (
    TrainConfig,
    TrainResult,
    augment_batch,
    check_device,
    lr_at,
    make_optimizer,
    predict_logits,
    resolve_device,
    run_epoch,
    train_recorded,
)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "augment_batch",
    "lr_at",
    "make_optimizer",
    "predict_logits",
    "check_device",
    "resolve_device",
    "run_epoch",
    "train_recorded",
]
