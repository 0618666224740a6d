"""The project's structure: one installed package whose layers are the repository's top-level folders, linked
into it, which editors and checkers follow; and dependencies that point one way."""

from __future__ import annotations

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hubbench"
# The layers from the bottom up: a layer imports only those of earlier tiers and hubbench's layer-neutral modules.
TIERS = (("hubs", "tasks"), ("rankers",), ("methods",), ("leaderboard",), ("benchmark",))


def packages(folder: Path) -> dict[str, Path]:
    """The packages in `folder`: name -> folder in the repository (links resolved)."""
    return {p.name: p.resolve() for p in sorted(folder.iterdir()) if (p / "__init__.py").is_file() and p != PACKAGE}


def layers() -> dict[str, Path]:
    """Each subpackage of hubbench, found in the package."""
    return packages(PACKAGE)


def modules(layers: dict[str, Path]) -> dict[str, Path]:
    """Every module of hubbench and of `layers`, by its installed name -> its file in the repository."""
    found = {}
    for package, folder in [("hubbench", PACKAGE), *((f"hubbench.{n}", f) for n, f in layers.items())]:
        for file in folder.glob("*.py"):
            found[package if file.stem == "__init__" else f"{package}.{file.stem}"] = file
    return found


def layer_of(module: str) -> str | None:
    """The layer a module belongs to; None for hubbench's layer-neutral modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in layers() else None


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
    found = modules(layers())
    return {name: imports(file, set(found)) - {name} for name, file in found.items()}


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_the_projects_modules():
    assert cycles(import_graph()) == []


def test_every_top_level_package_is_a_layer_linked_into_hubbench_and_given_a_tier():
    """A new top-level package must be linked from hubbench/ (so it is installed, and tools resolve it) and
    placed in `TIERS` (so its imports are checked)."""
    assert set(packages(ROOT)) - set(layers()) == set(), "top-level packages not linked from hubbench/"
    for name in layers():
        link = PACKAGE / name
        assert link.is_symlink() and os.readlink(link) == f"../{name}", f"hubbench/{name} must link to ../{name}"
    tiered = [name for tier in TIERS for name in tier]
    assert sorted(tiered) == sorted(layers()), "every layer has one place in TIERS"


def test_layers_import_only_the_tiers_below_them():
    tier = {name: i for i, names in enumerate(TIERS) for name in names}
    for name, deps in import_graph().items():
        if (layer := layer_of(name)) is None:
            continue
        above = {d for d in deps if layer_of(d) not in (None, layer) and tier[layer_of(d)] >= tier[layer]}
        assert not above, f"{name} imports {sorted(above)}"


def test_layer_neutral_modules_import_only_the_first_tier():
    """What hubbench holds for every layer (context, features, records, ...) knows at most hubs and tasks;
    `hubbench.testing`, the plugins' checks, runs cells and so imports the benchmark."""
    for name, deps in import_graph().items():
        if layer_of(name) is None and name != "hubbench.testing":
            beyond = {d for d in deps if layer_of(d) not in (None, *TIERS[0])}
            assert not beyond, f"{name} imports {sorted(beyond)}"


def test_editors_follow_every_layers_imports_to_their_files():
    """jedi (what editors and language servers use), seeing only the repository, resolves an import of the
    first function or class of every module of hubbench and of every top-level folder to its definition."""
    import jedi

    lines, expected = [], []
    for name, file in sorted(modules(packages(ROOT)).items()):
        defs = [n for n in ast.parse(file.read_text()).body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        if defs:
            lines.append(f"from {name} import {defs[0].name}")
            expected.append((file, defs[0].lineno))
    assert {line.split()[1].split(".")[1] for line in lines} >= {"io", *packages(ROOT)}, "a sample from every layer"
    script = jedi.Script("\n".join(lines), path=ROOT / "probe.py",
                         project=jedi.Project(ROOT, sys_path=[str(ROOT)], smart_sys_path=False))
    for row, (line, (file, lineno)) in enumerate(zip(lines, expected, strict=True), 1):
        found = [(Path(d.module_path).resolve(), d.line) for d in script.goto(row, len(line) - 1, follow_imports=True)]
        assert found == [(file, lineno)], line
