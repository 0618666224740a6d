"""Train the hub's architecture from random initialisation: the floor transfer must beat."""

from __future__ import annotations

from hubbench.context import task_model
from hubbench.methods.base import Method, register


@register
class Scratch(Method):
    """The first hub model's architecture, randomly initialised, trained with the same protocol."""

    name = "scratch"
    description = "the hub architecture from random init, same protocol (no transfer)"

    def uses(self, hub):
        return hub.names[:1]

    def fit(self, ctx):
        model = task_model(ctx.hub.sources[0].backbone(pretrained=False), ctx.task)
        return ctx.train(model)
