"""Flag the suspects of a training you ran yourself: the one-training mode on a Recorder's dynamics.

:func:`find_suspects` is the ``single`` family of the detector table (``labeltrace scan --detector
single``) on the dynamics of one plain run — your own loop with :class:`labeltrace.Recorder`, the
Lightning callback or the HF Trainer — at no extra training: a score, and a flagged set cut by the
one-training count (:func:`labeltrace.decide.count.one_run_count`). Give the run's ``features``
(e.g. the penultimate embedding of your network, or frozen backbone features), one row per sample,
and on a small set the count also reads their nearest neighbours' labels, as the scan does.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from labeltrace._checks import check_int, counted, describe_ids, id_list
from labeltrace.decide import detectors
from labeltrace.decide.count import LARGE
from labeltrace.decide.evidence import Evidence
from labeltrace.record import Dynamics
from labeltrace.record.batch import to_numpy
from labeltrace.record.recording import RecordedRun

__all__ = ["find_suspects", "one_run_evidence", "with_count"]

#: the detectors that read one plain run
ONE_RUN = ("single", "single_aum", "single_sei", "single_confidence")


def find_suspects(dynamics: Dynamics, *, features: Any = None, detector: str = "single",
                  knn_k: int = 10, groups: Any = None) -> detectors.Detection:  # fmt: skip
    """The suspects of one plain training run:
    ``Detection(name, score, flagged, cutoff, rule, n_hat)``.

    ``name`` is ``detector``; ``score`` is ``(N,)``, lower = more suspect; ``flagged`` the
    ``(N,)`` mask ``score < cutoff``; ``n_hat`` the estimated count of wrong labels that set the
    cut, named in ``rule`` (e.g. ``"contradicted-count 12"``). ``flagged.sum()`` equals
    ``n_hat`` unless scores tie at the cut: a tied group is flagged whole or not at all
    (:func:`labeltrace.decide.cutoffs.top_fraction`), and ``rule`` then says so, e.g.
    ``"contradicted-count 4 (4 asked, 5 flagged: 4 samples tie at the cut, flagged all or none)"``.

    ``dynamics``: ``Recorder.dynamics()`` of a run without an auxiliary class, every sample
    recorded in at least one finished epoch (``rec.update`` with its id, then ``rec.end_epoch()``;
    an unrecorded sample is named in the error; samples recorded in fewer than half as many epochs
    as the most recorded ones are named in a ``RuntimeWarning``: their scores average fewer,
    earlier epochs), and, with features or on ``N >= 5000`` (where the
    count reads per-class estimates), every class in ``[0, num_classes)`` given to at least one
    sample (record with ``num_classes`` equal to the classes present otherwise). On
    ``N >= 5000`` samples the count reads the run's mean softmax: record with
    ``Recorder(..., keep_probs=1)`` or more (the default 5 does; ``keep_probs=0`` raises).
    ``detector``: one of :data:`ONE_RUN` (``single`` = minus the mean loss, the benchmark's
    one-training mode).

    ``features``: ``(N, D)`` numpy array or torch tensor, optional (see the module docstring);
    float32 and float64 are used as they are, lower-precision floats widened to float32. With
    features, ``knn_k`` (an int, ``1 <= knn_k <= N - 2``) is the neighbour count. The
    neighbours are exact, ties broken by the lower sample index: among exact duplicate feature
    rows, which ones are a sample's neighbours depends on the samples' order
    (:mod:`labeltrace.score.knn`). ``groups``: one key per sample (a patient, a study; read as
    text), optional: with features, each sample's neighbours are found outside its group, so that
    another image of the same patient cannot vouch for a label the two share (without features
    nothing reads them).
    """
    ev = one_run_evidence(dynamics, features=features, detector=detector, knn_k=knn_k, groups=groups)
    return with_count(detectors.detect(detector, ev))


def one_run_evidence(dynamics: Dynamics, *, features: Any = None, detector: str = "single", knn_k: int = 10,
                     groups: Any = None) -> Evidence:  # fmt: skip
    """The evidence :func:`find_suspects` reads, every input checked as it says; ``groups``: each
    sample's group (a patient), whose other samples are never its kNN neighbours."""
    if detector not in ONE_RUN:
        raise ValueError(f"detector must be one of {ONE_RUN} (one plain run), got {detector!r}")
    if not isinstance(dynamics, Dynamics):
        raise ValueError(f"expected a labeltrace Dynamics (Recorder.dynamics()), got {type(dynamics).__name__}")
    knn_k = check_int("knn_k", knn_k, 1, hint=" (the neighbours of each sample)")
    n, k = dynamics.num_samples, dynamics.num_classes
    _check_recorded(dynamics, per_class=features is not None or n >= LARGE)
    if features is not None:
        features = _features(features, n, knn_k)
    run = RecordedRun(dynamics, np.zeros(n, dtype=bool), k)
    return Evidence(dynamics.labels, k, single=run, features=features, knn_k=knn_k, groups=groups)


def _check_recorded(dynamics: Dynamics, *, per_class: bool) -> None:
    """Every sample seen in a finished epoch, a kept softmax on a large set, and, where the count
    reads per-class estimates (``per_class``: features given, or a large set), every class present
    (a small set without features is counted by its contradicted samples, which needs no class)."""
    n, k = dynamics.num_samples, dynamics.num_classes
    if dynamics.num_epochs == 0:
        raise ValueError("these dynamics hold no finished epoch: close each epoch with rec.end_epoch() after its "
                         "rec.update calls, then flag")
    seen = dynamics.n_seen  # a copy each read
    unseen = np.flatnonzero(seen == 0)  # labels are set by update(), before end_epoch()
    if unseen.size:
        raise ValueError(f"{counted(unseen.size, 'sample')} {'was' if unseen.size == 1 else 'were'} never recorded in a finished epoch "
                         f"({describe_ids(unseen)}): record every sample at least once (rec.update with its "
                         "id) and close each epoch with rec.end_epoch() before flagging")  # fmt: skip
    few = np.flatnonzero(2 * seen < seen.max())
    if few.size:
        warnings.warn(f"{few.size} of {n} samples {'was' if few.size == 1 else 'were'} recorded in fewer than half as many epochs as the most "
                      f"recorded ones ({int(seen[few].min())} of up to {int(seen.max())}): "
                      f"{describe_ids(few)}. Each score averages the epochs a sample was seen in, so a sample seen "
                      "only early keeps its early, high loss and is flagged more often: record every sample in "
                      "every epoch, or flag only among the samples recorded alike", RuntimeWarning, stacklevel=4)
    present = np.unique(dynamics.labels)
    empty = np.setdiff1d(np.arange(k), present)
    if per_class and empty.size:
        fix = (f"record with num_classes={present.size} (the classes present, {id_list(present)}), passing "
               f"logits[:, present] and the labels remapped to 0..{present.size - 1} "
               "(np.unique(labels, return_inverse=True))" if present.size >= 2 else
               f"only class {id_list(present)} has samples, and a label check needs at least 2 classes with samples")
        raise ValueError(f"class(es) {id_list(empty)} of num_classes={k} have no sample among the {n} recorded "
                         f"labels; find_suspects estimates the noise per class and needs every class to occur: {fix}")
    if n >= LARGE:
        try:
            dynamics.mean_posterior()
        except ValueError:
            raise ValueError(f"on {LARGE:,} samples or more (N={n}) find_suspects caps its count with the run's "
                             "mean softmax, but these dynamics kept none: record with Recorder(..., keep_probs=1) "
                             "or more (keep_probs=0 keeps no softmax)") from None  # fmt: skip


def _features(features: Any, n: int, knn_k: int) -> np.ndarray:
    """(N, D) real features, float32/float64 kept, narrower floats widened to float32, integers to float64."""
    x = to_numpy(features, "features")
    if x.dtype.kind not in "fiub":
        raise ValueError(f"features must be real numbers, got dtype {x.dtype}")
    if x.dtype.kind == "f" and x.dtype.itemsize < 4:
        x = x.astype(np.float32)  # float16 (bfloat16 arrives as float32): exact
    elif x.dtype.kind != "f":
        x = x.astype(np.float64)
    if x.ndim != 2 or x.shape[0] != n:
        raise ValueError(f"features must be (N={n}, D), got shape {x.shape}")
    zero = np.flatnonzero(~x.any(axis=1))
    if zero.size:
        raise ValueError(f"features are all zeros for {describe_ids(zero)}: the neighbours are found by cosine "
                         "similarity, which an all-zero row does not have; pass features without such rows (e.g. an "
                         "embedding taken before its last ReLU), or flag those samples apart")  # fmt: skip
    if knn_k >= n - 1:
        fix = f"pass knn_k <= {n - 2}, or no features" if n > 2 else "pass no features"
        raise ValueError(f"features: knn_k={knn_k} neighbours per sample need at least knn_k + 2 = {knn_k + 2} "
                         f"samples, got N={n}: {fix}")  # fmt: skip
    return x


def with_count(det: detectors.Detection) -> detectors.Detection:
    """``det``, checked to report the count that set its cut (its rule says when a tie at the cut
    flagged more or fewer: :func:`labeltrace.decide.flagging.top_k`)."""
    if det.n_hat is None:
        raise AssertionError(f"detector {det.name!r} did not report the count that set its cut")
    return det
