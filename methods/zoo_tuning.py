"""Zoo-Tuning (Shu et al., ICML 2021): merge a homogeneous hub into one network whose every
convolution aggregates the sources' kernels with input-dependent gates.

Follows the official code (thuml/Zoo-Tuning, module/ada_agg.py and module/backbone.py); the
method and the merge live here, the layer in `methods/_zoo_tuning.py`, both shared with Zoo-Tuning-L
(`methods/zoo_tuning_lite.py`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from hubbench.errors import InputError
from hubbench.figures import Figure, Panel, canvas, label
from hubbench.methods.base import Method, register

if TYPE_CHECKING:
    from torch import nn

    from hubbench.methods._zoo_tuning import Gate


FORMULATIONS = ("auto", "grouped", "dense")  # how per-sample kernels run (`_zoo_tuning.formulation`)


@register
class ZooTuning(Method):
    """Every convolution of the hub's shared architecture becomes an AdaAggConv over the m
    source kernels; BN affine parameters (and any other tensor of equal shape) start at the mean
    over sources, BN running statistics are reset; a new task head; all trained together.

    `align`: '+'-separated module-name prefixes whose k>1 convolutions get channel alignment,
    'none', or 'auto' (default): the stem `conv1` and the last two `layerN` stages, which is the
    paper's choice for ResNet-50 (`conv1+layer3+layer4`) and MiniResNet's `conv1+layer2+layer3`; none
    for an architecture without ResNet's stage names. A transformer's hub (pooled features, its
    weights in linear layers) has nothing for it to aggregate: inapplicable.
    `formulation`: how per-sample kernels run, the same outputs either way (see `formulation`); the
    choice of each layer is in the record's diagnostics (`formulation`).
    """

    name = "zoo_tuning"
    description = "Zoo-Tuning: per-sample gated aggregation of all hub kernels in every conv"
    align: str = "auto"
    formulation: str = "auto"  # per-sample kernels: 'grouped' (the official layer), 'dense', or 'auto' per layer

    def __post_init__(self):
        if self.formulation not in FORMULATIONS:
            raise InputError(f"unknown zoo_tuning formulation {self.formulation!r} (choose from: "
                             f"{', '.join(FORMULATIONS)})")

    def applicable(self, hub, task):
        if not hub.homogeneous:
            return False, f"hub {hub.name!r} mixes architecture families; Zoo-Tuning needs one"
        if hub.sources[0].pooled:
            return False, (f"Zoo-Tuning aggregates convolution kernels; {hub.sources[0].family} is a transformer, "
                           "its weights in linear layers")
        return True, ""

    def gate(self, name: str, conv: nn.Conv2d, sources: int) -> Gate:
        """The gate of the conv at `name` (per-sample here; Zoo-Tuning-L overrides)."""
        from hubbench.methods._zoo_tuning import Gate

        return Gate(conv.in_channels, sources)

    def merge(self, hub) -> nn.Module:
        """The hub's architecture with every Conv2d aggregating the pre-trained sources."""
        import torch
        from torch import nn

        from hubbench.methods._zoo_tuning import AdaAggConv, in_scope

        backbones = [s.backbone() for s in hub.sources]
        states = [b.state_dict() for b in backbones]
        merged = hub.sources[0].backbone(pretrained=False)
        merged.load_state_dict({k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v
                                for k, v in states[0].items()})
        prefixes = self.align_prefixes(merged)
        convs = [name for name, m in merged.named_modules() if isinstance(m, nn.Conv2d)]
        unknown = [p for p in prefixes if not any(in_scope(name, [p]) for name in convs)]
        if unknown:
            raise ValueError(f"align prefixes {unknown} match no convolution (convolutions: {', '.join(convs)})")
        for name, m in list(merged.named_modules()):
            if isinstance(m, nn.Conv2d):
                layer = AdaAggConv([b.get_submodule(name) for b in backbones],
                                   self.gate(name, m, len(backbones)), in_scope(name, prefixes))
                layer.formulation = self.formulation
                merged.set_submodule(name, layer)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
        return merged

    def align_prefixes(self, backbone: nn.Module) -> tuple[str, ...]:
        if self.align == "none":
            return ()
        if self.align == "auto":  # a ResNet's names; another architecture has none of them, and no alignment
            stages = [n for n, _ in backbone.named_children() if re.fullmatch(r"layer\d+", n)]
            return ("conv1", *sorted(stages, key=lambda n: int(n[5:]))[-2:]) if stages else ()
        return tuple(self.align.split("+"))

    def fit(self, ctx):
        from hubbench.methods._zoo_tuning import AdaAggConv, mean_gates
        from hubbench.models import task_model

        model = task_model(self.merge(ctx.hub), ctx.task)
        ctx.train(model)
        ctx.diagnostics["gate_sources"] = ctx.hub.names
        ctx.diagnostics["gates"] = mean_gates(model, ctx)
        ctx.diagnostics["formulation"] = {name: m.chosen for name, m in model.backbone.named_modules()
                                          if isinstance(m, AdaAggConv) and m.chosen}
        return model

    @classmethod
    def figures(cls):
        return curve_against_finetune, gate_maps


def curve_against_finetune(panel: Panel, methods: list[str]) -> list[Figure]:
    """Landmarks: test NME over iterations of the best single fine-tune against Zoo-Tuning (the paper's
    Figure 2 view: how much sooner and lower the aggregated hub gets)."""
    key = f"test_{panel.metric}"
    if panel.kind != "landmarks":
        return []
    lines = [m for m in dict.fromkeys([panel.baseline, *methods]) if m and panel.seed_curve(m, key) is not None]
    if panel.baseline not in lines or len(lines) < 2:
        return []
    with canvas(5.5, 3.6) as (fig, (ax,)):
        for m in lines:
            panel.draw_curve(ax, m, key)
        ax.set(xlabel="training iteration", ylabel=label(key), title=f"{panel.task}: fine-tune vs Zoo-Tuning")
        ax.legend()
        ax.grid(alpha=0.3)
        return [panel.figure(["finetune-vs-zoo-tuning"], f"{label(key)} over training iterations, best single "
                             "fine-tune against Zoo-Tuning: mean over seeds, band ± one std.", fig)]


def gate_maps(panel: Panel, methods: list[str]) -> list[Figure]:
    """The mean gate per layer and source (`mean_gates`, val split), mean over seeds, one map per method;
    sources in the hub's order."""
    import numpy as np

    out = []
    for m in methods:
        gates = [r.diagnostics for r in panel.ok(m) if r.diagnostics.get("gates")]
        if not gates:
            continue
        layers = [n for n in gates[0]["gates"] if all(n in g["gates"] for g in gates)]
        matrix = np.mean([[g["gates"][layer] for layer in layers] for g in gates], axis=0)
        listed = gates[0].get("gate_sources") or [str(i) for i in range(matrix.shape[1])]
        sources = panel.source_order(listed)
        matrix = matrix[:, [listed.index(s) for s in sources]]
        with canvas(2.5 + 0.8 * len(sources), 1.5 + 0.16 * len(layers)) as (fig, (ax,)):
            image = ax.imshow(matrix, aspect="auto", cmap="viridis")
            panel.source_ticks(ax, sources)
            ax.set_yticks(range(len(layers)), layers, fontsize=6)
            ax.set(title=f"{panel.task}: {m} mean gates", xlabel="source", ylabel="layer")
            fig.colorbar(image, ax=ax, label="mean gate (0 to 1)")
            out.append(panel.figure([m, "gates"], f"`{m}` mean gate per layer (rows) and source (columns), "
                                    f"mean over {len(gates)} seed(s).", fig))
    return out
