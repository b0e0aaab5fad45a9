"""The wheel must carry every sub-package (pyproject lists them explicitly) and the weights registry."""

from pathlib import Path

import pytest

from ovavss_cli.hub import load_registry

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "ovavss_cli").rglob("__init__.py")}
    assert on_disk - listed == set()
    assert config["package-dir"]["ovavss_cli.weights"] == "weights"


def test_registry_entries_are_complete():
    registry = load_registry()
    assert "ovavss-r50" in registry
    for entry in registry.values():
        assert entry.preset and entry.license and entry.description
        # an entry that is neither bundled nor hosted must say how to get it
        if not entry.bundled and not entry.repo_id:
            assert "ovavss weights import" in entry.how_to_get
