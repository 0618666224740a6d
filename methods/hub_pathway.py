"""Hub-Pathway (NeurIPS 2022): a pathway generator routes each input through a few hub models.

As the paper defines it: G(x) = softmax(G_p(x) + eps * softplus(G_n(x))), eps ~ N(0, 1) in training
only; Ḡ(x) = top-k(G(x)) keeps the k largest entries of G(x) as they are and zeroes the others
(`renormalise` rescales the kept ones to sum to one instead: not the paper's); an input is run
only through the models its Ḡ activates, each model with its own task head; the prediction is
the aggregator's A([Ḡ(x)_1 Θ_1(x), ..., Ḡ(x)_m Θ_m(x)]).

Losses (as the paper states them):
- task: the task loss of the prediction;
- exploration: -H(E_x[G(x)]), the negative entropy of the batch-mean (dense, noisy) gate, times λ;
- exploitation: sum_i E_x[1(Ḡ_i(x) > 0) ℓ(Θ_i(x), y)], each activated model's own head loss on
  the samples routed to it.
G and A are trained on task + λ·exploration, the models on task + exploitation. Their sum gives
exactly that split without any detaching: the exploration term depends on G alone, and the
exploitation term on the models alone, since routing is an index set (no gradient flows
through the top-k selection into G). As the kept weights are not renormalised, the task loss
reaches all m logits of G through the softmax, even with k = 1.

The aggregator A (`aggregator`): the paper learns A with G but does not give its form. Ours,
`linear`, is the most general map that stays in the models' output space: a learned linear map
of the concatenated weighted outputs along the channel axis (per position for dense outputs, a
1x1 convolution), with a bias, starting as their sum Σ_i Ḡ_i Θ_i(x). For classification it acts on
the logits, so scaling the Ḡ_i changes the prediction's confidence: the task gradient to G that a
weighted mean of probabilities would cancel. `mean` is the task's fixed weighted mean
(`task.combine`, normalised by Ḡ's sum; for classification, of the probabilities): with k = 1 it
is the activated model's output whatever G is, so the generator would learn nothing from the
task: refused, as is k = 1 with `renormalise` (Ḡ is then one-hot).

The generator (`generator`; inferred from the paper's complexity table, not stated there): the
table gives Hub-Pathway 128.43 M params and 9.11 GFLOPs (fvcore) against 118.55 M and 2 x 4.11
GFLOPs for the five ResNet-50s with their heads at k = 2, so a generator of about 10 M params and
0.9 GFLOPs, 0.42x a source model's params and 0.22x its FLOPs. We take a ResNet-18, the smallest
standard ResNet, on the input resized to 160 px: 11.2 M params and 0.93 GFLOPs, so 129.8 M and
9.15 GFLOPs in all (`hubbench profile --hub resnet50-zoo --task cifar100 --method hub_pathway
--random-weights`). It scales with the hub: `resnet18` for the papers' 224 px inputs, `mini` for
the CPU hubs' 32 px inputs (a MiniResNet, the mini sources' design, at widths and input side
giving about the same ratios to a mini source); `auto` picks by the task's input size. The input
is resized by `gate_scale` (160/224).
The generator starts from random weights (a pre-trained one would bring knowledge from outside
the hub), its output layer zero-initialised so that routing starts balanced and noise-driven
(as Shazeer et al.'s noisy top-k gating). Also ours: λ = 0.1; the shared SGD protocol for
everything, the generator's and aggregator's lr times `gate_lr_mult`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hubbench.context import task_model
from hubbench.errors import InputError
from hubbench.figures import GREY, Figure, Panel, canvas
from hubbench.hubs.archs import MiniResNet
from hubbench.hubs.zoo import RESNET18
from hubbench.methods.base import Method, register
from hubbench.tasks.crops import first_view

GENERATORS = ("auto", "resnet18", "mini")
AGGREGATORS = ("linear", "mean")
# The mini sources' widths (16, 32, 64, 128) x 0.69: on 23 px inputs 0.47x a mini source's params, 0.27x its FLOPs.
MINI_WIDTHS = (11, 22, 44, 88)
LARGE_INPUT = 128  # `auto`: tasks with inputs at least this side get the ResNet-18 generator


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
        routed = {i: (idx, self.models[i](x[idx])) for i, idx in route(gate.active).items()}
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


@register
class HubPathwayMethod(Method):
    """Routes each input through its top-k hub models; see the module docstring for the losses,
    the aggregator and the generator, and for what we chose where the paper is silent.
    Diagnostics: the generator, and per source the activation frequency and mean weight Ḡ on the
    test split, overall and (classification) per class."""

    name = "hub_pathway"
    description = "Hub-Pathway: a generator routes each input through its top-k hub models"
    k: int = 2
    explore_weight: float = 0.1
    renormalise: bool = False
    aggregator: str = "linear"
    generator: str = "auto"
    gate_scale: float = 160 / 224
    gate_lr_mult: float = 1.0

    def __post_init__(self):
        for field, value, choices in (("aggregator", self.aggregator, AGGREGATORS),
                                      ("generator", self.generator, GENERATORS)):
            if value not in choices:
                raise InputError(f"unknown hub_pathway {field} {value!r} (choose from: {', '.join(choices)})")
        if not 0 < self.gate_scale <= 1:
            raise InputError(f"hub_pathway needs 0 < gate_scale <= 1, got {self.gate_scale}")

    def applicable(self, hub, task):
        if not 1 <= self.k <= len(hub.sources):
            return False, f"k={self.k} must be between 1 and the hub's {len(hub.sources)} models"
        if self.k == 1 and (self.renormalise or self.aggregator == "mean"):
            why = "renormalised top-1 weights are 1" if self.renormalise else "the weighted mean of one output is it"
            return False, f"k=1 with {why}: the generator would get no task gradient"
        return True, ""

    def objective(self, task):
        def loss(model: HubPathway, x, y):
            task_loss, explore, exploit = pathway_losses(model.pathways(x), task, y)
            return task_loss + self.explore_weight * explore + exploit

        return loss

    def generator_arch(self, task) -> str:
        if self.generator != "auto":
            return self.generator
        return "resnet18" if task.protocol.image_size >= LARGE_INPUT else "mini"

    def build(self, hub, task, pretrained: bool = True) -> HubPathway:
        """The untrained predictor: the hub models with new heads, the generator and the aggregator."""
        models = [task_model(source.backbone(pretrained), task) for source in hub.sources]
        backbone = RESNET18() if self.generator_arch(task) == "resnet18" else MiniResNet(MINI_WIDTHS)
        generator = PathwayGenerator(backbone, len(models), max(1, round(self.gate_scale * task.protocol.image_size)))
        aggregator = LinearAggregator(len(models), task.output_channels) if self.aggregator == "linear" \
            else WeightedMean(task.combine)
        return HubPathway(models, generator, aggregator, self.k, self.renormalise)

    def fit(self, ctx):
        model = self.build(ctx.hub, ctx.task)
        gate = [*model.generator.parameters(), *model.aggregator.parameters()]
        ctx.train(model, self.objective(ctx.task),
                  params=[{"params": model.models.parameters()}, {"params": gate, "lr_mult": self.gate_lr_mult}])
        generator = {"arch": self.generator_arch(ctx.task), "size": model.generator.size}
        ctx.diagnostics["pathway"] = {"generator": generator, **routing_diagnostics(model, ctx, "test")}
        return model

    @classmethod
    def figures(cls):
        return (routing_figure,)


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


def mean_routing(parts: list[dict], sources: list[str], key: str, cls: str | None = None) -> np.ndarray:
    """Mean over seeds of the per-source `key` (activation or mean_weight) of `routing_diagnostics`, overall
    or of one class."""
    parts = [p if cls is None else p["per_class"][cls] for p in parts]
    return np.mean([[p[key][s] for s in sources] for p in parts], axis=0)


def routing_figure(panel: Panel, methods: list[str]) -> list[Figure]:
    """How often each source is activated and its mean weight, overall and per class, mean over seeds;
    sources in the hub's order and colours."""
    from matplotlib.patches import Patch

    out = []
    for m in methods:
        parts = [p for r in panel.ok(m) if (p := r.diagnostics.get("pathway")) and p.get("activation")]
        if not parts:
            continue
        sources = panel.source_order(parts[0]["activation"])
        per_class = [p.get("per_class") for p in parts]
        classes = [c for c in per_class[0] if all(c in p for p in per_class)] if all(per_class) else []

        activation, weight = (mean_routing(parts, sources, key) for key in ("activation", "mean_weight"))
        height = max(3.2, 1.2 + 0.14 * len(classes))
        with canvas(4 + 0.5 * len(sources) + (2 + 0.6 * len(sources) if classes else 0), height,
                    cols=2 if classes else 1) as (fig, axes):
            x = np.arange(len(sources))
            colours = [panel.sources.get(s, GREY) for s in sources]
            axes[0].bar(x - 0.2, activation, 0.4, color=colours)
            axes[0].bar(x + 0.2, weight, 0.4, color=colours, alpha=0.45, hatch="///")
            panel.source_ticks(axes[0], sources)
            axes[0].set(title=f"{panel.task}: {m} routing ({parts[0].get('split', '?')} split)", ylim=(0, 1.25),
                        yticks=np.linspace(0, 1, 6), ylabel="fraction of samples / mean weight")
            axes[0].legend([Patch(color=GREY), Patch(color=GREY, alpha=0.45, hatch="///")],
                           ["activation frequency", "mean weight"], loc="upper center", ncols=2)  # above the bars
            if classes:
                grid = np.stack([mean_routing(parts, sources, "activation", c) for c in classes])
                image = axes[1].imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1)
                panel.source_ticks(axes[1], sources)
                axes[1].set_yticks(range(len(classes)), classes if len(classes) <= 60 else [""] * len(classes))
                axes[1].set(title="activation frequency per class", ylabel="class")
                fig.colorbar(image, ax=axes[1], label="fraction of the class's samples")
            out.append(panel.figure([m, "pathway"], f"`{m}` source activation frequency and mean weight"
                                    f"{', overall and per class' if classes else ''}, mean over {len(parts)} seed(s).",
                                    fig))
    return out
