"""What hubbench knows of its built-in hubs and tasks without importing torch, which their modules do (and
which takes seconds): kept in `catalogue.json` beside this module. `hubbench list` shows their descriptions;
`hubbench status` expands and checks a suite's cells from a hub's sources and config and a task's protocol.
Methods and rankers need no copy: their modules are their declarations, and import no torch.

The registries are the truth and the file their copy: `python -m hubbench.benchmark.catalogue` rewrites it from
them, and a test fails while the two disagree. A process that has imported torch (any that runs cells) reads the
registries themselves, and so do plugins (`--plugin`, installed packages' entry points), declared hubs and
tasks, and hubs of checkpoint files (their config depends on the weights mode): only the hubs whose weights
hubbench makes itself are copied whole.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from functools import cache, partial
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from hubbench.discovery import code_of
from hubbench.hubs.base import HUBS, Hub, Source, get_hub
from hubbench.io import write_json
from hubbench.protocol import Protocol
from hubbench.registry import Registry

FILE = Path(__file__).with_name("catalogue.json")
KINDS = ("hubs", "tasks", "methods", "rankers")
ENTRY_POINT_GROUPS = ("hubbench.methods", "hubbench.rankers")


def hub_entry(hub: Hub) -> dict[str, Any]:
    """A hub as the file holds it: its description and, for a hub whose weights hubbench makes, its declaration."""
    if not all(s.pretrained for s in hub.sources):
        return {"description": hub.description}
    sources = [{"name": s.name, "family": s.family, "description": s.description, "classifier": bool(s.classifier)}
               for s in hub.sources]
    return {"description": hub.description, "sources": sources, "config": hub.config}


def registered() -> dict[str, dict[str, dict[str, Any]]]:
    """Every registered hub and task (plugins loaded so far included), as the file holds them (JSON)."""
    from hubbench.tasks import TASKS

    found = {"hubs": {n: hub_entry(get_hub(n)) for n in HUBS},
             "tasks": {n: {"description": (t := TASKS.get(n)).description, "kind": t.kind,
                           "protocol": dataclasses.asdict(t.protocol)} for n in TASKS}}
    return json.loads(json.dumps(found))


@cache
def listed() -> dict[str, dict[str, dict[str, Any]]]:
    return json.loads(FILE.read_text())


def catalogue(plugins: bool) -> dict[str, dict[str, str]]:
    """{kind: {name: description}} of every hub, task, method and ranker: the hubs and tasks from the file, unless
    plugins are loaded or installed (then from the registries)."""
    from hubbench import methods, rankers

    installed = any(entry_points(group=group) for group in ENTRY_POINT_GROUPS)
    found = registered() if plugins or installed else listed()
    return {**{kind: {n: entry["description"] for n, entry in found[kind].items()} for kind in ("hubs", "tasks")},
            "methods": {n: methods.METHODS.get(n).description for n in methods.METHODS},
            "rankers": {n: rankers.RANKERS.get(n).description for n in rankers.RANKERS}}


def copied(kind: str, name: str, key: str) -> Any:
    """`key` of built-in `name` from the file where this process reads it (it has not imported torch); else None."""
    return None if "torch" in sys.modules else listed()[kind].get(name, {}).get(key)


def hub(name: str) -> Hub:
    """Hub `name` as expanding and checking cells see it: copied from the file (see the module), its sources'
    models, weights and check those of the registry's hub, made when first wanted; else the registry's."""
    if copied("hubs", name, "sources") is None:
        return get_hub(name)
    return copied_hub(name)


@cache
def copied_hub(name: str) -> Hub:
    entry = listed()["hubs"][name]

    def made(source: str, part: str):
        return getattr(get_hub(name).source(source), part)()

    sources = tuple(Source(s["name"], s["family"], s["description"], partial(made, s["name"], "arch"),
                           partial(made, s["name"], "weights"),
                           partial(made, s["name"], "classifier") if s["classifier"] else None)
                    for s in entry["sources"])
    return Hub(name, entry["description"], sources, entry["config"], check=lambda: get_hub(name).check())


def protocol(task: str) -> Protocol:
    """Task `task`'s own protocol: copied from the file (see the module), else the registry's task's."""
    if copied("tasks", task, "protocol") is not None:
        return copied_protocol(task)
    return registry("tasks").get(task).protocol


@cache
def copied_protocol(task: str) -> Protocol:
    return Protocol(**listed()["tasks"][task]["protocol"])


def kind(task: str) -> str:
    """Task `task`'s kind (`classification`, `landmarks`): copied from the file (see the module), else the registry's
    task's."""
    return copied("tasks", task, "kind") or registry("tasks").get(task).kind


def registry(kind: str) -> Registry:
    if kind == "hubs":
        return HUBS
    from hubbench.tasks import TASKS

    return TASKS


def known(kind: str, name: str) -> None:
    """Raise `UnknownName` (listing the choices) unless hub or task (`kind`) `name` is in the file or registered."""
    if copied(kind, name, "description") is None:
        registry(kind).get(name)


def code(kind: str, name: str) -> dict[str, str] | None:
    """Where the code of hub or task (`kind`) `name` comes from (`discovery.code_of`): hubbench's, when copied."""
    return None if copied(kind, name, "description") is not None else code_of(registry(kind).get(name))


def main() -> int:
    """Rewrite catalogue.json from the registries (after adding, renaming or changing a built-in hub or task)."""
    write_json(FILE, registered())
    print(f"wrote {FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
