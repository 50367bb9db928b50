"""The frozen backbone's arithmetic (``--backbone-precision``): EfficientNet-Lite0's forward passes
in bfloat16 under autocast, features kept float32 in a cache entry of their own; ``auto`` by what
the device runs natively; float32 keys, fingerprints and noise as before the setting existed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from labeltrace.bench.config import parse_config
from labeltrace.models.backbone import extract_features, load_efficientnet_lite0
from labeltrace.scan_settings import (
    ScanConfig,
    backbone_precision,
    check,
    fingerprint,
    train_config,
)
from labeltrace.train.precision import CPU_BFLOAT16

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)  # built before the tests' own seeding (module scope): not by whatever ran before
    return load_efficientnet_lite0(pretrained=False)


def _images(n: int = 6, side: int = 20, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 1, side, side), dtype=np.uint8)


def test_bfloat16_features_are_float32_close_to_float32_ones_and_not_the_same(net) -> None:
    x = _images()
    a = extract_features(x, model=net, resolution=32, progress=False)
    b = extract_features(x, model=net, resolution=32, progress=False, precision="bfloat16")
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == (6, 1280)
    assert not np.array_equal(a, b)  # the products ran in another arithmetic
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.98  # bfloat16 keeps 8 bits of mantissa: close, not equal
    np.testing.assert_array_equal(extract_features(x, model=net, resolution=32, progress=False,
                                                   precision="float32"), a)  # fmt: skip


@pytest.mark.parametrize("bad", ["auto", "float16", "fp32", ""])
def test_an_unresolved_or_unknown_precision_is_refused_before_any_work(net, bad) -> None:
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        extract_features(_images(), model=net, resolution=32, progress=False, precision=bad)
    if bad != "auto":  # the scan resolves auto itself
        with pytest.raises(ValueError, match="--backbone-precision must be one of auto, float32, bfloat16"):
            check(ScanConfig(backbone_precision=bad), "effnet-lite0", None)


def test_each_precision_has_its_own_cache_entry_and_float32_keeps_its_key(tmp_path, monkeypatch) -> None:
    from labeltrace.data import from_arrays
    from labeltrace.models import backbone
    from labeltrace.models.inputs import prepare_inputs

    monkeypatch.setattr(backbone, "load_efficientnet_lite0", lambda pretrained=True: load_efficientnet_lite0(
        pretrained=False))  # fmt: skip
    ds = from_arrays(_images(8)[:, 0].astype(np.float32) / 255, np.arange(8) % 2)
    f32 = prepare_inputs(ds, "effnet-lite0", resolution=32, cache_dir=tmp_path, precision="float32")
    b16 = prepare_inputs(ds, "effnet-lite0", resolution=32, cache_dir=tmp_path, precision="bfloat16")
    assert "precision" not in f32.description["cache_key"]  # the entries written before the setting still match
    assert b16.description["cache_key"] == {**f32.description["cache_key"], "precision": "bfloat16"}
    assert len(list(tmp_path.glob("features-*.npy"))) == 2
    assert not np.array_equal(f32.features, b16.features)
    again = prepare_inputs(ds, "effnet-lite0", resolution=32, cache_dir=tmp_path, precision="bfloat16")
    np.testing.assert_array_equal(again.features, b16.features)  # read back, not extracted in float32


def test_auto_takes_bfloat16_for_frozen_features_where_the_device_runs_it_natively(monkeypatch) -> None:
    import labeltrace.scan_settings as settings

    for probe in CPU_BFLOAT16:  # AMX tiles, AVX512-BF16
        monkeypatch.setattr(torch.cpu, probe, lambda: True)
    cfg = ScanConfig(device="cpu", resolution=96)
    assert ScanConfig().backbone_precision == "auto"
    assert backbone_precision("effnet-lite0", cfg) == "bfloat16"
    assert train_config("effnet-lite0", cfg).precision == "float32"  # the head trains as --precision says
    for model, c in (("small-cnn", cfg), ("clip", cfg), ("effnet-lite0", replace(cfg, finetune=True))):
        assert backbone_precision(model, c) == "float32"  # no frozen EfficientNet features to extract
    assert backbone_precision("effnet-lite0", replace(cfg, backbone_precision="float32")) == "float32"
    monkeypatch.setattr(settings, "AUTO_BACKBONE_BFLOAT16", False)
    assert backbone_precision("effnet-lite0", cfg) == "float32"
    for probe in CPU_BFLOAT16:  # AMX tiles, AVX512-BF16
        monkeypatch.setattr(torch.cpu, probe, lambda: False)
    assert backbone_precision("effnet-lite0", replace(cfg, backbone_precision="bfloat16")) == "bfloat16"  # by name


def test_the_fingerprint_names_bfloat16_features_and_float32_ones_as_before(monkeypatch) -> None:
    from labeltrace.data import from_arrays

    for probe in CPU_BFLOAT16:  # AMX tiles, AVX512-BF16
        monkeypatch.setattr(torch.cpu, probe, lambda: False)
    ds = from_arrays(_images(8)[:, 0].astype(np.float32) / 255, np.arange(8) % 2)
    cfg = ScanConfig(device="cpu", resolution=96)
    f32 = fingerprint(ds, replace(cfg, backbone_precision="float32"), "effnet-lite0", None)
    b16 = fingerprint(ds, replace(cfg, backbone_precision="bfloat16"), "effnet-lite0", None)
    assert "precision" not in f32["inputs"] and b16["inputs"]["precision"] == "bfloat16"
    assert {k: v for k, v in b16["inputs"].items() if k != "precision"} == f32["inputs"]
    # a network on the images extracts nothing: the setting does not bind its run directory
    assert fingerprint(ds, replace(cfg, backbone_precision="bfloat16"), "small-cnn", None) == \
        fingerprint(ds, replace(cfg, backbone_precision="float32"), "small-cnn", None)  # fmt: skip


def test_the_cli_default_is_auto_and_a_benchmark_names_its_backbone_precision() -> None:
    from labeltrace.cli import build_parser
    from labeltrace.cli_own import TRAINING_FLAGS

    args = build_parser().parse_args(["scan", "--example", "digits", "--out", "run"])
    assert args.backbone_precision == "auto" == TRAINING_FLAGS["backbone_precision"] == ScanConfig().backbone_precision

    def raw(kind: str, value: str) -> dict:
        return {"models": {"m": {"kind": kind, "backbone_precision": value}},
                "datasets": [{"name": "d", "source": "digits", "models": ["m"], "labels": ["symmetric:0.2"]}]}

    m = parse_config(raw("mlp", "bfloat16")).models["m"]
    assert m.backbone_precision == "bfloat16" and "backbone_precision" not in m.key()  # the features' fingerprint is
    with pytest.raises(ValueError, match="backbone_precision must be float32 or bfloat16, got 'auto'"):
        parse_config(raw("mlp", "auto"))
    with pytest.raises(ValueError, match="'backbone_precision' is the frozen features' extraction"):
        parse_config(raw("small-cnn", "bfloat16"))


def _digits_npz(tmp_path: Path) -> Path:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.kron((d.images[:96] * 16).clip(0, 255).astype(np.uint8), np.ones((2, 2), np.uint8))  # 16 px
    path = tmp_path / "digits.npz"
    np.savez(path, train_images=x, train_labels=(d.target[:96] % 3)[:, None])
    return path


def test_a_scan_extracts_in_the_precision_it_names_draws_its_noise_from_float32_and_keeps_it(tmp_path,
                                                                                              monkeypatch) -> None:  # fmt: skip
    """bfloat16 features do not move the injected confusion noise (it reads float32 features, as the
    bench draws it); run.json says what was extracted in; a run directory keeps it under auto."""
    from labeltrace.data import from_npz
    from labeltrace.rundir import RunDirConflict
    from labeltrace.scan import scan

    for probe in CPU_BFLOAT16:  # AMX tiles, AVX512-BF16
        monkeypatch.setattr(torch.cpu, probe, lambda: False)
    ds = from_npz(_digits_npz(tmp_path))
    cfg = ScanConfig(model="effnet-lite0", resolution=32, epochs=2, folds=2, noise="confusion:0.3", seed=1,
                     device="cpu", cache_dir=str(tmp_path / "cache"))  # fmt: skip
    f32 = scan(ds, tmp_path / "a", replace(cfg, backbone_precision="float32"), progress=False, log=lambda s: None)
    out, logged = tmp_path / "b", []
    b16 = scan(ds, out, replace(cfg, backbone_precision="bfloat16"), progress=False, log=lambda s: None)
    given = f32.table.column("given_label_id").to_numpy()
    assert (given != ds.labels).sum() > 0
    np.testing.assert_array_equal(b16.table.column("given_label_id").to_numpy(), given)
    assert not np.allclose(b16.detection.score, f32.detection.score)  # it trained on other features
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["backbone_precision"] == "bfloat16" and meta["train"]["precision"] == "float32"
    assert meta["inputs"]["cache_key"]["precision"] == "bfloat16"
    # auto on a CPU without native bfloat16 picks float32, but this directory's scan extracted in bfloat16
    again = scan(ds, out, cfg, progress=False, log=logged.append)
    assert again.meta["config"]["backbone_precision"] == "bfloat16"
    assert any("--backbone-precision auto: bfloat16 (kept from the scan already in the run directory" in s
               for s in logged)  # fmt: skip
    with pytest.raises(RunDirConflict):
        scan(ds, out, replace(cfg, backbone_precision="float32"), progress=False, log=lambda s: None)
    assert scan(ds, out, cfg, progress=False, log=lambda s: None, force=True).meta["config"][
        "backbone_precision"] == "float32"  # fmt: skip


@pytest.mark.parametrize(("native", "extracted", "flag"), [
    (True, "float32", "--backbone-precision float32"),  # named float32 (or scanned before the setting) here
    (True, None, "--backbone-precision float32"),  # a run.json from before the field: float32
    (True, "bfloat16", None),  # auto takes it again
    (False, "float32", None),
    (False, "bfloat16", "--backbone-precision bfloat16"),  # extracted where bfloat16 is native, rescanned elsewhere
])
def test_the_rescan_command_extracts_in_the_precision_the_scan_did(tmp_path, monkeypatch, native, extracted,
                                                                    flag) -> None:  # fmt: skip
    from runfactory import rescan_on

    def edit(meta: dict) -> None:
        meta["model"] = "effnet-lite0"
        meta["config"].update(model="effnet-lite0", detector="crossfit", resolution=96, finetune=False)
        meta["config"].pop("backbone_precision", None)
        if extracted is not None:
            meta["config"]["backbone_precision"] = extracted
        meta["train"] = {"precision": "float32"}

    cmd, args = rescan_on(tmp_path, monkeypatch, native=native, edit=edit)
    assert (flag in cmd) if flag else "--backbone-precision" not in cmd
    assert args.backbone_precision == (flag.split()[1] if flag else "auto")
