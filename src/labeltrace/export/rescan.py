"""The ``labeltrace scan`` command a cleaned-label export prints: the images scanned again with the
reviewed labels, by the model and with the settings the first scan ran."""

from __future__ import annotations

import os
from pathlib import Path

from labeltrace.export.cleaned import _rescannable, classes_path, missing_like_labels
from labeltrace.rundir import Run

__all__ = ["rescan_command"]


def rescan_command(run: Run, out: str | os.PathLike[str]) -> str | None:
    """The ``labeltrace scan`` command that scans the images again with the cleaned labels ``out``
    (written by :func:`~labeltrace.export.cleaned.export_labels`): their paths are the scan's, relative to the data root; a
    manifest's own column names, its ``--truth-column``, the class list written beside ``out``, ``--no-missing-markers``
    (for a class named ``none``) and ``--on-bad-image skip`` (when the scan skipped images) are
    passed on, and so are the model the scan ran, its settings and, where ``auto`` would differ, its
    precision (:func:`_scan_flags`). A run
    written from your own training (:func:`labeltrace.write_run`) is checked again by training
    again: its command reads the new recording (``--recording NEW_RECORDER.npz``, and
    ``--features NEW_FEATURES.npy`` when it had features) instead. A run scanned from an ``.npz``
    and exported as one (:mod:`labeltrace.export.cleaned_npz`) scans that file, its split and class
    list. None for an array run's ``.npy`` or CSV."""

    out = Path(out)
    if out.suffix.lower() == ".npz":  # the scanned .npz again, with the cleaned labels
        return _npz_command(run, out) if _rescannable(run, out) else None
    data_root = run.data_root
    if data_root is None or not _rescannable(run, out):
        return None
    cmd = ["labeltrace", "scan", str(data_root), "--labels", str(out), "--out", "NEW_RUN_DIR",
           *(_own_flags(run) if run.own_training else _scan_flags(run))]
    data = run.meta["data"]
    if data.get("group_by_folder"):  # the cleaned labels are a manifest: their group column
        cmd += ["--group-column", "group"]
    if data.get("kind") == "manifest":
        for flag, key, default in (("--path-column", "path_column", "path"), ("--label-column", "label_column", "label"),
                                   ("--id-column", "id_column", "id"), ("--group-column", "group_column", None)):  # fmt: skip
            if data.get(key) not in (None, default):
                cmd += [flag, str(data[key])]
    if (truth := _truth_column(run)) is not None:  # the column stays in the cleaned manifest: the metrics too
        cmd += ["--truth-column", truth]
    if classes_path(out).is_file():  # export_labels writes it, or removes an older one
        cmd += ["--classes", str(classes_path(out))]
    root = data_root.resolve()
    for r in data.get("allowed_roots") or ():  # the folders besides the data root the scan read files in
        if Path(r).resolve() != root:
            cmd += ["--allow-root", str(r)]
    if data.get("max_pixels") is not None:
        cmd += ["--max-pixels", str(data["max_pixels"])]
    if data.get("skipped"):  # the scan skipped unreadable images: so must the new one
        cmd += ["--on-bad-image", "skip"]
    if data.get("missing_markers") is False or missing_like_labels(run):
        cmd += ["--no-missing-markers"]  # a class or id named 'none': read them as they are
    return _joined(cmd)


def _npz_command(run: Run, out: Path) -> str:
    """The rescan of a cleaned ``.npz``: that file, the split the scan read, the class list beside."""
    from labeltrace.export.cleaned_npz import npz_source

    split = str((npz_source(run) or {}).get("split", "train"))
    cmd = ["labeltrace", "scan", str(out), *(["--split", split] if split != "train" else [])]
    if classes_path(out).is_file():
        cmd += ["--classes", str(classes_path(out))]
    cmd += ["--out", "NEW_RUN_DIR", *(_own_flags(run) if run.own_training else _scan_flags(run))]
    return _joined(cmd)


def _truth_column(run: Run) -> str | None:
    """The manifest column of known true labels the scan read (``--truth-column``): run.json's
    ``data.truth_column``, or, for a run written before it was kept there, its command's flag (as
    argparse reads it: ``--truth-column COL``, ``--truth-column=COL`` or a prefix of the flag)."""
    data = run.meta.get("data") or {}
    if data.get("kind") != "manifest":
        return None
    if isinstance(data.get("truth_column"), str):
        return str(data["truth_column"])
    argv = run.meta.get("command")
    if not isinstance(argv, list):
        return None
    for i, a in enumerate(argv):
        name, eq, value = str(a).partition("=")
        if len(name) > 3 and "--truth-column".startswith(name):  # "--t" alone is ambiguous: argparse refuses it
            if eq:
                return value
            return str(argv[i + 1]) if i + 1 < len(argv) else None
    return None


#: the words of a rescan command the user fills in
_PLACEHOLDERS = ("NEW_RUN_DIR", "NEW_RECORDER.npz", "NEW_FEATURES.npy")


def _joined(cmd: list[str]) -> str:
    """The command as a shell reads it: every word quoted but the placeholders."""
    import shlex

    return " ".join(c if c in _PLACEHOLDERS else shlex.quote(c) for c in cmd)


def _own_flags(run: Run) -> list[str]:
    """A write_run's rescan: the recording of the user's training on the cleaned labels (and its
    features, when the first run had them), its one-training detector when not the default."""
    from labeltrace.run_layout import recording_dir

    rec = recording_dir(run.path)
    out = ["--recording", "NEW_RECORDER.npz"]
    if rec.finished and rec.meta().get("embedding"):
        out += ["--features", "NEW_FEATURES.npy"]
    detector = (run.meta.get("config") or {}).get("detector")
    return out + (["--detector", str(detector)] if detector not in (None, "single") else [])


#: the scan settings (with a ``labeltrace scan`` flag) a rescan keeps: the model's and the
#: detector's; not the outputs' (csv), the machine's (device, workers, stream, cache), nor --noise
#: (refused for a cleaned export). The precision is passed where ``auto`` would train otherwise
#: (:func:`_precision_flag`)
_KEPT = ("epochs", "runs", "folds", "batch_size", "lr", "weight_decay", "schedule", "augment", "image_size", "width",
         "head", "hidden", "finetune", "detector", "seed", "clip_model", "clip_template", "aux_prompt", "early_stop",
         "csv")  # the tables the first scan wrote (a new-user audit: round 2 had no samples.csv); not the machine's


def _scan_flags(run: Run) -> list[str]:
    """The flags that make the rescan train what the first scan trained: the model it ran (not
    ``auto``: a probe on the cleaned labels can pick the other one, and the counts of the two rounds
    then compare two models), the feature resolution it used, and every setting it was given that
    the model reads."""
    from dataclasses import asdict

    from labeltrace.scan_settings import ScanConfig
    from labeltrace.scan_unread import unread_settings

    config, default = run.meta.get("config") or {}, asdict(ScanConfig())
    model = run.meta.get("model")
    out = ["--model", str(model)] if model else []
    if model == "effnet-lite0" and not config.get("finetune") and isinstance(config.get("resolution"), int):
        out += ["--resolution", str(config["resolution"])]
    kept = {key: config.get(key, default[key]) for key in _KEPT}
    # settings the model does not read: a rescan naming its model refuses them
    unread = set(unread_settings(ScanConfig(**kept), str(model))) if model else set()
    for key, v in kept.items():
        if v is None or v == default[key] or key in unread:
            continue
        flag = "--" + key.replace("_", "-")
        out += ([flag] if v else [f"--no-{flag[2:]}"]) if isinstance(v, bool) else [flag, str(v)]
    return out + _precision_flag(run, str(model) if model else None)


def _precision_flag(run: Run, model: str | None) -> list[str]:
    """``--precision P`` when the scan trained in ``P`` (run.json's ``train.precision``; float32
    before the field) and ``--precision auto`` would train the rescan otherwise on this machine — a
    scan named ``--precision float32`` on a CPU with native bfloat16, or one from before ``auto`` was
    the default; nothing where ``auto`` gives the same. Likewise ``--backbone-precision P`` for frozen
    features extracted in ``P`` (run.json's ``config.backbone_precision``; float32 before the field)."""
    from labeltrace.scan_settings import ScanConfig, backbone_precision, training_precision
    from labeltrace.train.precision import TRAINED

    ran = (run.meta.get("train") or {}).get("precision", "float32")
    config = run.meta.get("config") or {}
    detector = config.get("detector", ScanConfig.detector)
    if model is None or ran not in TRAINED:
        return []
    try:  # as the rescan's own --precision auto (and --device auto) would pick here
        auto = training_precision(model, ScanConfig(detector=str(detector)))
    except ValueError:  # a detector not registered here: name the precision
        auto = None
    flags = [] if auto == ran else ["--precision", str(ran)]
    if model == "effnet-lite0" and not config.get("finetune"):  # its features' precision too
        extracted = config.get("backbone_precision", "float32")  # float32 before the field
        if extracted in TRAINED and backbone_precision(model, ScanConfig()) != extracted:
            flags += ["--backbone-precision", str(extracted)]
    return flags
