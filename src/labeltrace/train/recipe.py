"""What network to train: the one place ``labeltrace scan`` and ``labeltrace bench`` build one.

A :class:`NetworkSpec` names the architecture and its options; :meth:`NetworkSpec.build` makes
the network for given inputs (their shape sets the image size, channels or feature width) and a
number of outputs (the auxiliary class included when wanted). Optimisation settings live in
:class:`labeltrace.train.TrainConfig`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from labeltrace.train.batches import BatchSource

__all__ = ["KINDS", "NetworkSpec"]

#: small-cnn: a compact ResNet on images, from scratch; mlp / linear: a head on frozen features;
#: effnet-lite0: the whole EfficientNet-Lite0 fine-tuned on images; clip: CLIP with class prompts
KINDS: tuple[str, ...] = ("small-cnn", "mlp", "linear", "effnet-lite0", "clip")
#: the small CNN's default base width: (images up to this many px, width there, width above). A
#: benchmark's training cache keys a width-less spec by it, so changing it retrains those cells
SMALL_CNN_WIDTH: tuple[int, int, int] = (32, 16, 32)


@dataclass(frozen=True)
class NetworkSpec:
    """An architecture and its options (everything but the inputs and the number of outputs)."""

    kind: str = "small-cnn"
    width: int | None = None  # small-cnn base width (default: 16 for images <= 32 px, else 32)
    hidden: int = 256  # mlp (and fine-tuned effnet-lite0 mlp head) width
    head: str = "mlp"  # effnet-lite0 fine-tuning: linear | mlp
    resolution: int = 96  # effnet-lite0 input resolution
    clip_model: str | None = None  # clip: local directory (save_pretrained) or cached hub name
    clip_template: str = "a photo of a {}"
    aux_prompt: str = "a photo of something else"  # clip: the auxiliary class's prompt

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown network {self.kind!r}; choose from {', '.join(KINDS)}")
        if self.kind == "clip" and not self.clip_model:
            raise ValueError("a clip network needs clip_model: a local CLIP directory or a cached hub name")

    def build(self, inputs: torch.Tensor | BatchSource, n_out: int, classes: Sequence[str] | None = None) -> nn.Module:
        """The network for ``inputs`` (``(N, C, H, W)`` images or ``(N, D)`` features, a tensor or
        a :class:`~labeltrace.train.batches.BatchSource`: only their shape is read) with
        ``n_out`` outputs; ``classes`` (the real class names) is needed by CLIP's prompts."""
        from labeltrace.models import build_model

        if self.kind == "small-cnn":
            side = int(inputs.shape[-1])
            # 16 up to 32 px: on the dev cells (benchmarks/results/dev-cnn-size.md) width 16 loses no F1
            # against 32 at 20 epochs (PneumoniaMNIST val 28 px: -0.009 / +0.006) and trains 2.5x faster
            up_to, small, large = SMALL_CNN_WIDTH
            width = self.width or (small if side <= up_to else large)
            return build_model("small-cnn", num_classes=n_out, in_channels=int(inputs.shape[1]), image_size=side,
                               width=width)  # fmt: skip
        if self.kind == "mlp":
            return build_model("mlp", num_classes=n_out, in_dim=int(inputs.shape[1]), hidden=self.hidden)
        if self.kind == "linear":
            return build_model("linear", num_classes=n_out, in_dim=int(inputs.shape[1]))
        if self.kind == "effnet-lite0":  # the whole network; images in, resized and normalised inside
            head_kw = {"hidden": self.hidden} if self.head == "mlp" else {}
            return build_model("effnet-lite0", num_classes=n_out, in_channels=3, head=self.head, finetune=True,
                               resolution=self.resolution, **head_kw)  # fmt: skip
        if classes is None:
            raise ValueError("a clip network needs the class names")
        return build_model("clip", num_classes=n_out, in_channels=int(inputs.shape[1]), class_names=list(classes),
                           model_name_or_path=self.clip_model, template=self.clip_template,
                           aux_prompt=self.aux_prompt if n_out > len(classes) else None)  # fmt: skip
