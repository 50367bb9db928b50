"""Classifier heads for cached frozen features, and a frozen-backbone + head image classifier.

* :class:`LinearHead` and :class:`MLPHead` train on ``(B, in_dim)`` feature vectors (e.g. the
  cached EfficientNet-Lite0 features of :mod:`labeltrace.models.backbone`).
* :class:`ImageFeatureExtractor` turns images into the same pooled feature vectors on the fly,
  with the same preprocessing as :func:`labeltrace.models.backbone.extract_features`.
* :class:`FrozenBackboneClassifier` chains an image feature extractor and a head, so a head
  trained on cached features can classify images directly, or the whole stack can be fine-tuned.

Every module here has ``features(x)``: the embedding used for kNN-style scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from labeltrace._checks import check_int

__all__ = [
    "FrozenBackboneClassifier",
    "ImageFeatureExtractor",
    "LinearHead",
    "MLPHead",
]


def _check_features(x: torch.Tensor, in_dim: int) -> None:
    if x.ndim != 2 or x.shape[1] != in_dim:
        raise ValueError(f"expected features of shape (B, {in_dim}), got {tuple(x.shape)}")


class LinearHead(nn.Module):
    """A single linear layer ``(B, in_dim) -> (B, num_classes)``.

    Parameters
    ----------
    in_dim : int
        Feature dimension.
    num_classes : int
        Number of logits, the auxiliary "other" class included when one is wanted.
    """

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.in_dim = in_dim = check_int("in_dim", in_dim, 1)
        self.num_classes = num_classes = check_int("num_classes", num_classes, 1)
        self.fc = nn.Linear(in_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The input features themselves (a linear head has no hidden layer)."""
        _check_features(x, self.in_dim)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)``."""
        _check_features(x, self.in_dim)
        return self.fc(x)


class MLPHead(nn.Module):
    """One hidden layer: ``Linear -> ReLU -> Dropout -> Linear``.

    Parameters
    ----------
    in_dim : int
        Feature dimension.
    num_classes : int
        Number of logits, the auxiliary "other" class included when one is wanted.
    hidden : int, default 512
        Hidden units.
    dropout : float, default 0.0
        Dropout probability applied to the hidden activations in training mode.
    """

    def __init__(
        self, in_dim: int, num_classes: int, *, hidden: int = 512, dropout: float = 0.0
    ) -> None:
        super().__init__()
        in_dim, num_classes = check_int("in_dim", in_dim, 1), check_int("num_classes", num_classes, 1)
        hidden = check_int("hidden", hidden, 1)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.in_dim = in_dim
        self.num_classes = num_classes
        self.fc1 = nn.Linear(in_dim, hidden)
        self.drop = nn.Dropout(float(dropout))
        self.fc2 = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden activations ``relu(fc1(x))``, ``(B, hidden)``, without dropout."""
        _check_features(x, self.in_dim)
        return F.relu(self.fc1(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)``."""
        return self.fc2(self.drop(self.features(x)))


class ImageFeatureExtractor(nn.Module):
    """Images in [0, 1] -> pooled backbone features, preprocessed like the feature cache.

    Grayscale inputs are repeated to 3 channels, images are resized to ``resolution`` (bilinear,
    antialiased) when their size differs, normalised with ``(mean, std)``, passed through
    ``model.extract_features`` (or ``model(x)`` when the model has no such method) and, when
    that returns a ``(B, C, h, w)`` map, averaged over the spatial grid. With the defaults this
    matches :func:`labeltrace.models.backbone.extract_features`.

    Parameters
    ----------
    model : torch.nn.Module
        The backbone.
    resolution : int or None, default 96
        Side length inputs are resized to; None keeps the input size.
    mean, std : sequence of 3 floats or None, default ImageNet statistics
        Per-channel normalisation; pass ``None`` for both to skip it.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        resolution: int | None = 96,
        mean: Sequence[float] | None = (0.485, 0.456, 0.406),
        std: Sequence[float] | None = (0.229, 0.224, 0.225),
    ) -> None:
        super().__init__()
        if resolution is not None:
            resolution = check_int("resolution", resolution, 1)
        if (mean is None) != (std is None):
            raise ValueError("mean and std must both be given or both be None")
        self.model = model
        self.resolution = resolution
        self.mean: torch.Tensor | None
        self.std: torch.Tensor | None
        if mean is not None and std is not None:
            m = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
            s = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
            if m.shape[1] != 3 or s.shape[1] != 3 or bool((s <= 0).any()):
                raise ValueError("mean and std must have 3 values each and std > 0")
            self.register_buffer("mean", m, persistent=False)
            self.register_buffer("std", s, persistent=False)
        else:
            self.mean = None
            self.std = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, D)`` of images ``(B, 1 or 3, H, W)`` in [0, 1]."""
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images of shape (B, 1 or 3, H, W), got {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        r = self.resolution
        if r is not None and tuple(x.shape[-2:]) != (r, r):
            x = F.interpolate(
                x, size=(r, r), mode="bilinear",
                align_corners=False, antialias=True,
            )
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        extract = getattr(self.model, "extract_features", None)
        out = extract(x) if callable(extract) else self.model(x)
        if out.ndim == 4:
            out = out.mean(dim=(2, 3))
        return out.reshape(out.shape[0], -1)


class FrozenBackboneClassifier(nn.Module):
    """Image classifier = backbone (frozen or fine-tuned) followed by a head.

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps images to ``(B, D)`` features (or a ``(B, D, ...)`` tensor, which is flattened),
        e.g. an :class:`ImageFeatureExtractor`.
    head : torch.nn.Module
        A head with ``forward`` and ``features`` on ``(B, D)`` features, e.g. :class:`LinearHead`.
    finetune : bool, default False
        False: the backbone's parameters get ``requires_grad=False``, it always stays in eval
        mode (BatchNorm statistics and dropout frozen, even after ``.train()``) and runs under
        ``torch.no_grad``; only the head trains. True: everything trains.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, *, finetune: bool = False) -> None:
        super().__init__()
        if not callable(getattr(head, "features", None)):
            raise ValueError(f"head {type(head).__name__} has no features() method")
        self.backbone = backbone
        self.head = head
        self.finetune = False
        self.set_finetune(finetune)

    def set_finetune(self, finetune: bool) -> None:
        """Switch between frozen-backbone (False) and full fine-tuning (True)."""
        self.finetune = bool(finetune)
        for p in self.backbone.parameters():
            p.requires_grad_(self.finetune)
        self.train(self.training)

    def train(self, mode: bool = True) -> FrozenBackboneClassifier:
        """Set training mode; a frozen backbone stays in eval mode."""
        super().train(mode)
        if not self.finetune:
            self.backbone.eval()
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(B, D)``; computed without autograd when the backbone is frozen."""
        if self.finetune:
            f = self.backbone(x)
        else:
            with torch.no_grad():
                f = self.backbone(x)
        return f.reshape(f.shape[0], -1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's embedding of the backbone features (identity for a linear head)."""
        head_features = cast(Callable[[torch.Tensor], torch.Tensor], self.head.features)
        return head_features(self.embed(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the head."""
        return self.head(self.embed(x))
