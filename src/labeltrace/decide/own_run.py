"""Flag the suspects of a training you ran yourself: the one-training mode on a Recorder's dynamics.

:func:`find_suspects` is the ``single`` family of the detector table (``labeltrace scan --detector
single``) on the dynamics of one plain run — your own loop with :class:`labeltrace.Recorder`, the
Lightning callback or the HF Trainer — at no extra training: a score, and a flagged set cut by the
one-training count (:func:`labeltrace.decide.count.one_run_count`). Give the run's ``features``
(e.g. the penultimate embedding of your network, or frozen backbone features), one row per sample,
and on a small set the count also reads their nearest neighbours' labels, as the scan does.
"""

from __future__ import annotations

import numpy as np

from labeltrace.decide import detectors
from labeltrace.decide.evidence import Evidence
from labeltrace.record import Dynamics
from labeltrace.record.recording import RecordedRun

__all__ = ["find_suspects"]

#: the detectors that read one plain run
ONE_RUN = ("single", "single_aum", "single_sei", "single_confidence")


def find_suspects(dynamics: Dynamics, *, features: np.ndarray | None = None, detector: str = "single",
                  knn_k: int = 10) -> detectors.Detection:  # fmt: skip
    """The suspects of one plain training run: ``Detection(score, flagged, cutoff, rule)``.

    ``dynamics``: ``Recorder.dynamics()`` of a run without an auxiliary class, every sample
    recorded at least once (an unrecorded sample is named in the error). ``detector``: one of
    :data:`ONE_RUN` (``single`` = minus the mean loss, the benchmark's one-training mode).
    ``features``: ``(N, D)``, optional (see the module docstring).
    """
    if detector not in ONE_RUN:
        raise ValueError(f"detector must be one of {ONE_RUN} (one plain run), got {detector!r}")
    if not isinstance(dynamics, Dynamics):
        raise ValueError(f"expected a labeltrace Dynamics (Recorder.dynamics()), got {type(dynamics).__name__}")
    n, k = dynamics.num_samples, dynamics.num_classes
    unseen = np.flatnonzero(dynamics.labels < 0)
    if unseen.size:
        from labeltrace._checks import describe_ids

        raise ValueError(f"{unseen.size} samples were never recorded ({describe_ids(unseen)}): record every "
                         "sample at least once (rec.update with its id) before flagging")
    if features is not None:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[0] != n:
            raise ValueError(f"features must be (N={n}, D), got shape {features.shape}")
    run = RecordedRun(dynamics, np.zeros(n, dtype=bool), k)
    usable = features if features is not None and n > knn_k + 1 else None
    ev = Evidence(dynamics.labels, k, single=run, features=usable, knn_k=knn_k)
    return detectors.detect(detector, ev)
