"""Fixtures shared by test modules."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

pytest_plugins = ["pytester"]


@pytest.fixture
def backbone_spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The shapes of the image batches the frozen backbone is handed, with the pretrained network
    replaced by a cheap one of the same interface (a channel mean per feature)."""
    from labeltrace.models import backbone

    class _Backbone(torch.nn.Module):
        def extract_features(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(1, keepdim=True).expand(-1, backbone.FEATURE_DIM, -1, -1)

    seen: list[tuple[int, ...]] = []
    real = backbone.extract_features

    def extract(images, **kw):  # type: ignore[no-untyped-def]
        images = list(images)
        seen.extend(tuple(x.shape) for x in images)
        return real(images, **kw)

    monkeypatch.setattr(backbone, "extract_features", extract)
    monkeypatch.setattr(backbone, "load_efficientnet_lite0", lambda pretrained=True: _Backbone())
    return seen


@pytest.fixture(autouse=True)
def _seeded_torch() -> None:
    """Every test starts from one torch seed: a network built or a tensor drawn without a seed of
    its own is the same in every run and in any test order — once per test function, not per
    hypothesis example (a property test draws its tensors from a generator seeded by the example),
    nor for a module-scoped fixture built before it (such a fixture seeds itself)."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _process_state_kept() -> Iterator[None]:
    """Every test leaves the process as it found it: the environment variables and torch's
    deterministic-algorithms switch. Lightning's Trainer sets the switch (``deterministic=True``)
    and ``CUBLAS_WORKSPACE_CONFIG``, and its forking strategies ``MASTER_PORT``, and leaves them set:
    every later test file ran with them (torch.empty NaN-filled, ops without a deterministic kernel
    refused), an earlier one without, so a result could depend on the order the files ran in."""
    env = dict(os.environ)
    det = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    for k in set(os.environ) - set(env) - {"PYTEST_CURRENT_TEST"}:
        del os.environ[k]
    for k, v in env.items():
        if k != "PYTEST_CURRENT_TEST" and os.environ.get(k) != v:
            os.environ[k] = v
    torch.use_deterministic_algorithms(det[0], warn_only=det[1])
