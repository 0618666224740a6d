"""Import every module of a package, so that a new file registering a method, task or hub is
picked up without touching a shared list."""

from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package: str, path: list[str]) -> None:
    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")


def load_entry_points(group: str) -> None:
    """Import what installed distributions declare under `group` (their modules register themselves)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=group):
        try:
            ep.load()
        except Exception as e:
            raise ImportError(f"cannot load {group} entry point {ep.name!r} ({ep.value}): {e}") from e
