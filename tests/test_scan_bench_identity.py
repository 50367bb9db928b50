"""``labeltrace scan`` and ``labeltrace bench`` share one protocol and one detector table: the same
data, seed and settings give identical scores from either; a new detector is one row that both
pick up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.datasets import load_digits

from labeltrace.bench import parse_config, run_bench
from labeltrace.bench.cells import CellRunner
from labeltrace.bench.grid import expand, load_dataset
from labeltrace.cli import main
from labeltrace.data import from_npz
from labeltrace.decide import detectors
from labeltrace.scan import ScanConfig, scan
from labeltrace.scan_settings import training_precision

SEED = 4
EPOCHS = 3


@pytest.fixture(scope="module")
def npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    d = load_digits()
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(d.target), 240, replace=False))
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, train_images=(d.images[idx] / 16 * 255).astype(np.uint8), train_labels=d.target[idx][:, None])
    return path


def _bench_config(npz: Path, cache: Path, names: list[str], precision: str = "float32"):  # noqa: ANN202
    return parse_config({
        "name": "identity", "seeds": [SEED], "detectors": names, "cache_dir": str(cache), "sei_curve": False,
        "models": {"cnn": {"kind": "small-cnn", "epochs": EPOCHS, "precision": precision}},
        "datasets": [{"name": "d", "source": "npz", "path": str(npz), "labels": ["symmetric:0.2"], "models": ["cnn"]}],
    })  # fmt: skip


@pytest.mark.parametrize("name", ["crossfit", "crossfit_knn", "sei", "knn_vote", "cl", "single"])
def test_a_bench_cell_and_scan_give_identical_scores(npz: Path, tmp_path: Path, name: str) -> None:
    # the precision the scan's default (auto) trains in on this machine for this detector; a benchmark names it
    cfg = _bench_config(npz, tmp_path / "cache", [name], training_precision("small-cnn", ScanConfig(detector=name)))
    res = run_bench(cfg, out_dir=tmp_path / "out", log=lambda s: None, plots=False)
    assert not res.failures
    cell = expand(cfg)[0]
    runner = CellRunner(cell, load_dataset(cell.dataset, cfg.cache_path, log=lambda s: None), cfg, log=lambda s: None)
    bench = runner.detector(name)
    out = scan(from_npz(npz), tmp_path / "run", ScanConfig(model="small-cnn", epochs=EPOCHS, noise="symmetric:0.2",
                                                            seed=SEED, detector=name), progress=False, log=lambda s: None)
    np.testing.assert_array_equal(out.table.column("given_label_id").to_numpy(), runner.given)
    np.testing.assert_allclose(out.detection.score, bench["score"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(out.detection.flagged, bench["flagged"])
    row = next(r for r in res.rows if r["detector"] == name)
    assert row["n_flagged"] == int(out.detection.flagged.sum())


def test_a_toy_detector_is_one_row_found_by_scan_and_bench(npz: Path, tmp_path: Path, capsys) -> None:
    def loudest_logit_gap(ev) -> np.ndarray:  # noqa: ANN001
        return -np.abs(ev.in_sample[0].dynamics.mean("margin"))

    detectors.register(detectors.Detector(
        "toy", ("in_sample",), loudest_logit_gap, lambda ev, s: (s < np.median(s), float(np.median(s)), "median"),
        "a toy detector for the table test",
    ))  # fmt: skip
    try:
        rc = main(["scan", str(npz), "--detector", "toy", "--runs", "1", "--epochs", "2", "--out",
                   str(tmp_path / "run"), "--quiet"])  # fmt: skip
        assert rc == 0
        t = pq.read_table(tmp_path / "run" / "samples.parquet")
        assert "toy" in t.column_names and t.column("is_suspect").to_numpy().sum() == 120
        assert "toy" in capsys.readouterr().out
        cfg = _bench_config(npz, tmp_path / "cache", ["toy", "sei"])
        res = run_bench(cfg, out_dir=tmp_path / "out", log=lambda s: None, plots=False)
        assert {r["detector"] for r in res.rows} == {"toy", "sei"}
        toy = next(r for r in res.rows if r["detector"] == "toy")
        assert toy["rule"] == "median" and toy["n_trainings"] == 2 and toy["n_flagged"] == 120
    finally:
        detectors.unregister("toy")
