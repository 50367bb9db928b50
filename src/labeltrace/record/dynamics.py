"""Per-sample training dynamics, as recorded by a :class:`~labeltrace.record.Recorder` (read-only).

A :class:`Dynamics` is a snapshot of the finished epochs. In full mode it holds read-only views
of the recorder's per-field ``(T, N)`` arrays — memory-mapped files when the recorder has a
directory — and never copies them; reductions over a window of epochs stream through the rows
with O(N) extra memory. Reductions over all epochs (and everything in streaming mode) come from
O(N) running sums.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labeltrace._checks import check_int
from labeltrace.record.batch import FIELDS, as_index_array

__all__ = ["Dynamics"]

_ROWS_PER_BLOCK = 16  # epochs read at a time by windowed reductions


class Dynamics:
    """Per-sample training dynamics produced by a :class:`~labeltrace.record.Recorder` (read-only).

    Full mode stores per-epoch arrays of shape ``(T, N)`` (epoch-major); streaming mode stores
    only running sums. Every reduction excludes the epochs in which a sample was not seen.
    """

    FIELDS = FIELDS

    def __init__(
        self,
        *,
        num_classes: int,
        labels: np.ndarray,
        values: Sequence[np.ndarray] | None,
        seen: np.ndarray | None,
        sums: np.ndarray,
        sumsq: np.ndarray,
        n_seen: np.ndarray,
        last: np.ndarray,
        last_seen: np.ndarray,
        forget: np.ndarray,
        ever_correct: np.ndarray,
        probs: Sequence[np.ndarray],
        probs_seen: Sequence[np.ndarray],
        probs_sum: np.ndarray,
        num_epochs: int,
    ) -> None:
        self.num_classes = int(num_classes)
        self.labels = labels
        self.num_samples = int(labels.shape[0])
        self.num_epochs = int(num_epochs)
        self.streaming = values is None
        self._values = None if values is None else tuple(values)  # F × (T, N) float32, 0 where unseen
        self._seen = seen  # (T, N) bool
        self._sums = sums  # (F, N) float64
        self._sumsq = sumsq  # (F, N) float64
        self._n_seen = n_seen  # (N,) int64
        self._last = last  # (F, N) float32 values at the last epoch (NaN unseen)
        self._last_seen = last_seen
        self._forget = forget
        self._ever_correct = ever_correct
        self._probs = tuple(probs)  # W × (N, K) float32, 0 where unseen, oldest first
        self._probs_seen = tuple(probs_seen)  # W × (N,) bool
        self._probs_sum = probs_sum  # (N, K) float64 sum of per-epoch mean softmax over all epochs

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

    def _full(self, what: str) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        self._need_full(what)
        assert self._values is not None and self._seen is not None
        return self._values, self._seen

    @property
    def kept_epochs(self) -> int:
        """How many of the last epochs' softmax is kept (:meth:`posterior` averages them; 0 with
        ``Recorder(keep_probs=0)``)."""
        return len(self._probs)

    @property
    def n_seen(self) -> np.ndarray:
        """(N,) number of epochs in which each sample was seen."""
        return self._n_seen.copy()

    def seen(self) -> np.ndarray:
        """(T, N) bool: was sample n seen in epoch t (full mode only)."""
        return self._full("seen()")[1].copy()

    def epochs(self, field: str, ids: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
        """(T, N) float32 per-epoch values of ``field``, NaN where unseen (full mode only).

        ``ids`` selects samples: ``(T, len(ids))``, reading only those columns.
        """
        f = self._field_index(field)
        values, seen = self._full("epochs()")
        v, s = values[f], seen
        if ids is not None:
            idx = as_index_array(ids, "ids", self.num_samples)  # never -1 for the last, 1.7 for 1
            v, s = v[:, idx], s[:, idx]
        return np.where(s, v, np.float32(np.nan))

    def _window(self, epochs: slice | None) -> slice:
        if epochs is None:
            return slice(None)
        if not isinstance(epochs, slice):
            raise ValueError(f"epochs must be a slice or None, got {type(epochs).__name__}")  # noqa: TRY004
        T = self.num_epochs
        try:
            picked = range(T)[epochs]
        except (TypeError, ValueError):  # slice(0, 1.5), a zero step: range's own TypeError / ValueError
            raise ValueError(f"the epoch window must be a slice of whole numbers with a non-zero step, got {epochs!r}") from None
        if not picked:  # every score would be NaN, as if no sample had been seen
            text = ":".join("" if v is None else str(v) for v in (epochs.start, epochs.stop, epochs.step)[: 2 + (epochs.step is not None)])
            have = f"none of the {T} recorded epochs (0..{T - 1})" if T else "no epoch: none is recorded yet"
            raise ValueError(f"the epoch window {text} selects {have}")
        return epochs

    def _window_sums(self, f: int, epochs: slice, squares: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sum (and sum of squares) of field ``f`` and the seen count over a window of epochs, in
        float64, adding the epochs in order — O(N) memory whatever T."""
        values, seen = self._full("a window of epochs")
        rows = range(self.num_epochs)[self._window(epochs)]
        N = self.num_samples
        s, ss, n = np.zeros(N), np.zeros(N) if squares else np.zeros(0), np.zeros(N, np.int64)
        v_f = values[f]
        for i in range(0, len(rows), _ROWS_PER_BLOCK):
            block = rows[i : i + _ROWS_PER_BLOCK]
            sel = slice(block.start, block.stop, block.step) if block.step > 0 else list(block)
            vals = np.asarray(v_f[sel], dtype=np.float64)
            for row in vals:
                s += row
                if squares:
                    ss += row * row
            n += seen[sel].sum(axis=0)
        return s, ss, n

    def mean(self, field: str, epochs: slice | None = None) -> np.ndarray:
        """(N,) mean of ``field`` over the epochs in which each sample was seen (NaN if never).

        ``epochs`` restricts the mean to a window of epochs (full mode only).
        """
        f = self._field_index(field)
        if epochs is None:
            s, n = self._sums[f], self._n_seen
        else:
            s, _, n = self._window_sums(f, self._window(epochs), squares=False)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, s / np.maximum(n, 1), np.nan)

    def std(self, field: str, epochs: slice | None = None) -> np.ndarray:
        """(N,) population standard deviation of ``field`` over seen epochs (NaN if never seen)."""
        f = self._field_index(field)
        if epochs is None:
            s, ss, n = self._sums[f], self._sumsq[f], self._n_seen
        else:
            s, ss, n = self._window_sums(f, self._window(epochs), squares=True)
        nn = np.maximum(n, 1)
        var = np.maximum(ss / nn - (s / nn) ** 2, 0.0)
        return np.where(n > 0, np.sqrt(var), np.nan)

    def at(self, field: str, epoch: int) -> np.ndarray:
        """(N,) values of ``field`` at one epoch (negative indices count from the end), NaN unseen.

        Streaming mode keeps only the last epoch (``epoch=-1`` or ``T-1``).
        """
        f = self._field_index(field)
        T = self.num_epochs
        if T == 0:
            raise ValueError("no epoch has been recorded")
        t = check_int("epoch", epoch, -T, T - 1, hint=f" ({T} recorded epochs; negative counts from the end)")
        t %= T
        if self.streaming:
            if t != T - 1:
                raise ValueError(
                    f"streaming dynamics keep only the last epoch ({T - 1}); epoch {epoch} needs mode='full'"
                )
            return np.where(self._last_seen, self._last[f], np.nan).astype(np.float64)
        values, seen = self._full("at()")
        return np.where(seen[t], values[f][t], np.nan).astype(np.float64)

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
        W = len(self._probs)
        if W == 0:
            raise ValueError("no softmax was kept (Recorder(keep_probs=0) or no epoch recorded)")
        k = W if last is None else check_int("last", last, 1, W, hint=f" (the recorder kept {W} epochs)")
        p = np.zeros((self.num_samples, self.num_classes))
        n = np.zeros(self.num_samples, np.int64)
        for probs, seen in zip(self._probs[W - k :], self._probs_seen[W - k :], strict=True):
            p += probs
            n += seen
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
