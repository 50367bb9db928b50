"""The arithmetic a training runs its forward passes in: float32, or bfloat16 under autocast.

Under ``bfloat16`` the convolutions and matrix products of the forward pass (and so of its
gradients) run in bfloat16 through :func:`torch.autocast`; weights, optimiser state, the loss and
every recorded logit stay float32 (logits are widened before the loss and the recorder see them).
On a CPU with AMX tiles (Intel Sapphire Rapids and later) one training step of the small CNN is
1.7 × faster (``scripts/cnn_step_time.py``), on one with AVX512-BF16 (an AMD EPYC) 1.4 × faster;
on a CPU without native bfloat16 arithmetic it is emulated and slower, which is why ``auto`` takes
it only where :func:`native_bfloat16` holds. The
trainings differ from float32 ones beyond their last bits, and the rankings with them: F1 and AUROC
tie on the dev cells (``benchmarks/results/dev-cnn-precision.md``) and on the CNN's test cells
(``test-cnn-precision.md``; docs/scale.md). ``labeltrace scan``'s default, ``auto``, takes bfloat16 for
the small CNN's cross-fitted detectors alone (:func:`labeltrace.scan_settings.training_precision`).
"""

from __future__ import annotations

import contextlib
from typing import Literal, get_args

import torch

__all__ = ["CPU_BFLOAT16", "PRECISIONS", "TRAINED", "Precision", "autocast", "native_bfloat16", "resolve_precision", "widened"]

Precision = Literal["float32", "bfloat16"]
#: what a training runs in (a :class:`~labeltrace.train.TrainConfig`, a benchmark's model, a recorded scan)
TRAINED: tuple[str, ...] = get_args(Precision)
#: what a scan accepts; ``auto`` is resolved by :func:`resolve_precision` before training
PRECISIONS: tuple[str, ...] = ("auto", *TRAINED)


#: the CPU instruction sets that run bfloat16 products natively (torch.cpu's probes): Intel's AMX
#: tiles (Sapphire Rapids and later) and AVX512-BF16 (Intel Cooper Lake, AMD Zen 4 and later)
CPU_BFLOAT16 = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 products natively: a CPU with AMX tiles or AVX512-BF16
    (oneDNN's bfloat16 kernels; :data:`CPU_BFLOAT16`), or a CUDA device that supports bfloat16
    (Ampere and later)."""
    if device.type == "cpu":
        probes = (getattr(torch.cpu, name, None) for name in CPU_BFLOAT16)
        return any(bool(probe()) for probe in probes if callable(probe))
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return False


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """``precision`` as a training runs it: ``auto`` is ``bfloat16`` where :func:`native_bfloat16`
    holds on ``device`` and ``float32`` elsewhere; the others stand as given."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return "bfloat16" if precision == "bfloat16" else "float32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """The context a forward pass runs in: :func:`torch.autocast` to bfloat16 on ``device`` for
    ``bfloat16``, nothing for ``float32``."""
    if precision == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "float32":
        raise ValueError(f"a forward pass runs in float32 or bfloat16, got {precision!r} (resolve 'auto' first)")
    return contextlib.nullcontext()


def widened(logits: torch.Tensor, precision: str) -> torch.Tensor:
    """``logits`` of a forward pass run in ``precision``: under ``bfloat16`` widened to float32 (the
    loss and the recorder read float32); under ``float32`` as the model returned them."""
    return logits.float() if precision == "bfloat16" and logits.dtype == torch.bfloat16 else logits
