"""CED's student and its loss (`hubbench.methods.ced`): imported by its `fit`, with torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hubbench.methods._features import Teachers, resize_to
from hubbench.tasks.base import Task


class MultiHeadStudent(nn.Module):
    """A single backbone with one 1x1-conv adapter per hub model; the task head reads the
    concatenation of the adapters' outputs (the distilled counterpart of FE's concatenation)."""

    def __init__(self, backbone: nn.Module, channels: list[int], head_factory):
        super().__init__()
        self.backbone = backbone
        self.adapters = nn.ModuleList(nn.Conv2d(backbone.out_channels, c, 1) for c in channels)
        self.head = head_factory(sum(channels))

    def features(self, x) -> list[torch.Tensor]:
        f = self.backbone(x)
        return [a(f) for a in self.adapters]

    def forward(self, x):
        return self.head(torch.cat(self.features(x), 1))


def distilled_loss(task: Task, teachers: Teachers, feature_weight: float):
    """task loss of the head on the concatenated adapters + `feature_weight` x the mean over teachers of the MSE
    between adapter i's output and teacher i's last feature map (resized to the student's)."""

    def loss(m: MultiHeadStudent, x, y):
        feats = m.features(x)
        targets = teachers(x)
        mse = sum(F.mse_loss(f, resize_to(t, f.shape[-2:])) for f, t in zip(feats, targets, strict=True))
        return task.loss(m.head(torch.cat(feats, 1)), y) + feature_weight * mse / len(targets)

    return loss
