"""The project's structure: one installed namespace, and dependencies that point one way."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"hubbench": "hubbench", "benchmark": "hubbench.benchmark", "methods": "hubbench.methods",
          "tasks": "hubbench.tasks", "hubs": "hubbench.hubs", "leaderboard": "hubbench.leaderboard"}


def modules() -> dict[str, Path]:
    """Every module of the package, by its installed name."""
    found = {}
    for folder, package in LAYERS.items():
        for file in (ROOT / folder).glob("*.py"):
            found[package if file.stem == "__init__" else f"{package}.{file.stem}"] = file
    return found


def type_checking_only(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name | ast.Attribute) and ast.unparse(node.test).endswith("TYPE_CHECKING")


def imports(file: Path, known: set[str]) -> set[str]:
    """The project modules `file` imports at run time, anywhere in it (imports for type checkers only excluded)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(file.read_text()))
    return found & known


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(file, set(found)) - {name} for name, file in found.items()}


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_the_projects_modules():
    assert cycles(import_graph()) == []


def test_methods_are_written_against_what_sits_below_them():
    """Nothing under hubbench.methods, hubs, tasks or the layer-neutral modules imports the
    benchmark (runner, CLI) or the leaderboard."""
    top = ("hubbench.benchmark", "hubbench.leaderboard")
    for name, deps in import_graph().items():
        if not name.startswith(top) and name != "hubbench.testing":
            assert not {d for d in deps if d.startswith(top)}, name
