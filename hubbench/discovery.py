"""Import every module of a package, so that a new file registering a method, task or hub is
picked up without touching a shared list."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from importlib import metadata
from typing import Any

# where the code of each module that is not hubbench's came from, as records state it: a plugin file's
# {"plugin": its absolute path, "sha256": ...}, an installed package's {"distribution": name, "version": ...}
PROVENANCE: dict[str, dict[str, str]] = {}


def import_submodules(package: str, path: list[str]) -> None:
    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")


def load_entry_points(group: str) -> None:
    """Import what installed distributions declare under `group` (their modules register themselves)."""
    for ep in _entry_points().select(group=group):
        try:
            ep.load()
        except Exception as e:
            raise ImportError(f"cannot load {group} entry point {ep.name!r} ({ep.value}): {e}") from e
        if ep.dist is not None:
            PROVENANCE[ep.module] = {"distribution": ep.dist.name, "version": ep.dist.version}


def code_of(obj: Any) -> dict[str, str] | None:
    """Where a registered class's or factory's code comes from: the plugin file or package that defined it
    (None: hubbench itself, whose code the record's git commit names)."""
    module = getattr(obj, "__module__", None) or getattr(getattr(obj, "func", None), "__module__", "")
    if module in PROVENANCE:
        return PROVENANCE[module]
    top = module.partition(".")[0]
    if top == "hubbench" or not (names := _distributions().get(top)):
        return None
    return {"distribution": names[0], "version": metadata.version(names[0])}


@functools.cache
def _entry_points():
    return metadata.entry_points()  # every distribution's, read once for every group


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def identity(code: dict[str, str]) -> dict[str, str]:
    """What identifies code as records state it (`code_of`): a plugin file by its content (sha256), wherever it was
    loaded from (a path typed relative, a copy elsewhere); a package by its name and version."""
    return {k: v for k, v in code.items() if k != "plugin"}


def loaded_plugins() -> list[dict[str, str]]:
    """Every plugin file and package this process loaded, as records state them."""
    return [dict(p) for p in {tuple(sorted(p.items())): p for p in PROVENANCE.values()}.values()]
