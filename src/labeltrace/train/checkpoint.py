"""Per-epoch checkpoints of a recorded training: models, optimizers, recorders and the RNG.

One format for a single model (:func:`labeltrace.train.train_recorded`) and for K models trained
in lockstep (the cross-fitted protocol)::

    <dir>/state.pt              epoch, key, model and optimizer states, torch RNG, recorder files
    <dir>/<name>-<epoch>.npz    each recorder's state after that epoch (Recorder.save)

``state.pt`` is replaced atomically after the recorders are saved, so a kill at any moment leaves
the last finished epoch loadable. The ``key`` is a fingerprint of everything that determines the
training; a checkpoint written under another key is refused, never silently reused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labeltrace._io import atomic_write
from labeltrace.record import Recorder

__all__ = ["Checkpoint", "config_key"]

STATE = "state.pt"


def config_key(**parts: Any) -> str:
    """A stable JSON key of the settings that determine a training (dataclasses expanded; a
    ``device`` field is left out: the same training may resume on another device)."""

    def plain(v: Any) -> Any:
        if is_dataclass(v) and not isinstance(v, type):
            d = asdict(v)
            d.pop("device", None)
            return d
        return v

    return json.dumps({k: plain(v) for k, v in parts.items()}, sort_keys=True, default=str)


class Checkpoint:
    """The checkpoint folder of one training (one or several models in lockstep).

    ``writer=False`` (the other ranks of a data-parallel training) reads checkpoints and never
    writes them: every rank holds the same models, and rank 0 the recorders' state.
    """

    def __init__(self, directory: str | Path, key: str, *, writer: bool = True) -> None:
        self.dir = Path(directory)
        self.key = key
        self.writer = writer
        #: what the training kept beside its state (e.g. each epoch's seconds), as last saved or loaded
        self.extra: dict[str, Any] = {}

    def exists(self) -> bool:
        return (self.dir / STATE).is_file()

    def load(
        self,
        models: Sequence[nn.Module],
        optimizers: Sequence[torch.optim.Optimizer],
        recorders: Mapping[str, Recorder],
        *,
        device: torch.device,
    ) -> int:
        """Restore the last finished epoch into ``models``, ``optimizers`` and ``recorders`` (in
        place), the torch RNG (CPU, and CUDA's when it was saved and CUDA is here) and
        :attr:`extra`; return that epoch (0 when there is no checkpoint)."""
        p = self.dir / STATE
        if not p.is_file():
            return 0
        state = torch.load(p, map_location=device, weights_only=True)
        if state.get("key") != self.key:
            raise ValueError(
                f"checkpoint {p} was written by a different training configuration; "
                "use another output directory or delete the checkpoint to start over"
            )
        missing = sorted(set(recorders) - set(state["recorders"]))
        if missing:
            raise ValueError(f"checkpoint {p} holds no recording {missing}; use another directory")
        if len(state["models"]) != len(models):
            raise ValueError(f"checkpoint {p} holds {len(state['models'])} models, expected {len(models)}")
        for m, o, ms, os_ in zip(models, optimizers, state["models"], state["optimizers"], strict=True):
            m.load_state_dict(ms)
            o.load_state_dict(os_)
        for name, rec in recorders.items():  # a file-backed recorder adopts its (T, N) files again
            with np.load(self.dir / state["recorders"][name], allow_pickle=False) as z:
                rec.load_state_dict({k: z[k] for k in z.files}, base=self.dir)
        torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():  # e.g. a fine-tuned network's dropout on the GPU
            # this process's device (data-parallel ranks start from one seed, so rank 0's state is theirs)
            torch.cuda.set_rng_state(state["cuda_rng"].cpu())
        self.extra = dict(state.get("extra") or {})
        return int(state["epoch"])

    def save(
        self,
        epoch: int,
        models: Sequence[nn.Module],
        optimizers: Sequence[torch.optim.Optimizer],
        recorders: Mapping[str, Recorder],
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the state after ``epoch`` finished epochs (recorders first, then ``state.pt``),
        with ``extra`` (plain numbers and lists) beside it; nothing when not the writer."""
        if extra is not None:
            self.extra = dict(extra)
        if not self.writer:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        files = {name: f"{name}-{epoch:05d}.npz" for name in recorders}
        for name, rec in recorders.items():
            rec.save(self.dir / files[name])
        state = {
            "epoch": epoch,
            "key": self.key,
            "recorders": files,
            "models": [m.state_dict() for m in models],
            "optimizers": [o.state_dict() for o in optimizers],
            "torch_rng": torch.get_rng_state(),
            "extra": self.extra,
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda_rng"] = torch.cuda.get_rng_state()  # the current device's
        atomic_write(self.dir / STATE, lambda fh: torch.save(state, fh))
        keep = set(files.values())
        for old in self.dir.glob("*-[0-9][0-9][0-9][0-9][0-9].npz"):
            if old.name not in keep:
                old.unlink(missing_ok=True)
