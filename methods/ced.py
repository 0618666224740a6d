"""CED (Concat-Ensemble-Distill): one backbone learns every hub model's features at once."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from hubbench.methods._features import Teachers, finetuned_needs, resize_to, source_backbones
from hubbench.methods.base import Method, register


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


@register
class CED(Method):
    """Concat-Ensemble-Distill. The student is the first hub model's architecture with its
    pre-trained weights; adapter i regresses hub model i's last feature map (MSE, the teacher's
    map resized to the student's spatial size), and the task head is trained on the concatenated
    adapter outputs. Teachers are the frozen pre-trained hub models (the fine-tuned ones for
    `ced_ft`); they are used only for training, so the predictor runs one backbone.

    Weighting (not given by the sources; our choice): one joint stage minimising
    task loss + `feature_weight` x mean over teachers of the feature MSE, all parameters trained.
    """

    name = "ced"
    description = "CED: one backbone with per-source adapters distilling all pre-trained hub features, concat -> head"
    finetuned: ClassVar[bool] = False
    feature_weight: float = 1.0

    def needs(self, hub, task):
        return finetuned_needs(hub, self.finetuned)

    def fit(self, ctx):
        task = ctx.task
        backbone = ctx.hub.sources[0].backbone(pretrained=True)
        sources = source_backbones(ctx, self.finetuned)
        model = MultiHeadStudent(backbone, [s.out_channels for s in sources], task.head)
        teachers = Teachers(sources)

        def loss(m, x, y):
            feats = m.features(x)
            targets = teachers(x)
            mse = sum(F.mse_loss(f, resize_to(t, f.shape[-2:])) for f, t in zip(feats, targets, strict=True))
            return task.loss(m.head(torch.cat(feats, 1)), y) + self.feature_weight * mse / len(targets)

        return ctx.train(model, loss=loss)


@register
class CEDFinetuned(CED):
    """CED whose teachers are the hub models fine-tuned on the task (the shared artifacts)."""

    name = "ced_ft"
    description = "CED+Finetuned: CED distilling the features of the fine-tuned hub models"
    finetuned: ClassVar[bool] = True
