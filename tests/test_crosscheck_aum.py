"""Our ``aum`` score against the ``aum`` package (asappresearch, Pleiss et al. 2020) on the same logits.

The package averages the margin over every ``update`` call a sample appears in; the Recorder first
averages a sample's updates within an epoch, then over epochs. With one update per sample per
epoch (any ordinary loader) the two are the same number; with a sample seen twice in one epoch
(a sampler with replacement) ours weighs epochs equally, by design.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labeltrace import Recorder
from labeltrace.score import trajectory as scores

aum = pytest.importorskip("aum")


@pytest.mark.parametrize(("seed", "n", "k", "epochs", "batch"), [(0, 50, 3, 4, 8), (1, 200, 10, 6, 32), (2, 9, 2, 3, 5)])
def test_aum_equals_the_aum_package(seed: int, n: int, k: int, epochs: int, batch: int, tmp_path) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    rec = Recorder(n, k)
    theirs = aum.AUMCalculator(str(tmp_path), compressed=True)
    last: dict[int, float] = {}
    for _ in range(epochs):  # (batches of >= 2: the package's squeeze() breaks on a batch of one)
        order = rng.permutation(n)
        for i in range(0, n, batch):
            ids = order[i : i + batch]
            logits = torch.from_numpy(rng.normal(0, 3, (len(ids), k)))
            y = torch.from_numpy(labels[ids])
            rec.update(ids, logits, y)
            out = theirs.update(logits, y, [int(j) for j in ids])
            last.update({sid: r.aum for sid, r in out.items()})
        rec.end_epoch()
    ours = scores.compute("aum", rec.dynamics())
    ref = np.array([last[i] for i in range(n)])
    # the Recorder stores margins in float32 (compact dtypes); the package keeps Python floats
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
