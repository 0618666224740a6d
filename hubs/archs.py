"""Small backbones for the self-built hubs (CPU-sized, 32-64 px input)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3x3 convs with BN and an identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class MiniResNet(nn.Module):
    """A ResNet in miniature: 3x3 stride-2 stem, then one basic block per stage.

    With widths (16, 32, 64, 128) a 32 px image gives a 4x4x128 feature map (output stride 8)
    for 0.3 M parameters; the stages are named like torchvision's ResNet (`layer1`...).
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        for i, (cin, cout) in enumerate(zip(widths, widths[1:], strict=False), start=1):
            self.add_module(f"layer{i}", BasicBlock(cin, cout, 1 if i == 1 else 2))
        self.depth = len(widths) - 1
        self.out_channels = widths[-1]

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(1, self.depth + 1):
            x = getattr(self, f"layer{i}")(x)
        return x
