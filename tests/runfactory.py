"""Build small, realistic run directories for the report / review / export tests.

:func:`make_run` simulates what ``labeltrace scan`` writes: a dataset of tiny 8×8 images whose
colour follows the *true* class (so a mislabeled sample visibly looks like another class), two
recorded training runs with an auxiliary class, the SEI / AUM scores computed from the recorded
dynamics, a detector cutoff, and every file the run directory format asks for.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from labeltrace import rundir
from labeltrace.record import Recorder
from labeltrace.record.recording import RecordedRun, Recording
from labeltrace.rundir import FORMAT, SAMPLE_COLUMNS, write_json, write_table

torch.set_num_threads(1)  # tiny tensors; the test machine has 2 shared cores

Kind = Literal["folder", "manifest", "arrays"]
Style = Literal["colour", "shapes"]
SHAPES = ("circle", "square", "triangle", "cross", "diamond", "ring")

DEFAULT_CLASSES = (
    "airplane",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
    "car",
)
# One base colour per true class; images are that colour plus noise.
_PALETTE = np.array(
    [[220, 60, 50], [60, 170, 80], [50, 90, 210], [230, 190, 40], [150, 70, 190],
     [40, 190, 200], [240, 130, 40], [120, 120, 120], [200, 90, 150], [90, 60, 30]],
    dtype=np.float64,
)  # fmt: skip


def _shape_mask(j: int, size: int) -> np.ndarray:
    """(size, size) bool mask of shape ``SHAPES[j % 6]``, centred."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    c = (size - 1) / 2.0
    y, x = (yy - c) / (size / 2.0), (xx - c) / (size / 2.0)
    r = np.hypot(x, y)
    name = SHAPES[j % len(SHAPES)]
    if name == "circle":
        return r <= 0.6
    if name == "square":
        return (np.abs(x) <= 0.5) & (np.abs(y) <= 0.5)
    if name == "triangle":
        return (y <= 0.55) & (y >= -0.6 + 2.0 * np.abs(x))
    if name == "cross":
        return (
            ((np.abs(x) <= 0.18) | (np.abs(y) <= 0.18)) & (np.abs(x) <= 0.65) & (np.abs(y) <= 0.65)
        )
    if name == "diamond":
        return np.abs(x) + np.abs(y) <= 0.65
    return (r <= 0.65) & (r >= 0.38)


def recorded_posterior(run_dir: Path, last: int | None = None) -> np.ndarray:
    """The in-sample posterior of a :func:`make_run` run computed here from the logits it recorded,
    not by labeltrace: each run's softmax averaged over its last ``last`` epochs (all when None),
    the auxiliary column dropped and the rows renormalised, averaged over the runs in which the
    sample kept its label (the first run's where it kept it in none: the draws may overlap)."""
    kept = np.load(run_dir.parent / f".{run_dir.name}.recorded.npz")
    z, aux = kept["logits"], kept["auxiliary"]
    k = z.shape[-1] - 1
    z = z[:, -last:] if last else z
    e = np.exp(z - z.max(-1, keepdims=True))
    p = (e / e.sum(-1, keepdims=True)).mean(1)[..., :k]  # (runs, n, k)
    p = p / p.sum(-1, keepdims=True)
    w = (~aux).astype(float)[..., None]
    return np.where(w.sum(0) > 0, (p * w).sum(0) / np.maximum(w.sum(0), 1), p[0])


def csv_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts (header = keys)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def class_names(k: int) -> list[str]:
    """``k`` default class names (CIFAR-like, then ``class_<j>``)."""
    return [DEFAULT_CLASSES[j] if j < len(DEFAULT_CLASSES) else f"class_{j}" for j in range(k)]


def make_run(
    tmp_path: str | Path,
    *,
    n: int = 60,
    k: int = 3,
    with_files: bool = True,
    with_truth: bool = True,
    kind: Kind | None = None,
    classes: list[str] | None = None,
    epochs: int = 8,
    noise: float = 0.2,
    label_ints: bool = False,
    size: int = 8,
    style: Style = "colour",
    name: str = "run",
    seed: int = 0,
    crossfit: bool = False,
    embedding: bool = False,
) -> Path:
    """Write a run directory ``tmp_path/<name>`` (data under ``tmp_path/data``); return its path.

    Parameters
    ----------
    n, k : int
        Number of samples and of classes.
    with_files : bool
        Images as PNG files under a data root (``kind="folder"`` by default) or in
        ``images.npy`` (``kind="arrays"``).
    with_truth : bool
        Add ``true_label``, ``true_label_id`` and ``is_noisy`` columns.
    kind : {"folder", "manifest", "arrays"}, optional
        How the dataset came in; ``"manifest"`` writes ``data/manifest.csv`` with columns
        ``path, label, site`` (labels as names, or ids when ``label_ints``).
    classes : list of str, optional
        Class names (default :func:`class_names`).
    size, style
        Image side; ``"colour"``: each true class a colour plus noise; ``"shapes"``: the true
        class's shape (:data:`SHAPES`, e.g. for class names ``SHAPES[:k]``) in a random colour.
    epochs, noise, seed
        Recorded epochs, injected label-noise rate, random seed.
    crossfit : bool
        Record like a cross-fitted scan: one held-out recording (no auxiliary class) with an
        in-sample companion, and ``run.json`` ``protocol`` saying so.
    embedding : bool
        Keep an (N, 8) embedding in the recording: the true class's direction plus noise.
    """
    rng = np.random.default_rng(seed)
    tmp_path = Path(tmp_path)
    kind = kind or ("folder" if with_files else "arrays")
    if (kind == "arrays") == with_files:
        raise ValueError(f"kind={kind!r} does not match with_files={with_files}")
    names = list(classes) if classes is not None else class_names(k)
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for k={k}")
    run_dir = tmp_path / name
    run_dir.mkdir(parents=True, exist_ok=True)

    # ---- labels: true class, given (noisy) label, difficulty
    true = np.arange(n) % k
    rng.shuffle(true)
    is_noisy = rng.random(n) < noise
    shift = rng.integers(1, k, size=n)
    given = np.where(is_noisy, (true + shift) % k, true)
    hardness = rng.uniform(0.2, 1.2, size=n)  # time a sample takes to be learned
    memorise = rng.uniform(2.0, 10.0, size=n)  # how fast a wrong given label is memorised

    # ---- images (colour of the true class + noise)
    if style == "colour":
        base = _PALETTE[true % len(_PALETTE)]
        imgs = np.clip(
            base[:, None, None, :] + rng.normal(0, 28, size=(n, size, size, 3)), 0, 255
        ).astype(np.uint8)
    else:
        masks = np.stack([_shape_mask(j, size) for j in range(k)])[true]  # (n, size, size)
        bg = rng.uniform(20, 70, size=(n, 1, 1, 3)) + rng.normal(0, 6, size=(n, size, size, 3))
        fg = _PALETTE[rng.integers(0, len(_PALETTE), size=n)][:, None, None, :] + rng.normal(
            0, 10, size=(n, size, size, 3)
        )
        imgs = np.clip(np.where(masks[..., None], fg, bg), 0, 255).astype(np.uint8)
    data: dict[str, object] = {"classes": names, "kind": kind, "num_samples": n}
    if kind == "arrays":
        np.save(run_dir / rundir.IMAGES, imgs)
        paths = [f"array:{i}" for i in range(n)]
        external = [str(i) for i in range(n)]
        data["root"] = None
    else:
        root = tmp_path / "data"
        rels = [
            f"{names[given[i]]}/{i:05d}.png" if kind == "folder" else f"img/{i:05d}.png"
            for i in range(n)
        ]
        for i, rel in enumerate(rels):
            f = root / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(imgs[i]).save(f)
        paths = rels
        external = rels
        data["root"] = str(root.resolve())
        if kind == "manifest":
            man = root / "manifest.csv"
            with open(man, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["path", "label", "site"])
                for i in range(n):
                    w.writerow(
                        [rels[i], int(given[i]) if label_ints else names[given[i]], f"site{i % 4}"]
                    )
            data.update(source=str(man.resolve()), path_column="path", label_column="label")

    # ---- two recorded training runs with an auxiliary class (index k)
    t = np.linspace(0.0, 1.0, epochs)
    sei = np.zeros((2, n))
    aum = np.zeros((2, n))
    posts = []
    recorders, runs = [], []
    aux = np.zeros((2, n), dtype=bool)
    logits = np.zeros((2, epochs, n, k + 1))  # what was recorded, kept beside for tests' own arithmetic
    for r in range(2):
        aux[r, rng.choice(n, size=max(1, n // 15), replace=False)] = True
        labels = np.where(aux[r], k, given)
        rec = Recorder(n, k + 1, mode="full", keep_probs=3)
        for e in range(epochs):
            z = rng.normal(0.0, 1.0, size=(n, k + 1))
            learn = 4.0 * np.clip(t[e] / hardness, 0, 1)
            z[np.arange(n), true] += learn  # the image's real class is learned first ...
            z[np.arange(n), labels] += memorise * max(t[e] - 0.5, 0.0)  # ... the given label late
            logits[r, e] = z
            for ids in np.array_split(rng.permutation(n), 3):
                rec.update(ids, z[ids], labels[ids])
            rec.end_epoch()
        recorders.append(rec)
        dyn = rec.dynamics()
        runs.append(RecordedRun(dyn, aux[r].copy(), k))
        sei[r] = dyn.mean("signed_entropy")
        aum[r] = dyn.mean("margin")
        posts.append(dyn.posterior()[:, :k])
    np.savez(tmp_path / f".{name}.recorded.npz", logits=logits, auxiliary=aux)  # see recorded_posterior
    emb = None
    if embedding:
        directions = rng.normal(0.0, 1.0, size=(k, 8))
        emb = (directions[true] + rng.normal(0.0, 0.35, size=(n, 8))).astype(np.float32)
    if crossfit:  # the held-out view learns the true class without memorising the given label
        held = Recorder(n, k, mode="full", keep_probs=3)
        ins = Recorder(n, k, mode="full", keep_probs=1)
        for e in range(epochs):
            z = rng.normal(0.0, 1.0, size=(n, k))
            z[np.arange(n), true] += 3.0 * np.clip(t[e] / hardness, 0, 1)
            held.update(np.arange(n), z, given)
            zi = z.copy()
            zi[np.arange(n), given] += memorise * max(t[e] - 0.5, 0.0)
            ins.update(np.arange(n), zi, given)
            held.end_epoch()
            ins.end_epoch()
        run = RecordedRun(held.dynamics(), np.zeros(n, dtype=bool), k, held_out=True,
                          in_sample=ins.dynamics())  # fmt: skip
        folds = np.arange(n) % 5
        rec = Recording("crossfit", (run,), k, (1.0,), (1.0,), folds=folds, embedding=emb)
        rundir.recording_dir(run_dir).save(rec, [held], ins)
        runs, recorders = [run], [held]
        aux[:] = False
        posts = [held.dynamics().mean_posterior()]
        sei[:] = held.dynamics().mean("signed_entropy")
    else:
        rec = Recording("in-sample", tuple(runs), k, (1.0, 1.0), (1.0, 1.0), embedding=emb)
        rundir.recording_dir(run_dir).save(rec, recorders)
    # each sample scored by the runs where it kept its label
    keep = ~aux
    sei_c = (sei * keep).sum(0) / np.maximum(keep.sum(0), 1)
    aum_c = (aum * keep).sum(0) / np.maximum(keep.sum(0), 1)
    post = np.mean(posts, axis=0)
    post = post / post.sum(1, keepdims=True)
    suggested = post.argmax(1)
    score = sei_c
    cutoff = float(np.quantile(score, noise))
    is_suspect = score < cutoff
    order = np.lexsort((np.arange(n), score))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)

    cols: dict[str, pa.Array] = {
        "id": pa.array(np.arange(n, dtype=np.int64)),
        "external_id": pa.array(external, pa.string()),
        "path": pa.array(paths, pa.string()),
        "given_label": pa.array([names[j] for j in given], pa.string()),
        "given_label_id": pa.array(given.astype(np.int64)),
        "suggested_label": pa.array([names[j] for j in suggested], pa.string()),
        "suggested_label_id": pa.array(suggested.astype(np.int64)),
        "suggested_prob": pa.array(post[np.arange(n), suggested].astype(np.float64)),
        "score": pa.array(score.astype(np.float64)),
        "is_suspect": pa.array(is_suspect),
        "rank": pa.array(rank),
        "sei": pa.array(sei_c.astype(np.float64)),
        "aum": pa.array(aum_c.astype(np.float64)),
        "aux_run0": pa.array(aux[0]),
        "aux_run1": pa.array(aux[1]),
    }
    assert set(SAMPLE_COLUMNS) <= set(cols)
    if with_truth:
        cols["true_label"] = pa.array([names[j] for j in true], pa.string())
        cols["true_label_id"] = pa.array(true.astype(np.int64))
        cols["is_noisy"] = pa.array(is_noisy)
    write_table(run_dir / rundir.SAMPLES, pa.table(cols))
    write_json(
        run_dir / rundir.RUN_JSON,
        {
            "format": FORMAT,
            "data": data,
            "config": {"model": "small_cnn", "epochs": epochs, "seed": seed, "batch_size": 32},
            "detector": {
                "name": "sei",
                "cutoff": cutoff,
                "score_column": "sei",
                "rule": "quantile",
            },
            "runs": 1 if crossfit else 2,
            **({"protocol": {"kind": "crossfit", "folds": 5, "dynamics": "held-out"}} if crossfit
               else {}),
            "scores": ["sei", "aum"],
            "counts": {"samples": n, "flagged": int(is_suspect.sum()), "classes": k},
            "noise_rate_estimate": float(is_suspect.mean()),
        },
    )
    return run_dir


def decision_rows(run_dir: Path) -> list[tuple]:
    """``(sample_id, kind, decision, reviewer)`` of every stored decision of a run, oldest first
    (read straight from ``reviews.db``, not through the store under test)."""
    import sqlite3

    con = sqlite3.connect(Path(run_dir) / "reviews.db")
    try:
        return con.execute("SELECT sample_id, kind, decision, reviewer FROM decisions ORDER BY seq").fetchall()
    finally:
        con.close()


def link_into_store(run_dir: Path, store: Path, name: Callable[[int], str]) -> None:
    """Move each of a run's image files into ``store`` (as ``name(k)``, k its row), leave a symlink
    where it was, and allow the store among the run's roots: a data root of links into a content
    store, as DVC or git-annex keep one."""
    import json
    import os
    import shutil

    run = rundir.open_run(run_dir)
    store.mkdir(parents=True, exist_ok=True)
    for k, p in enumerate(run.column("path")):
        f = run.data_root / p
        shutil.move(f, store / name(k))
        os.symlink(store / name(k), f)
    meta = json.loads((run_dir / "run.json").read_text())
    meta["data"]["allowed_roots"] = [str(run.data_root), str(store)]  # the scan allowed the store
    (run_dir / "run.json").write_text(json.dumps(meta))


def rare_posterior(p_rare_of_rare: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(post, given)``: 740 'normal' labels (class 0) whose held-out p('pneumonia') is small (a
    Beta(0.5, 60), mean 0.008) and the given 'pneumonia' labels (class 1) with ``p_rare_of_rare``: a
    scan's posterior on a rare finding (PneumoniaMNIST, 15 pneumonia images among 755)."""
    rng = np.random.default_rng(seed)
    p1 = np.r_[rng.beta(0.5, 60, 740), p_rare_of_rare]
    return np.stack([1 - p1, p1], axis=1), np.r_[np.zeros(740, int), np.ones(p_rare_of_rare.size, int)]


def rescan_on(tmp_path: Path, monkeypatch: Any, *, native: bool, edit: Callable[[dict[str, Any]], None]) -> tuple[str, Any]:
    """The rescan command printed for a made-up run whose run.json ``edit`` rewrites, on a CPU with
    (``native``) or without native bfloat16 and no CUDA, and its arguments as the CLI parses them."""
    import json
    import shlex

    from labeltrace.cli import build_parser
    from labeltrace.export.rescan import rescan_command
    from labeltrace.train.precision import CPU_BFLOAT16

    for probe in CPU_BFLOAT16:  # AMX tiles, AVX512-BF16
        monkeypatch.setattr(torch.cpu, probe, lambda: native)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rd = make_run(tmp_path, n=12, k=3, seed=12, kind="manifest")
    meta = json.loads((rd / "run.json").read_text())
    edit(meta)
    (rd / "run.json").write_text(json.dumps(meta))
    cmd = rescan_command(rundir.open_run(rd), tmp_path / "clean.csv")
    assert cmd is not None
    return cmd, build_parser().parse_args(shlex.split(cmd.replace("NEW_RUN_DIR", str(tmp_path / "r2")))[1:])
