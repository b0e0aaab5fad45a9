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
# OVAVSS_SWINB_FIXTURE likewise for the Swin-B capture (another capture of the same format).
SWINB_FIXTURE = Path(os.environ.get("OVAVSS_SWINB_FIXTURE", SHARED / "fixtures" / "ovavss-swinb-reference"))


def require_fixture(path: Path, marker: str = "outputs.pt") -> Path:
    """A fixture captured from the official code; fail under CI=true when it is missing, else skip."""
    if (path / marker).is_file():
        return path
    message = f"reference fixture not found at {path}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_reference_fixture() -> Path:
    """The OV-AVSS (R50) golden fixture folder."""
    return require_fixture(REFERENCE_FIXTURE)


@pytest.fixture(scope="session")
def reference_fixture() -> Path:
    return require_reference_fixture()


@pytest.fixture(scope="session")
def swinb_fixture() -> Path:
    return require_fixture(SWINB_FIXTURE)


@pytest.fixture(scope="session")
def cli():
    """Run the ``ovavss`` CLI in-process: ``result = cli("eval", "--data", ...)`` (stateless: one per session)."""
    from typer.testing import CliRunner

    from ovavss_cli.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def captured_file():
    """``captured_file("mask2former-r50-coco-keys.json")``: a file of ``../shared/fixtures`` (fails under CI=true
    when it is missing, else skips)."""

    def get(name: str) -> Path:
        return require_fixture(SHARED / "fixtures", name) / name

    return get
