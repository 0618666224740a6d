"""The Method interface, the method registry, and the pieces methods share.

A method is a frozen dataclass: its fields are its hyper-parameters (constructor-only, typed,
defaults from the paper), so `finetune[model=supervised]` parses into `Finetune(model=...)`
and every record carries exactly the parameters that produced it.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from torch import nn

from hubbench.context import Context
from hubbench.figures import FigureHook
from hubbench.params import Plugin
from hubbench.registry import Registry

METHODS: Registry[type[Method]] = Registry("method")


class Method(Plugin):
    """A way to transfer from a hub to a task: a plugin (`hubbench.params.Plugin`) registered with `@register`,
    whose `fit` builds and trains the predictor through the `Context` it is given."""

    REGISTRY: ClassVar[Registry] = METHODS
    # whether `fit` trains a model of its own (`ctx.train`), so that a suite's search of the protocol's optimisation
    # fields applies to it; a method that only combines fine-tuned sources says False (they are tuned themselves)
    trains: ClassVar[bool] = True

    @classmethod
    def figures(cls) -> tuple[FigureHook, ...]:
        """The leaderboard figures drawn from this method's records (its `ctx.diagnostics`, its curves)
        beyond those every method gets: see `hubbench.figures`."""
        return ()

    @abstractmethod
    def fit(self, ctx: Context) -> nn.Module:
        """Build and train a predictor: normalised images -> task outputs."""


register = Method.register  # @register: a frozen dataclass, registered under its `name`
parse_spec = Method.parse  # `name[k=v,...]` -> (method class, typed explicit parameters)
