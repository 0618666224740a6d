"""What `hubbench list` shows without importing torch: the name and one-line description of every built-in hub,
task, method and ranker, kept in `catalogue.json` beside this module (importing the modules that define them
imports torch, which takes seconds).

The registries are the truth and the file their copy: `python -m hubbench.benchmark.catalogue` rewrites it from
them, and a test fails while the two disagree. Plugins (`--plugin`, installed packages' entry points) are
listed from the registries themselves, after loading them.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points
from pathlib import Path

from hubbench.io import write_json

FILE = Path(__file__).with_name("catalogue.json")
KINDS = ("hubs", "tasks", "methods", "rankers")
ENTRY_POINT_GROUPS = ("hubbench.methods", "hubbench.rankers")


def registered() -> dict[str, dict[str, str]]:
    """Every registered hub, task, method and ranker (plugins loaded so far included): {kind: {name: description}}."""
    from hubbench import hubs, methods, rankers, tasks

    return {"hubs": {n: hubs.get_hub(n).description for n in hubs.HUBS},
            "tasks": {n: tasks.TASKS.get(n).description for n in tasks.TASKS},
            "methods": {n: methods.METHODS.get(n).description for n in methods.METHODS},
            "rankers": {n: rankers.RANKERS.get(n).description for n in rankers.RANKERS}}


def listed() -> dict[str, dict[str, str]]:
    return json.loads(FILE.read_text())


def catalogue(plugins: bool) -> dict[str, dict[str, str]]:
    """The catalogue: the file's, unless plugins are loaded or installed (then the registries')."""
    installed = any(entry_points(group=group) for group in ENTRY_POINT_GROUPS)
    return registered() if plugins or installed else listed()


def main() -> int:
    """Rewrite catalogue.json from the registries (after adding or renaming a built-in hub, task, method or ranker)."""
    write_json(FILE, registered())
    print(f"wrote {FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
