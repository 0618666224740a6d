"""Hub-Pathway's routed model, its losses and its routing diagnostics (`hubbench.methods.hub_pathway`, whose
docstring gives the method): imported by its `fit`, with torch."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from hubbench.tasks.crops import first_view


class Gate(NamedTuple):
    dense: torch.Tensor  # G(x) [B, m], noisy in training
    weights: torch.Tensor  # Ḡ(x) [B, m]: top-k of G (renormalised if asked), zero elsewhere
    active: torch.Tensor  # [B, m] bool: the models each sample is routed through


class Pathways(NamedTuple):
    prediction: torch.Tensor
    gate: Gate
    routed: dict[int, tuple[torch.Tensor, torch.Tensor]]  # activated model -> (its samples, its outputs)


class PathwayGenerator(nn.Module):
    """G_p and G_n: a backbone on the input resized to `size` px, global average pooling, and one
    linear layer giving both logit vectors, zero-initialised."""

    def __init__(self, backbone: nn.Module, models: int, size: int):
        super().__init__()
        self.backbone, self.size = backbone, size
        self.logits = nn.Linear(backbone.out_channels, 2 * models)
        nn.init.zeros_(self.logits.weight)
        nn.init.zeros_(self.logits.bias)

    def forward(self, x):
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        clean, noise = self.logits(self.backbone(x).mean((2, 3))).chunk(2, dim=-1)
        return clean, noise


class LinearAggregator(nn.Module):
    """A([Ḡ_1 Θ_1, ..., Ḡ_m Θ_m]): a learned linear map of the concatenated weighted outputs
    [B, m C, ...] to [B, C, ...] along the channel axis, starting as their sum."""

    def __init__(self, models: int, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(channels).repeat(1, models))  # [C, m C]: m identity blocks
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, outputs: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack(outputs, 1)  # [B, m, C, ...]
        z = (weights.view(*weights.shape, *[1] * (stacked.dim() - 2)) * stacked).flatten(1, 2)
        return F.linear(z.movedim(1, -1), self.weight, self.bias).movedim(-1, 1)


class WeightedMean(nn.Module):
    """The task's fixed weighted mean of the outputs (`task.combine`): no parameters."""

    def __init__(self, combine):
        super().__init__()
        self.combine = combine

    def forward(self, outputs: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
        return self.combine(outputs, weights)


def routed_through(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`model` on the samples routed to it. In training, one sample whose maps shrink to 1 x 1 (a ResNet's last
    stage at 32 px) leaves batch norm no statistic to take, and PyTorch refuses it: that sample is normalised by
    the running statistics instead, as at test time (the only case that runs otherwise)."""
    if not (model.training and len(x) == 1):
        return model(x)
    try:
        return model(x)
    except ValueError as e:
        if "Expected more than 1 value per channel" not in str(e):
            raise
    model.eval()
    try:
        return model(x)
    finally:
        model.train()


def route(active: torch.Tensor) -> dict[int, torch.Tensor]:
    """{model: indices of the samples routed to it} of a [B, m] activation mask, for the models that got any,
    with one read from the device (the sizes of the routed batches are data: the host must know them)."""
    pairs = active.t().nonzero()  # (model, sample) pairs, by model then sample: the one host synchronisation
    counts = torch.bincount(pairs[:, 0], minlength=active.shape[1]).tolist()  # already computed: no wait
    return {i: idx for i, idx in enumerate(pairs[:, 1].split(counts)) if len(idx)}


class HubPathway(nn.Module):
    """The predictor: hub models with their own heads, the generator, and the aggregator.

    `dynamic_shapes`: each model sees a batch of a different size at every step, so cuDNN's autotuner
    (`cudnn.benchmark`) would time every convolution algorithm again for each new size, forward and
    backward; the training loop and the profiler run such models with fixed algorithms
    (`hubbench.training.shape_stable`)."""

    dynamic_shapes = True

    def __init__(self, models: list[nn.Module], generator: nn.Module, aggregator: nn.Module, k: int,
                 renormalise: bool = False):
        super().__init__()
        self.models, self.generator, self.aggregator = nn.ModuleList(models), generator, aggregator
        self.k, self.renormalise = k, renormalise

    def gate(self, x: torch.Tensor) -> Gate:
        clean, noise = self.generator(x)
        logits = clean + torch.randn_like(clean) * F.softplus(noise) if self.training else clean
        dense = logits.softmax(-1)
        top = dense.topk(self.k, dim=-1)
        kept = torch.zeros_like(dense).scatter(-1, top.indices, top.values)
        active = torch.zeros_like(dense, dtype=torch.bool).scatter(-1, top.indices, torch.ones_like(top.values).bool())
        return Gate(dense, kept / kept.sum(-1, keepdim=True) if self.renormalise else kept, active)

    def pathways(self, x: torch.Tensor) -> Pathways:
        """Run each sample through its activated models only, then aggregate.

        Which samples go where is read from the device once for all models (`route`), not once per
        model: every host read waits for all queued kernels, so per-model reads kept the GPU idle while
        each next model's kernels were launched."""
        gate = self.gate(x)
        routed = {i: (idx, routed_through(self.models[i], x[idx])) for i, idx in route(gate.active).items()}
        first = next(iter(routed.values()))[1]
        zeros = first.new_zeros((len(x), *first.shape[1:]))  # unrouted samples: their weight is zero
        outputs = [zeros.index_copy(0, *routed[i]) if i in routed else zeros for i in range(len(self.models))]
        return Pathways(self.aggregator(outputs, gate.weights), gate, routed)

    def forward(self, x):
        return self.pathways(x).prediction


def negative_entropy(p: torch.Tensor) -> torch.Tensor:
    """-H(p) of a distribution p [m]; minimal (-log m) when p is uniform."""
    return torch.special.xlogy(p, p).sum()


def pathway_losses(p: Pathways, task, y) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(task, exploration, exploitation) losses of one routed batch. `task.loss` averages over
    samples, so a model's head loss on its n_i samples times n_i / B is its exploitation term."""
    explore = negative_entropy(p.gate.dense.mean(0))
    exploit = sum(task.loss(out, y[idx]) * len(idx) for idx, out in p.routed.values()) / len(y)
    return task.loss(p.prediction, y), explore, exploit


@torch.no_grad()
def routing_diagnostics(model: HubPathway, ctx, split: str) -> dict:
    """Per source: how often it is activated and its mean weight Ḡ, overall and per class."""
    model.eval().to(ctx.device)
    gates = [model.gate(first_view(x).to(ctx.device)) for x in ctx.task.eval_batches(split)]
    weights = torch.cat([g.weights for g in gates]).float().cpu()
    active = torch.cat([g.active for g in gates]).float().cpu()
    names = ctx.hub.names

    def summary(mask):
        return {"activation": dict(zip(names, active[mask].mean(0).tolist(), strict=True)),
                "mean_weight": dict(zip(names, weights[mask].mean(0).tolist(), strict=True))}

    out = {"split": split, "k": model.k, **summary(slice(None))}
    if ctx.task.kind == "classification":
        targets = ctx.task.splits[split].targets
        classes = getattr(ctx.task, "classes", None)
        out["per_class"] = {str(classes[c] if classes else c): summary(targets == c)
                            for c in targets.unique().tolist()}
    return out
