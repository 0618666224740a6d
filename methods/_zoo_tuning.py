"""Zoo-Tuning's aggregating convolution, its gates, their fold and their diagnostics
(`hubbench.methods.zoo_tuning`): imported by its `fit`, with torch."""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from hubbench.models import TaskModel


class Gate(nn.Module):
    """Source weights from a layer's input: global average pool -> 1x1 conv C -> C//4+1 (no bias)
    -> ReLU -> 1x1 conv to m -> sigmoid. Not normalised: sources may add up or all fade.

    `lite` (Zoo-Tuning-L): training uses the batch mean of the gates and keeps an EMA of it
    (zeros at start, detached); evaluation uses the EMA alone, so every sample shares one kernel.
    Returns [B, m] per-sample gates, or [1, m] when shared.
    """

    def __init__(self, channels: int, sources: int, lite: bool = False, momentum: float = 0.1):
        super().__init__()
        hidden = channels // 4 + 1
        self.net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(),
                                 nn.Conv2d(hidden, sources, 1), nn.Flatten(), nn.Sigmoid())
        for m in self.net:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.lite, self.momentum = lite, momentum
        if lite:
            self.register_buffer("ema", torch.zeros(sources))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lite and not self.training:
            return self.ema[None]
        g = self.net(x)
        if self.lite:
            g = g.mean(0, keepdim=True)
            with torch.no_grad():
                self.ema.lerp_(g[0].to(self.ema.dtype), self.momentum)
        return g


class AdaAggConv(nn.Module):
    """A convolution whose kernel for sample b is sum_e g[b, e] * A_e W_e.

    W_e [out, in/groups, k, k] is source e's kernel (stacked into `weight` [m, ...]); A_e is its
    learnable out x out channel-alignment matrix (identity at start) acting on the output-channel
    axis, present only when `align` and k > 1. Per-sample kernels run as one grouped convolution
    with groups = batch (the official trick); shared gates run one plain convolution. The aligned
    kernels A_e W_e are constant at inference, so without autograd they are computed once per change
    of A or W: a deployed model's cost per sample is then the gated mix and the convolution, whatever
    the batch (recomputing A_e W_e in every forward would add m·out²·in·k² multiply-adds per batch).
    """

    def __init__(self, convs: Sequence[nn.Conv2d], gate: Gate, align: bool = False):
        super().__init__()
        c = convs[0]
        if c.padding_mode != "zeros":
            raise ValueError(f"AdaAggConv supports zero padding only, not {c.padding_mode!r}")
        self.spec = dict(in_channels=c.in_channels, out_channels=c.out_channels, kernel_size=c.kernel_size,
                         stride=c.stride, padding=c.padding, dilation=c.dilation, groups=c.groups,
                         bias=c.bias is not None)
        self.weight = nn.Parameter(torch.stack([v.weight.detach() for v in convs]))
        self.bias = nn.Parameter(torch.stack([v.bias.detach() for v in convs])) if c.bias is not None else None
        self.align = None
        if align and max(c.kernel_size) > 1:
            self.align = nn.Parameter(torch.eye(c.out_channels).repeat(len(convs), 1, 1))
        self.gate = gate
        self.formulation, self.chosen = "auto", None  # see `formulation`
        self._aligned: tuple[tuple, torch.Tensor] | None = None  # (key of A and W's state, A_e W_e)

    def aligned(self) -> torch.Tensor:
        """The source kernels after alignment, A_e W_e [m, out, in/groups, k, k]."""
        if self.align is None:
            return self.weight
        if torch.is_grad_enabled():
            return torch.einsum("eop,epijk->eoijk", self.align, self.weight)
        key = tuple((t.data_ptr(), t._version, t.device, t.dtype) for t in (self.align, self.weight))
        if self._aligned is None or self._aligned[0] != key:
            with torch.autocast(self.weight.device.type, enabled=False):  # cached in the weights' dtype, so
                aligned = torch.einsum("eop,epijk->eoijk", self.align, self.weight)  # valid with autocast or not
            self._aligned = key, aligned
        return self._aligned[1]

    def mix(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Kernels [n, out, in/groups, k, k] and biases [n, out] (or None) for gates g [n, m]."""
        return torch.einsum("ne,eoijk->noijk", g, self.aligned()), None if self.bias is None else g @ self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gate(x)
        s = self.spec
        if len(g) > 1 and formulation(self, x) == "dense":
            return self.dense(x, g)
        w, b = self.mix(g)
        if len(g) == 1:
            return F.conv2d(x, w[0], None if b is None else b[0], s["stride"], s["padding"], s["dilation"], s["groups"])
        batch = len(x)
        y = F.conv2d(x.reshape(1, -1, *x.shape[2:]), w.flatten(0, 1), None if b is None else b.flatten(),
                     s["stride"], s["padding"], s["dilation"], s["groups"] * batch)
        return y.view(batch, -1, *y.shape[2:])

    def dense(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """The same output as one dense convolution with all m aligned kernels, its m outputs mixed by the
        gates: sum_e g[b, e] (A_e W_e * x_b) = (sum_e g[b, e] A_e W_e) * x_b, convolution being linear. m
        times the convolution's multiply-adds, but no per-sample kernels and no convolution grouped by
        sample, which GPUs run far below their dense rate."""
        s, w = self.spec, self.aligned()
        y = F.conv2d(x, w.flatten(0, 1), None if self.bias is None else self.bias.flatten(), s["stride"],
                     s["padding"], s["dilation"], s["groups"])
        y = y.unflatten(1, (len(w), -1))  # [B, m, out, H, W]
        return (g.to(y.dtype)[:, :, None, None, None] * y).sum(1)

    def fold(self) -> nn.Conv2d:
        """The plain convolution this layer computes at evaluation (shared gates only)."""
        if not self.gate.lite:
            raise ValueError("only a layer with shared (lite) gates folds into one convolution")
        conv = nn.Conv2d(**self.spec, device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            w, b = self.mix(self.gate.ema[None])
            conv.weight.copy_(w[0])
            if b is not None:
                conv.bias.copy_(b[0])
        return conv


DENSE_MAX_PIXELS = 14 * 14  # auto: dense where the output has at most this many pixels, or the kernel is 1x1


def formulation(layer: AdaAggConv, x: torch.Tensor) -> str:
    """How `layer` computes per-sample kernels on input `x`: its `formulation`, or with 'auto' a rule from the
    H200 measurements of issue 14 (the dense form 2.5x the grouped one on layer4's 3x3 and on 1x1 convs,
    0.5x on the 7x7 stem at 112x112): dense on CUDA for 1x1 kernels and small outputs (layer3, layer4),
    grouped elsewhere and on every other device (so CPU results stay those of the official layer).
    Dense needs one group (the m kernels' outputs would interleave the groups' channels). The choice made
    is kept in `layer.chosen` (the method records them)."""
    s = layer.spec
    if layer.formulation != "auto":
        chosen = layer.formulation
    else:
        h, w = ((n + 2 * p - d * (k - 1) - 1) // st + 1 for n, p, d, k, st in
                zip(x.shape[-2:], s["padding"], s["dilation"], s["kernel_size"], s["stride"], strict=True))
        small = max(s["kernel_size"]) == 1 or h * w <= DENSE_MAX_PIXELS
        chosen = "dense" if x.is_cuda and small else "grouped"
    if chosen == "dense" and s["groups"] != 1:
        chosen = "grouped"
    layer.chosen = chosen
    return chosen


def fold(model: nn.Module) -> nn.Module:
    """A copy of `model` with every lite AdaAggConv replaced by its plain convolution (eval only)."""
    model = copy.deepcopy(model)
    for name, m in list(model.named_modules()):
        if isinstance(m, AdaAggConv) and m.gate.lite:
            model.set_submodule(name, m.fold())
    return model.eval()


def in_scope(name: str, prefixes: Collection[str]) -> bool:
    """Whether module `name` is, or lies under, one of the dotted `prefixes`."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@torch.no_grad()
def mean_gates(model: TaskModel, ctx) -> dict[str, list[float]]:
    """Per AdaAggConv of the backbone: the gate used for each source, averaged over the val split."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def record(name, module, inputs, out):  # every view of a multi-view test counts as one input
        sums[name] = sums.get(name, 0) + out.float().sum(0).cpu()
        counts[name] = counts.get(name, 0) + len(out)

    hooks = [m.gate.register_forward_hook(partial(record, name))
             for name, m in model.backbone.named_modules() if isinstance(m, AdaAggConv)]
    try:
        ctx.predict(model, "val")
    finally:
        for h in hooks:
            h.remove()
    return {name: (s / counts[name]).tolist() for name, s in sums.items()}
