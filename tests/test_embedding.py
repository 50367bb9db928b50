"""The embeddings a recording keeps for the kNN detectors: one network's, and the cross-fitted
fold models' common one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from labeltrace.record.recording import FingerprintMismatch
from labeltrace.train import TrainConfig, protocol
from labeltrace.train.embedding import common_embedding, network_embedding
from labeltrace.train.recipe import NetworkSpec

torch.set_num_threads(1)


class Linear(nn.Module):
    """A network whose ``features`` is a fixed linear map (its output layer unused here)."""

    def __init__(self, w: np.ndarray) -> None:
        super().__init__()
        self.features = nn.Linear(w.shape[1], w.shape[0], bias=False)
        self.features.weight.data = torch.tensor(w, dtype=torch.float32)
        self.out = nn.Linear(w.shape[0], 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


def test_common_embedding_is_each_models_unit_embedding_side_by_side():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3)).astype(np.float32)
    x[4] = 0.0  # a zero embedding stays zero (no division by zero)
    ws = [rng.normal(size=(2, 3)), rng.normal(size=(4, 3))]
    emb = common_embedding([Linear(w) for w in ws], torch.tensor(x))
    assert emb is not None and emb.shape == (7, 6) and emb.dtype == np.float32
    start = 0
    for w in ws:
        raw = x.astype(np.float64) @ w.T  # computed here, not by the code under test
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        expect = np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0)
        np.testing.assert_allclose(emb[:, start:start + w.shape[0]], expect, atol=1e-5)
        start += w.shape[0]
    np.testing.assert_array_equal(emb[4], 0.0)


def test_common_embedding_needs_every_model_to_have_features():
    x = torch.zeros(3, 2)
    no_features = nn.Linear(2, 2)
    assert network_embedding(no_features, x) is None
    assert common_embedding([Linear(np.eye(2)), no_features], x) is None
    assert common_embedding([], x) is None


def _images(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    g = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = (g.normal(size=(n, 1, 8, 8)) + y[:, None, None, None]).astype(np.float32)
    return torch.tensor(x), y


def test_a_cross_fitted_recording_keeps_the_fold_models_common_embedding(tmp_path):
    x, y = _images()
    cfg = TrainConfig(epochs=2, batch_size=16, device="cpu")
    spec = NetworkSpec("small-cnn", width=4)
    rec = protocol.record(protocol.CrossFit(3), spec, cfg, x, y, num_classes=2, seed=0, directory=tmp_path / "cf",
                          embedding=True, progress=False)  # fmt: skip
    one = network_embedding(spec.build(x, 2), x)
    assert one is not None
    d = one.shape[1]
    assert rec.embedding is not None and rec.embedding.shape == (len(y), 3 * d)
    blocks = rec.embedding.reshape(len(y), 3, d)
    np.testing.assert_allclose(np.linalg.norm(blocks, axis=2), 1.0, atol=1e-5)
    assert not np.allclose(blocks[:, 0], blocks[:, 1])  # three models, not one repeated
    # the saved recording reads back the same embedding, and says which kind it is
    again = protocol.record(protocol.CrossFit(3), spec, cfg, x, y, num_classes=2, seed=0, directory=tmp_path / "cf",
                            embedding=True, progress=False)  # fmt: skip
    np.testing.assert_array_equal(again.embedding, rec.embedding)
    assert again.fingerprint["embedding"] == "common"


def test_a_recording_without_the_common_embedding_is_not_reused_for_one_that_needs_it(tmp_path):
    x, y = _images(seed=1)
    cfg = TrainConfig(epochs=1, batch_size=16, device="cpu")
    spec = NetworkSpec("small-cnn", width=4)
    protocol.record(protocol.CrossFit(2), spec, cfg, x, y, num_classes=2, seed=0, directory=tmp_path / "cf",
                    embedding=False, progress=False)  # fmt: skip
    with pytest.raises(FingerprintMismatch, match="embedding"):
        protocol.record(protocol.CrossFit(2), spec, cfg, x, y, num_classes=2, seed=0, directory=tmp_path / "cf",
                        embedding=True, progress=False)  # fmt: skip


def test_a_scan_that_kept_the_first_fold_models_embedding_is_another_configuration(tmp_path):
    from sklearn.datasets import load_digits

    from labeltrace.data import from_arrays
    from labeltrace.rundir import RunDirConflict
    from labeltrace.scan import ScanConfig, fingerprint, scan

    d = load_digits()
    ds = from_arrays((d.images[:90] / 16).astype(np.float32), d.target[:90] % 3)
    cnn = fingerprint(ds, ScanConfig(resolution=96), "small-cnn", None)
    assert cnn["protocol"]["embedding"] == "common"
    # frozen features keep no network embedding; a detector without the cross-fitted recording neither
    assert "embedding" not in fingerprint(ds, ScanConfig(resolution=96), "effnet-lite0", None)["protocol"]
    assert "embedding" not in fingerprint(ds, ScanConfig(resolution=96, detector="sei"), "small-cnn", None)["protocol"]
    cfg = ScanConfig(model="small-cnn", epochs=1, folds=2, batch_size=32, seed=0)
    out = tmp_path / "run"
    scan(ds, out, cfg, progress=False, log=lambda s: None)
    fp_file = out / "fingerprint.json"
    old = json.loads(fp_file.read_text())
    del old["protocol"]["embedding"]  # as a scan before the common embedding wrote it
    fp_file.write_text(json.dumps(old))
    with pytest.raises(RunDirConflict, match="protocol"):
        scan(ds, out, cfg, progress=False, log=lambda s: None)
    res = scan(ds, out, cfg, progress=False, log=lambda s: None, force=True)
    emb = np.load(out / "dynamics" / "embedding.npy")
    assert res.meta["fingerprint"]["protocol"]["embedding"] == "common" and emb.shape[0] == 90
    halves = emb.reshape(90, 2, -1)  # two fold models side by side, each unit length per sample
    np.testing.assert_allclose(np.linalg.norm(halves, axis=2), 1.0, atol=1e-5)
