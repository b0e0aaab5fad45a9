"""Shared test helpers: where the golden reference fixture lives, and a CLI runner."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# No test may touch the network or the user's caches. huggingface_hub reads these variables once, at
# import (open_clip imports it), so they are set here, before any test module imports anything.
_SANDBOX = Path(tempfile.mkdtemp(prefix="ovavss-tests-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = str(_SANDBOX / "hf-cache")
os.environ["OVAVSS_CACHE_DIR"] = str(_SANDBOX / "ovavss-cache")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OVAVSS_SHARED", REPO_ROOT.parent / "shared"))
# OVAVSS_REFERENCE_FIXTURE points the parity tests at another fixture folder of the same format.
REFERENCE_FIXTURE = Path(os.environ.get("OVAVSS_REFERENCE_FIXTURE", SHARED / "fixtures" / "ovavss-reference"))


def require_reference_fixture() -> Path:
    """The OV-AVSS golden fixture folder; fail under CI=true when it is missing, else skip."""
    if (REFERENCE_FIXTURE / "outputs.pt").is_file():
        return REFERENCE_FIXTURE
    message = f"reference fixture not found at {REFERENCE_FIXTURE}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def reference_fixture() -> Path:
    return require_reference_fixture()


@pytest.fixture
def cli():
    """Run the ``ovavss`` CLI in-process: ``result = cli("eval", "--data", ...)``."""
    from typer.testing import CliRunner

    from ovavss_cli.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke
