"""Distill: one hub model fine-tuned towards the Ensemble-I of the fine-tuned hub models."""

from __future__ import annotations

from hubbench.methods.base import Method, finetuned_needs, register
from hubbench.registry import UnknownName


@register
class Distill(Method):
    """Knowledge distillation from the hub's ensemble into a single model.

    The student is hub model `student` (default: the first) with its pre-trained weights and a
    new head; it minimises task loss + `weight` x `task.distillation(student, teacher,
    temperature)`, the teacher being Ensemble-I (the fine-tuned hub models combined by the
    task). The papers give neither temperature nor weight: we take Hinton et al.'s logit
    distillation with T = 4 (the task scales it by T^2) and weight 1. With weight 0 this is
    exactly fine-tuning the student.
    """

    name = "distill"
    description = "Distill: fine-tune one hub model with distillation from the fine-tuned hub ensemble"
    student: str = ""
    temperature: float = 4.0
    weight: float = 1.0

    def applicable(self, hub, task):
        if self.student and self.student not in hub.names:
            return False, str(UnknownName(f"model of hub {hub.name!r}", self.student, hub.names))
        return True, ""

    def needs(self, hub, task):
        return finetuned_needs(hub)

    def fit(self, ctx):
        from hubbench.methods import _features
        from hubbench.models import Ensemble, task_model

        task = ctx.task
        source = ctx.hub.source(self.student) if self.student else ctx.hub.sources[0]
        model = task_model(source.backbone(pretrained=True), task)
        teacher = _features.Teachers([Ensemble(_features.finetuned_models(ctx), task.combine)])

        def loss(m, x, y):
            out = m(x)
            (target,) = teacher(x)
            return task.loss(out, y) + self.weight * task.distillation(out, target, self.temperature)

        return ctx.train(model, loss=loss)
