"""Hub-Pathway (NeurIPS 2022): a pathway generator routes each input through a few hub models.

G(x) = softmax(G_p(x) + eps * softplus(G_n(x))), eps ~ N(0, 1) in training only. The top-k
entries of G(x) are kept and renormalised to sum to one (the other m - k are zero): Ḡ(x). An
input is run only through the models its Ḡ activates, each model with its own task head, and
the prediction is the task's weighted aggregate of their outputs, `task.combine(outputs, Ḡ)`.

Losses (as the paper states them):
- task: the task loss of the aggregate;
- exploration: -H(E_x[G(x)]), the negative entropy of the batch-mean (dense, noisy) gate, times λ;
- exploitation: sum_i E_x[1(Ḡ_i(x) > 0) ℓ(Θ_i(x), y)], each activated model's own head loss on
  the samples routed to it.
The paper trains G (and the aggregator) on task + λ·exploration, the models on task +
exploitation. Their sum gives exactly that split without any detaching: the exploration term
depends on G alone, and the exploitation term on the models alone, since routing is an index
set (no gradient flows through the top-k selection into G). Our aggregator, `task.combine`, has
no parameters.

Not in the paper (our choices, all parameters): the generator is a two-layer CNN on the input
downscaled to `gate_size` px, `gate_width` channels, its output layer zero-initialised so routing
starts balanced and noise-driven (as Shazeer et al.'s noisy top-k gating); λ = 0.1; the shared
SGD protocol for everything, the generator's lr times `gate_lr_mult`. Renormalising the kept
weights makes Ḡ mixing proportions whatever the task's `combine` does with them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from hubbench.methods.base import Method, register
from hubbench.tasks.crops import first_view
from torch import nn

from hubbench.context import task_model
from hubbench.figures import Figure, Panel, canvas


class Gate(NamedTuple):
    dense: torch.Tensor  # G(x) [B, m], noisy in training
    weights: torch.Tensor  # Ḡ(x) [B, m]: top-k of G, renormalised, zero elsewhere
    active: torch.Tensor  # [B, m] bool: the models each sample is routed through


class Pathways(NamedTuple):
    prediction: torch.Tensor
    gate: Gate
    routed: dict[int, tuple[torch.Tensor, torch.Tensor]]  # activated model -> (its samples, its outputs)


class PathwayGenerator(nn.Module):
    """G_p and G_n: one small CNN on the downscaled input, a linear layer giving both logit vectors."""

    def __init__(self, models: int, size: int, width: int):
        super().__init__()
        self.size = size
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.logits = nn.Linear(2 * width, 2 * models)
        nn.init.zeros_(self.logits.weight)
        nn.init.zeros_(self.logits.bias)

    def forward(self, x):
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        clean, noise = self.logits(self.features(x)).chunk(2, dim=-1)
        return clean, noise


class HubPathway(nn.Module):
    """The predictor: hub models with their own heads, the generator, and the task's aggregator."""

    def __init__(self, models: list[nn.Module], generator: nn.Module, combine, k: int):
        super().__init__()
        self.models, self.generator = nn.ModuleList(models), generator
        self.combine, self.k = combine, k

    def gate(self, x: torch.Tensor) -> Gate:
        clean, noise = self.generator(x)
        logits = clean + torch.randn_like(clean) * F.softplus(noise) if self.training else clean
        dense = logits.softmax(-1)
        top = dense.topk(self.k, dim=-1)
        kept = torch.zeros_like(dense).scatter(-1, top.indices, top.values)
        active = torch.zeros_like(dense, dtype=torch.bool).scatter(-1, top.indices, torch.ones_like(top.values).bool())
        return Gate(dense, kept / kept.sum(-1, keepdim=True), active)

    def pathways(self, x: torch.Tensor) -> Pathways:
        """Run each sample through its activated models only, then aggregate."""
        gate = self.gate(x)
        routed = {}
        for i, model in enumerate(self.models):
            idx = gate.active[:, i].nonzero().squeeze(1)
            if len(idx):
                routed[i] = (idx, model(x[idx]))
        first = next(iter(routed.values()))[1]
        zeros = first.new_zeros((len(x), *first.shape[1:]))  # unrouted samples: their weight is zero
        outputs = [zeros.index_copy(0, *routed[i]) if i in routed else zeros for i in range(len(self.models))]
        return Pathways(self.combine(outputs, gate.weights), gate, routed)

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
    """Routes each input through its top-k hub models; see the module docstring for the losses
    and for what we chose where the paper is silent. Diagnostics: per source, the activation
    frequency and mean weight Ḡ on the test split, overall and (classification) per class."""

    name = "hub_pathway"
    description = "Hub-Pathway: a generator routes each input through its top-k hub models"
    k: int = 2
    explore_weight: float = 0.1
    gate_size: int = 16
    gate_width: int = 32
    gate_lr_mult: float = 1.0

    def applicable(self, hub, task):
        if not 1 <= self.k <= len(hub.sources):
            return False, f"k={self.k} must be between 1 and the hub's {len(hub.sources)} models"
        return True, ""

    def objective(self, task):
        def loss(model: HubPathway, x, y):
            task_loss, explore, exploit = pathway_losses(model.pathways(x), task, y)
            return task_loss + self.explore_weight * explore + exploit

        return loss

    def fit(self, ctx):
        models = [task_model(source.backbone(), ctx.task) for source in ctx.hub.sources]
        generator = PathwayGenerator(len(models), self.gate_size, self.gate_width)
        model = HubPathway(models, generator, ctx.task.combine, self.k)
        groups = [{"params": model.models.parameters()},
                  {"params": generator.parameters(), "lr_mult": self.gate_lr_mult}]
        ctx.train(model, self.objective(ctx.task), params=groups)
        ctx.diagnostics["pathway"] = routing_diagnostics(model, ctx, "test")
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
    """How often each source is activated and its mean weight, overall and per class, mean over seeds."""
    out = []
    for m in methods:
        parts = [p for r in panel.ok(m) if (p := r.diagnostics.get("pathway")) and p.get("activation")]
        if not parts:
            continue
        sources = list(parts[0]["activation"])
        per_class = [p.get("per_class") for p in parts]
        classes = [c for c in per_class[0] if all(c in p for p in per_class)] if all(per_class) else []

        activation, weight = (mean_routing(parts, sources, key) for key in ("activation", "mean_weight"))
        height = max(3.2, 1.2 + 0.14 * len(classes))
        with canvas(4 + 0.5 * len(sources) + (2 + 0.6 * len(sources) if classes else 0), height,
                    cols=2 if classes else 1) as (fig, axes):
            x = np.arange(len(sources))
            axes[0].bar(x - 0.2, activation, 0.4, label="activation frequency")
            axes[0].bar(x + 0.2, weight, 0.4, label="mean weight")
            axes[0].set_xticks(x, sources, rotation=30, ha="right")
            axes[0].set_title(f"{panel.task}: {m} routing ({parts[0].get('split', '?')} split)")
            axes[0].legend()
            if classes:
                grid = np.stack([mean_routing(parts, sources, "activation", c) for c in classes])
                image = axes[1].imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1)
                axes[1].set_xticks(range(len(sources)), sources, rotation=30, ha="right")
                axes[1].set_yticks(range(len(classes)), classes if len(classes) <= 60 else [""] * len(classes))
                axes[1].set_title("activation frequency per class")
                fig.colorbar(image, ax=axes[1])
            out.append(panel.figure([m, "pathway"], f"`{m}` source activation frequency and mean weight"
                                    f"{', overall and per class' if classes else ''}, mean over {len(parts)} seed(s).",
                                    fig))
    return out
