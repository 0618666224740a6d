"""Named registries for hubs, tasks and methods (the timm pattern: decorators that register)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from hubbench.discovery import import_submodules
from hubbench.errors import InputError

T = TypeVar("T")

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class UnknownName(InputError, LookupError):
    """A name that is not registered; the message lists the valid choices."""

    def __init__(self, kind: str, name: str, choices: list[str]):
        self.kind, self.name, self.choices = kind, name, choices
        super().__init__(f"unknown {kind} {name!r} (choose from: {', '.join(choices)})")

    def __str__(self) -> str:  # LookupError would quote the message
        return self.args[0]


def check_name(kind: str, name: str) -> str:
    """Names become file and directory names, so only a safe alphabet is allowed."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InputError(f"invalid {kind} name {name!r}: use lower-case letters, digits, '_', '.', '-'")
    return name


class Registry(Generic[T]):
    """Maps names to objects; `register` is a decorator, lookups fail with the valid choices.

    With a `package`, the registry imports that package's modules (which register themselves) when first used,
    not when the package is imported: the hubs' registry, so that a hub's declaration (`Hub`, `Source`) is made
    without the modules that build architectures with torch."""

    def __init__(self, kind: str, package: str | None = None):
        self.kind, self.package = kind, package
        self._items: dict[str, T] = {}

    @property
    def _registered(self) -> dict[str, T]:
        if self.package is not None:
            package, self.package = self.package, None  # first, as its modules register into this registry
            import_submodules(package, importlib.import_module(package).__path__)
        return self._items

    def register(self, name: str) -> Callable[[T], T]:
        check_name(self.kind, name)

        def decorate(obj: T) -> T:
            if name in self._registered and self._registered[name] is not obj:
                raise InputError(f"{self.kind} {name!r} is already registered")
            self._registered[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> T:
        try:
            return self._registered[name]
        except KeyError:
            raise UnknownName(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._registered)

    def __contains__(self, name: object) -> bool:
        return name in self._registered

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
