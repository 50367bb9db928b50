"""What the review page shows beside each image: the model's top classes, the sample's
trajectory, and its nearest neighbours among the samples labelled with the given and the
suggested class.

Computed on first use (``labeltrace review`` starts it in the background when the server starts)
and cached in the run directory (``rundir.REVIEW_CONTEXT``, an ``.npz``,
keyed to the scan's ``run.json``):
the run's features (:func:`labeltrace.relabel.features.run_features`) reduced to at most
``DIMS`` principal components, and the per-epoch ``p(given)`` and signed entropy (divided by
``log K``, so in ``[-1, 1]``) of the run's first recording (held out for a cross-fitted run;
absent for a streaming recording). The live queue's label propagation adds its neighbour graph
(:meth:`ReviewContext.graph`, exact neighbours in the same reduced features) to the same cache, so
only the first server on a run computes it (minutes at 100k samples). Needs no web stack.
"""

from __future__ import annotations

import hashlib
import io
import threading
from typing import Any

import numpy as np

from labeltrace import rundir
from labeltrace._io import atomic_write_bytes
from labeltrace.relabel.features import run_features
from labeltrace.rundir import Run

__all__ = ["DIMS", "ReviewContext", "reduce"]

DIMS = 64
"""Principal components kept for the neighbour search."""


def reduce(x: np.ndarray, dims: int = DIMS) -> np.ndarray:
    """(N, min(D, dims)) float32: ``x`` centred and projected on its top principal components."""
    x = np.array(x, dtype=np.float64)  # one float64 copy, centred in place
    x -= x.mean(axis=0)
    if x.shape[1] <= dims:
        return x.astype(np.float32)
    cov = x.T @ x
    w, v = np.linalg.eigh(cov)
    top = v[:, np.argsort(w)[::-1][:dims]]
    return (x @ top).astype(np.float32)


class ReviewContext:
    """The context of a run's samples (module docstring); thread-safe, built once.

    Parameters
    ----------
    run : the run.
    features : an (N, D) ``.npy`` file to use instead of the run's own features.
    k : neighbours shown per class.
    """

    def __init__(self, run: Run, *, features: str | None = None, k: int = 6) -> None:
        self.run = run
        self.features_file = features
        self.k = int(k)
        self._lock = threading.Lock()
        self._data: dict[str, Any] | None = None

    # ------------------------------------------------------------------ building
    def _build(self) -> dict[str, Any]:
        f = run_features(self.run, self.features_file)
        emb = reduce(f.values)
        norm = np.linalg.norm(emb, axis=1, keepdims=True)
        out: dict[str, Any] = {"embedding": emb / np.where(norm > 0, norm, 1.0),
                               "source": np.array(f.source), "scan": np.array(self._scan())}  # fmt: skip
        try:
            run0 = self.run.recording().runs[0]
            dyn = run0.dynamics
            out["p_given"] = dyn.epochs("p_given").astype(np.float16)
            scale = np.log(max(dyn.num_classes, 2))  # normalised to [-1, 1]
            out["signed_entropy"] = (dyn.epochs("signed_entropy") / scale).astype(np.float16)
            out["view"] = np.array("held-out" if run0.held_out else "in-sample")
        except ValueError:  # no recording, or a streaming one: no per-epoch values
            pass
        return out

    def _scan(self) -> str:
        """The scan the context is of: a digest of its ``run.json`` (written anew by every scan)."""
        return hashlib.sha256((self.run.path / rundir.RUN_JSON).read_bytes()).hexdigest()

    def load(self) -> dict[str, Any]:
        """The context arrays: from the run directory's cache, else built and cached."""
        with self._lock:
            if self._data is not None:
                return self._data
            path = self.run.path / rundir.REVIEW_CONTEXT
            data = None
            if path.is_file() and self.features_file is None:
                with np.load(path, allow_pickle=False) as z:
                    data = {name: z[name] for name in z.files}
                if data["embedding"].shape[0] != self.run.num_samples or str(data.get("scan", "")) != self._scan():
                    data = None  # another scan's (the same samples scanned again), or from before the key
            if data is None:
                data = self._build()
                self._save(data)
            self._data = data
            return data

    def _save(self, data: dict[str, Any]) -> None:
        """Write ``data`` to the run directory's cache (not when the features came from a file)."""
        if self.features_file is not None:
            return
        buf = io.BytesIO()
        np.savez(buf, **data)
        atomic_write_bytes(self.run.path / rundir.REVIEW_CONTEXT, buf.getvalue())

    def graph(self, k: int) -> np.ndarray:
        """(N, k) each sample's ``k`` nearest neighbours in the reduced features
        (:func:`labeltrace.relabel.propagation.neighbour_graph`), cached with the context."""
        from labeltrace.relabel.propagation import neighbour_graph

        data = self.load()
        name = f"graph_{int(k)}"
        if name not in data:
            data[name] = neighbour_graph(data["embedding"], k=k)
            with self._lock:
                self._save(data)
        return data[name]

    # ------------------------------------------------------------------ per sample
    def trajectory(self, i: int) -> dict[str, Any] | None:
        """Per-epoch ``p(given)`` and signed entropy of sample ``i`` (NaN → None), or None."""
        d = self.load()
        if "p_given" not in d:
            return None

        def series(a: np.ndarray) -> list[float | None]:
            col = a[:, i].astype(np.float64)
            return [None if not np.isfinite(v) else round(float(v), 4) for v in col]

        return {"view": str(d["view"]), "p_given": series(d["p_given"]),
                "signed_entropy": series(d["signed_entropy"])}  # fmt: skip

    def neighbours(
        self, i: int, classes: list[int], labels: np.ndarray, posterior: np.ndarray
    ) -> dict[int, list[int]]:
        """Per class ``c`` in ``classes``: the ``k`` samples labelled ``c`` nearest to ``i``
        (cosine), preferring those whose label the model agrees with (clear examples)."""
        emb = self.load()["embedding"]
        sim = emb @ emb[i]
        sim[i] = -np.inf
        pred = posterior.argmax(axis=1)
        out: dict[int, list[int]] = {}
        for c in dict.fromkeys(int(c) for c in classes):
            cand = np.flatnonzero((labels == c) & (pred == c))
            if cand.size < self.k:
                cand = np.flatnonzero(labels == c)
            cand = cand[cand != i]
            top = cand[np.argsort(-sim[cand], kind="stable")[: self.k]]
            out[c] = top.astype(int).tolist()
        return out

    @property
    def source(self) -> str:
        """Where the features came from."""
        return str(self.load()["source"])


def top_classes(posterior_row: np.ndarray, classes: list[str], n: int = 3) -> list[dict[str, Any]]:
    """The ``n`` most probable classes: ``[{"label": name, "p": probability}, ...]``."""
    order = np.argsort(-posterior_row, kind="stable")[:n]
    return [{"label": classes[j], "p": round(float(posterior_row[j]), 4)} for j in order]
