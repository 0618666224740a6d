"""A method defined outside hubbench: train only a new head on a frozen hub model."""

from hubbench.methods import Method, register


@register
class LinearProbe(Method):
    """The chosen hub model's weights stay fixed and only the task head learns (its BN
    statistics still adapt in training mode: a choice this example keeps simple)."""

    name = "linear_probe"
    description = "frozen hub model, newly trained head"
    model: int = 0  # index of the hub model

    def fit(self, ctx):
        from hubbench.methods import task_model  # here: the module stays a declaration, without torch

        model = task_model(ctx.hub.sources[self.model].backbone(pretrained=True), ctx.task)
        model.backbone.requires_grad_(False)
        return ctx.train(model, params=model.head.parameters())
