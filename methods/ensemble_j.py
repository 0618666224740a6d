"""Ensemble-J: fine-tune all hub models jointly through the loss of their combined prediction."""

from __future__ import annotations

from hubbench.methods.base import Method, register


@register
class EnsembleJ(Method):
    """Every pre-trained source gets its own new head; the members are trained together on the
    single task loss of `task.combine` of their outputs (the mean probability for classification),
    so each learns to complement the others instead of solving the task alone as in Ensemble-I.
    Nothing is shared with the `FinetunedSource` artifacts: the members never train on their own.
    """

    name = "ensemble_j"
    description = "Ensemble-J: all hub models trained jointly on the loss of their mean prediction"

    def fit(self, ctx):
        from hubbench.models import Ensemble, task_model

        members = [task_model(source.backbone(), ctx.task) for source in ctx.hub.sources]
        return ctx.train(Ensemble(members, ctx.task.combine))
