"""A compact ResNet for small images (8x8 digits up to 64x64), fast enough to train on a CPU.

Layout (``width`` = w, ``depth`` = d residual blocks per stage)::

    stem   3x3 conv (in -> w), BN, ReLU          stride 2 only when the short side is > 32 px
    stage1 d basic blocks, w channels            no downsampling
    stage2 d basic blocks, 2w channels           first block stride 2 if the short side is >= 4
    stage3 d basic blocks, 4w channels           first block stride 2 if the short side is >= 4
    global average pooling -> (B, 4w) embedding -> linear -> (B, num_classes) logits

Strides are chosen from the size of the tensor that reaches each layer, so one network accepts
any input size: an 8x8 input goes 8 -> 8 -> 4 -> 2, a 28x28 input 28 -> 14 -> 7, a 64x64 input
64 -> 32 -> 16 -> 8. A layer never downsamples a map whose short side is below 4, so the spatial
size never drops below 2x2 (or below the input size, for inputs smaller than that).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SmallResNet"]

#: The narrowest width trained channels-last (see SmallResNet.__init__).
_MIN_CHANNELS_LAST = 8


def _stride_for(x: torch.Tensor, want_downsample: bool) -> int:
    """2 when downsampling is asked for and the short side of ``x`` is at least 4, else 1."""
    return 2 if want_downsample and min(x.shape[-2], x.shape[-1]) >= 4 else 1


class _BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut, ResNet v1 style."""

    def __init__(self, in_ch: int, out_ch: int, *, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.proj: nn.Conv2d | None = None
        self.proj_bn: nn.BatchNorm2d | None = None
        if downsample or in_ch != out_ch:
            self.proj = nn.Conv2d(in_ch, out_ch, 1, bias=False)
            self.proj_bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = _stride_for(x, self.downsample)
        out = F.relu(self.bn1(F.conv2d(x, self.conv1.weight, None, s, 1)))
        out = self.bn2(self.conv2(out))
        if self.proj is not None and self.proj_bn is not None:
            shortcut = self.proj_bn(F.conv2d(x, self.proj.weight, None, s, 0))
        else:
            shortcut = x
        return F.relu(out + shortcut)


class SmallResNet(nn.Module):
    """Compact 3-stage ResNet with BatchNorm and global average pooling.

    Parameters
    ----------
    in_channels : int
        Channels of the input images (1 for grayscale, 3 for RGB, any positive number works).
    num_classes : int
        Number of output logits. Include the auxiliary "other" class here when one is wanted:
        it is simply one more output unit.
    width : int, default 32
        Channels of the first stage; stages 2 and 3 use ``2 * width`` and ``4 * width``.
    depth : int, default 1
        Residual blocks per stage (1 gives an 8-layer network: stem + 3 x 2 convs + linear).

    Notes
    -----
    Input is a float tensor ``(B, in_channels, H, W)`` with any ``H, W >= 1``. See the module
    docstring for how strides adapt to the input size. :meth:`features` returns the pooled
    ``(B, 4 * width)`` embedding that feeds the final linear layer.
    """

    def __init__(
        self, in_channels: int, num_classes: int, *, width: int = 32, depth: int = 1
    ) -> None:
        super().__init__()
        for name, val in (("in_channels", in_channels), ("num_classes", num_classes),
                          ("width", width), ("depth", depth)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.width = width
        self.depth = depth
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width)
        blocks: list[nn.Module] = []
        in_ch = width
        for stage, out_ch in enumerate((width, 2 * width, 4 * width)):
            for i in range(depth):
                blocks.append(_BasicBlock(in_ch, out_ch, downsample=stage > 0 and i == 0))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.embed_dim = 4 * width
        self.fc = nn.Linear(self.embed_dim, num_classes)
        self._init_weights()
        # channels-last (NHWC) weights and inputs: the same arithmetic, 1.3x faster per training step
        # on a 2-core CPU at width 16, 28 px (oneDNN's convolutions prefer it); .to(device) keeps it.
        # Not below 8 channels: torch 2.13's CPU backward then corrupts the heap on an AVX2-only CPU
        # (AMD EPYC; widths 1-7 abort the process, 8 and up run clean), so narrow nets stay NCHW
        self.channels_last = width >= _MIN_CHANNELS_LAST  # a bool: torch.save cannot pickle a memory_format
        self.to(memory_format=self.memory_format)  # type: ignore[call-overload]  # torch accepts it, its stubs do not

    @property
    def memory_format(self) -> torch.memory_format:
        """The layout the network trains in: channels-last from width 8, else contiguous (NCHW)."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding: the globally average-pooled last-stage map, ``(B, 4 * width)``.

        Raises
        ------
        ValueError
            If ``x`` is not ``(B, in_channels, H, W)``.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        s = 2 if min(x.shape[-2], x.shape[-1]) > 32 else 1
        x = x.contiguous(memory_format=self.memory_format)
        out = F.relu(self.stem_bn(F.conv2d(x, self.stem.weight, None, s, 1)))
        out = self.blocks(out)
        return out.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)``."""
        return self.fc(self.features(x))
