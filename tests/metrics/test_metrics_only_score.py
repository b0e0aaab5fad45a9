"""``metrics/`` only scores: no module of it imports a model, a device, the weights hub or the code that runs
models (``inference``, ``engine``), not even inside a function; running a model over a split is ``inference``'s."""

from __future__ import annotations

import ast
from pathlib import Path

import ovavss_cli.metrics

METRICS = Path(ovavss_cli.metrics.__file__).parent
ABOVE_SCORING = tuple(f"ovavss_cli.{name}" for name in ("models", "inference", "engine", "hub", "device"))


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it, as an absolute name (``load_model`` counts as models)."""
    package = "ovavss_cli.metrics"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {"ovavss_cli.models" if name == "ovavss_cli.load_model" else name for name in found}


def test_no_metrics_module_imports_what_runs_models():
    offending = {
        path.name: sorted(name for name in imported_modules(path) if name.startswith(ABOVE_SCORING))
        for path in sorted(METRICS.glob("*.py"))
    }
    assert {name: modules for name, modules in offending.items() if modules} == {}
    assert len(offending) >= 6  # the scan saw the package
