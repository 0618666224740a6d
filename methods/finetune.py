"""Fine-tune one hub model on the task (the papers' single-source baselines)."""

from __future__ import annotations

from hubbench.artifacts import FinetunedSource
from hubbench.methods.base import Method, register
from hubbench.params import Role
from hubbench.registry import UnknownName


@register
class Finetune(Method):
    """All weights of one source plus a new head trained with the task's protocol.

    The trained model is the `FinetunedSource` artifact itself, so the record's own training
    time is zero and its cost is the artifact's; its curves and its search (where the suite tunes the
    sources) are the artifact's.
    """

    name = "finetune"
    trains = False  # its model is the artifact, trained (and tuned) as one
    description = "fine-tune one hub model with a new head (one record per hub model)"
    role = Role.SINGLE_SOURCE
    model: str = ""

    @classmethod
    def variants(cls, hub):
        return [{"model": name} for name in hub.names]

    def uses(self, hub):
        return [self.model]

    def applicable(self, hub, task):
        if self.model not in hub.names:
            return False, str(UnknownName(f"model of hub {hub.name!r}", self.model, hub.names))
        return True, ""

    def needs(self, hub, task):
        return [FinetunedSource(self.model)]

    def fit(self, ctx):
        artifact = FinetunedSource(self.model)
        model = ctx.artifact(artifact)
        ctx.adopt(artifact)
        return model
