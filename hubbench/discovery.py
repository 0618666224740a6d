"""Import every module of a package, so that a new file registering a method, task or hub is
picked up without touching a shared list."""

from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package: str, path: list[str]) -> None:
    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
