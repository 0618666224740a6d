"""Train the hub's architecture from random initialisation: the floor transfer must beat."""

from __future__ import annotations

from hubbench.methods.base import Method, register
from hubbench.params import Role


@register
class Scratch(Method):
    """The first hub model's architecture, randomly initialised, trained with the same protocol."""

    name = "scratch"
    description = "the hub architecture from random init, same protocol (no transfer)"
    role = Role.FROM_SCRATCH

    def uses(self, hub):
        return hub.names[:1]

    def fit(self, ctx):
        from hubbench.models import task_model

        model = task_model(ctx.hub.sources[0].backbone(pretrained=False), ctx.task)
        return ctx.train(model)
