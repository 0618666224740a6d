"""Ensemble-I: average the predictions of the independently fine-tuned hub models."""

from __future__ import annotations

from hubbench.artifacts import FinetunedSource
from hubbench.methods.base import Method, register


@register
class EnsembleI(Method):
    """Members are the `FinetunedSource` artifacts, reused as they are (`hubbench.models.Ensemble`): no
    training of its own."""

    name = "ensemble_i"
    trains = False  # the sources it uses are trained (and tuned) as artifacts
    description = "Ensemble-I: mean prediction of the independently fine-tuned hub models"

    def needs(self, hub, task):
        return [FinetunedSource(s) for s in hub.names]

    def fit(self, ctx):
        from hubbench.models import Ensemble

        members = [ctx.artifact(a) for a in self.needs(ctx.hub, ctx.task)]
        return Ensemble(members, ctx.task.combine)
