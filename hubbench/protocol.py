"""A task's training protocol: how every method is trained and tested on it.

Its own module, without torch, so that suites, `--set` overrides and `hubbench status` check and compare
protocols without importing a task's code (`hubbench.tasks.base.Protocol` is this one)."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from hubbench.errors import InputError

if TYPE_CHECKING:
    from hubbench.training import Schedule

VIEWS = (1, 2, 5, 10)  # the test views a protocol may ask for (see `hubbench.tasks.crops.views`)


@dataclass(frozen=True)
class Protocol:
    """How every method is trained and tested on a task (the papers' recipe, scaled down).

    `milestones` are fractions of `iterations` (the papers' 6 000 and 12 000 of 15 000 are
    0.4 and 0.8), so a suite that shortens training keeps the shape of the schedule.
    `resize`, `random_resized_crop` and `test_views` are the papers' ImageNet-style pipeline, used by
    tasks that decode image files per batch (`tasks.files`): squash to `resize` x `resize`, train
    on crops of random area and aspect (else the centre) at `image_size`, test on `test_views`
    crops (1: the centre; 2: and its mirror; 5: the centre and four corners; 10: and their mirrors)
    whose outputs are summed.
    """

    image_size: int
    batch_size: int
    iterations: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    milestones: tuple[float, ...] = (0.4, 0.8)
    gamma: float = 0.1
    crop_padding: int = 0
    flip: bool = False
    resize: int = 0  # 0: no squash before cropping, images come at `image_size`
    random_resized_crop: bool = False
    test_views: int = 1
    eval_every: int = 0
    eval_batch_size: int = 256
    checkpoint_every: int = 50

    def __post_init__(self):
        """Every field checked for its type and range, so suites, `--set` overrides and tasks' own
        protocols are all refused before any training, with the field's name and what it must be."""
        for f in dataclasses.fields(self):
            value = _typed(f.name, getattr(self, f.name), _field_types()[f.name])
            object.__setattr__(self, f.name, value)  # ints given for floats, lists for tuples
            ok, must = LIMITS.get(f.name, (None, ""))
            if ok is not None and not ok(value):
                raise InputError(f"protocol field {f.name!r} must be {must}, got {value!r}")
        if 0 < self.resize < self.image_size:
            raise InputError(f"protocol field 'resize' must be 0 or at least image_size ({self.image_size}), "
                             f"got {self.resize}")

    def schedule(self, iterations: int | None = None) -> Schedule:
        from hubbench.training import Schedule

        n = self.iterations if iterations is None else iterations
        return Schedule(
            iterations=n,
            lr=self.lr,
            batch_size=self.batch_size,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
            milestones=tuple(round(f * n) for f in self.milestones),
            gamma=self.gamma,
        )

    def replace(self, **overrides: Any) -> Protocol:
        """A copy with `overrides` applied; unknown fields, wrong types and values out of range are errors."""
        if not overrides:
            return self
        names = [f.name for f in dataclasses.fields(self)]
        for key in overrides:
            if key not in names:
                raise InputError(f"unknown protocol field {key!r} (choose from: {', '.join(names)})")
        return dataclasses.replace(self, **overrides)


LIMITS: dict[str, tuple[Callable[[Any], bool], str]] = {  # field -> (valid?, what it must be); bools have none
    "image_size": (lambda v: v >= 1, "at least 1"),
    "batch_size": (lambda v: v >= 1, "at least 1"),
    "iterations": (lambda v: v >= 1, "at least 1"),
    "lr": (lambda v: 0 < v < math.inf, "a positive number"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "weight_decay": (lambda v: 0 <= v < math.inf, "a non-negative number"),
    "milestones": (lambda v: all(0 < m <= 1 for m in v), "fractions of the iterations, each in (0, 1]"),
    "gamma": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "crop_padding": (lambda v: v >= 0, "at least 0"),
    "resize": (lambda v: v >= 0, "0 or at least image_size"),
    "test_views": (lambda v: v in VIEWS, f"one of {VIEWS}"),
    "eval_every": (lambda v: v >= 0, "at least 0 (0: no evaluation during training)"),
    "eval_batch_size": (lambda v: v >= 1, "at least 1"),
    "checkpoint_every": (lambda v: v >= 1, "at least 1"),
}


@cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(Protocol)


def _typed(name: str, value: Any, kind: Any) -> Any:
    """`value` as a field of type `kind` holds it (an int given for a float becomes one, a list of
    numbers a tuple of floats); any other type is an error. A bool is not taken for a number."""
    if typing.get_origin(kind) is tuple:
        if isinstance(value, (list, tuple)) and all(type(v) in (int, float) for v in value):
            return tuple(float(v) for v in value)
        raise InputError(f"protocol field {name!r} expects a list of numbers, got {value!r}")
    if kind is float and type(value) is int:
        return float(value)
    if type(value) is not kind:
        raise InputError(f"protocol field {name!r} expects {kind.__name__}, got {value!r}")
    return value
