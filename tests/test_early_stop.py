"""Early stop of the cross-fitted recording: the rule on known dynamics, the stop in the protocol
(the same epoch after a kill and a resume), and its place in the scan's fingerprint and run.json."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from labeltrace import Recorder
from labeltrace.train import TrainConfig, protocol
from labeltrace.train.early_stop import EarlyStop, ranking_changes
from labeltrace.train.protocol import crossfit_recorded

torch.set_num_threads(1)
N, K = 100, 2


def _recorder(p_given_per_epoch: list[np.ndarray], labels: np.ndarray) -> Recorder:
    """A recorder whose epoch ``t`` gives sample ``i`` probability ``p[t][i]`` of its label."""
    rec = Recorder(N, K, keep_probs=1)
    for p in p_given_per_epoch:
        z = np.zeros((N, K))
        z[np.arange(N), labels] = np.log(p / (1 - p))  # softmax over two classes gives p
        rec.update(np.arange(N), z, labels)
        rec.end_epoch()
    return rec


def test_rule_on_known_dynamics():
    labels = np.arange(N) % K
    rng = np.random.default_rng(0)
    bad = np.zeros(N, bool)
    bad[:10] = True  # ten samples the model contradicts: confident learning counts them
    stable = np.where(bad, 0.1, 0.9)
    # epochs 1-3: noise reshuffles the low end, then the ranking stays put
    epochs = [np.clip(stable + rng.normal(0, 0.35, N), 0.02, 0.98) for _ in range(3)] + [stable] * 6
    held = _recorder(epochs, labels).dynamics()
    ch = ranking_changes(held, None, labels)
    assert len(ch) == 8 and ch[0] > 0.05  # epochs 2..9
    rule = EarlyStop(tol=0.01, patience=3, min_epochs=4)
    stops = [rule.should_stop(_recorder(epochs[:t], labels).dynamics(), None, labels) for t in range(1, 10)]
    first = stops.index(True) + 1
    # the top set only changes once the averaged noise is outweighed: the rule needs 3 quiet epochs
    quiet = [s + 2 for s in range(len(ch)) if ch[s] < 0.01]
    assert first >= max(4, quiet[0] + 2) and all(stops[first - 1 :])
    with pytest.raises(ValueError):
        EarlyStop(patience=3, min_epochs=3)


def _data() -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    y_noisy = y.copy()
    y_noisy[:12] = (y[:12] + 1) % 3
    x = torch.tensor(rng.normal(0, 2.5, (3, 5))[y] + rng.normal(0, 1, (120, 5)), dtype=torch.float32)
    return x, y_noisy


def _build(fold: int) -> nn.Module:
    torch.manual_seed(fold)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))


def test_protocol_stops_at_the_same_epoch_after_a_kill(tmp_path, monkeypatch):
    x, y = _data()
    cfg = TrainConfig(epochs=25, batch_size=16, lr=0.05)
    decisions: list[tuple[int, bool]] = []

    class Watched(EarlyStop):
        def should_stop(self, held, in_sample, labels):  # type: ignore[no-untyped-def]
            out = super().should_stop(held, in_sample, labels)
            decisions.append((held.num_epochs, out))
            return out

    rule = Watched(tol=0.01, patience=3, min_epochs=4)
    ins = Recorder(len(y), 3, keep_probs=1)
    full, _ = crossfit_recorded(_build, x, y, num_classes=3, config=cfg, n_folds=3, progress=False, in_sample=ins,
                                early_stop=rule)  # fmt: skip
    t = full.num_epochs
    assert 4 <= t < 25  # stopped early: asked after every epoch, true for the first time after epoch t
    assert decisions == [(e, e == t) for e in range(1, t + 1)]

    class Killed(Exception):
        pass

    real = protocol.run_epoch

    def dies(*a, epoch, **kw):
        if epoch == t - 1:
            raise Killed
        return real(*a, epoch=epoch, **kw)

    monkeypatch.setattr(protocol, "run_epoch", dies)
    with pytest.raises(Killed):
        crossfit_recorded(_build, x, y, num_classes=3, config=cfg, n_folds=3, progress=False, early_stop=rule,
                          in_sample=Recorder(len(y), 3, keep_probs=1), checkpoint_dir=tmp_path)  # fmt: skip
    monkeypatch.setattr(protocol, "run_epoch", real)
    ins2 = Recorder(len(y), 3, keep_probs=1)
    again, _ = crossfit_recorded(_build, x, y, num_classes=3, config=cfg, n_folds=3, progress=False, early_stop=rule,
                                 in_sample=ins2, checkpoint_dir=tmp_path)  # fmt: skip
    assert again.num_epochs == t
    np.testing.assert_allclose(again.dynamics().epochs("p_given"), full.dynamics().epochs("p_given"), rtol=1e-5,
                               atol=1e-6)  # fmt: skip


def test_scan_records_early_stop_in_fingerprint_and_run_json(tmp_path):
    from sklearn.datasets import load_digits

    from labeltrace.data import from_arrays
    from labeltrace.scan import ScanConfig, fingerprint, scan

    d = load_digits()
    ds = from_arrays((d.images[:150] / 16).astype(np.float32), d.target[:150] % 3)
    off = fingerprint(ds, ScanConfig(resolution=96), "small-cnn", None)  # resolved, as the scan fingerprints
    assert "early_stop" not in off["protocol"]  # off: the fingerprint of earlier scans
    cfg = ScanConfig(model="small-cnn", epochs=12, folds=3, batch_size=32, seed=0, early_stop=True,
                     noise="symmetric:0.2")  # fmt: skip
    assert fingerprint(ds, replace(cfg, resolution=96), "small-cnn", None)["protocol"]["early_stop"] == {"tol": 0.01, "patience": 3,
                                                                                  "min_epochs": 5}  # fmt: skip
    res = scan(ds, tmp_path / "run", cfg, progress=False, log=lambda s: None)
    p = res.meta["protocol"]
    assert p["early_stop"]["enabled"] is True and p["epochs_planned"] == 12
    assert p["early_stop"]["stopped_early"] == (p["epochs_trained"] < 12)
    assert res.meta["fingerprint"]["protocol"]["early_stop"]["tol"] == 0.01
