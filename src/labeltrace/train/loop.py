"""The training loop with a :class:`~labeltrace.record.Recorder` beside it, with resume.

Inputs come from a :class:`~labeltrace.train.batches.BatchSource`: one in-memory tensor (images
``(N, C, H, W)`` or cached features ``(N, D)``), or a streaming source that decodes images in
DataLoader workers (:class:`labeltrace.data.stream.StreamBatches`). Every epoch visits all
samples once in a seeded order, and the recorder sees the logits of the training forward pass
(the quantities the scores integrate). The loop knows nothing of how scores are computed.

Resume: with ``checkpoint_dir`` set, the model, optimizer, recorder and RNG state are written
atomically after every epoch; calling :func:`train_recorded` again with the same arguments
continues after the last finished epoch and recomputes nothing. The batch order and augmentation
of epoch ``e`` depend only on ``(seed, e)``, so a resumed run equals an uninterrupted one.

Data-parallel (``torch.distributed`` initialised): see :mod:`labeltrace.train.distributed`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn

from labeltrace.data import loader
from labeltrace.record import Recorder
from labeltrace.record.batch import as_index_array, to_numpy
from labeltrace.train import distributed
from labeltrace.train.batches import BatchSource, as_source
from labeltrace.train.checkpoint import Checkpoint, config_key, training_identity
from labeltrace.train.distributed import Dist
from labeltrace.train.precision import TRAINED, Precision, autocast, widened
from labeltrace.train.seeds import augment_seed, epoch_generator

__all__ = [
    "TrainConfig",
    "TrainResult",
    "augment_batch",
    "eval_batch_size",
    "lr_at",
    "make_optimizer",
    "predict_logits",
    "resolve_device",
    "run_epoch",
    "train_recorded",
    "training_labels",
]

Schedule = Literal["cosine", "step", "constant"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (SGD with momentum, the SEI paper's optimiser)."""

    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: Schedule = "cosine"
    augment: bool = False  # random crop (pad 1/8) + horizontal flip, images only
    seed: int = 0
    device: str = "auto"
    precision: Precision = "float32"  # bfloat16: forward passes under autocast (train.precision)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.schedule not in ("cosine", "step", "constant"):
            raise ValueError(f"schedule must be cosine, step or constant, got {self.schedule!r}")
        if self.precision not in TRAINED:
            raise ValueError(f"precision must be float32 or bfloat16, got {self.precision!r}")


@dataclass
class TrainResult:
    recorder: Recorder  # a DistributedRecorder when data-parallel
    model: nn.Module
    epoch_seconds: list[float] = field(default_factory=list)  # every epoch's, a resumed checkpoint's included
    resumed_from: int = 0
    final_train_accuracy: float = float("nan")


def training_labels(labels: Any, n: int, num_classes: int) -> np.ndarray:
    """The labels a training runs on, as a new ``(n,)`` int64 array: integers (whole-number floats
    accepted; booleans read as 0 / 1, as the trainer always took them) in ``[0, num_classes)``;
    anything else (fractional, NaN, strings, out of range) raises ``ValueError`` naming the samples
    (:func:`labeltrace.record.batch.as_index_array`)."""
    shape = np.shape(labels)
    if shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {shape}")
    a = to_numpy(labels, "labels")
    # the labels themselves, not ``a``: a bfloat16 tensor's range of exact integers is its own
    return as_index_array(a.astype(np.int64) if a.dtype == np.bool_ else labels, "labels", num_classes,
                          ids=np.arange(n))


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_device(device: str, flag: str = "--device") -> str:
    """``device`` when this machine can train on it (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``
    ...); else a ``ValueError`` that names ``flag`` and says why (torch's own is an AssertionError
    deep inside the first training, after any feature extraction)."""
    if device == "auto":
        return device
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{flag} {device!r} is not a torch device ({exc}); use auto, cpu, cuda, cuda:1 ...") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{flag} {device!r}: torch on this machine has no CUDA GPU to use; use cpu (or auto)")
    if d.type == "cuda" and d.index is not None and d.index >= torch.cuda.device_count():
        raise ValueError(f"{flag} {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if d.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{flag} {device!r}: Apple's MPS is not available here; use cpu (or auto)")
    if d.type == "meta":  # tensors without data: nothing can be computed there
        raise ValueError(f"{flag} {device!r}: the meta device holds no data to train on; use cpu (or auto)")
    if d.type not in ("cpu", "cuda", "mps"):  # xpu, xla, hip, ...: torch knows the name, this build may not
        try:
            torch.zeros(1, device=d)
        except Exception as exc:  # torch raises AssertionError, RuntimeError, ... for a backend it lacks
            raise ValueError(f"{flag} {device!r}: torch on this machine cannot use it ({exc}); use cpu (or auto)") \
                from None
    return device


def lr_at(config: TrainConfig, epoch: int) -> float:
    """Learning rate for a (0-based) epoch: cosine to 0, step ×0.1 at 50 % and 75 % (never at the
    first epoch, and at two epochs apart: one or two epochs train at the full rate, then ×0.1), or
    constant."""
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))
    if config.schedule == "step":
        first, second = max(1, config.epochs // 2), max(2, (3 * config.epochs) // 4)
        return config.lr * (0.1 ** ((epoch >= first) + (epoch >= second)))
    return config.lr


def augment_batch(x: torch.Tensor, gen: torch.Generator, *, hflip: bool = True) -> torch.Tensor:
    """The training loop's augmentation (``TrainConfig.augment``): a random crop after zero padding by
    1/8 of the side (at least 1 pixel) and, with ``hflip``, a random horizontal flip, per image, by
    :func:`labeltrace.data.loader.augment_batch`. Anything but a batch of images passes unchanged."""
    if x.ndim != 4:
        return x
    return loader.augment_batch(x, loader.Augment(pad=max(1, x.shape[2] // 8), hflip=hflip), generator=gen)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum and weight decay over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def run_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    inputs: torch.Tensor | BatchSource,
    labels: torch.Tensor,
    *,
    config: TrainConfig,
    epoch: int,
    device: torch.device,
    subset: torch.Tensor | None = None,
    on_batch: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
    dist: Dist = distributed.LOCAL,
) -> tuple[int, float]:
    """One epoch of SGD over ``subset`` (all samples if None) in the seeded order of ``(seed, epoch)``.

    ``on_batch(ids, logits, labels)`` sees every training batch (the recorder's hook). With a
    data-parallel ``dist`` (``model`` wrapped by :meth:`Dist.wrap`) this rank trains its shard of
    the order and ``on_batch`` sees its real rows only (never the shard's padding). Returns
    (number correct, summed loss) over the epoch (all ranks).
    """
    for g in opt.param_groups:
        g["lr"] = lr_at(config, epoch)
    gen = epoch_generator(config.seed, epoch)
    source = as_source(inputs)
    pool = torch.arange(int(source.shape[0])) if subset is None else subset
    order = pool[torch.randperm(len(pool), generator=gen)]
    mine, real = dist.shard(order)
    batch = dist.batch_size(config.batch_size)
    # one process: the crops follow the order's draws; data-parallel: each process draws its own
    # (from the same generator, every process would crop its k-th image of a batch alike)
    aug = epoch_generator(augment_seed(config.seed, dist.rank), epoch) if dist.active else gen
    model.train()
    correct, total_loss = 0, 0.0
    for b, (ids, x) in enumerate(_batches(source, mine, batch)):
        if config.augment:
            x = augment_batch(x, aug)
        x = x.to(device, non_blocking=True)
        y = labels.index_select(0, ids).to(device, non_blocking=True)
        with autocast(config.precision, device):
            logits = widened(model_logits(model(x)), config.precision)
        loss = nn.functional.cross_entropy(logits, y)
        if not bool(torch.isfinite(loss)) or not bool(torch.isfinite(logits.detach()).all()):  # (-inf logits
            _diverged(epoch, opt, f"loss {float(loss)}, logits not finite")  # beside the label's: a loss of 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        keep = real[b * batch : b * batch + len(ids)]
        if not bool(keep.all()):  # a data-parallel shard's padding: trained on, never recorded or counted
            on_dev = keep.to(logits.device)
            ids, logits, y = ids[keep], logits[on_dev], y[on_dev]
            loss = nn.functional.cross_entropy(logits, y) if len(ids) else loss.new_zeros(())
        if on_batch is not None and len(ids):
            on_batch(ids, logits, y)
        correct += int((logits.detach().argmax(1) == y).sum())
        total_loss += float(loss.detach()) * len(ids)
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):  # the epoch's last step
        _diverged(epoch, opt, "weights not finite")
    if dist.active:
        c, total_loss = dist.sum(correct, total_loss)
        correct = int(c)
    return correct, total_loss


def _batches(source: BatchSource, ids: torch.Tensor, batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``source.batches(ids, batch)``, a lone last sample joined to the batch before it: a training
    batch of one sample is one full SGD step on one image, and BatchNorm cannot train on it when the
    image is 1x1 ("Expected more than 1 value per channel"). Only a run whose sample count is 1 more
    than a multiple of ``batch`` changes (its last batch holds ``batch + 1`` samples)."""
    held: tuple[torch.Tensor, torch.Tensor] | None = None
    for ids_x in source.batches(ids, batch):
        if held is not None:
            if len(ids_x[0]) == 1 < batch:  # full chunks come first: a chunk of one is the last
                ids_x = (torch.cat([held[0], ids_x[0]]), torch.cat([held[1], ids_x[1]]))
                held = None
            else:
                yield held
        held = ids_x
    if held is not None:
        yield held


def check_finite(logits: torch.Tensor, epoch: int, opt: torch.optim.Optimizer) -> torch.Tensor:
    """``logits`` of a model :func:`run_epoch` trained, refused as a diverged training when not
    finite (in eval mode, with its running statistics, a model can overflow where its training
    batches did not)."""
    if not bool(torch.isfinite(logits).all()):
        _diverged(epoch, opt, "predictions not finite")
    return logits


def _diverged(epoch: int, opt: torch.optim.Optimizer, what: str) -> None:
    raise ValueError(f"the training diverged at epoch {epoch + 1} ({what} at learning rate "
                     f"{opt.param_groups[0]['lr']:g}): lower --lr (lr= in Python)")


#: eval batch on a CPU: a small batch's activations stay in the cache. The small CNN at 28 px
#: predicts 2.4x faster in batches of 128 than of 1024 on 2 cores, with the same logits bit for bit
#: (eval mode: every sample's output is its own); the cross-fitted recording predicts every held-out
#: fold every epoch, 14 % of the default scan's time on 3,882 images with batches of 1024.
CPU_EVAL_BATCH = 128


def eval_batch_size(device: torch.device) -> int:
    """Batch size for eval-mode passes: :data:`CPU_EVAL_BATCH` on a CPU, 1024 on an accelerator."""
    return CPU_EVAL_BATCH if device.type == "cpu" else 1024


@torch.no_grad()
def predict_logits(model: nn.Module, inputs: torch.Tensor | BatchSource, ids: torch.Tensor, *,
                   device: torch.device, batch_size: int | None = None,
                   precision: Precision = "float32") -> torch.Tensor:  # fmt: skip
    """Eval-mode logits of ``inputs[ids]`` (on the training device) in batches of
    ``batch_size`` (default :func:`eval_batch_size`), the forward passes in ``precision``; a
    data-parallel wrapper's module predicts alone (no communication)."""
    net = cast(nn.Module, model.module) if _is_ddp(model) else model
    net.eval()
    batch = eval_batch_size(device) if batch_size is None else batch_size
    with autocast(precision, device):
        out = [widened(model_logits(net(x.to(device))), precision) for _, x in as_source(inputs).batches(ids, batch)]
    return torch.cat(out) if out else torch.zeros(0)


def model_logits(out: Any) -> torch.Tensor:
    """A network's output, which the loop needs to be the ``(batch, num_classes)`` logits tensor."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"the model returned a {type(out).__name__}, not a logits tensor: its forward must return the "
            "(batch, num_classes) logits (wrap it to return e.g. outputs.logits, or outputs[0] of a tuple)"
        )
    return out


def _is_ddp(model: nn.Module) -> bool:
    from torch.nn.parallel import DistributedDataParallel

    return isinstance(model, DistributedDataParallel)


def train_recorded(
    model: nn.Module,
    inputs: torch.Tensor | BatchSource,
    labels: np.ndarray,
    *,
    num_classes: int,
    config: TrainConfig,
    checkpoint_dir: str | Path | None = None,
    recorder_mode: Literal["full", "streaming"] = "full",
    keep_probs: int = 5,
    progress: bool = True,
    desc: str = "train",
    on_epoch: Callable[[int, Recorder], None] | None = None,
    key: str = "",
    log: Callable[[str], None] | None = None,
    recorder_dir: str | Path | None = None,
    dist: Dist | None = None,
) -> TrainResult:
    """Train ``model`` on ``inputs`` with the given (noisy) ``labels`` and record its dynamics.

    Parameters
    ----------
    model:
        Any module mapping a batch of ``inputs`` to ``(B, num_classes)`` logits. Build it (and seed
        its initialisation) before calling.
    inputs:
        ``(N, ...)`` float tensor on the CPU, or a :class:`~labeltrace.train.batches.BatchSource`
        (e.g. images streamed from files); batches are moved to the training device.
    labels:
        ``(N,)`` ints in ``[0, num_classes)`` — the labels trained on (auxiliary class included).
    checkpoint_dir:
        Enables per-epoch checkpoints and resume (:class:`labeltrace.train.checkpoint.Checkpoint`).
    key:
        Extra fingerprint of what the caller trains (data, labels, network): a checkpoint written
        under another key is refused instead of resumed. A checkpoint of the same key written for
        other labels or inputs (shape, dtype; without a key also sampled rows' bytes, see
        :func:`~labeltrace.train.checkpoint.training_identity`) is refused too.
    log:
        Told when a checkpoint is resumed, and from which epoch.
    recorder_dir:
        Keep the recorder's per-epoch (T, N) arrays in files there (out of core); checkpoints
        then hold O(N) state and point to them.
    dist:
        Data-parallel context (default: :func:`labeltrace.train.distributed.current`, i.e.
        data-parallel whenever ``torch.distributed`` is initialised); the recorder is then a
        :class:`~labeltrace.integrations.ddp.DistributedRecorder` and only rank 0 writes.
    """
    d = distributed.current() if dist is None else dist
    source = as_source(inputs)
    n = int(source.shape[0])
    labels = training_labels(labels, n, num_classes)
    device = resolve_device(config.device)
    model.to(device)
    opt = make_optimizer(model, config)
    y_all = torch.from_numpy(labels)  # training_labels' own copy: labels may be a read-only array
    rec = d.recorder(n, num_classes, mode=recorder_mode, keep_probs=keep_probs, directory=recorder_dir,
                     max_epochs=config.epochs)  # fmt: skip
    start = 0
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = Checkpoint(checkpoint_dir, config_key(config=config, n=n, num_classes=num_classes, key=key),
                          writer=d.is_writer, identity=training_identity(source, labels, content=not key))  # fmt: skip
        start = ckpt.load([model], [opt], {"recorder": rec}, device=device)
        if start and log is not None:
            log(f"{desc}: resuming after epoch {start} of {config.epochs} ({ckpt.dir})")
    net = d.wrap(model, device)
    result = TrainResult(recorder=rec, model=model, resumed_from=start)
    if ckpt is not None and start:  # the finished epochs' times and accuracy, kept by the checkpoint
        result.epoch_seconds = [float(s) for s in ckpt.extra.get("epoch_seconds", [])]
        result.final_train_accuracy = float(ckpt.extra.get("accuracy", float("nan")))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, initial=start, desc=desc, unit="epoch", leave=False)
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        correct, total_loss = run_epoch(net, opt, source, y_all, config=config, epoch=epoch, device=device,
                                        on_batch=rec.update, dist=d)  # fmt: skip
        rec.end_epoch()
        result.final_train_accuracy = correct / n
        result.epoch_seconds.append(time.perf_counter() - t0)
        if ckpt is not None:
            ckpt.save(epoch + 1, [model], [opt], {"recorder": rec},
                      extra={"epoch_seconds": result.epoch_seconds, "accuracy": result.final_train_accuracy})
            d.barrier()
        if bar is not None:
            bar.set_postfix(loss=f"{total_loss / n:.3f}", acc=f"{correct / n:.3f}")
            bar.update(1)
        if on_epoch is not None:
            on_epoch(epoch, rec)
    if bar is not None:
        bar.close()
    result.recorder = rec
    return result
