"""Fixtures shared by test modules."""

from __future__ import annotations

import pytest
import torch


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
    its own is the same in every run and in any test order (pytest-randomly reseeds ``random`` and
    numpy's global state, not torch's)."""
    torch.manual_seed(0)
