"""Zoo-Tuning-L: Zoo-Tuning whose deployed model costs exactly one backbone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubbench.methods.base import register
from hubbench.methods.zoo_tuning import ZooTuning

if TYPE_CHECKING:
    from torch import nn

    from hubbench.methods._zoo_tuning import Gate


@register
class ZooTuningL(ZooTuning):
    """Zoo-Tuning with batch-shared gates: training uses the batch mean of each layer's gates and
    keeps an EMA of it (`momentum`, zeros at start, detached); evaluation uses the EMA, so after
    training every aggregated kernel is folded into a plain Conv2d and the predictor is a single
    backbone plus the head.

    `lite_downsample`: the official code never makes the 1x1 shortcut projections (modules under a
    `downsample`) lite, which leaves per-sample gates, all m kernels and their gate networks in the
    deployed model. We make them lite by default so that the cost claim holds exactly; False
    reproduces the official code (those layers then stay unfolded).
    """

    name = "zoo_tuning_l"
    description = "Zoo-Tuning-L: batch-mean gates with an EMA, folded into one backbone for inference"
    momentum: float = 0.1
    lite_downsample: bool = True

    def gate(self, name: str, conv: nn.Conv2d, sources: int) -> Gate:
        from hubbench.methods._zoo_tuning import Gate

        lite = self.lite_downsample or "downsample" not in name.split(".")
        return Gate(conv.in_channels, sources, lite=lite, momentum=self.momentum)

    def fit(self, ctx):
        from hubbench.methods._zoo_tuning import fold

        return fold(super().fit(ctx))
