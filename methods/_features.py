"""Pieces shared by the methods that use hub models as frozen feature extractors or teachers
(FE, CED, Distill, K-Flow, soups): freezing, feature concatenation, and loading the sources. Their `fit`
imports them (this module imports torch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hubbench.context import Context
from hubbench.methods.base import finetuned_needs


class Frozen(nn.Module):
    """A module that is never trained: no gradients, and eval mode even inside a model put in
    train mode by the training loop, so its BatchNorm statistics never move. A frozen backbone
    keeps its `out_channels`."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module.requires_grad_(False).eval()
        if hasattr(module, "out_channels"):
            self.out_channels = module.out_channels

    def train(self, mode: bool = True) -> Frozen:
        return super().train(False)

    def forward(self, x):
        with torch.no_grad():
            return self.module(x)


def resize_to(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a feature map to spatial `size` (a no-op when it already has it)."""
    return x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ConcatFeatures(nn.Module):
    """Several backbones side by side: their last feature maps concatenated along channels,
    each resized to the first one's spatial size."""

    def __init__(self, backbones: list[nn.Module]):
        super().__init__()
        self.backbones = nn.ModuleList(backbones)
        self.out_channels = sum(b.out_channels for b in backbones)

    def forward(self, x):
        maps = [b(x) for b in self.backbones]
        return torch.cat([resize_to(m, maps[0].shape[-2:]) for m in maps], 1)


class Teachers:
    """Frozen models queried only while training. Deliberately not an `nn.Module`: a model that
    holds them does not store them in its checkpoints (they are rebuilt identically on resume)."""

    def __init__(self, models: list[nn.Module]):
        self.models = [Frozen(m) for m in models]

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [m.to(x.device)(x) for m in self.models]


def finetuned_models(ctx: Context) -> list[nn.Module]:
    """Every hub model fine-tuned on the task (task models: backbone and head), from the cache."""
    return [ctx.artifact(a) for a in finetuned_needs(ctx.hub)]


def source_backbones(ctx: Context, finetuned: bool) -> list[nn.Module]:
    """The backbones of every hub model: pre-trained, or fine-tuned on the task."""
    if finetuned:
        return [m.backbone for m in finetuned_models(ctx)]
    return [s.backbone(pretrained=True) for s in ctx.hub.sources]
