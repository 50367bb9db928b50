"""``labeltrace scan DATA --recording recorder.npz``: the run directory of a training you recorded
yourself (:func:`labeltrace.write_run`), for the report, the review page, the exports and the queue."""

from __future__ import annotations

import argparse
import sys
import time

__all__: list[str] = []


#: the scan's settings of the training it runs, with their command-line defaults: a recording was
#: trained already, so none of them may be given beside --recording
TRAINING_FLAGS = {
    "model": "auto", "epochs": None, "runs": 2, "folds": 5, "batch_size": None, "lr": None, "weight_decay": None,
    "schedule": "cosine", "augment": None, "image_size": None, "width": None, "head": "mlp", "hidden": None,
    "finetune": False, "resolution": None, "noise": None, "seed": 0, "early_stop": None, "stream": None,
    "workers": None, "device": "auto", "precision": "auto",
    "backbone_precision": "auto", "cache_dir": None, "clip_model": None, "clip_template": "a photo of a {}",
    "aux_prompt": "a photo of something else",
}  # fmt: skip


def _check_flags(args: argparse.Namespace) -> str:
    """The detector a --recording run reads (``single`` unless a one-training detector is named);
    a training setting given beside --recording, or --features without it, is refused by name."""
    from labeltrace.decide.own_run import ONE_RUN

    if args.recording is None:
        if args.features is not None:
            raise ValueError("--features gives the embedding of your own training's network: it goes with "
                             "--recording (labeltrace scan trains its own networks and reads their embeddings)")
        return ""
    named: frozenset[str] = getattr(args, "named", frozenset())  # main's: what the command line named
    given = [f"--{k.replace('_', '-')}" for k in TRAINING_FLAGS  # named (at its default too), or set to another value
             if k in named or getattr(args, k) != TRAINING_FLAGS[k]]
    if given:
        raise ValueError(f"--recording reads a training you ran: {', '.join(given)} set a training labeltrace would "
                         "run, and none runs (leave them out)")  # fmt: skip
    detector = args.detector or "single"
    if detector not in ONE_RUN:
        raise ValueError(f"--recording reads one plain training: --detector one of {', '.join(ONE_RUN)} "
                         f"(default single), not {detector}")  # fmt: skip
    return detector


def scan_recording(args: argparse.Namespace, detector: str) -> int:
    """``labeltrace scan --recording``: the dataset read as the scan reads it, the recording and its
    features scored and written by :func:`labeltrace.write_run`, the summary printed."""
    import numpy as np

    from labeltrace.cli_data import _check_truth_column, _load_dataset, _say_skipped, _truth_labels
    from labeltrace.own_training import read_recorder, write_run
    from labeltrace.relabel.features import check_features_file
    from labeltrace.report.summary import print_summary
    from labeltrace.scan_settings import ScanConfig

    knn_k = ScanConfig.knn_k  # the neighbours the count reads with --features: the scan's

    _check_truth_column(args)
    rec = read_recorder(args.recording)  # before DATA is read: a wrong file is said at once
    ds, origin = _load_dataset(args)
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    _say_skipped(ds, "; the recording must number the samples without them")
    truth, origin = _truth_labels(args, ds, origin)
    features = None
    if args.features is not None:
        check_features_file(args.features, len(ds), rows=f"one row per sample of DATA ({len(ds)}), in its order")
        features = np.load(args.features, allow_pickle=False)
        if len(ds) < knn_k + 2:  # as a scan does: too few samples for the neighbours the count reads
            print(f"warning: {len(ds)} samples are too few for the {knn_k} nearest neighbours the count reads "
                  f"(at least {knn_k + 2}): --features left out", file=sys.stderr)  # fmt: skip
            features = None
    log(f"{len(ds)} samples, {ds.n_classes} classes, your training's recording {args.recording} → {args.out}")
    t0 = time.perf_counter()
    res = write_run(ds, rec, args.out, features=features, detector=detector, knn_k=knn_k, true_labels=truth,
                    origin=origin, command=args.argv, force=args.force, csv=args.csv, log=log)  # fmt: skip
    print_summary(res.run_dir, top=args.top, elapsed=time.perf_counter() - t0)
    return 0
