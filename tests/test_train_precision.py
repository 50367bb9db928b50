"""The training's arithmetic (``--precision``): bfloat16 forward passes under autocast, float32
everywhere a number is kept; ``auto`` by what the device runs natively; keys of float32
trainings as before the setting existed."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from labeltrace.bench.config import ModelSpec, parse_config
from labeltrace.scan_settings import ScanConfig, check, train_config
from labeltrace.train import TrainConfig, train_recorded
from labeltrace.train.checkpoint import config_key
from labeltrace.train.loop import predict_logits
from labeltrace.train.precision import CPU_BFLOAT16, autocast, native_bfloat16, resolve_precision

torch.set_num_threads(1)
CPU = torch.device("cpu")


def toy(n=96, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.normal(0, 3, (k, d))[y] + rng.normal(0, 1, (n, d))
    return torch.tensor(x, dtype=torch.float32), y


class Probe(nn.Module):
    """An MLP that notes the dtype its first layer's product ran in."""

    def __init__(self, d=6, k=3):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(d, 16), nn.Linear(16, k)
        self.seen: list[torch.dtype] = []

    def forward(self, x):
        h = self.a(x)
        self.seen.append(h.dtype)
        return self.b(torch.relu(h))


@pytest.mark.parametrize(("precision", "inner"), [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_the_products_run_in_the_precision_asked_and_what_is_recorded_stays_float32(precision, inner):
    x, y = toy()
    net = Probe()
    res = train_recorded(net, x, y, num_classes=3, config=TrainConfig(epochs=3, batch_size=32, lr=0.1,
                                                                      precision=precision), progress=False)  # fmt: skip
    assert set(net.seen) == {inner}
    assert all(p.dtype == torch.float32 for p in net.parameters())  # the weights are never narrowed
    d = res.recorder.dynamics()
    assert d.num_epochs == 3 and np.all(d.n_seen == 3)
    assert res.final_train_accuracy > 0.8  # it learns in either
    net.seen.clear()
    logits = predict_logits(net, x, torch.arange(len(x)), device=CPU, precision=precision)
    assert set(net.seen) == {inner} and logits.dtype == torch.float32


def test_float32_logits_of_a_model_are_passed_on_as_they_came():
    class Wide(nn.Module):  # a user's model in float64
        def __init__(self):
            super().__init__()
            self.w = nn.Linear(6, 3).double()

        def forward(self, x):
            return self.w(x.double())

    x, _ = toy()
    out = predict_logits(Wide(), x, torch.arange(4), device=CPU)
    assert out.dtype == torch.float64


def test_auto_takes_bfloat16_only_where_the_cpu_runs_it_natively(monkeypatch):
    for probe in CPU_BFLOAT16:  # AMX tiles, AVX512-BF16
        monkeypatch.setattr(torch.cpu, probe, lambda: True)
    assert native_bfloat16(CPU) and resolve_precision("auto", CPU) == "bfloat16"
    for probe in CPU_BFLOAT16:  # AMX tiles, AVX512-BF16
        monkeypatch.setattr(torch.cpu, probe, lambda: False)
    assert not native_bfloat16(CPU) and resolve_precision("auto", CPU) == "float32"
    assert resolve_precision("bfloat16", CPU) == "bfloat16"  # asked for by name: taken, emulated or not
    assert resolve_precision("float32", CPU) == "float32"
    assert train_config("small-cnn", ScanConfig(precision="auto", device="cpu")).precision == "float32"
    for probe in CPU_BFLOAT16:  # AMX tiles, AVX512-BF16
        monkeypatch.setattr(torch.cpu, probe, lambda: True)
    assert train_config("small-cnn", ScanConfig(precision="auto", device="cpu")).precision == "bfloat16"


@pytest.mark.parametrize(("amx", "avx512_bf16", "native"), [(True, False, True), (False, True, True),
                                                             (False, False, False)])
def test_amx_tiles_or_avx512_bf16_run_bfloat16_natively(monkeypatch, amx, avx512_bf16, native):
    """An AMD EPYC with AVX512-BF16 and no AMX: bfloat16 steps 1.4 x faster, extraction 1.6-2.8 x
    (benchmarks/results/cnn-step-time-avx512bf16.md, dev-extract-precision.md); a CPU with neither
    emulates it."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert native_bfloat16(CPU) is native
    assert resolve_precision("auto", CPU) == ("bfloat16" if native else "float32")


@pytest.mark.parametrize("bad", ["fp16", "half", "BF16", ""])
def test_an_unknown_precision_is_refused_by_its_flag(bad):
    with pytest.raises(ValueError, match="--precision must be one of auto, float32, bfloat16"):
        check(ScanConfig(precision=bad), "small-cnn", None)
    with pytest.raises(ValueError, match="precision must be float32 or bfloat16"):
        TrainConfig(precision=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision(bad, CPU)
    with pytest.raises(ValueError, match="resolve 'auto' first|float32 or bfloat16"):
        autocast(bad, CPU)


def test_float32_keeps_the_keys_written_before_the_setting_and_bfloat16_has_its_own():
    f32 = json.loads(config_key(config=TrainConfig(epochs=3)))
    assert "precision" not in f32["config"]  # the checkpoints and recordings cached before still match
    b16 = json.loads(config_key(config=TrainConfig(epochs=3, precision="bfloat16")))
    assert b16["config"]["precision"] == "bfloat16"
    assert {k: v for k, v in b16["config"].items() if k != "precision"} == f32["config"]
    assert "precision" not in ModelSpec("m").key() and ModelSpec("m", precision="bfloat16").key()["precision"] == "bfloat16"


def test_a_checkpoint_written_in_float32_is_not_resumed_in_bfloat16(tmp_path):
    x, y = toy()
    train_recorded(Probe(), x, y, num_classes=3, config=TrainConfig(epochs=2, batch_size=32), progress=False,
                   checkpoint_dir=tmp_path)  # fmt: skip
    with pytest.raises(ValueError, match="different training configuration"):
        train_recorded(Probe(), x, y, num_classes=3, config=TrainConfig(epochs=3, batch_size=32, precision="bfloat16"),
                       progress=False, checkpoint_dir=tmp_path)  # fmt: skip


def test_a_benchmark_names_its_precision():
    def raw(precision):
        return {"models": {"m": {"kind": "small-cnn", "precision": precision}},
                "datasets": [{"name": "d", "source": "digits", "models": ["m"], "labels": ["symmetric:0.2"]}]}

    assert parse_config(raw("bfloat16")).models["m"].train_config("cpu").precision == "bfloat16"
    with pytest.raises(ValueError, match="precision must be float32 or bfloat16, got 'auto'"):
        parse_config(raw("auto"))


def test_the_cli_takes_the_flag_and_run_json_says_what_ran(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "labeltrace.cli", "scan", "--example", "digits", "--noise", "symmetric:0.2",
           "--epochs", "2", "--folds", "2", "--precision", "bfloat16", "--out", str(out), "--quiet"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    meta = json.loads((out / "run.json").read_text())
    assert meta["train"]["precision"] == "bfloat16" and meta["config"]["precision"] == "bfloat16"
    bad = subprocess.run([*cmd[:-3], "--precision", "fp16", "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert bad.returncode != 0 and "--precision" in bad.stderr and "fp16" in bad.stderr


def test_auto_is_the_default_and_takes_bfloat16_for_the_small_cnns_cross_fitted_detectors_alone(monkeypatch):
    for probe in CPU_BFLOAT16:  # AMX tiles, AVX512-BF16
        monkeypatch.setattr(torch.cpu, probe, lambda: True)
    assert ScanConfig().precision == "auto"
    assert train_config("small-cnn", ScanConfig(device="cpu")).precision == "bfloat16"
    assert train_config("small-cnn", ScanConfig(device="cpu", detector="crossfit_knn")).precision == "bfloat16"
    # measured to tie for the cross-fitted detectors alone: in-sample runs and one plain run stay float32 ...
    for detector in ("sei", "aum", "knn_vote", "single", "cl"):
        assert train_config("small-cnn", ScanConfig(device="cpu", detector=detector)).precision == "float32"
    assert train_config("small-cnn", ScanConfig(device="cpu", detector="sei", precision="bfloat16")).precision \
        == "bfloat16"
    # ... and on the small CNN only: the frozen-feature head and the fine-tuned network stay float32 ...
    assert train_config("effnet-lite0", ScanConfig(device="cpu", resolution=96)).precision == "float32"
    assert train_config("effnet-lite0", ScanConfig(device="cpu", resolution=96, finetune=True)).precision == "float32"
    assert train_config("clip", ScanConfig(device="cpu")).precision == "float32"
    # ... unless bfloat16 is asked for by name
    assert train_config("effnet-lite0", ScanConfig(device="cpu", resolution=96, precision="bfloat16")).precision \
        == "bfloat16"
    for probe in CPU_BFLOAT16:  # AMX tiles, AVX512-BF16
        monkeypatch.setattr(torch.cpu, probe, lambda: False)
    assert train_config("small-cnn", ScanConfig(device="cpu")).precision == "float32"


def test_the_cli_default_is_auto():
    from labeltrace.cli import build_parser
    from labeltrace.cli_own import TRAINING_FLAGS

    args = build_parser().parse_args(["scan", "--example", "digits", "--out", "run"])
    assert args.precision == "auto" == TRAINING_FLAGS["precision"] == ScanConfig().precision


def test_a_run_directory_keeps_the_precision_its_scan_began_in(monkeypatch, tmp_path):
    """A scan written in float32 (the default before ``auto``) is resumed and read back as it began,
    not refused as another configuration; ``force`` chooses again, and a named precision is a setting."""
    from sklearn.datasets import load_digits

    from labeltrace.data import from_arrays
    from labeltrace.rundir import RunDirConflict
    from labeltrace.scan import scan

    for probe in CPU_BFLOAT16:  # AMX tiles, AVX512-BF16
        monkeypatch.setattr(torch.cpu, probe, lambda: True)
    d = load_digits()
    ds = from_arrays((d.images[:80] / 16).astype(np.float32), d.target[:80] % 2)
    out, logged = tmp_path / "run", []
    cfg = ScanConfig(model="small-cnn", epochs=1, folds=2, batch_size=32, seed=0, device="cpu")
    scan(ds, out, replace(cfg, precision="float32"), progress=False, log=lambda s: None)
    res = scan(ds, out, cfg, progress=False, log=logged.append)  # auto, on a CPU with native bfloat16
    assert res.meta["train"]["precision"] == res.meta["config"]["precision"] == "float32"  # as the model: what ran
    assert any("--precision auto: float32 (kept from the scan already in the run directory" in s for s in logged)
    assert any("already holds this finished scan" in s for s in logged)
    with pytest.raises(RunDirConflict, match="precision"):
        scan(ds, out, replace(cfg, precision="bfloat16"), progress=False, log=lambda s: None)
    logged.clear()
    res = scan(ds, out, cfg, progress=False, log=logged.append, force=True)
    assert res.meta["train"]["precision"] == "bfloat16"
    assert any("--precision auto: bfloat16 (small-cnn on a device that runs bfloat16 natively)" in s for s in logged)
    fresh = scan(ds, tmp_path / "other", cfg, progress=False, log=lambda s: None)
    assert fresh.meta["train"]["precision"] == "bfloat16"
