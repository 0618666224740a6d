"""The Method interface, the method registry, and the pieces methods share.

A method is a frozen dataclass: its fields are its hyper-parameters (constructor-only, typed,
defaults from the paper), so `finetune[model=supervised]` parses into `Finetune(model=...)`
and every record carries exactly the parameters that produced it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from hubbench.context import Context, FinetunedSource
from hubbench.figures import FigureHook
from hubbench.hubs.base import Hub
from hubbench.params import Configurable, parse, registrar
from hubbench.registry import Registry
from hubbench.tasks.base import Task

METHODS: Registry[type[Method]] = Registry("method")


@dataclass(frozen=True)
class Method(Configurable, ABC):
    """A way to transfer from a hub to a task: a frozen dataclass whose fields are its hyper-parameters (defaults
    from its paper), registered under `name` with `@register`, whose `fit` builds and trains the predictor
    through the `Context` it is given."""

    name: ClassVar[str]
    description: ClassVar[str]

    def applicable(self, hub: Hub, task: Task) -> tuple[bool, str]:
        """Whether the method is defined for this hub and task, and why not."""
        return True, ""

    def needs(self, hub: Hub, task: Task) -> list[FinetunedSource]:
        """Artifacts the method reuses (trained once per hub, task, protocol and seed)."""
        return []

    @classmethod
    def variants(cls, hub: Hub) -> list[dict[str, Any]]:
        """The parameter sets a bare suite entry expands to (one cell each)."""
        return [{}]

    @classmethod
    def figures(cls) -> tuple[FigureHook, ...]:
        """The leaderboard figures drawn from this method's records (its `ctx.diagnostics`, its curves)
        beyond those every method gets: see `hubbench.figures`."""
        return ()

    @abstractmethod
    def fit(self, ctx: Context) -> nn.Module:
        """Build and train a predictor: normalised images -> task outputs."""


register = registrar(METHODS)  # @register: a frozen dataclass, registered under its `name`


def parse_spec(spec: str) -> tuple[type[Method], dict[str, Any]]:
    """`name[k=v,...]` -> (method class, typed explicit parameters); errors list valid choices."""
    return parse(METHODS, spec)
