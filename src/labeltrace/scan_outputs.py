"""A scan's outputs: the samples table, every detector side by side, and run.json.

The columns follow the detector table: every detector whose needs the scan's recording meets
adds its score as a column (named by the detector, or by the score it shares with another), and
``run.json`` lists each of them with its rule and how many samples it flags — with precision,
recall, F1 and AUROC when the true labels are known (``--noise`` or ``--truth-column``).
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import sklearn
import torch

from labeltrace import __version__
from labeltrace import rundir as rd
from labeltrace._checks import describe_ids
from labeltrace.data import ImageDataset
from labeltrace.data.duplicates import conflicting_groups, group_members
from labeltrace.data.near_duplicates import Copies, search_settings
from labeltrace.decide import detectors
from labeltrace.decide.evidence import Evidence, combined_score
from labeltrace.decide.ranking import rank_of
from labeltrace.diagnostics import (
    contradicted_classes,
    contradicted_texts,
    identical_text,
    inflated_estimate,
    many_accused,
    no_better_than_one_class,
    overflagging,
    small_classes,
)
from labeltrace.evaluate import metrics
from labeltrace.models.inputs import Inputs
from labeltrace.record.recording import Recording
from labeltrace.run_files import identical_files
from labeltrace.run_images import write_images
from labeltrace.scan_account import config_used, cost, k_fold, protocol_used, trained
from labeltrace.score import probs as P
from labeltrace.train import TrainConfig

if TYPE_CHECKING:
    from labeltrace.scan_settings import ScanConfig

__all__ = ["side_by_side", "write_outputs", "write_results"]


def side_by_side(ev: Evidence, chosen: detectors.Detection) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every applicable detector's score column, and its result (or why it failed)."""
    cols: dict[str, np.ndarray] = {}
    results: dict[str, Any] = {}
    for name in detectors.available():
        if not detectors.applicable(name, ev):
            continue
        try:
            d = chosen if name == chosen.name else detectors.detect(name, ev)
        except ValueError as e:  # e.g. a GMM cutoff on scores that are not bimodal
            results[name] = {"failed": str(e)}
            continue
        cols.setdefault(detectors.get(name).column, d.score)
        results[name] = d
    return cols, results


def write_outputs(
    out: Path, ds: ImageDataset, config: ScanConfig, *, model: str, rec: Recording | None, ev: Evidence,
    det: detectors.Detection, post: np.ndarray, given: np.ndarray, truth: np.ndarray,
    noise_info: dict[str, Any] | None, inputs: Inputs, tcfg: TrainConfig, command: list[str] | None,
    origin: dict[str, Any] | None, fingerprint: dict[str, Any], timings: dict[str, float], t_start: float,
    probe: dict[str, Any] | None = None, resolution_probe: dict[str, Any] | None = None,
    distributed: dict[str, Any] | None = None, copies: Copies, cv_seconds: float | None = None,
    rescored: bool = False,
) -> tuple[pa.Table, dict[str, Any]]:  # fmt: skip
    """Write a scan's ``samples.parquet`` (+ csv), ``run.json`` and, for in-memory arrays that
    cannot be read again from a source, ``images.npy``; return the table and meta.
    ``cv_seconds``: the wall seconds of the K-fold fits behind the cross-validated probabilities,
    when this call made them (None: read back from the run directory, or not needed). ``rescored``:
    a finished scan scored again from its saved recording (it trained nothing now: run.json keeps
    when and how long it trained); a finished scan that trained again writes its own times."""
    described: dict[str, Any] = {
        "command": command, "config": config_used(config, rec), "model": model, "model_probe": probe,
        "resolution_probe": resolution_probe, "train": trained(rec, tcfg),
        "inputs": inputs.description, "protocol": protocol_used(rec, config, tcfg), "seed": config.seed,
        "distributed": distributed or {"world_size": 1, "backend": None},
        "cost": cost(out, rec, config, cv_seconds),
    }  # fmt: skip
    return write_results(out, ds, rec=rec, ev=ev, det=det, post=post, given=given, truth=truth,
                         noise_info=noise_info, origin=origin, fingerprint=fingerprint, timings=timings,
                         t_start=t_start, described=described, csv=config.csv, model=model, rescored=rescored,
                         noted=ds.notes,  # what reading the images warned of: the console's lines were lost
                         folds=rec.num_trainings if rec is not None and rec.held_out else
                         config.folds if k_fold(config) else None,  # the held-out folds
                         fold_of=_k_folds(ds, config, given, copies) if k_fold(config) and not
                         (rec is not None and rec.held_out) else None, copies=copies)  # fmt: skip


def _k_folds(ds: ImageDataset, config: ScanConfig, given: np.ndarray, copies: Copies) -> np.ndarray:
    """Each sample's fold of the K-fold probabilities (:func:`labeltrace.train.crossval.fold_ids`
    as they drew them), their own warning of copies left apart silenced: the outputs say it by file."""
    from labeltrace.train.folds import fold_ids, said_elsewhere

    with said_elsewhere():
        return fold_ids(given, n_folds=config.folds, seed=config.seed, groups=ds.groups, copies=copies.exact)


def write_results(
    out: Path, ds: ImageDataset, *, rec: Recording | None, ev: Evidence, det: detectors.Detection,
    post: np.ndarray, given: np.ndarray, truth: np.ndarray, noise_info: dict[str, Any] | None,
    origin: dict[str, Any] | None, fingerprint: dict[str, Any], timings: dict[str, float], t_start: float,
    described: dict[str, Any], csv: bool, model: str | None, noted: Sequence[str] = (), folds: int | None = None,
    copies: Copies, fold_of: np.ndarray | None = None, rescored: bool = True,
) -> tuple[pa.Table, dict[str, Any]]:  # fmt: skip
    """Write ``samples.parquet`` (+ csv when ``csv``), ``run.json`` and, for in-memory arrays
    that cannot be read again from a source, ``images.npy``; return the table and meta — for a
    scan (:func:`write_outputs`) or a recording of your own training
    (:func:`labeltrace.own_training.write_run`). ``described``: run.json's account of how the
    dynamics were made (``command``, ``config``, ``model``, ``train``, ``inputs``, ``protocol``,
    ``seed``, ``cost``, ...); ``model``: the model the warnings name (``run_layout.OWN_TRAINING``
    for your own training's);
    ``noted``: warnings already said (as Python warnings) that run.json keeps too, for the report;
    ``folds``: how many held-out folds judged the samples (None: none), ``fold_of`` each sample's (a
    cross-fitted recording's are its own; the K-fold probabilities' passed here); ``copies``: each sample's
    group of exact copies and of near-copies (:func:`labeltrace.data.near_duplicates.dataset_copies`:
    both callers find them in one pass before scoring, the kNN reading the exact ones); ``rescored``: what
    ``out`` holds of an earlier writing of these results is kept (its creation, its training's time)."""
    t0 = time.perf_counter()
    N, classes = len(ds), list(ds.classes)
    cols, results = side_by_side(ev, det)
    if ev.has("in_sample"):
        cols["variability"] = combined_score("variability", ev.in_sample)
    cols["self_confidence"] = P.self_confidence(post, given)
    cols["normalized_margin"] = P.normalized_margin(post, given)
    noise_rate_est = float(P.estimate_noise_rate(post, given))
    doubted = contradicted_classes(post, given, classes)
    for text in contradicted_texts(doubted):
        print(f"warning: {text}", file=sys.stderr)
    sugg = post.argmax(1)
    warned = [w for w in (overflagging(det.name, det.flagged, model=model),
                          None if noise_info is not None else many_accused(det.name, det.flagged, sugg, given, model=model),
                          no_better_than_one_class(sugg, given, classes),
                          inflated_estimate(post, given, classes, rate=noise_rate_est), small_classes(given, classes, folds))
              if w is not None]  # fmt: skip
    unscored = np.isnan(det.score)
    if unscored.any():
        warned.append(f"{det.name} could not score {describe_ids(unscored)}; they rank first")
    identical = (identical_files(out / rd.IMAGE_FILES, [ds.root / s for s in ds.sources])
                 if ds.root is not None and (out / rd.IMAGE_FILES).is_file() else [])  # fmt: skip
    exact = np.asarray(copies.exact, dtype=np.int64)
    members = group_members(exact)
    warned += identical_text([m.tolist() for m in members], given, classes, [str(s) for s in ds.sources], ds.groups,
                             held_out=folds is not None,
                             folds=rec.folds if rec is not None and rec.held_out else fold_of)  # fmt: skip
    for w in warned:  # kept in run.json too: the report shows them
        print(f"warning: {w}", file=sys.stderr)
    table_cols: dict[str, Any] = {
        "id": np.arange(N, dtype=np.int64), "external_id": list(ds.ids), "path": list(ds.sources),
        "given_label": [classes[i] for i in given], "given_label_id": given.astype(np.int64),
        "suggested_label": [classes[i] for i in sugg], "suggested_label_id": sugg.astype(np.int64),
        "suggested_prob": post[np.arange(N), sugg], "score": det.score, "is_suspect": det.flagged,
        "rank": rank_of(det.score),
        **({"group": list(ds.groups)} if ds.groups is not None else {}),
        **({"duplicate_group": exact} if members else {}),  # only where the data holds copies
    }  # fmt: skip
    table_cols.update(cols)
    for name, v in table_cols.items():  # -0.0 + 0.0 = 0.0: a negated zero count (forgetting) is no "-0" in a CSV
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            table_cols[name] = v + 0.0
    if rec is not None and not rec.held_out:
        for r, run in enumerate(rec.runs):
            if run.has_auxiliary:
                table_cols[f"aux_run{r}"] = run.is_auxiliary
    if rec is not None and rec.folds is not None:
        table_cols["fold"] = rec.folds.astype(np.int64)
    per_det: dict[str, Any] = {}
    is_noisy = given != truth if noise_info is not None else None
    for name, d in results.items():
        if not isinstance(d, detectors.Detection):
            per_det[name] = {"rule": "", "failed": d["failed"]}
            continue
        row: dict[str, Any] = {"rule": d.rule, "cutoff": d.cutoff, "n_hat": d.n_hat, "flagged": int(d.flagged.sum())}
        if is_noisy is not None:
            r_ = metrics.detection_report(is_noisy, d.flagged, d.score, nan_policy="omit")
            row |= {k: r_[k] for k in ("precision", "recall", "f1", "auroc")}
            row["f1_at_true_rate"] = metrics.report_at_true_rate(is_noisy, d.score, nan_policy="omit")["f1"]
        per_det[name] = row
    report = None
    if is_noisy is not None:
        table_cols["true_label"] = [classes[i] for i in truth]
        table_cols["true_label_id"] = truth.astype(np.int64)
        table_cols["is_noisy"] = is_noisy
        report = metrics.detection_report(is_noisy, det.flagged, det.score)
        assert noise_info is not None
        noise_info["per_score"] = {
            c: {k: metrics.report_at_true_rate(is_noisy, v, nan_policy="omit")[k] for k in ("auroc", "f1")}
            for c, v in cols.items()
        }
        noise_info["per_detector"] = {k: v for k, v in per_det.items() if "failed" not in v}
    table = pa.table(table_cols)
    timings["score"] = time.perf_counter() - t0
    rd.write_table(out / rd.SAMPLES, table)
    duplicates = write_duplicates(out, ds, exact, given)
    near_duplicates = write_near_duplicates(out, ds, copies.near, copies.closest, exact, given,
                                            settings=copies.settings)
    if csv:
        rd.write_table(out / rd.SAMPLES_CSV, table)
    else:  # an earlier scan's of this run (re-scored without --csv) would not be this table
        (out / rd.SAMPLES_CSV).unlink(missing_ok=True)
    source = rd.image_source(origin)  # npz / example: the report reads thumbnails from there
    if ds.root is None and source is None:  # arrays handed over in memory: keep their pixels to show them
        write_images(ds, out / rd.IMAGES, out / rd.IMAGES_FLAT, out / rd.IMAGES_INDEX)
    timings["total"] = time.perf_counter() - t_start
    # a finished scan re-scored (your own training's, always): it trained nothing now, keep when and how long it did
    earlier = rd.held_meta(out) if rescored else {}
    det_row = detectors.get(det.name)
    meta: dict[str, Any] = {
        "format": rd.FORMAT, "labeltrace_version": __version__,
        "created": earlier.get("created") or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **({"rescored": time.strftime("%Y-%m-%dT%H:%M:%S%z")} if earlier else {}),
        **described, "runs": len(rec.runs) if rec is not None else 0,
        "data": {"kind": ds.kind, **(origin or {}), **({"image_source": source} if source else {}),
                 "root": str(ds.root) if ds.root else None,
                 "allowed_roots": [str(r) for r in ds.allowed_roots],  # image files outside are never read
                 "num_samples": N, "classes": classes, "skipped": [list(s) for s in ds.skipped]},
        "fingerprint": fingerprint,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
                     "scikit-learn": sklearn.__version__, "platform": platform.platform(),
                     # the results depend on them (float sums in another order), the fingerprint does not
                     "torch_threads": torch.get_num_threads()},
        "timings": _timings(timings, earlier),
        "detector": {"name": det.name, "rule": det.rule, "cutoff": det.cutoff, "n_hat": det.n_hat,
                     "score_column": "score",
                     "summary": det_row.summary, "needs": list(det_row.needs)},
        "detectors": per_det, "scores": list(cols),
        "counts": {"n": N, "flagged": int(det.flagged.sum()),
                   "auxiliary_per_run": [int(r.is_auxiliary.sum()) for r in rec.runs] if rec else []},
        "noise_rate_estimate": noise_rate_est, "contradicted_classes": doubted, "warnings": [*noted, *warned],
        "identical_files": identical, "duplicates": duplicates, "near_duplicates": near_duplicates,
        "noise": noise_info,
        "metrics": report,
    }  # fmt: skip
    rd.write_json(out / rd.RUN_JSON, meta)
    return table, meta


def held_copies(out: Path, ds: ImageDataset, settings: dict[str, float] | None = None) -> Copies | None:
    """The copies the finished scan in ``out`` found when it scanned these very image files — the same
    names, sizes and modification times and sample ids (its fingerprint's data identity) — else None:
    looking for them again decodes every image (in-memory arrays, read in place, are not read back).
    Its exact copies are its samples table's ``duplicate_group``, its near-copies its
    ``near_duplicates`` table (none when its run.json counts no groups); None too when either is
    missing or does not match the counts of its run.json, or the near-copies were found with other
    ``settings`` than these (:func:`~labeltrace.data.near_duplicates.search_settings`, the defaults
    unless given: threshold, thumbnail side, floor) — or by an older scan that did not record them all."""
    from labeltrace.models.inputs import data_identity

    held = rd.held_fingerprint(out)
    if ds.root is None or not held or held.get("data") != data_identity(ds):
        return None
    meta = rd.held_meta(out)
    counts, near_counts = meta.get("duplicates"), meta.get("near_duplicates")
    if not isinstance(counts, dict) or not isinstance(near_counts, dict):  # no finished scan, or an older one
        return None
    n = len(ds)
    exact = _held_exact(out, n) if counts.get("groups") else np.full(n, -1, dtype=np.int64)
    if exact is None:
        return None
    wanted = search_settings() if settings is None else dict(settings)
    near = _held_near(out, n, near_counts, exact, wanted)
    return None if near is None else Copies(exact, *near, settings=wanted)


def _held_exact(out: Path, n: int) -> np.ndarray | None:
    """The ``duplicate_group`` column of the samples table in ``out``, read as one int64 array (not
    as text, one sample at a time), or None where it cannot be trusted: missing or unreadable, not
    ``n`` rows, not integers, or with a missing value."""
    col = rd.held_array(out, "duplicate_group")  # missing, damaged or of another layout: looked for again
    if col is None or len(col) != n or col.null_count or not pa.types.is_integer(col.type):
        return None
    return np.asarray(col.to_numpy(), dtype=np.int64)


def _held_near(out: Path, n: int, counts: dict[str, Any], exact: np.ndarray, settings: dict[str, float]
               ) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """The near-copy groups and closest cosines of the finished scan in ``out`` (its
    ``near_duplicates`` table, run.json's ``counts`` of it), or None where they cannot be trusted:
    found with other ``settings``, or with settings run.json does not record (an older scan's)."""
    if any(k not in counts or counts[k] != v for k, v in settings.items()):
        return None
    near, closest = np.full(n, -1, dtype=np.int64), np.full(n, np.nan, dtype=np.float32)
    if not counts.get("groups"):
        return near, closest
    try:
        import pyarrow.parquet as pq

        t = pq.read_table(out / rd.NEAR_DUPLICATES, columns=["id", "near_group", "closest", "duplicate_group"])
        ids, grp, cos, dup = (t.column(k).to_numpy() for k in ("id", "near_group", "closest", "duplicate_group"))
    except Exception:  # noqa: BLE001 - missing, damaged or of another layout: looked for again
        return None
    if (ids.size != counts.get("images_in_groups") or ids.size != np.unique(ids).size or ids.size == 0
            or ids.min() < 0 or ids.max() >= n or not np.array_equal(dup, exact[ids])
            or np.unique(grp).size != counts.get("groups") or grp.min() < 0):  # fmt: skip
        return None
    near[ids], closest[ids] = grp, cos.astype(np.float32)
    return near, closest


def _write_groups(out: Path, names: tuple[str, str], ds: ImageDataset, groups: np.ndarray, given: np.ndarray,
                  column: str, extra: Callable[[np.ndarray], dict[str, np.ndarray]]
                  ) -> tuple[np.ndarray, int, int] | None:  # fmt: skip
    """``names`` (a Parquet table and its CSV), one row per member of each group of ``groups``
    (:func:`~labeltrace.data.duplicates.group_members`): its group (``column``), whether the group's
    labels differ, the group's size, the ``extra`` columns of those sample ids, then the sample's id,
    external id, path and given label; removed when there are no groups (an earlier scan's).
    Returns (the member ids, the groups, the groups whose labels differ), or None for none."""
    members = group_members(groups)
    if not members:
        for name in names:
            (out / name).unlink(missing_ok=True)
        return None
    differ = conflicting_groups(groups, given)
    ids = np.concatenate(members)
    grp = groups[ids]
    classes = list(ds.classes)
    table = pa.table({
        column: grp.astype(np.int64), "labels_differ": differ[grp], "group_size": np.bincount(grp)[grp],
        **extra(ids), "id": ids.astype(np.int64), "external_id": [ds.ids[i] for i in ids.tolist()],
        "path": [ds.sources[i] for i in ids.tolist()], "given_label": [classes[given[i]] for i in ids.tolist()],
        "given_label_id": given[ids].astype(np.int64),
    })  # fmt: skip
    for name in names:
        rd.write_table(out / name, table)
    return ids, len(members), int(differ.sum())


def write_duplicates(out: Path, ds: ImageDataset, copies: np.ndarray, given: np.ndarray) -> dict[str, Any]:
    """``duplicates.parquet`` and ``duplicates.csv`` (one row per copy: its group, whether the
    group's labels differ, the sample's id, external id, path and given label), written when the
    data holds copies and removed otherwise (an earlier scan's); returns run.json's ``duplicates``."""
    done = _write_groups(out, (rd.DUPLICATES, rd.DUPLICATES_CSV), ds, copies, given, "duplicate_group", lambda ids: {})
    if done is None:
        return {"images_in_groups": 0, "copies": 0, "groups": 0, "conflicting_groups": 0, "table": None}
    ids, groups, differ = done
    return {"images_in_groups": int(ids.size), "copies": int(ids.size - groups), "groups": groups,
            "conflicting_groups": differ, "table": rd.DUPLICATES}  # fmt: skip


def write_near_duplicates(out: Path, ds: ImageDataset, near: np.ndarray, closest: np.ndarray, copies: np.ndarray,
                          given: np.ndarray, *, settings: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    """``near_duplicates.parquet`` and ``.csv`` (one row per member of a group of likely copies,
    :func:`labeltrace.data.near_duplicates.dataset_near_duplicates`: its group, whether the
    group's labels differ, its closest cosine within the group, its exact-copy group, the sample's
    id, external id, path and given label), removed when there are none; returns run.json's
    ``near_duplicates``, with the ``settings`` the groups were found with
    (:func:`labeltrace.data.near_duplicates.search_settings`). A table of its own: readers of ``duplicates.parquet`` (sure copies) are
    never handed a likely one."""
    done = _write_groups(out, (rd.NEAR_DUPLICATES, rd.NEAR_DUPLICATES_CSV), ds, near, given, "near_group",
                         lambda ids: {"closest": closest[ids].astype(np.float64),
                                      "duplicate_group": copies[ids].astype(np.int64)})  # fmt: skip
    if done is None:
        return {"images_in_groups": 0, "groups": 0, "conflicting_groups": 0, **settings, "table": None}
    ids, groups, differ = done
    return {"images_in_groups": int(ids.size), "groups": groups, "conflicting_groups": differ,
            **settings, "table": rd.NEAR_DUPLICATES}  # fmt: skip


def _timings(now: dict[str, float], earlier: dict[str, Any]) -> dict[str, float]:
    """run.json's timings: this scan's, or for a finished scan re-scored (it trained nothing now)
    the training time it kept, with this call's beside as ``train_now`` and ``total_now``, and
    ``total`` the kept training plus this call's time outside training (what the result cost)."""
    kept = (earlier.get("timings") or {}).get("train")
    if kept is None:
        return dict(now)
    train_now = now.get("train", 0.0)
    return now | {"train": kept, "train_now": train_now, "total_now": now["total"],
                  "total": kept + now["total"] - train_now}  # fmt: skip
