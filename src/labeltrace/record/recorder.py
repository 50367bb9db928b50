"""Record training dynamics: what the model believes about every sample at every epoch.

The :class:`Recorder` plugs into any PyTorch loop — pass the sample ids, the logits the model
already computes and the labels it trains on; nothing else in the loop changes::

    rec = Recorder(num_samples=N, num_classes=K)
    for epoch in range(T):
        for ids, x, y in loader:
            logits = model(x)
            rec.update(ids, logits, y)
        rec.end_epoch()
    dyn = rec.dynamics()

Per sample and epoch it keeps, from the softmax of the logits (computed stably via log-softmax):

* ``entropy``        Shannon entropy H(p) in nats;
* ``signed_entropy`` +H(p) if argmax p == given label, else −H(p);
* ``correct``        1.0 if argmax p == given label else 0.0;
* ``margin``         given-label logit minus the largest other logit (AUM's margin);
* ``p_given``        softmax probability of the given label;
* ``loss``           cross-entropy −log p_given.

A sample seen more than once in an epoch gets the mean of its updates (so ``correct`` can be
fractional); a sample not seen in an epoch is *missing* for that epoch and excluded from every
mean (never counted as zero). The mean softmax of the last ``keep_probs`` epochs is kept too, for
suggested labels.

Two storage modes: ``"full"`` keeps every per-epoch value (T × N float32 per field), ``"streaming"``
keeps only O(N) running sums and gives the same per-sample means, std, forgetting counts and last
epoch values — use it when N × T does not fit in memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from labeltrace._checks import describe_ids, id_list
from labeltrace._io import atomic_write

__all__ = ["FIELDS", "Dynamics", "Recorder"]

FIELDS: tuple[str, ...] = ("entropy", "signed_entropy", "correct", "margin", "p_given", "loss")
_NF = len(FIELDS)
_FORMAT = "labeltrace.recorder/1"
Mode = Literal["full", "streaming"]


def _as_index_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if np.issubdtype(a.dtype, np.floating) and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise ValueError(f"{name} must be integers, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def _batch_quantities(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row recorded quantities (B, 6) and softmax (B, K), float32, on the logits' device."""
    z = logits.detach().float()
    logp = torch.log_softmax(z, dim=1)
    p = logp.exp()
    # 0 * log 0 := 0 (log_softmax is finite for finite logits, so p*logp is already 0 there).
    entropy = (-(p * logp).sum(dim=1)).clamp_min(0.0)
    lab = labels.view(-1, 1)
    logp_given = logp.gather(1, lab).squeeze(1)
    z_given = z.gather(1, lab).squeeze(1)
    z_other = z.scatter(1, lab, float("-inf"))
    margin = z_given - z_other.max(dim=1).values
    # argmax == label, ties broken as torch.argmax does (first maximum).
    correct = (z.argmax(dim=1) == labels).float()
    signed = torch.where(correct > 0, entropy, -entropy)
    q = torch.stack([entropy, signed, correct, margin, logp_given.exp(), -logp_given], dim=1)
    return q, p


class Dynamics:
    """Per-sample training dynamics produced by a :class:`Recorder` (read-only).

    Full mode stores per-epoch arrays of shape ``(T, N)`` (epoch-major); streaming mode stores
    only running sums. Every reduction excludes the epochs in which a sample was not seen.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        labels: np.ndarray,
        values: np.ndarray | None,
        seen: np.ndarray | None,
        sums: np.ndarray,
        sumsq: np.ndarray,
        n_seen: np.ndarray,
        last: np.ndarray,
        last_seen: np.ndarray,
        forget: np.ndarray,
        ever_correct: np.ndarray,
        probs: np.ndarray,
        probs_seen: np.ndarray,
        probs_sum: np.ndarray,
        num_epochs: int,
    ) -> None:
        self.num_classes = int(num_classes)
        self.labels = labels
        self.num_samples = int(labels.shape[0])
        self.num_epochs = int(num_epochs)
        self.streaming = values is None
        self._values = values  # (F, T, N) float32 with 0 where unseen, or None
        self._seen = seen  # (T, N) bool
        self._sums = sums  # (F, N) float64
        self._sumsq = sumsq  # (F, N) float64
        self._n_seen = n_seen  # (N,) int64
        self._last = last  # (F, N) float32 values at the last epoch (NaN unseen)
        self._last_seen = last_seen
        self._forget = forget
        self._ever_correct = ever_correct
        self._probs = probs  # (W, N, K) float32, 0 where unseen
        self._probs_seen = probs_seen  # (W, N) bool
        self._probs_sum = probs_sum  # (N, K) float64 sum of per-epoch mean softmax over all epochs

    FIELDS = FIELDS

    def __repr__(self) -> str:
        mode = "streaming" if self.streaming else "full"
        return (
            f"Dynamics(num_samples={self.num_samples}, num_classes={self.num_classes}, "
            f"num_epochs={self.num_epochs}, mode={mode!r})"
        )

    @staticmethod
    def _field_index(field: str) -> int:
        try:
            return FIELDS.index(field)
        except ValueError:
            raise ValueError(f"unknown field {field!r}; expected one of {FIELDS}") from None

    def _need_full(self, what: str) -> None:
        if self.streaming:
            raise ValueError(
                f"{what} needs per-epoch values, but these dynamics were recorded in streaming mode "
                "(only running sums are kept); record with mode='full'"
            )

    @property
    def n_seen(self) -> np.ndarray:
        """(N,) number of epochs in which each sample was seen."""
        return self._n_seen.copy()

    def seen(self) -> np.ndarray:
        """(T, N) bool: was sample n seen in epoch t (full mode only)."""
        self._need_full("seen()")
        assert self._seen is not None
        return self._seen.copy()

    def epochs(self, field: str) -> np.ndarray:
        """(T, N) float32 per-epoch values of ``field``, NaN where unseen (full mode only)."""
        f = self._field_index(field)
        self._need_full("epochs()")
        assert self._values is not None and self._seen is not None
        return np.where(self._seen, self._values[f], np.float32(np.nan))

    def _window(self, epochs: slice | None) -> slice:
        if epochs is None:
            return slice(None)
        if not isinstance(epochs, slice):
            raise ValueError(f"epochs must be a slice or None, got {type(epochs).__name__}")
        return epochs

    def mean(self, field: str, epochs: slice | None = None) -> np.ndarray:
        """(N,) mean of ``field`` over the epochs in which each sample was seen (NaN if never).

        ``epochs`` restricts the mean to a window of epochs (full mode only).
        """
        f = self._field_index(field)
        if epochs is None:
            s, n = self._sums[f], self._n_seen
        else:
            self._need_full("a window of epochs")
            assert self._values is not None and self._seen is not None
            w = self._window(epochs)
            s = self._values[f, w].sum(axis=0, dtype=np.float64)
            n = self._seen[w].sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, s / np.maximum(n, 1), np.nan)

    def std(self, field: str, epochs: slice | None = None) -> np.ndarray:
        """(N,) population standard deviation of ``field`` over seen epochs (NaN if never seen)."""
        f = self._field_index(field)
        if epochs is None:
            s, ss, n = self._sums[f], self._sumsq[f], self._n_seen
        else:
            self._need_full("a window of epochs")
            assert self._values is not None and self._seen is not None
            w = self._window(epochs)
            v = self._values[f, w].astype(np.float64)
            s, ss, n = v.sum(axis=0), (v * v).sum(axis=0), self._seen[w].sum(axis=0)
        nn = np.maximum(n, 1)
        var = np.maximum(ss / nn - (s / nn) ** 2, 0.0)
        return np.where(n > 0, np.sqrt(var), np.nan)

    def at(self, field: str, epoch: int) -> np.ndarray:
        """(N,) values of ``field`` at one epoch (negative indices count from the end), NaN unseen.

        Streaming mode keeps only the last epoch (``epoch=-1`` or ``T-1``).
        """
        f = self._field_index(field)
        t = int(epoch)
        T = self.num_epochs
        if T == 0:
            raise ValueError("no epoch has been recorded")
        if not -T <= t < T:
            raise ValueError(f"epoch {epoch} out of range for {T} recorded epochs")
        t %= T
        if self.streaming:
            if t != T - 1:
                raise ValueError(
                    f"streaming dynamics keep only the last epoch ({T - 1}); epoch {epoch} needs mode='full'"
                )
            return np.where(self._last_seen, self._last[f], np.nan).astype(np.float64)
        assert self._values is not None and self._seen is not None
        return np.where(self._seen[t], self._values[f, t], np.nan).astype(np.float64)

    def forgetting_events(self) -> tuple[np.ndarray, np.ndarray]:
        """Forgetting events (Toneva et al. 2019): counts of correct → incorrect transitions
        between consecutive *seen* epochs, and a mask of never-learned samples (never correct).

        "Correct" at an epoch means a majority of that epoch's updates were correct (> 0.5).
        """
        return self._forget.copy(), ~self._ever_correct

    def posterior(self, last: int | None = None) -> np.ndarray:
        """(N, K) mean softmax over the last ``last`` recorded epochs kept (all kept if None).

        Epochs where a sample was unseen are excluded; a sample never seen in the window gets NaN.
        """
        W = self._probs.shape[0]
        if W == 0:
            raise ValueError("no softmax was kept (Recorder(keep_probs=0) or no epoch recorded)")
        k = W if last is None else int(last)
        if not 1 <= k <= W:
            raise ValueError(f"last must be in [1, {W}] (the recorder kept {W} epochs), got {last}")
        p = self._probs[W - k :].sum(axis=0, dtype=np.float64)
        n = self._probs_seen[W - k :].sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = p / n[:, None]
        out[n == 0] = np.nan
        return out


    def mean_posterior(self) -> np.ndarray:
        """(N, K) mean softmax over *all* epochs in which each sample was seen (NaN if never).

        Early epochs, before the model memorises noisy labels, weigh as much as late ones: a
        trajectory-averaged posterior (available in both modes).
        """
        if self._probs_sum.shape != (self.num_samples, self.num_classes):
            raise ValueError("no softmax was kept (Recorder(keep_probs=0))")
        n = self._n_seen
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self._probs_sum / n[:, None]
        out[n == 0] = np.nan
        return out


class Recorder:
    """Records per-sample training dynamics from the logits of any PyTorch loop.

    Parameters
    ----------
    num_samples:
        N; sample ids passed to :meth:`update` must lie in ``[0, N)``.
    num_classes:
        K, the number of logits (include the auxiliary class if the model has one).
    mode:
        ``"full"`` (per-epoch arrays) or ``"streaming"`` (O(N) running sums only).
    keep_probs:
        Keep the softmax of the last ``keep_probs`` epochs (a ring buffer of ``keep_probs × N × K``
        float32) for :meth:`Dynamics.posterior`; 0 disables it.
    """

    def __init__(
        self,
        num_samples: int,
        num_classes: int,
        *,
        mode: Mode = "full",
        keep_probs: int = 5,
    ) -> None:
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if mode not in ("full", "streaming"):
            raise ValueError(f"mode must be 'full' or 'streaming', got {mode!r}")
        if int(keep_probs) < 0:
            raise ValueError(f"keep_probs must be >= 0, got {keep_probs}")
        self.num_samples = N = int(num_samples)
        self.num_classes = K = int(num_classes)
        self.mode: Mode = mode
        self.keep_probs = int(keep_probs)
        self.num_epochs = 0
        self.labels = np.full(N, -1, dtype=np.int64)
        # current-epoch accumulators
        self._acc = np.zeros((_NF, N), dtype=np.float64)
        self._cnt = np.zeros(N, dtype=np.int64)
        self._pacc = np.zeros((N, K), dtype=np.float64) if self.keep_probs else np.zeros((0, 0))
        # history
        self._rows: list[np.ndarray] = []  # full mode: per epoch (F, N) float32, 0 where unseen
        self._seen_rows: list[np.ndarray] = []  # full mode: per epoch (N,) bool
        self._sums = np.zeros((_NF, N), dtype=np.float64)
        self._sumsq = np.zeros((_NF, N), dtype=np.float64)
        self._n_seen = np.zeros(N, dtype=np.int64)
        self._last = np.full((_NF, N), np.nan, dtype=np.float32)
        self._last_seen = np.zeros(N, dtype=bool)
        self._prev_correct = np.full(N, -1, dtype=np.int8)  # -1 never seen yet
        self._forget = np.zeros(N, dtype=np.int64)
        self._ever_correct = np.zeros(N, dtype=bool)
        self._probs: list[np.ndarray] = []  # ring of (N, K) float32
        self._psum = np.zeros((N, K), dtype=np.float64) if self.keep_probs else np.zeros((0, 0))
        self._probs_seen: list[np.ndarray] = []

    # ------------------------------------------------------------------ recording
    def update(self, ids: Any, logits: Any, labels: Any) -> None:
        """Record one batch: ``ids`` (B,), ``logits`` (B, K), ``labels`` (B,) — torch or numpy.

        Nothing is kept on the autograd graph; the heavy part runs on the logits' device and only
        B × (6 + K) numbers come back to the host.
        """
        ids_np = _as_index_array(ids, "ids")
        B = ids_np.shape[0]
        if isinstance(logits, torch.Tensor):
            z = logits.detach()
        else:
            z = torch.from_numpy(np.ascontiguousarray(np.asarray(logits, dtype=np.float32)))
        if z.ndim != 2 or z.shape[0] != B or z.shape[1] != self.num_classes:
            raise ValueError(
                f"logits must have shape (batch={B}, num_classes={self.num_classes}), got {tuple(z.shape)}"
            )
        lab_np = _as_index_array(labels, "labels")
        if lab_np.shape[0] != B:
            raise ValueError(f"labels has {lab_np.shape[0]} entries but ids has {B}")
        if B == 0:
            return
        bad = (ids_np < 0) | (ids_np >= self.num_samples)
        if bad.any():
            raise ValueError(
                f"sample ids out of range [0, {self.num_samples}): {id_list(ids_np[bad])}"
            )
        bad = (lab_np < 0) | (lab_np >= self.num_classes)
        if bad.any():
            raise ValueError(
                f"labels out of range [0, {self.num_classes}) for {describe_ids(ids_np[bad])}"
                f" (labels {id_list(lab_np[bad])})"
            )
        known = self.labels[ids_np]
        changed = (known >= 0) & (known != lab_np)
        if changed.any():
            raise ValueError(
                "the given label of a sample changed during recording for sample ids "
                f"{id_list(ids_np[changed])}; start a new Recorder when labels change"
            )
        finite = torch.isfinite(z).all(dim=1)
        if not bool(finite.all()):
            badrows = (~finite).cpu().numpy()
            raise ValueError(f"NaN or Inf logits for {describe_ids(ids_np[badrows])}")
        lab_t = torch.as_tensor(lab_np, device=z.device)
        q, p = _batch_quantities(z, lab_t)
        q_np = q.cpu().numpy().astype(np.float64)
        self.labels[ids_np] = lab_np
        p_np = p.cpu().numpy() if self.keep_probs else None
        if np.unique(ids_np).size == B:  # the common case: plain fancy-index adds
            self._acc[:, ids_np] += q_np.T
            self._cnt[ids_np] += 1
            if p_np is not None:
                self._pacc[ids_np] += p_np
        else:  # a sample repeated within the batch: unbuffered adds
            np.add.at(self._acc.T, ids_np, q_np)
            np.add.at(self._cnt, ids_np, 1)
            if p_np is not None:
                np.add.at(self._pacc, ids_np, p_np.astype(np.float64))

    def end_epoch(self) -> None:
        """Close the current epoch: average repeated updates, mark unseen samples as missing."""
        cnt = self._cnt
        seen = cnt > 0
        vals = np.zeros((_NF, self.num_samples), dtype=np.float64)
        np.divide(self._acc, cnt, out=vals, where=seen[None, :])
        v32 = vals.astype(np.float32)
        if self.mode == "full":
            self._rows.append(v32)
            self._seen_rows.append(seen.copy())
        # running sums use the float32-rounded values so both modes agree exactly
        v64 = v32.astype(np.float64)
        self._sums += v64
        self._sumsq += v64 * v64
        self._n_seen += seen
        self._last = np.where(seen[None, :], v32, np.float32(np.nan))
        self._last_seen = seen.copy()
        cidx = FIELDS.index("correct")
        corr = np.where(seen, (v32[cidx] > 0.5).astype(np.int8), np.int8(-1))
        self._forget += (self._prev_correct == 1) & (corr == 0)
        self._ever_correct |= corr == 1
        self._prev_correct = np.where(seen, corr, self._prev_correct)
        if self.keep_probs:
            probs = np.zeros_like(self._pacc, dtype=np.float32)
            np.divide(self._pacc, cnt[:, None], out=probs, where=seen[:, None], casting="unsafe")
            self._probs.append(probs)
            self._psum += probs
            self._probs_seen.append(seen.copy())
            if len(self._probs) > self.keep_probs:
                del self._probs[0], self._probs_seen[0]
            self._pacc[:] = 0.0
        self._acc[:] = 0.0
        self._cnt[:] = 0
        self.num_epochs += 1

    @property
    def epoch_in_progress(self) -> bool:
        """True if updates were made since the last :meth:`end_epoch`."""
        return bool(self._cnt.any())

    def merge(self, others: Sequence[Recorder]) -> None:
        """Merge the current-epoch updates of other recorders (e.g. other DDP ranks) into this one.

        Call on every rank's recorder before :meth:`end_epoch`; all must have recorded the same
        number of finished epochs. Repeated samples across ranks are averaged like repeats in one
        rank. Conflicting labels for the same sample raise ``ValueError``.
        """
        for o in others:
            if (o.num_samples, o.num_classes, o.num_epochs) != (
                self.num_samples,
                self.num_classes,
                self.num_epochs,
            ):
                raise ValueError("recorders to merge must share num_samples, num_classes and epochs")
            both = (self.labels >= 0) & (o.labels >= 0) & (self.labels != o.labels)
            if both.any():
                raise ValueError(f"conflicting labels across recorders for {describe_ids(np.flatnonzero(both))}")
            self.labels = np.where(self.labels >= 0, self.labels, o.labels)
            self._acc += o._acc
            self._cnt += o._cnt
            if self.keep_probs and o.keep_probs:
                self._pacc += o._pacc

    def dynamics(self) -> Dynamics:
        """A read-only :class:`Dynamics` snapshot of the finished epochs."""
        N, K = self.num_samples, self.num_classes
        if self.mode == "full" and self._rows:
            values: np.ndarray | None = np.stack(self._rows, axis=1)  # (F, T, N)
            seen: np.ndarray | None = np.stack(self._seen_rows, axis=0)
        elif self.mode == "full":
            values, seen = np.zeros((_NF, 0, N), np.float32), np.zeros((0, N), bool)
        else:
            values = seen = None
        if self._probs:
            probs = np.stack(self._probs)
            probs_seen = np.stack(self._probs_seen)
        else:
            probs, probs_seen = np.zeros((0, N, K), np.float32), np.zeros((0, N), bool)
        return Dynamics(
            num_classes=K,
            labels=self.labels.copy(),
            values=values,
            seen=seen,
            sums=self._sums.copy(),
            sumsq=self._sumsq.copy(),
            n_seen=self._n_seen.copy(),
            last=self._last.copy(),
            last_seen=self._last_seen.copy(),
            forget=self._forget.copy(),
            ever_correct=self._ever_correct.copy(),
            probs=probs,
            probs_seen=probs_seen,
            probs_sum=self._psum.copy(),
            num_epochs=self.num_epochs,
        )

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to resume, as plain numpy arrays (no pickle needed to store it)."""
        meta = {
            "format": _FORMAT,
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
            "mode": self.mode,
            "keep_probs": self.keep_probs,
            "num_epochs": self.num_epochs,
            "fields": list(FIELDS),
        }
        N, K = self.num_samples, self.num_classes
        st: dict[str, np.ndarray] = {
            "meta": np.array(json.dumps(meta)),
            "labels": self.labels,
            "acc": self._acc,
            "cnt": self._cnt,
            "pacc": self._pacc,
            "psum": self._psum,
            "sums": self._sums,
            "sumsq": self._sumsq,
            "n_seen": self._n_seen,
            "last": self._last,
            "last_seen": self._last_seen,
            "prev_correct": self._prev_correct,
            "forget": self._forget,
            "ever_correct": self._ever_correct,
            "rows": np.stack(self._rows, axis=1) if self._rows else np.zeros((_NF, 0, N), np.float32),
            "seen_rows": np.stack(self._seen_rows) if self._seen_rows else np.zeros((0, N), bool),
            "probs": np.stack(self._probs) if self._probs else np.zeros((0, N, K), np.float32),
            "probs_seen": np.stack(self._probs_seen) if self._probs_seen else np.zeros((0, N), bool),
        }
        return {k: v.copy() for k, v in st.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state_dict` (shapes and settings must match this recorder)."""
        try:
            meta = json.loads(str(np.asarray(state["meta"])))
        except (KeyError, ValueError) as e:
            raise ValueError(f"not a labeltrace recorder state: {e}") from None
        if meta.get("format") != _FORMAT:
            raise ValueError(f"unsupported recorder state format {meta.get('format')!r}")
        if meta.get("fields") != list(FIELDS):
            raise ValueError(f"recorder state has fields {meta.get('fields')}, expected {list(FIELDS)}")
        mine = (self.num_samples, self.num_classes, self.mode, self.keep_probs)
        theirs = (meta["num_samples"], meta["num_classes"], meta["mode"], meta["keep_probs"])
        if mine != theirs:
            raise ValueError(
                "recorder state does not match this recorder: (num_samples, num_classes, mode, keep_probs) "
                f"= {theirs} vs {mine}"
            )
        N, K = self.num_samples, self.num_classes
        expect = {
            "labels": (N,), "acc": (_NF, N), "cnt": (N,), "sums": (_NF, N), "sumsq": (_NF, N),
            "n_seen": (N,), "last": (_NF, N), "last_seen": (N,), "prev_correct": (N,),
            "forget": (N,), "ever_correct": (N,),
        }  # fmt: skip
        for k, shape in expect.items():
            if k not in state or tuple(np.shape(state[k])) != shape:
                raise ValueError(f"recorder state entry {k!r} missing or not of shape {shape}")
        T = int(meta["num_epochs"])
        self.num_epochs = T
        self.labels = np.array(state["labels"], dtype=np.int64)
        self._acc = np.array(state["acc"], dtype=np.float64)
        self._cnt = np.array(state["cnt"], dtype=np.int64)
        self._pacc = np.array(state["pacc"], dtype=np.float64) if self.keep_probs else np.zeros((0, 0))
        self._psum = np.array(state["psum"], dtype=np.float64) if self.keep_probs else np.zeros((0, 0))
        self._sums = np.array(state["sums"], dtype=np.float64)
        self._sumsq = np.array(state["sumsq"], dtype=np.float64)
        self._n_seen = np.array(state["n_seen"], dtype=np.int64)
        self._last = np.array(state["last"], dtype=np.float32)
        self._last_seen = np.array(state["last_seen"], dtype=bool)
        self._prev_correct = np.array(state["prev_correct"], dtype=np.int8)
        self._forget = np.array(state["forget"], dtype=np.int64)
        self._ever_correct = np.array(state["ever_correct"], dtype=bool)
        rows = np.asarray(state["rows"], dtype=np.float32)
        seen_rows = np.asarray(state["seen_rows"], dtype=bool)
        if self.mode == "full":
            if rows.shape != (_NF, T, N) or seen_rows.shape != (T, N):
                raise ValueError(f"recorder state holds {rows.shape[1]} epochs of values, meta says {T}")
            self._rows = [rows[:, t].copy() for t in range(T)]
            self._seen_rows = [seen_rows[t].copy() for t in range(T)]
        probs = np.asarray(state["probs"], dtype=np.float32)
        probs_seen = np.asarray(state["probs_seen"], dtype=bool)
        if probs.ndim != 3 or probs.shape[1:] != (N, K) or probs.shape[0] > self.keep_probs:
            raise ValueError(f"recorder state entry 'probs' has shape {probs.shape}")
        self._probs = [probs[w].copy() for w in range(probs.shape[0])]
        self._probs_seen = [probs_seen[w].copy() for w in range(probs_seen.shape[0])]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the state to ``path`` (``.npz``, no pickle) atomically; returns the path."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        state = self.state_dict()
        atomic_write(path, lambda fh: np.savez(fh, **state))
        return path

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray]) -> Recorder:
        """A recorder rebuilt from :meth:`state_dict` (settings taken from the state)."""
        try:
            meta = json.loads(str(np.asarray(state["meta"])))
        except (KeyError, ValueError) as e:
            raise ValueError(f"not a labeltrace recorder state: {e}") from None
        rec = cls(
            meta["num_samples"], meta["num_classes"], mode=meta["mode"], keep_probs=meta["keep_probs"]
        )
        rec.load_state_dict(state)
        return rec

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recorder:
        """Load a recorder written by :meth:`save` (``allow_pickle=False``)."""
        with np.load(Path(path), allow_pickle=False) as z:
            state = {k: z[k] for k in z.files}
        return cls.from_state_dict(state)
