"""The Method interface, the method registry, and the pieces methods share.

A method is a frozen dataclass: its fields are its hyper-parameters (constructor-only, typed,
defaults from the paper), so `finetune[model=supervised]` parses into `Finetune(model=...)`
and every record carries exactly the parameters that produced it.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from hubbench.hubs.base import Hub
from hubbench.tasks.base import Task
from torch import nn

from hubbench.context import Context, FinetunedSource
from hubbench.figures import FigureHook
from hubbench.registry import Registry

METHODS: Registry[type[Method]] = Registry("method")

SPEC_RE = re.compile(r"^([a-z0-9][a-z0-9_.-]*)(?:\[(.*)\])?$")
VALUE_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")


@dataclass(frozen=True)
class Method(ABC):
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

    @property
    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def id(self) -> str:
        """`name[k=v,...]` with the parameters that differ from their defaults."""
        changed = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                   if getattr(self, f.name) != f.default]
        return f"{self.name}[{','.join(changed)}]" if changed else self.name


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make `cls` a frozen dataclass and register it under its `name`."""
    cls = dataclass(frozen=True)(cls)
    return METHODS.register(cls.name)(cls)


def parse_spec(spec: str) -> tuple[type[Method], dict[str, Any]]:
    """`name[k=v,...]` -> (method class, typed explicit parameters); errors list valid choices."""
    m = SPEC_RE.match(spec.strip())
    if not m:
        raise ValueError(f"malformed method spec {spec!r} (expected name or name[key=value,...])")
    cls = METHODS.get(m.group(1))
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    params: dict[str, Any] = {}
    for item in filter(None, (m.group(2) or "").split(",")):
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or key not in fields:
            raise ValueError(f"method {cls.name!r} has no parameter {key!r} "
                             f"(choose from: {', '.join(sorted(fields)) or 'none'})")
        params[key] = convert(raw, hints[key], f"{cls.name}.{key}")
    return cls, params


def convert(raw: str, kind: Any, what: str) -> Any:
    if not VALUE_RE.match(raw):
        raise ValueError(f"invalid value {raw!r} for {what}: use letters, digits, '_', '.', '+', '-'")
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        return kind(raw)
    except (TypeError, ValueError):
        raise ValueError(f"invalid value {raw!r} for {what} (expected {getattr(kind, '__name__', kind)})") from None
