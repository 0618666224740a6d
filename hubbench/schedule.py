"""How a model is optimised (`Schedule`): the one definition of the optimisation fields, which a task's protocol
extends and a suite's search tunes. Importing it does not import torch (suites are checked without it)."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

from hubbench.errors import InputError

OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("step", "cosine")


@dataclass(frozen=True)
class Schedule:
    """How a model is optimised, the one definition of these fields: a task's `Protocol` extends it (so a suite
    sets them, and its search tunes them, like any protocol field) and a hub's pre-training builds one.

    `optimizer`: SGD with momentum (Nesterov's where `nesterov`; the papers' recipe) or AdamW (`momentum` and
    `nesterov` unused). `lr_schedule`: `step` multiplies the learning rate by `gamma` at each of `milestones`,
    fractions of `iterations` (the papers' 6 000 and 12 000 of 15 000 are 0.4 and 0.8, so a shorter run keeps
    the shape of the schedule); `cosine` anneals it to 0 over the iterations after the warm-up. `warmup`: the
    first fraction of the iterations ramps it up linearly (0: none). Stepped per iteration. Every field is
    checked for its type and range (`LIMITS`) when the schedule is made, with its name and what it must be.
    """

    iterations: int
    lr: float
    batch_size: int
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    milestones: tuple[float, ...] = (0.4, 0.8)
    gamma: float = 0.1
    optimizer: str = "sgd"
    lr_schedule: str = "step"
    warmup: float = 0.0

    LIMITS: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {  # field -> (valid?, what it must be)
        "iterations": (lambda v: v >= 1, "at least 1"),
        "lr": (lambda v: 0 < v < math.inf, "a positive number"),
        "batch_size": (lambda v: v >= 1, "at least 1"),
        "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "weight_decay": (lambda v: 0 <= v < math.inf, "a non-negative number"),
        "milestones": (lambda v: all(0 < m <= 1 for m in v), "fractions of the iterations, each in (0, 1]"),
        "gamma": (lambda v: 0 < v <= 1, "in (0, 1]"),
        "optimizer": (lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
        "lr_schedule": (lambda v: v in LR_SCHEDULES, f"one of {', '.join(LR_SCHEDULES)}"),
        "warmup": (lambda v: 0 <= v < 1, "a fraction of the iterations in [0, 1)"),
    }

    def __post_init__(self):
        hints = field_types(type(self))
        for f in dataclasses.fields(self):
            value = typed(f.name, getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, value)  # ints given for floats, lists for tuples
            ok, must = self.LIMITS.get(f.name, (None, ""))
            if ok is not None and not ok(value):
                raise InputError(f"protocol field {f.name!r} must be {must}, got {value!r}")

    def lr_at(self, iteration: int) -> float:
        warm = round(self.warmup * self.iterations)
        if iteration < warm:
            return self.lr * (iteration + 1) / warm
        if self.lr_schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * (iteration - warm) / max(1, self.iterations - warm)))
        return self.lr * self.gamma ** sum(iteration >= round(m * self.iterations) for m in self.milestones)

    def build_optimizer(self, params: Iterable):
        """The optimiser of `params` (parameters, or param groups as `torch.optim` takes them)."""
        import torch

        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        if self.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(
            groups,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov and self.momentum > 0,
        )


def searchable() -> tuple[str, ...]:
    """The fields a search may tune: how the model is optimised, not the budget (`iterations`)."""
    return tuple(f.name for f in dataclasses.fields(Schedule) if f.name != "iterations")


@cache
def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def typed(name: str, value: Any, kind: Any, what: str = "protocol field") -> Any:
    """`value` as a field of type `kind` holds it (an int given for a float becomes one, a list of
    numbers a tuple of floats); any other type is an error naming `what` `name` is. A bool is not taken for
    a number."""
    if typing.get_origin(kind) is tuple:
        if isinstance(value, (list, tuple)) and all(type(v) in (int, float) for v in value):
            return tuple(float(v) for v in value)
        raise InputError(f"{what} {name!r} expects a list of numbers, got {value!r}")
    if kind is float and type(value) is int:
        return float(value)
    if type(value) is not kind:
        raise InputError(f"{what} {name!r} expects {getattr(kind, '__name__', kind)}, got {value!r}")
    return value
