"""CED (Concat-Ensemble-Distill): one backbone learns every hub model's features at once."""

from __future__ import annotations

from typing import ClassVar

from hubbench.methods.base import Method, finetuned_needs, register


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
        from hubbench.methods import _features
        from hubbench.methods._ced import MultiHeadStudent, distilled_loss

        backbone = ctx.hub.sources[0].backbone(pretrained=True)
        sources = _features.source_backbones(ctx, self.finetuned)
        model = MultiHeadStudent(backbone, [s.out_channels for s in sources], ctx.task.head)
        return ctx.train(model, loss=distilled_loss(ctx.task, _features.Teachers(sources), self.feature_weight))


@register
class CEDFinetuned(CED):
    """CED whose teachers are the hub models fine-tuned on the task (the shared artifacts)."""

    name = "ced_ft"
    description = "CED+Finetuned: CED distilling the features of the fine-tuned hub models"
    finetuned: ClassVar[bool] = True
