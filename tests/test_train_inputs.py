"""What the recorded trainings are handed: large seeds (every generator seeded modulo 2**64, the
seeds that worked unchanged)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from labeltrace.train import TrainConfig, run_epoch
from labeltrace.train.distributed import Dist
from labeltrace.train.loop import make_optimizer
from labeltrace.train.protocol import crossfit_recorded, crossfit_seed

torch.set_num_threads(1)
CFG = TrainConfig(epochs=2, batch_size=8, device="cpu")


def toy(n=30, d=5, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), np.arange(n) % k


def linear(d=5, k=3):
    torch.manual_seed(0)
    return nn.Linear(d, k)


# ---------------------------------------------------------------------------- seeds
@pytest.mark.parametrize("seed", [0, 7, 2**63 - 1, 2**63, 2**64 - 1, -1, -(2**63)])
def test_torch_seed_gives_the_generator_torch_gave_every_seed_it_accepted(seed):
    from labeltrace.train.seeds import torch_seed

    a, b = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(torch_seed(seed))
    assert torch.equal(a.get_state(), b.get_state())


@pytest.mark.parametrize("seed", [0, 5, crossfit_seed(291) * 1009 + 4, -3])
def test_epoch_generator_is_the_one_of_working_seeds(seed):
    from labeltrace.train.seeds import epoch_generator

    want = torch.Generator().manual_seed(seed * 1_000_003 + 3)
    assert torch.equal(epoch_generator(seed, 3).get_state(), want.get_state())


def test_a_large_scan_seed_trains_in_one_process():
    """Fold k of scan seed 2,309,000 orders its batches with a seed past 2**64: 'Overflow when
    unpacking long long' before."""
    x, y = toy()
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu", seed=crossfit_seed(2_309_000))
    rec, _ = crossfit_recorded(lambda k: linear(), x, y, num_classes=3, config=cfg, n_folds=2, progress=False)
    assert rec.dynamics().num_epochs == 1


class _TwoRanks(Dist):
    """Rank 0 of two as run_epoch sees it, without a process group (sum stays local)."""

    def sum(self, *values: float) -> tuple[float, ...]:
        return tuple(float(v) for v in values)


def test_data_parallel_crops_seed_past_2_64():
    """Under torchrun each rank seeds its crops with (seed * 7919 + 4001 + rank) * 1_000_003 +
    epoch: scan seeds >= 292 overflowed it in every cross-fitted fold."""
    x, y = toy()
    model = linear()
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu", seed=crossfit_seed(292) * 1009)
    correct, _ = run_epoch(model, make_optimizer(model, cfg), x, torch.from_numpy(y), config=cfg, epoch=0,
                           device=torch.device("cpu"), dist=_TwoRanks(rank=0, world_size=2))  # fmt: skip
    assert 0 <= correct <= len(y)
