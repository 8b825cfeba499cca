"""The layers of docs/architecture.md hold: every import of the package (read with ast, lazy imports inside
functions included) goes down the table, never up or sideways; no modules and no packages import each other in a
circle; publishing loads no engine; pyproject.toml installs every package."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

from tests.helpers import REPO

PACKAGE = "glan"
SOURCE = REPO / "builder"  # installed as `glan` (pyproject.toml's package-dir)


def modules() -> dict[str, Path]:
    """Every module by its import name: glan, glan.llm, glan.llm.engine, ..., and glan_dataset."""
    found = {"glan_dataset": REPO / "glan_dataset.py"}
    for path in SOURCE.rglob("*.py"):
        parts = [PACKAGE, *path.relative_to(SOURCE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = modules()


def imports(name: str, path: Path) -> set[str]:
    """The package's modules that `name` imports, by import name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {target for target in found if target in MODULES}


EDGES = {name: imports(name, path) for name, path in MODULES.items()}


def layers() -> dict[str, int]:
    """docs/architecture.md's table: a top-level module or package of glan (or glan itself) -> its layer."""
    text = (REPO / "docs" / "architecture.md").read_text()
    table = re.search(r"```layers\n(.*?)```", text, re.S).group(1)
    return {name: int(rank) for rank, *names in (line.split() for line in table.splitlines() if line.strip())
            for name in names}


LAYERS = layers()


def unit_of(module: str) -> str:
    """What a module's layer is read from: its top-level package or module (glan.llm.engine -> llm)."""
    parts = module.split(".")
    return parts[0] if parts[0] != PACKAGE else (parts[1] if len(parts) > 1 else PACKAGE)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer():
    assert sorted({unit_of(name) for name in MODULES} - set(LAYERS)) == []


def test_every_import_goes_down_the_layers():
    wrong = [f"{name} -> {target} ({unit_of(name)} {LAYERS[unit_of(name)]}, {unit_of(target)} "
             f"{LAYERS[unit_of(target)]})"
             for name, targets in EDGES.items() for target in sorted(targets)
             if unit_of(name) != unit_of(target) and LAYERS[unit_of(name)] <= LAYERS[unit_of(target)]]
    assert wrong == []


def test_no_modules_import_each_other_in_a_circle():
    assert cycles({name: {target for target in targets if target != name} for name, targets in EDGES.items()}) == []


def test_no_packages_import_each_other_in_a_circle():
    def package(module: str) -> str:
        """The package a module belongs to; a module directly in glan (build, plan, ...) stands for itself."""
        if MODULES[module].name == "__init__.py" or module.count(".") <= 1:
            return module
        return module.rpartition(".")[0]

    graph: dict[str, set[str]] = defaultdict(set)
    for name, targets in EDGES.items():
        graph[package(name)].update(package(target) for target in targets if package(target) != package(name))
    assert cycles(graph) == []


def loaded_with(module: str) -> set[str]:
    """Every module of the package that importing `module` runs: its imports, theirs, and each one's packages."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for step in [".".join(parts[:depth]) for depth in range(1, len(parts) + 1)]:
            if step in MODULES and step not in seen:
                seen.add(step)
                todo.extend(EDGES[step])
    return seen


def test_publishing_and_the_plan_load_no_engine():
    """The folder, the card, push and pull work without the engine, and the plan names routes without the HTTP
    client: none of them imports the engine or its transport, in the code (ast) or at run time (sys.modules)."""
    leaves = [name for name in MODULES if name.startswith("glan.publish.")] + ["glan.plan"]
    engine = {"glan.llm.engine", "glan.llm.transport"}
    assert {name: sorted(loaded_with(name) & engine) for name in leaves if loaded_with(name) & engine} == {}
    unwanted = ("aiohttp", *sorted(engine))
    loaded = subprocess.run([sys.executable, "-c", f"import sys; import {', '.join(leaves)}; "
                             f"print(sorted(name for name in sys.modules if name in {unwanted!r}))"],
                            capture_output=True, text=True, check=True).stdout
    assert loaded == "[]\n"


def test_the_command_line_starts_without_the_heavy_libraries():
    """`glan --help`, `glan pull`, tab completion: the parser is built before any command runs, and it imports no
    library that takes a second to load (datasets took 2 s of every command's start); a command imports them."""
    heavy = ("datasets", "pyarrow", "numpy", "openai", "aiohttp", "huggingface_hub", "datasketch", "matplotlib")
    loaded = subprocess.run([sys.executable, "-c", "import sys; from glan.cli import _parser; _parser(['--help']); "
                             f"print(sorted(name for name in sys.modules if name in {heavy!r}))"],
                            capture_output=True, text=True, check=True).stdout
    assert loaded == "[]\n"


def test_pyproject_installs_every_package_under_the_name_glan():
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert settings["package-dir"] == {PACKAGE: "builder"}
    packages = sorted(name for name, path in MODULES.items() if path.name == "__init__.py")
    assert sorted(settings["packages"]) == packages
    assert settings["py-modules"] == ["glan_dataset"]
