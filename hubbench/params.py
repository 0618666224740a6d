"""Registered, parameterised plugins, the base of methods and rankers: a frozen dataclass whose fields are its typed
hyper-parameters, registered by name, written `name[key=value,...]` in suites and on the command line, and echoed
in every record."""

from __future__ import annotations

import dataclasses
import re
import typing
from abc import ABC
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from hubbench.errors import InputError
from hubbench.record import CellRecord
from hubbench.registry import Registry

if TYPE_CHECKING:
    from hubbench.artifacts import FinetunedSource, HubRanking
    from hubbench.hubs.base import Hub
    from hubbench.tasks.base import Task

SPEC_RE = re.compile(r"^([a-z0-9][a-z0-9_.-]*)(?:\[(.*)\])?$")
VALUE_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")


class Role(str, Enum):
    """What a method is to the tables, figures and comparisons of the leaderboard, which tell methods apart by
    it (each record states its method's): a method declares one (`Method.role`), a plugin any."""

    SINGLE_SOURCE = "single-source"  # fine-tunes one hub model, named by its `model` parameter: the baselines
    FROM_SCRATCH = "from-scratch"  # transfers nothing: the floor
    HUB = "hub"  # transfers from the hub: what the benchmark compares
    OTHER = "other"


@dataclasses.dataclass(frozen=True)
class Plugin(ABC):
    """A method or a ranker: a frozen dataclass whose fields are its hyper-parameters (defaults from its paper),
    registered under `name` in its kind's `REGISTRY` by the kind's `register`; `params` and `id` say which."""

    name: ClassVar[str]
    description: ClassVar[str]  # one line
    REGISTRY: ClassVar[Registry]
    RECORD: ClassVar[type[CellRecord]]  # what the cells of this kind of plugin write
    role: ClassVar[Role | None] = None  # a method's (a ranker has none)

    @property
    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def id(self) -> str:
        """`name[k=v,...]` with the parameters that differ from their defaults."""
        changed = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                   if getattr(self, f.name) != f.default]
        return f"{self.name}[{','.join(changed)}]" if changed else self.name

    def applicable(self, hub: Hub, task: Task) -> tuple[bool, str]:
        """Whether it is defined for this hub and task, and why not."""
        return True, ""

    def needs(self, hub: Hub, task: Task) -> list[FinetunedSource | HubRanking]:
        """What its `fit` may reuse from the cache (`hubbench.artifacts`: fine-tuned sources, trained once per hub,
        task, protocol and seed; rankings of the hub's sources): every one it may read, a superset where it
        chooses as it runs (the sources a ranking picks: all of them). A ranker reads only the pre-trained
        sources' cached features."""
        return []

    @classmethod
    def variants(cls, hub: Hub) -> list[dict[str, Any]]:
        """The parameter sets a bare suite entry expands to (one cell each)."""
        return [{}]

    @classmethod
    def register(cls, plugin: type) -> type:
        """The class decorator of this kind's plugins: it makes `plugin` a frozen dataclass (its fields are its
        hyper-parameters) and registers it under its `name`."""
        if plugin.role is not None:
            if plugin.role not in tuple(Role):
                raise ValueError(f"{cls.REGISTRY.kind} {plugin.name!r}: unknown role {plugin.role!r} "
                                 f"(choose from: {', '.join(r.value for r in Role)})")
            plugin.role = Role(plugin.role)  # declared by its value ("single-source") too
        return cls.REGISTRY.register(plugin.name)(dataclasses.dataclass(frozen=True)(plugin))

    @classmethod
    def parse(cls, spec: str) -> tuple[type, dict[str, Any]]:
        """`name[k=v,...]` -> (registered class of this kind, typed explicit parameters); errors list valid choices."""
        kind = cls.REGISTRY.kind
        m = SPEC_RE.match(spec.strip())
        if not m:
            raise InputError(f"malformed {kind} spec {spec!r} (expected name or name[key=value,...])")
        found = cls.REGISTRY.get(m.group(1))
        hints = typing.get_type_hints(found)
        fields = {f.name for f in dataclasses.fields(found)}
        params: dict[str, Any] = {}
        for item in filter(None, (m.group(2) or "").split(",")):
            key, sep, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep or key not in fields:
                raise InputError(f"{kind} {found.name!r} has no parameter {key!r} "
                                 f"(choose from: {', '.join(sorted(fields)) or 'none'})")
            params[key] = convert(raw, hints[key], f"{found.name}.{key}")
        return found, params

    @classmethod
    def of(cls, spec: str) -> Plugin:
        """The plugin of this kind that `spec` names, its unnamed parameters at their defaults."""
        found, params = cls.parse(spec)
        return found(**params)


def convert(raw: str, kind: Any, what: str) -> Any:
    if not VALUE_RE.match(raw):
        raise InputError(f"invalid value {raw!r} for {what}: use letters, digits, '_', '.', '+', '-'")
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        return kind(raw)
    except (TypeError, ValueError):
        raise InputError(f"invalid value {raw!r} for {what} (expected {getattr(kind, '__name__', kind)})") from None
