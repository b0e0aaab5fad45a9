"""The golden fixtures' reference weights for the tests: the regeneration (weight rule) lives in
``ovavss_cli.models.reference_fixture``, shared with the benchmarks; here, the official checkpoint saved and
put through ``ovavss convert`` as a user would.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ovavss_cli.models.reference_fixture import reference_entries, reference_state_dict

__all__ = ["convert_reference_checkpoint", "reference_entries", "reference_state_dict"]


def convert_reference_checkpoint(fixture_dir: Path, work: Path, name: str) -> Path:
    """Save the fixture's official checkpoint as ``work/name`` (.pth), run ``ovavss convert`` on it
    with no flags, delete the (GB-size) .pth and return the converted .safetensors."""
    from typer.testing import CliRunner

    from ovavss_cli.cli import app

    official = work / name
    torch.save({"model": reference_state_dict(fixture_dir)}, official)
    converted = work / "converted.safetensors"
    result = CliRunner().invoke(app, ["convert", str(official), "--out", str(converted)], catch_exceptions=False)
    official.unlink()  # the converted copy is all a test needs
    assert result.exit_code == 0, result.output
    return converted
