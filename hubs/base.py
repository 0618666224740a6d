"""The Hub interface: an ordered set of pre-trained source models to transfer from.

A backbone is an `nn.Module` mapping normalised images [B, 3, H, W] to its last feature map
[B, C, h, w], with `out_channels = C`; heads pool it (classification) or decode it (dense tasks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from hubbench.registry import Registry, UnknownName
from hubbench.settings import current

if TYPE_CHECKING:
    import torch
    from torch import nn

# A hub's modules build architectures (torch); `Hub` and `Source` here are its declaration, made without them.
HUBS: Registry[Callable[[], Hub]] = Registry("hub", package="hubbench.hubs")


@dataclass(frozen=True)
class Source:
    """One source model: its architecture, a way to obtain its pre-trained weights and, when its
    pre-training head classifies whole images, that head with its weights (feature map -> logits
    over the source's own classes; what LEEP and NCE read), else None."""

    name: str
    family: str
    description: str
    arch: Callable[[], nn.Module] = field(repr=False)
    weights: Callable[[], dict[str, torch.Tensor]] = field(repr=False)
    classifier: Callable[[], nn.Module] | None = field(default=None, repr=False)
    # the backbone gives a transformer's pooled features as a 1 x 1 map: no spatial map (`hubs.declared.Pooled`)
    pooled: bool = False
    # how hubbench pre-trains the source itself (`hubs.mini.Pretrained`); None where its weights come from files
    pretrained: Any = field(default=None, repr=False, compare=False)

    def backbone(self, pretrained: bool = True) -> nn.Module:
        model = self.arch()
        if pretrained:
            model.load_state_dict(self.weights())
        return model


def _ready() -> None:
    """The weights of a hub that builds them itself (or draws them at random) are always to be had."""


@dataclass(frozen=True)
class Hub:
    name: str
    description: str
    sources: tuple[Source, ...]
    config: dict = field(default_factory=dict)
    # Raises one error naming every missing file when the sources' weights cannot be loaded, loading nothing:
    # the check `hubbench run` makes before any cell starts.
    check: Callable[[], None] = field(default=_ready, repr=False, compare=False)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sources]

    @property
    def homogeneous(self) -> bool:
        """All sources share one architecture family (weight averaging/aggregation is defined)."""
        return len({s.family for s in self.sources}) == 1

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        raise UnknownName(f"source of hub {self.name!r}", name, self.names)

    def build(self) -> None:
        """Materialise every source's weights (pre-training or downloading them if needed)."""
        from tqdm.auto import tqdm

        for s in tqdm(self.sources, desc=f"hub {self.name}", unit="model", disable=None):
            s.weights()

    def describe(self) -> dict:
        return {"name": self.name, "homogeneous": self.homogeneous, "config": self.config,
                "sources": [{"name": s.name, "family": s.family} for s in self.sources]}


def get_hub(name: str) -> Hub:
    """The hub registered as `name`, made once per process and weights mode (the setting `random_weights`, which a
    real hub reads when it is made)."""
    return made_hub(name, current().random_weights)


@cache
def made_hub(name: str, random_weights: bool) -> Hub:  # the mode is a key of the cache: the hub reads it itself
    return HUBS.get(name)()
