"""FE: a new head on the concatenated features of every frozen hub model."""

from __future__ import annotations

from typing import ClassVar

from hubbench.methods.base import Method, finetuned_needs, register


@register
class FE(Method):
    """Feature extraction from the whole hub: each source's last feature map (resized to the
    first source's spatial size when they differ) is concatenated along channels and only a new
    task head is trained. The sources stay frozen in eval mode, BatchNorm statistics included,
    so the predictor runs every hub model."""

    name = "fe"
    description = "FE: new head on the concatenated features of all frozen pre-trained hub models"
    finetuned: ClassVar[bool] = False

    def needs(self, hub, task):
        return finetuned_needs(hub, self.finetuned)

    def fit(self, ctx):
        from hubbench.methods._features import ConcatFeatures, Frozen, source_backbones
        from hubbench.models import TaskModel

        features = ConcatFeatures([Frozen(b) for b in source_backbones(ctx, self.finetuned)])
        model = TaskModel(features, ctx.task.head(features.out_channels))
        return ctx.train(model, params=model.head.parameters())


@register
class FEFinetuned(FE):
    """FE on the backbones of the hub models fine-tuned on the task (the shared artifacts)."""

    name = "fe_ft"
    description = "FE+Finetuned: new head on the concatenated features of all frozen fine-tuned hub models"
    finetuned: ClassVar[bool] = True
