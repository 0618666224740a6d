"""Ensemble-I: average the predictions of the independently fine-tuned hub models."""

from __future__ import annotations

from torch import nn

from hubbench.context import FinetunedSource
from hubbench.methods.base import Method, register


class Ensemble(nn.Module):
    """Runs every member and lets the task combine their outputs (probabilities for
    classification, heatmaps for landmarks)."""

    def __init__(self, members: list[nn.Module], combine):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.combine = combine

    def forward(self, x):
        return self.combine([m(x) for m in self.members])


@register
class EnsembleI(Method):
    """Members are the `FinetunedSource` artifacts, reused as they are: no training of its own."""

    name = "ensemble_i"
    trains = False  # the sources it uses are trained (and tuned) as artifacts
    description = "Ensemble-I: mean prediction of the independently fine-tuned hub models"

    def needs(self, hub, task):
        return [FinetunedSource(s) for s in hub.names]

    def fit(self, ctx):
        members = [ctx.artifact(a) for a in self.needs(ctx.hub, ctx.task)]
        return Ensemble(members, ctx.task.combine)
