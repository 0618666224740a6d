"""Model Soups (Wortsman et al., 2022): average the weights of the fine-tuned hub models."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from hubbench.errors import InputError
from hubbench.methods.base import Method, finetuned_needs, register

if TYPE_CHECKING:
    import torch
    from torch import nn

RECIPES = ("greedy", "uniform")


def average(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Entry-wise mean of state dicts (integer entries such as BN batch counters: the first's)."""
    import torch

    return {k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v
            for k, v in states[0].items()}


def improves(task, value: float, best: float) -> bool:
    """Strictly better in the task's direction: an ingredient that only ties is left out (the paper's rule)."""
    return value > best if task.higher_is_better else value < best


@register
class Soup(Method):
    """A single model whose weights are a mean of the fine-tuned hub models' (heads included).

    `uniform` averages all of them. `greedy` sorts them by their validation metric (best first,
    in the task's direction), starts from the best and adds each next one to the average only if
    the validation metric of the average strictly improves, never revisiting a rejected one.
    Averaging invalidates BatchNorm running statistics (the paper's models have none), so after
    averaging two or more models they are recomputed in train mode, without gradients, over
    the first `bn_batches` training batches of the data stream (`Context.batch`; our choice: 20 batches,
    about one pass over the mini tasks). A soup of one model is that model, unchanged.
    Weight averaging needs one architecture: not applicable to heterogeneous hubs.
    """

    name = "soup"
    trains = False  # the sources it uses are trained (and tuned) as artifacts
    description = "Model soups: weight average of the fine-tuned hub models (greedy or uniform recipe)"
    recipe: str = "greedy"
    bn_batches: int = 20

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise InputError(f"unknown soup recipe {self.recipe!r} (choose from: {', '.join(RECIPES)})")

    @classmethod
    def variants(cls, hub):
        return [{"recipe": r} for r in RECIPES]

    def applicable(self, hub, task):
        if not hub.homogeneous:
            return False, f"weight averaging needs one architecture family; hub {hub.name!r} is heterogeneous"
        return True, ""

    def needs(self, hub, task):
        return finetuned_needs(hub)

    def fit(self, ctx):
        from hubbench.methods._features import finetuned_models

        task = ctx.task
        models = finetuned_models(ctx)
        vals = [ctx.artifact_info(a)["val"][task.metric] for a in self.needs(ctx.hub, task)]
        if self.recipe == "uniform":
            chosen = list(range(len(models)))
            soup = self.cook(ctx, models, chosen)
        else:
            order = sorted(range(len(models)), key=vals.__getitem__, reverse=task.higher_is_better)
            chosen, best = order[:1], vals[order[0]]
            soup = models[order[0]]
            for i in order[1:]:
                candidate = self.cook(ctx, models, [*chosen, i])
                val = ctx.evaluate(candidate, "val")[task.metric]
                if improves(task, val, best):
                    chosen, best, soup = [*chosen, i], val, candidate
        ctx.diagnostics["soup"] = {"ingredients": [ctx.hub.names[i] for i in chosen],
                                   "ingredient_val": dict(zip(ctx.hub.names, vals, strict=True))}
        return soup

    def cook(self, ctx, models: list[nn.Module], chosen: list[int]) -> nn.Module:
        """The average of `models[chosen]`, with BatchNorm statistics recomputed if it mixes several."""
        from torch.optim.swa_utils import update_bn

        soup = copy.deepcopy(models[chosen[0]])
        if len(chosen) == 1:
            return soup
        soup.load_state_dict(average([models[i].state_dict() for i in chosen]))
        update_bn((ctx.batch(i).on("cpu") for i in range(self.bn_batches)), soup, ctx.device)
        return soup.eval()
