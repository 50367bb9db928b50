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

Per sample and epoch it keeps, from the softmax of the logits, the quantities of
:mod:`labeltrace.record.batch` (entropy, signed entropy, correct, margin, p_given, loss), stored as
float32.

A sample seen more than once in an epoch gets the mean of its updates (so ``correct`` can be
fractional); a sample not seen in an epoch is *missing* for that epoch and excluded from every
mean (never counted as zero). The mean softmax of the last ``keep_probs`` epochs is kept too, for
suggested labels.

Two storage modes: ``"full"`` keeps every per-epoch value (one ``(T, N)`` float32 array per field
plus the ``seen`` mask; in files under ``directory`` when one is given, see
:mod:`labeltrace.record.storage`), ``"streaming"`` keeps only O(N) running sums and gives the same
per-sample means, std, forgetting counts and last epoch values. The kept softmax is the one part
that grows with K: ``keep_probs × N × K`` float32 and two ``N × K`` float64 sums in memory, the
window and one sum in every checkpoint (``keep_probs=0`` or 1 with many classes).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from labeltrace._checks import check_int, describe_ids
from labeltrace._io import reading
from labeltrace._warn import warn_caller
from labeltrace.record import batch as _batch
from labeltrace.record import state as _state
from labeltrace.record.batch import FIELDS, FLOAT32_MAX, as_index_array, as_logits, batch_quantities
from labeltrace.record.dynamics import Dynamics
from labeltrace.record.pending import PendingUpdates, check_labels, checked_pending
from labeltrace.record.processes import warn_if_sharded
from labeltrace.record.storage import FileStore, MemoryStore

__all__ = ["FIELDS", "Dynamics", "PendingUpdates", "Recorder"]

_NF = len(FIELDS)


_CORRECT = FIELDS.index("correct")
Mode = Literal["full", "streaming"]


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class Recorder:
    """Records per-sample training dynamics from the logits of any PyTorch loop.

    Parameters
    ----------
    num_samples:
        N, an int; sample ids passed to :meth:`update` must lie in ``[0, N)``.
    num_classes:
        K, an int: the number of logits (include the auxiliary class if the model has one).
    mode:
        ``"full"`` (per-epoch arrays) or ``"streaming"`` (O(N) running sums only).
    keep_probs:
        Keep the softmax of the last ``keep_probs`` epochs (``keep_probs × N × K`` float32, plus
        two ``N × K`` float64 running sums; checkpoints hold the window and one sum) for
        :meth:`Dynamics.posterior`; 0 disables it.
    directory:
        Full mode only: keep the per-epoch arrays in files in this directory (created at the
        first :meth:`end_epoch`, replacing any store there) instead of memory. Checkpoints
        (:meth:`save`, :meth:`state_dict`) then hold O(N) numbers per quantity (and the kept
        softmax, see ``keep_probs``) and point to the files.
    max_epochs:
        Epochs to preallocate (memory) or reserve (files); recording more still works — memory
        doubles its capacity (a copy), files just grow.
    local:
        Under several ``torch.distributed`` processes a Recorder warns at its first update that it
        records only what this process passes; ``local=True`` says that is the whole recording
        (you gather every rank's batches here, or train on this rank alone). Data-parallel
        training records with :class:`~labeltrace.integrations.ddp.DistributedRecorder`.
    """

    def __init__(
        self,
        num_samples: int,
        num_classes: int,
        *,
        mode: Mode = "full",
        keep_probs: int = 5,
        directory: str | os.PathLike[str] | None = None,
        max_epochs: int | None = None,
        local: bool = False,
    ) -> None:
        check_int("num_samples", num_samples, 1, hint=": pass the whole number of samples")
        check_int("num_classes", num_classes, 2, hint=": pass the whole number of classes (logits)")
        if mode not in ("full", "streaming"):
            raise ValueError(f"mode must be 'full' or 'streaming', got {mode!r}")
        keep_probs = check_int("keep_probs", keep_probs, 0)
        max_epochs = None if max_epochs is None else check_int("max_epochs", max_epochs, 1)
        if directory is not None and mode != "full":
            raise ValueError("directory= keeps per-epoch arrays, which only mode='full' records")
        self.num_samples = N = int(num_samples)
        self.num_classes = K = int(num_classes)
        self.mode: Mode = mode
        self.keep_probs = int(keep_probs)
        self.max_epochs = None if max_epochs is None else int(max_epochs)
        self.directory = None if directory is None else Path(directory)
        self.num_epochs = 0
        self.labels = np.full(N, -1, dtype=np.int64)
        # current-epoch accumulators
        self._acc = np.zeros((_NF, N), dtype=np.float64)
        self._cnt = np.zeros(N, dtype=np.int64)
        self._pacc = np.zeros((N, K if self.keep_probs else 0), dtype=np.float64)
        # history: O(N) arrays, replaced (never changed in place) at end_epoch, so that a
        # Dynamics snapshot can share them
        self._store: MemoryStore | FileStore | None = None  # full mode: created by the first end_epoch
        self._sums = _frozen(np.zeros((_NF, N)))
        self._sumsq = _frozen(np.zeros((_NF, N)))
        self._n_seen = _frozen(np.zeros(N, dtype=np.int64))
        self._last = _frozen(np.full((_NF, N), np.nan, dtype=np.float32))
        self._last_seen = _frozen(np.zeros(N, dtype=bool))
        self._prev_correct = _frozen(np.full(N, -1, dtype=np.int8))  # -1 never seen yet
        self._forget = _frozen(np.zeros(N, dtype=np.int64))
        self._ever_correct = _frozen(np.zeros(N, dtype=bool))
        self._probs: list[np.ndarray] = []  # the last keep_probs epochs, (N, K) float32 each
        self._probs_seen: list[np.ndarray] = []
        self._psum = _frozen(np.zeros((N, K) if self.keep_probs else (0, 0)))
        self._row_tokens = np.zeros(0, dtype=np.int64)  # file store: token of each epoch row
        self._check_shards = not local  # once, at the first update (see the class docstring)
        self._probs_checks = 3  # the first updates look for probabilities passed as logits (a warning, once)
        #: rows of non-finite logits left out by ``update(..., nonfinite="skip")`` (this process, not saved)
        self.nonfinite_skipped = 0

    # ------------------------------------------------------------------ recording
    def update(self, ids: Any, logits: Any, labels: Any, *, nonfinite: str = "raise") -> None:
        """Record one batch: ``ids`` (B,), ``logits`` (B, K), ``labels`` (B,) — torch (any device,
        any real dtype), numpy or lists.

        Nothing is kept on the autograd graph; B × K numbers come to the host, where the
        quantities are computed in float64. Input that cannot be recorded exactly raises
        ``ValueError`` (see :mod:`labeltrace.record.batch`). A row of NaN or infinite logits
        raises too, or with ``nonfinite="skip"`` (the Lightning and Hugging Face callbacks' default:
        a half-precision overflow must not end the training) is left out of the epoch, with a
        warning naming its samples (counted in :attr:`nonfinite_skipped`). Logits that are
        probabilities already (every row in [0, 1], summing to 1: a model ending in softmax) are
        warned of once: their softmax is squashed towards uniform, so the recorded probabilities are
        too low (log-probabilities are fine).
        """
        if nonfinite not in ("raise", "skip"):
            raise ValueError(f"nonfinite must be 'raise' or 'skip', got {nonfinite!r}")
        ids_np = as_index_array(ids, "ids", self.num_samples)
        B = ids_np.shape[0]
        z = as_logits(logits, B, self.num_classes, ids_np, finite=nonfinite == "raise")
        lab_np = as_index_array(labels, "labels", self.num_classes, ids=ids_np)
        if lab_np.shape[0] != B:
            raise ValueError(f"labels has {lab_np.shape[0]} entries but ids has {B}")
        if nonfinite == "skip" and not (ok := np.isfinite(z).all(axis=1)).all():
            self.nonfinite_skipped += int((~ok).sum())
            warn_caller(f"NaN or Inf logits for {describe_ids(ids_np[~ok])}: left out of epoch {self.num_epochs + 1} "
                        f"(counted from 1; {self.nonfinite_skipped:,} rows left out so far)")  # fmt: skip
            ids_np, z, lab_np = ids_np[ok], z[ok], lab_np[ok]
            B = ids_np.shape[0]
        if B == 0:
            return
        if self._probs_checks:  # the first few updates: probabilities passed as logits, said once
            self._probs_checks -= 1
            if _batch.looks_like_probabilities(z):
                self._probs_checks = 0
                warn_caller(_batch.PROBABILITIES_AS_LOGITS)
        if self._check_shards:
            self._check_shards = False
            warn_if_sharded()
        self.check_labels(ids_np, lab_np)
        q, p = batch_quantities(z, lab_np, want_probs=bool(self.keep_probs))
        self.labels[ids_np] = lab_np
        if np.unique(ids_np).size == B:  # the common case: plain fancy-index adds
            self._acc[:, ids_np] += q
            self._cnt[ids_np] += 1
            if p is not None:
                self._pacc[ids_np] += p
        else:  # a sample repeated within the batch: unbuffered adds
            np.add.at(self._acc.T, ids_np, q.T)
            np.add.at(self._cnt, ids_np, 1)
            if p is not None:
                np.add.at(self._pacc, ids_np, p)

    def check_labels(self, ids: np.ndarray, labels: np.ndarray) -> None:
        """Raise ``ValueError`` if ``labels`` (for sample ``ids``, int64 arrays) contradict the
        labels recorded so far or each other (one sample, two labels)."""
        check_labels(self.labels, ids, labels)

    def end_epoch(self) -> None:
        """Close the current epoch: average repeated updates, mark unseen samples as missing."""
        cnt = self._cnt
        seen = cnt > 0
        if not seen.any():  # kept (an epoch of the training's count), but every score of it is NaN
            warnings.warn(f"epoch {self.num_epochs + 1} closes with no update: end_epoch() called twice, or before "
                          "any update() of the epoch? Its values are missing for every sample",
                          UserWarning, stacklevel=2)  # fmt: skip
        vals = np.zeros((_NF, self.num_samples), dtype=np.float64)
        np.divide(self._acc, cnt, out=vals, where=seen[None, :])
        np.clip(vals, -FLOAT32_MAX, FLOAT32_MAX, out=vals)
        v32 = vals.astype(np.float32)
        if self.mode == "full":
            self._write_row(self.num_epochs, v32, seen)
        # running sums use the float32-rounded values so both modes agree exactly
        v64 = v32.astype(np.float64)
        self._sums = _frozen(self._sums + v64)
        self._sumsq = _frozen(self._sumsq + v64 * v64)
        self._n_seen = _frozen(self._n_seen + seen)
        self._last = _frozen(np.where(seen[None, :], v32, np.float32(np.nan)))
        self._last_seen = _frozen(seen.copy())
        corr = np.where(seen, (v32[_CORRECT] > 0.5).astype(np.int8), np.int8(-1))
        self._forget = _frozen(self._forget + ((self._prev_correct == 1) & (corr == 0)))
        self._ever_correct = _frozen(self._ever_correct | (corr == 1))
        self._prev_correct = _frozen(np.where(seen, corr, self._prev_correct))
        if self.keep_probs:
            probs = np.zeros(self._pacc.shape, dtype=np.float32)
            np.divide(self._pacc, cnt[:, None], out=probs, where=seen[:, None], casting="unsafe")
            self._probs = [*self._probs, _frozen(probs)][-self.keep_probs :]
            self._probs_seen = [*self._probs_seen, _frozen(seen.copy())][-self.keep_probs :]
            self._psum = _frozen(self._psum + probs)
            self._pacc[:] = 0.0
        self._acc[:] = 0.0
        self._cnt[:] = 0
        self.num_epochs += 1

    def _write_row(self, t: int, values: np.ndarray, seen: np.ndarray) -> None:
        if self._store is None:  # the first epoch: files (replacing any store there) or memory
            if self.directory is not None:
                self._store = FileStore.create(self.directory, FIELDS, self.num_samples, self.max_epochs)
            else:
                self._store = MemoryStore(_NF, self.num_samples, self.max_epochs)
        token = self._store.write(t, values, seen)
        if isinstance(self._store, FileStore):
            self._row_tokens = np.append(self._row_tokens[:t], np.int64(token))

    @property
    def epoch_in_progress(self) -> bool:
        """True if updates were made since the last :meth:`end_epoch`."""
        return bool(self._cnt.any())

    # ------------------------------------------------------------------ ranks
    def pending(self) -> PendingUpdates:
        """A copy of the unfinished epoch's updates (only the samples updated so far)."""
        ids = np.flatnonzero(self._cnt)
        return PendingUpdates(ids=ids, labels=self.labels[ids], sums=self._acc[:, ids],
                              counts=self._cnt[ids], prob_sums=self._pacc[ids])  # fmt: skip

    def clear_pending(self) -> None:
        """Drop the unfinished epoch's updates (labels already seen are kept)."""
        self._acc[:] = 0.0
        self._cnt[:] = 0
        self._pacc[:] = 0.0

    def add_pending(self, upd: PendingUpdates) -> None:
        """Add another recorder's unfinished-epoch updates to this one's, as if made here:
        repeats of a sample (here and there) are averaged at :meth:`end_epoch`."""
        upd = checked_pending(upd, self.num_samples, self.num_classes, keep_probs=bool(self.keep_probs))
        ids, labels = upd.ids, upd.labels
        self.check_labels(ids, labels)
        self.labels[ids] = labels
        self._acc[:, ids] += upd.sums
        self._cnt[ids] += upd.counts
        if self.keep_probs:
            self._pacc[ids] += upd.prob_sums

    def merge(self, others: Sequence[Recorder]) -> None:
        """Merge the current-epoch updates of other recorders (e.g. other DDP ranks) into this one.

        Call before :meth:`end_epoch`; all must have recorded the same number of finished epochs
        and keep the softmax alike (``keep_probs`` on or off in all: a recorder without it has no
        probabilities to add, and zeros counted as seen would pull the posterior to nothing).
        Repeated samples across recorders are averaged like repeats in one recorder. Conflicting
        labels for the same sample raise ``ValueError``.
        """
        for o in others:
            if (o.num_samples, o.num_classes, o.num_epochs) != (self.num_samples, self.num_classes, self.num_epochs):
                raise ValueError("recorders to merge must share num_samples, num_classes and epochs")
            if bool(o.keep_probs) != bool(self.keep_probs):
                raise ValueError(f"recorders to merge must all keep the softmax or none: keep_probs "
                                 f"{self.keep_probs} here, {o.keep_probs} in the other")  # fmt: skip
            both = (self.labels >= 0) & (o.labels >= 0) & (self.labels != o.labels)
            if both.any():
                raise ValueError(f"conflicting labels across recorders for {describe_ids(np.flatnonzero(both))}")
            self.labels = np.where(self.labels >= 0, self.labels, o.labels)
            self.add_pending(o.pending())

    # ------------------------------------------------------------------ results
    def dynamics(self) -> Dynamics:
        """A read-only :class:`Dynamics` snapshot of the finished epochs (no copy of the history)."""
        values: tuple[np.ndarray, ...] | None = None
        seen: np.ndarray | None = None
        if self.mode == "full":
            if self._store is None:  # no epoch written yet
                empty = _frozen(np.zeros((0, self.num_samples), np.float32))
                values, seen = tuple(empty for _ in FIELDS), _frozen(np.zeros((0, self.num_samples), bool))
            else:
                values, seen = self._store.views(self.num_epochs)
        return Dynamics(
            num_classes=self.num_classes, labels=_frozen(self.labels.copy()), values=values, seen=seen,
            sums=self._sums, sumsq=self._sumsq, n_seen=self._n_seen, last=self._last,
            last_seen=self._last_seen, forget=self._forget, ever_correct=self._ever_correct,
            probs=tuple(self._probs), probs_seen=tuple(self._probs_seen), probs_sum=self._psum,
            num_epochs=self.num_epochs,
        )  # fmt: skip

    # ------------------------------------------------------------------ persistence
    def state_dict(self, *, tensors: bool = False) -> dict[str, Any]:
        """Everything needed to resume, as plain numpy arrays (no pickle needed to store it).

        With a ``directory`` the per-epoch arrays stay in their files (flushed first) and the
        state holds O(N) numbers per quantity, the kept softmax and the directory (absolute);
        otherwise it embeds them.

        ``tensors=True``: CPU torch tensors and the settings as a ``str`` instead — what goes into
        your model's checkpoint beside its weights (``torch.save({"model": ..., "recorder":
        rec.state_dict(tensors=True)})``) and comes back from ``torch.load`` with its default
        ``weights_only=True``, which refuses numpy arrays. :meth:`load_state_dict` and
        :meth:`from_state_dict` take either form.
        """
        st = _state.build(self, embed=None, base=None)
        out = {k: v if k == "rows" else np.array(v, copy=True) for k, v in st.items()}  # rows: stacked anew
        if not tensors:
            return out
        import torch

        return {k: str(v) if k == "meta" else torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}

    def load_state_dict(self, state: dict[str, Any], *, base: str | os.PathLike[str] | None = None,
                        directory: str | os.PathLike[str] | None = None) -> None:  # fmt: skip
        """Restore from :meth:`state_dict` (shapes and settings must match this recorder), in
        either of its forms (numpy arrays, or ``tensors=True``'s).

        A state that points to files adopts them (``base`` resolves a relative directory); an
        embedded state loads its arrays into memory, or into this recorder's ``directory``;
        ``directory=`` names the files' folder where the state names another (a torch checkpoint
        keeps the absolute path of a folder moved since). A state
        saved mid-epoch keeps that epoch's updates pending (:attr:`epoch_in_progress`; the
        integrations resume into it): a loop that restarts the epoch calls :meth:`clear_pending`
        first (:meth:`from_state_dict` and :meth:`load` warn of it).
        """
        _state.restore(self, _state.as_arrays(state), base=None if base is None else Path(base),
                       files_at=None if directory is None else Path(directory))

    def save(self, path: str | os.PathLike[str], *, embed: bool | None = None) -> Path:
        """Write the state to ``path`` (``.npz``, no pickle) atomically; returns the path.

        ``embed`` (default: only when the recorder has no directory) writes the per-epoch arrays
        into the file, streamed from their store; otherwise the file holds O(N) numbers per
        quantity, the kept softmax and the directory relative to the file, written after the
        directory's files are flushed. A path not ending in ``.npz`` gains it (``load`` reads
        either spelling).
        """
        return _state.save(self, _state.npz_path(path), embed=embed)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], *, base: str | os.PathLike[str] | None = None,
                        local: bool = False, directory: str | os.PathLike[str] | None = None) -> Recorder:  # fmt: skip
        """A recorder rebuilt from :meth:`state_dict` (settings taken from the state; ``local``
        as the constructor's, which the state does not keep; ``base`` and ``directory`` as
        :meth:`load_state_dict`'s)."""
        state = _state.as_arrays(state)
        meta = _state.read_meta(state)
        rec = cls(meta["num_samples"], meta["num_classes"], mode=meta["mode"], keep_probs=meta["keep_probs"],
                  local=local)  # fmt: skip
        rec.load_state_dict(state, base=base, directory=directory)
        _state.warn_if_mid_epoch(rec, "the state")
        return rec

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, local: bool = False, mmap: bool = False,
             directory: str | os.PathLike[str] | None = None) -> Recorder:  # fmt: skip
        """Load a recorder written by :meth:`save` (``allow_pickle=False``), by the path given to
        it or the one it returned; ``local`` as the constructor's (the file does not keep it).

        ``mmap``: the kept softmax window, its running sum and embedded per-epoch rows stay in the
        file, read-only memory maps read as they are used (for reading a finished recording: a run
        directory's ``score``, ``queue``, report and review server; N × K × kept epochs of float32
        otherwise held in memory). The file must then not be rewritten in place while in use
        (:meth:`save` replaces it, which leaves the maps on the old file). ``directory``: the
        dynamics files' folder, where it is no longer where the file says (relative to the file).
        """
        path = Path(path)
        if not path.exists() and _state.npz_path(path).exists():
            path = _state.npz_path(path)
        with reading(path):
            state = _state.read_npz(path, mmap=mmap)
        meta = _state.read_meta(state)
        rec = cls(meta["num_samples"], meta["num_classes"], mode=meta["mode"], keep_probs=meta["keep_probs"],
                  local=local)  # fmt: skip
        _state.restore(rec, state, base=path.parent, owned=True,  # embedded rows: used, not copied
                       files_at=None if directory is None else Path(directory))
        _state.warn_if_mid_epoch(rec, str(path))
        return rec

