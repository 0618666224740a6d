"""Typed hyper-parameters of plugins (methods, rankers): the fields of a frozen dataclass, written
`name[key=value,...]` in suites and on the command line, and echoed in every record."""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

from hubbench.registry import Registry

SPEC_RE = re.compile(r"^([a-z0-9][a-z0-9_.-]*)(?:\[(.*)\])?$")
VALUE_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")


class Configurable:
    """A frozen dataclass whose fields are its hyper-parameters: `params` and `id` say which."""

    name: typing.ClassVar[str]

    @property
    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def id(self) -> str:
        """`name[k=v,...]` with the parameters that differ from their defaults."""
        changed = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                   if getattr(self, f.name) != f.default]
        return f"{self.name}[{','.join(changed)}]" if changed else self.name


def registrar(registry: Registry) -> typing.Callable[[type], type]:
    """The class decorator of `registry`'s plugins: it makes a class a frozen dataclass (its fields are
    its hyper-parameters) and registers it under its `name`."""

    def register(cls: type) -> type:
        return registry.register(cls.name)(dataclasses.dataclass(frozen=True)(cls))

    return register


def parse(registry: Registry, spec: str) -> tuple[type, dict[str, Any]]:
    """`name[k=v,...]` -> (registered class, typed explicit parameters); errors list valid choices."""
    kind = registry.kind
    m = SPEC_RE.match(spec.strip())
    if not m:
        raise ValueError(f"malformed {kind} spec {spec!r} (expected name or name[key=value,...])")
    cls = registry.get(m.group(1))
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    params: dict[str, Any] = {}
    for item in filter(None, (m.group(2) or "").split(",")):
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or key not in fields:
            raise ValueError(f"{kind} {cls.name!r} has no parameter {key!r} "
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
