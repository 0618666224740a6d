"""Named registries for hubs, tasks and methods (the timm pattern: decorators that register)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

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
    """Maps names to objects; `register` is a decorator, lookups fail with the valid choices."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        check_name(self.kind, name)

        def decorate(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise InputError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
