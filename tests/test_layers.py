"""The package's layers, enforced: every import (module level, inside functions, under TYPE_CHECKING) points
down the stack, and no module imports itself back through others. CONTRIBUTING.md describes the same order."""

import ast
from pathlib import Path

import pytest

import ovavss_cli

PACKAGE_DIR = Path(ovavss_cli.__file__).resolve().parent

#: A module imports from its own layer or below, never above; within a layer, without cycles.
RANKS: dict[str, int] = {
    "cli": 5,
    "ovavss_cli": 5,  # the package root: __version__ and a lazy load_model, for users
    "inference": 4,
    "engine": 4,
    "models": 3,
    "metrics": 2,
    "viz": 2,
    "data": 1,
    **dict.fromkeys(("errors", "atomic", "device", "paths", "console", "config_json", "hub", "version"), 0),
}


def module_name(path: Path) -> str:
    parts = ("ovavss_cli", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def unit(module: str) -> str:
    """The layer unit of a module: its sub-package or top-level module (``ovavss_cli`` for the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imported_modules(module: str) -> set[str]:
    """Every ovavss_cli module ``module`` imports anywhere in its file (``from X import name`` counts as X.name
    when that is a module, else X)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            named = [f"{source}.{alias.name}" for alias in node.names]
            targets = [name if name in MODULES else source for name in named]
        else:
            continue
        for target in targets:
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if target in MODULES and target != module:
                found.add(target)
    return found


GRAPH = {module: imported_modules(module) for module in MODULES}


def test_every_unit_has_a_rank():
    assert {unit(module) for module in MODULES} - set(RANKS) == set()


def test_the_graph_sees_lazy_and_relative_imports():
    """The parser is what the other tests trust: check it on imports we know are there."""
    assert "ovavss_cli.models.api" in GRAPH["ovavss_cli"]  # inside load_model()
    assert "ovavss_cli.errors" in GRAPH["ovavss_cli.atomic"]  # relative, module level
    assert "ovavss_cli.models.layers.segmenter" in GRAPH["ovavss_cli.models.ovavss.model"]  # two levels up


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    upward = sorted(target for target in GRAPH[module] if RANKS[unit(target)] > RANKS[unit(module)])
    assert upward == [], f"{module} imports from a layer above its own"


def test_no_import_cycles():
    """Tarjan's strongly connected components: every one must be a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert cycles == []
