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
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from hubbench.registry import Registry, check_name
from hubs.base import Hub
from tasks.base import Task

if TYPE_CHECKING:  # the runner's context; methods only call what it offers
    from benchmark.context import Context

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


class TaskModel(nn.Module):
    """A backbone followed by a task head: the model every fine-tuning method trains."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return self.head(self.backbone(x))


def task_model(backbone: nn.Module, task: Task) -> TaskModel:
    return TaskModel(backbone, task.head(backbone.out_channels))


@dataclass(frozen=True)
class FinetunedSource:
    """Source `source` fine-tuned on the task with the task's protocol: the artifact that
    Fine-tune, Ensemble-I and every "+Finetuned" method share, trained once per seed."""

    source: str

    @property
    def id(self) -> str:
        return f"finetuned-{check_name('source', self.source)}"

    def build(self, ctx: Context, pretrained: bool) -> TaskModel:
        return task_model(ctx.hub.source(self.source).backbone(pretrained), ctx.task)

    def train(self, ctx: Context, model: TaskModel) -> None:
        ctx.train(model)
