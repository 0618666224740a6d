"""The Method interface, the method registry, and the pieces methods share.

A method is a frozen dataclass: its fields are its hyper-parameters (constructor-only, typed,
defaults from the paper), so `finetune[model=supervised]` parses into `Finetune(model=...)`
and every record carries exactly the parameters that produced it.

A method's module is its declaration and imports no torch: its name, fields, variants, applicability,
needs and figures load for `hubbench status` and the leaderboard in a fraction of a second; `fit`
imports what it builds with (`hubbench.models`, the method's private `_<name>` module) when a cell runs.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, ClassVar

from hubbench.artifacts import FinetunedSource
from hubbench.figures import FigureHook
from hubbench.params import Plugin, Role
from hubbench.record import Record
from hubbench.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from hubbench.context import Context
    from hubbench.hubs.base import Hub
    from hubbench.tasks.base import Task

METHODS: Registry[type[Method]] = Registry("method")


class Method(Plugin):
    """A way to transfer from a hub to a task: a plugin (`hubbench.params.Plugin`) registered with `@register`,
    whose `fit` builds and trains the predictor through the `Context` it is given."""

    REGISTRY: ClassVar[Registry] = METHODS
    RECORD: ClassVar[type[Record]] = Record
    role: ClassVar[Role] = Role.HUB  # what the leaderboard compares it with (`Role`; a plugin may declare any)
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

    def uses(self, hub: Hub) -> list[str]:
        """The sources whose backbones it builds (default: all of them)."""
        return hub.names


def applicable(method: Method, hub: Hub, task: Task) -> tuple[bool, str]:
    """Whether `method` applies: where the task's head decodes a spatial map, every source it builds must give one
    (a transformer's pooled features do not); then its own answer."""
    pooled = [s.name for s in hub.sources if s.pooled and s.name in method.uses(hub)] if task.needs_map else []
    if pooled:
        return False, (f"a {task.kind} head decodes a spatial map; {', '.join(pooled)} give{'s' * (len(pooled) == 1)} "
                       "a transformer's pooled features, none")
    return method.applicable(hub, task)


register = Method.register  # @register: a frozen dataclass, registered under its `name`
parse_spec = Method.parse  # `name[k=v,...]` -> (method class, typed explicit parameters)


def finetuned_needs(hub: Hub, finetuned: bool = True) -> list[FinetunedSource]:
    """Every hub model fine-tuned on the task, when `finetuned`; nothing otherwise."""
    return [FinetunedSource(name) for name in hub.names] if finetuned else []
