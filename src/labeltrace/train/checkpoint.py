"""Per-epoch checkpoints of a recorded training: models, optimizers, recorders and the RNG.

One format for a single model (:func:`labeltrace.train.train_recorded`) and for K models trained
in lockstep (the cross-fitted protocol)::

    <dir>/state.pt              epoch, key, model and optimizer states, torch RNG, recorder files
    <dir>/<name>-<epoch>.npz    each recorder's state after that epoch (Recorder.save)

``state.pt`` is replaced atomically after the recorders are saved, so a kill at any moment leaves
the last finished epoch loadable. The ``key`` is a fingerprint of everything that determines the
training; a checkpoint written under another key is refused, never silently reused. Beside it the
checkpoint keeps what was trained on (:func:`training_identity`: the labels and folds, every value,
and the inputs' shape and dtype), and a call with the same key but other labels, folds or inputs
is refused too, naming what differs (a checkpoint written before this was kept is checked against
the labels its recorders hold).
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

from labeltrace._checks import describe_ids
from labeltrace._io import atomic_write, digest, reading
from labeltrace.record import Recorder
from labeltrace.train.batches import BatchSource, TensorBatches

__all__ = ["Checkpoint", "config_key", "training_identity"]

STATE = "state.pt"
#: rows of an in-memory input tensor whose bytes a checkpoint's identity digests (spread evenly)
IDENTITY_ROWS = 32


def config_key(**parts: Any) -> str:
    """A stable JSON key of the settings that determine a training (dataclasses expanded; a
    ``device`` field is left out: the same training may resume on another device; a ``precision``
    of float32 too, so that keys written before the field existed still match)."""

    def plain(v: Any) -> Any:
        if is_dataclass(v) and not isinstance(v, type):
            d = asdict(v)
            d.pop("device", None)
            if d.get("precision") == "float32":  # the field came later: float32 trainings keep their keys
                d.pop("precision")
            return d
        return v

    return json.dumps({k: plain(v) for k, v in parts.items()}, sort_keys=True, default=str)


def training_identity(inputs: torch.Tensor | BatchSource, labels: np.ndarray, *, folds: np.ndarray | None = None,
                      content: bool = True) -> dict[str, Any]:  # fmt: skip
    """What a training's checkpoint is resumed for besides its key: the ``(N,)`` labels and folds
    (kept whole, as tensors, so that a mismatch names its samples) and the inputs' kind, shape and
    dtype; with ``content``, also a digest of the bytes of :data:`IDENTITY_ROWS` rows spread over an
    in-memory tensor (a streamed source is read for no identity). Callers whose ``key`` already
    fingerprints their data pass ``content=False``: features recomputed on an accelerator may
    differ in their last bits, and the key stands for them."""
    x = inputs.tensor if isinstance(inputs, TensorBatches) else inputs
    desc: dict[str, Any] = {"kind": type(x).__name__, "shape": [int(s) for s in x.shape]}
    if isinstance(x, torch.Tensor):
        desc["dtype"] = str(x.dtype)
        n = int(x.shape[0])
        if content and n:
            rows = np.unique(np.linspace(0, n - 1, min(n, IDENTITY_ROWS)).round().astype(np.int64))
            sample = x.detach().index_select(0, torch.from_numpy(rows).to(x.device)).cpu().contiguous()
            desc["rows"] = digest(sample.reshape(-1).view(torch.uint8).numpy())
    ident: dict[str, Any] = {"labels": torch.from_numpy(np.array(labels, dtype=np.int64)), "inputs": desc}
    if folds is not None:
        ident["folds"] = torch.from_numpy(np.array(folds, dtype=np.int64))
    return ident


def _identity_problems(saved: Mapping[str, Any], mine: Mapping[str, Any]) -> list[str]:
    """What differs between a checkpoint's identity and this call's, in words."""
    out = []
    for name in ("labels", "folds"):
        a, b = saved.get(name), mine.get(name)
        if a is None or b is None:
            if (a is None) != (b is None):
                out.append(f"{name} {'not ' if a is None else ''}kept by the checkpoint")
            continue
        a, b = a.cpu().numpy(), b.cpu().numpy()
        if a.shape != b.shape:
            out.append(f"{name} of {a.size} samples in the checkpoint, {b.size} here")
        elif (a != b).any():
            out.append(f"other {name} for {describe_ids(a != b)}")
    if saved.get("inputs") != mine.get("inputs"):
        out.append(f"other inputs ({_inputs_text(saved.get('inputs'))} in the checkpoint, "
                   f"{_inputs_text(mine.get('inputs'))} here)")  # fmt: skip
    return out


def _inputs_text(d: Any) -> str:
    if not isinstance(d, Mapping):
        return "not described"
    rows = f", sampled rows {d['rows']}" if "rows" in d else ""
    return f"{d.get('kind')} of shape {tuple(d.get('shape', ()))}{' ' + d['dtype'] if 'dtype' in d else ''}{rows}"


class Checkpoint:
    """The checkpoint folder of one training (one or several models in lockstep).

    ``writer=False`` (the other ranks of a data-parallel training) reads checkpoints and never
    writes them: every rank holds the same models, and rank 0 the recorders' state. ``identity``
    (:func:`training_identity`) is kept beside the state and checked when loading.
    """

    def __init__(self, directory: str | Path, key: str, *, writer: bool = True,
                 identity: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        self.dir = Path(directory)
        self.key = key
        self.writer = writer
        self.identity = None if identity is None else dict(identity)
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
        start_over = f"; delete {self.dir} to start the training over"
        with reading(p, start_over):
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
        rec_states = {}
        for name in recorders:
            with reading(self.dir / state["recorders"][name], start_over), \
                    np.load(self.dir / state["recorders"][name], allow_pickle=False) as z:
                rec_states[name] = {k: z[k] for k in z.files}
        self._check_identity(p, state, rec_states)
        for m, o, ms, os_ in zip(models, optimizers, state["models"], state["optimizers"], strict=True):
            m.load_state_dict(ms)
            o.load_state_dict(os_)
        for name, rec in recorders.items():  # a file-backed recorder adopts its (T, N) files again
            rec.load_state_dict(rec_states[name], base=self.dir)
        torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():  # e.g. a fine-tuned network's dropout on the GPU
            # this process's device (data-parallel ranks start from one seed, so rank 0's state is theirs)
            torch.cuda.set_rng_state(state["cuda_rng"].cpu())
        self.extra = dict(state.get("extra") or {})
        return int(state["epoch"])

    def _check_identity(self, p: Path, state: Mapping[str, Any], rec_states: Mapping[str, Mapping[str, Any]]) -> None:
        """Refuse a checkpoint of the same key written for other labels, folds or inputs."""
        if self.identity is None:
            return
        saved = state.get("identity")
        if saved is not None:
            problems = _identity_problems(saved, self.identity)
        else:  # written before identities were kept: the labels its recorders hold (-1: never seen)
            mine = self.identity["labels"].numpy()
            problems = []
            for name, st in rec_states.items():
                theirs = np.asarray(st.get("labels", mine), dtype=np.int64)
                if theirs.shape == mine.shape and ((theirs >= 0) & (theirs != mine)).any():
                    problems.append(f"other labels for {describe_ids((theirs >= 0) & (theirs != mine))} "
                                    f"(as its recorder {name!r} holds them)")  # fmt: skip
                    break
        if problems:
            raise ValueError(
                f"checkpoint {p} was written for another training than this call's (same settings and key, but "
                f"{'; '.join(problems)}); resuming it would mix the two: use another checkpoint directory "
                f"or delete {self.dir} to start over"
            )

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
            **({"identity": self.identity} if self.identity is not None else {}),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda_rng"] = torch.cuda.get_rng_state()  # the current device's
        try:
            atomic_write(self.dir / STATE, lambda fh: torch.save(state, fh))
        except RuntimeError as exc:  # torch's words for a write that fell short, e.g. "unexpected pos"
            if not any(w in str(exc) for w in ("unexpected pos", "PytorchStreamWriter", "file write failed")):
                raise
            raise OSError(f"could not write the checkpoint {self.dir / STATE} ({exc}); is the disk full?") from exc
        keep = set(files.values())
        for old in self.dir.glob("*-[0-9][0-9][0-9][0-9][0-9].npz"):
            if old.name not in keep:
                old.unlink(missing_ok=True)
