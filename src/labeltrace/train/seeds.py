"""The training seeds: how every seed derives from the user's ``seed``, and the one rule by which
a derived seed reaches a generator.

Derived seeds grow past 64 bits for large user seeds (the cross-fitted fold ``k`` of scan seed
``s`` orders its batches with ``((s * 7919 + 2000) * 1009 + k) * 1_000_003 + epoch``), while
torch seeds its generators with 64 bits and refuses a larger integer (``Overflow when unpacking
long long``). :func:`torch_seed` reduces a seed modulo 2**64 — what torch does itself with every
seed it accepts (a negative one is read as its two's complement) — so every seed that worked
gives the same generator as before and a larger one works too. :func:`legacy_seed` does the same
for numpy's ``RandomState`` (scikit-learn's ``random_state``), which takes 32 bits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["augment_seed", "crossfit_seed", "cv_seed", "epoch_generator", "legacy_seed", "run_seed", "seed_torch",
           "torch_seed"]


def run_seed(seed: int, r: int) -> int:
    """Training seed (initialisation, batch order) of in-sample run ``r``."""
    return int(seed) * 7919 + int(r)


def cv_seed(seed: int, fold: int) -> int:
    """Training seed of fold ``fold``'s model in :func:`~labeltrace.train.protocol.cross_validated_probs`."""
    return int(seed) * 7919 + 1000 + int(fold)


def crossfit_seed(seed: int) -> int:
    """Base seed of the cross-fitted recording (folds; model ``k`` initialised with ``+ 101 k``)."""
    return int(seed) * 7919 + 2000


def augment_seed(seed: int, rank: int) -> int:
    """Seed of the crops drawn by process ``rank`` of a data-parallel training seeded ``seed``
    (each process its own; a single process draws its crops from the batch order's generator)."""
    return int(seed) * 7919 + 4001 + int(rank)


def torch_seed(seed: int) -> int:
    """``seed`` modulo 2**64: the seed torch's generators read (identical for every seed torch
    accepts, ``[-2**63, 2**64)``)."""
    return int(seed) % (1 << 64)


def legacy_seed(seed: int) -> int:
    """``seed`` modulo 2**32, for numpy's ``RandomState`` (scikit-learn's ``random_state``), which
    refuses anything outside ``[0, 2**32)`` (identical there)."""
    return int(seed) % (1 << 32)


def seed_torch(seed: int) -> None:
    """Seed torch's global generator (a network's initialisation) with :func:`torch_seed` of ``seed``."""
    import torch

    torch.manual_seed(torch_seed(seed))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of epoch ``epoch`` of a training seeded ``seed`` (its batch order and crops)."""
    import torch

    return torch.Generator().manual_seed(torch_seed(int(seed) * 1_000_003 + int(epoch)))
