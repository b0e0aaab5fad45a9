"""Every ``ovavss_cli`` name a benchmark imports exists (benchmarks run by hand, so a moved module would
otherwise only show when someone next runs them)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _package_imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name or None) for every ``ovavss_cli`` import of a file, in functions too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ovavss_cli"):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.startswith("ovavss_cli")]
    return found


@pytest.mark.parametrize("script", sorted(BENCH.glob("*.py")), ids=lambda path: path.name)
def test_bench_imports_resolve(script):
    for module_name, name in _package_imports(script):
        module = importlib.import_module(module_name)
        if name is not None and not hasattr(module, name):
            importlib.import_module(f"{module_name}.{name}")  # a submodule imported by name
