"""find_suspects: the one-training mode on a Recorder's dynamics, as the scan's `single` detector."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labeltrace import Recorder, find_suspects
from labeltrace.decide import detectors
from labeltrace.decide.evidence import Evidence
from labeltrace.record.recording import RecordedRun

torch.set_num_threads(1)


def _dynamics(n: int = 120, k: int = 3, flip: int = 20, epochs: int = 6) -> tuple[Recorder, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    true = rng.integers(0, k, n)
    x = torch.tensor(rng.normal(0, 1, (n, 8)) + 3.0 * np.eye(k, 8)[true], dtype=torch.float32)
    given = true.copy()
    wrong = rng.choice(n, flip, replace=False)
    given[wrong] = (given[wrong] + 1) % k
    y = torch.tensor(given)
    torch.manual_seed(0)
    model = torch.nn.Linear(8, k)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(n, k)
    for _ in range(epochs):
        for ids in torch.randperm(n).split(16):
            logits = model(x[ids])
            loss = torch.nn.functional.cross_entropy(logits, y[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.update(ids, logits, y[ids])
        rec.end_epoch()
    return rec, np.isin(np.arange(n), wrong), x.numpy()


def test_find_suspects_is_the_single_detector_and_finds_flipped_labels() -> None:
    rec, wrong, x = _dynamics()
    dyn = rec.dynamics()
    det = find_suspects(dyn, features=x)
    # the same decision as the detector table's row, computed here by hand
    want = detectors.detect("single", Evidence(dyn.labels, 3, single=RecordedRun(dyn, np.zeros(120, bool), 3),
                                               features=x))  # fmt: skip
    np.testing.assert_array_equal(det.flagged, want.flagged)
    assert (det.flagged & wrong).sum() >= 0.7 * wrong.sum() and det.flagged.sum() <= 2 * wrong.sum()


def test_find_suspects_refuses_what_it_cannot_decide() -> None:
    rec = Recorder(10, 2)
    rec.update(np.arange(8), np.zeros((8, 2)), np.zeros(8, dtype=int))
    rec.end_epoch()
    with pytest.raises(ValueError, match="2 samples were never recorded"):
        find_suspects(rec.dynamics())
    full, _, _ = _dynamics()
    with pytest.raises(ValueError, match="one plain run"):
        find_suspects(full.dynamics(), detector="crossfit")
    with pytest.raises(ValueError, match=r"features must be \(N=120, D\)"):
        find_suspects(full.dynamics(), features=np.zeros((5, 2)))
