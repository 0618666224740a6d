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

from typing import TYPE_CHECKING

from hubbench.errors import InputError
from hubbench.figures import GREY, Figure, Panel, canvas
from hubbench.methods.base import Method, register

if TYPE_CHECKING:
    import numpy as np

    from hubbench.methods._hub_pathway import HubPathway

GENERATORS = ("auto", "resnet18", "mini")
AGGREGATORS = ("linear", "mean")
# The mini sources' widths (16, 32, 64, 128) x 0.69: on 23 px inputs 0.47x a mini source's params, 0.27x its FLOPs.
MINI_WIDTHS = (11, 22, 44, 88)
LARGE_INPUT = 128  # `auto`: tasks with inputs at least this side get the ResNet-18 generator


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
        from hubbench.methods._hub_pathway import pathway_losses

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
        from hubbench.hubs.archs import MiniResNet
        from hubbench.hubs.zoo import RESNET18
        from hubbench.methods._hub_pathway import HubPathway, LinearAggregator, PathwayGenerator, WeightedMean
        from hubbench.models import task_model

        models = [task_model(source.backbone(pretrained), task) for source in hub.sources]
        backbone = RESNET18() if self.generator_arch(task) == "resnet18" else MiniResNet(MINI_WIDTHS)
        generator = PathwayGenerator(backbone, len(models), max(1, round(self.gate_scale * task.protocol.image_size)))
        aggregator = LinearAggregator(len(models), task.output_channels) if self.aggregator == "linear" \
            else WeightedMean(task.combine)
        return HubPathway(models, generator, aggregator, self.k, self.renormalise)

    def fit(self, ctx):
        from hubbench.methods._hub_pathway import routing_diagnostics

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


def mean_routing(parts: list[dict], sources: list[str], key: str, cls: str | None = None) -> np.ndarray:
    """Mean over seeds of the per-source `key` (activation or mean_weight) of `routing_diagnostics`, overall
    or of one class."""
    import numpy as np

    parts = [p if cls is None else p["per_class"][cls] for p in parts]
    return np.mean([[p[key][s] for s in sources] for p in parts], axis=0)


def routing_figure(panel: Panel, methods: list[str]) -> list[Figure]:
    """How often each source is activated and its mean weight, overall and per class, mean over seeds;
    sources in the hub's order and colours."""
    import numpy as np
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
