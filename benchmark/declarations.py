"""Hubs and tasks declared in TOML files (`[hub.<name>]`, `[task.<name>]` tables), registered for this process.

A suite holds declarations itself or names files of them (`include = ["my-data.toml"]`, relative to the suite);
`hubbench rank --declare FILE` reads a file of them. Declaring is idempotent: the same table again (a suite
loaded twice, a worker process unpickling a suite) registers nothing new, while another table under a name
already in use, a built-in's included, is an error rather than a silent replacement.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hubbench.errors import InputError
from hubbench.registry import check_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_DECLARED: dict[tuple[str, str], Any] = {}  # (kind, name) -> (table, base directory) as registered


def read_toml(path: Path, what: str) -> dict:
    """A TOML file's contents; unreadable or malformed, an `InputError` naming `what` and the path."""
    try:
        return tomllib.loads(path.read_text())
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"malformed {what} {path}: {e}") from None


def read(path: Path) -> dict:
    """A declaration file's tables (hub, task)."""
    data = read_toml(path, "declaration file")
    unknown = set(data) - {"hub", "task"}
    if unknown:
        raise InputError(f"declaration file {path}: unknown key(s) {', '.join(sorted(unknown))} "
                         "(choose from: hub, task)")
    return data


def gather(data: dict, base: Path) -> dict[tuple[str, str], tuple[Any, Path]]:
    """Every declaration of a suite (or file): its own tables and those of the files it includes."""
    found: dict[tuple[str, str], tuple[Any, Path]] = {}
    includes = data.get("include", [])
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise InputError("'include' must be a list of declaration files")
    base = base.resolve()  # a worker or cluster job may start elsewhere
    for source, folder in [(data, base), *((read(base / i), (base / i).parent) for i in includes)]:
        for kind in ("hub", "task"):
            tables = source.get(kind, {})
            if not isinstance(tables, dict):
                raise InputError(f"'{kind}' must hold one table per declared {kind} ([{kind}.<name>])")
            for name, table in tables.items():
                check_name(kind, name)
                if (kind, name) in found and found[kind, name] != (table, folder):
                    raise InputError(f"{kind} {name!r} is declared twice, differently")
                found[kind, name] = (table, folder)
    return found


def declare_files(files: list[str]) -> dict[tuple[str, str], tuple[Any, Path]]:
    """Read and register the declarations of `files` (`--declare`); returns them, for a suite to carry."""
    found: dict[tuple[str, str], tuple[Any, Path]] = {}
    for file in files:
        found.update(gather(read(Path(file)), Path(file).parent))
    declare(found)
    return found


def declare(found: dict[tuple[str, str], tuple[Any, Path]]) -> None:
    """Register the declared hubs and tasks (checking each first, registering none if one is wrong)."""
    if not found:
        return
    from hubbench.hubs.base import HUBS, made_hub
    from hubbench.hubs.declared import parse_hub
    from hubbench.tasks.base import TASKS
    from hubbench.tasks.declared import parse_task

    new = {}
    for (kind, name), (table, base) in found.items():
        if _DECLARED.get((kind, name)) == (table, base):
            continue
        if name in (HUBS if kind == "hub" else TASKS):
            raise InputError(f"{kind} {name!r} is already defined: give the declared {kind} another name")
        if kind == "hub":
            parse_hub(name, table, base)  # checked now; made again when used, under the weights mode of then
            new[kind, name] = lambda name=name, table=table, base=base: parse_hub(name, table, base)
        else:
            new[kind, name] = parse_task(name, table, base)
    for (kind, name), obj in new.items():
        (HUBS if kind == "hub" else TASKS).register(name)(obj)
        _DECLARED[kind, name] = found[kind, name]
    made_hub.cache_clear()
