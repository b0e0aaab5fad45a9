"""Regenerate the golden fixture's deterministic reference weights (fixture README, "Weight rule").

For a float tensor with key K and shape S: ``g = Generator().manual_seed(crc32(K))``,
``v = randn(S, generator=g) * 0.02``; norm weights and running_var become ``1 + |v|``. Integer buffers
(Swin's ``relative_position_index``) keep their constructor values: the Swin-B fixture stores one copy
(``intermediates.pt``) and, per entry, its sum / min / max, which are checked here.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from pathlib import Path

import torch


def reference_entries(fixture_dir: Path) -> list[dict]:
    return json.loads((fixture_dir / "state_dict_keys.json").read_text())["entries"]


def integer_buffer(entry: dict, fixture_dir: Path) -> torch.Tensor:
    """An ``int_untouched`` entry: the fixture's stored copy, checked against the entry's own statistics."""
    if not entry["key"].endswith("relative_position_index"):
        raise ValueError(f"no stored values for the integer buffer {entry['key']}")
    value = torch.load(fixture_dir / "intermediates.pt", weights_only=True)["swin_relative_position_index"]
    stats = (int(value.sum()), int(value.min()), int(value.max()), list(value.shape))
    if stats != (entry["int_sum"], entry["int_min"], entry["int_max"], entry["shape"]):
        raise ValueError(f"stored relative_position_index does not match the entry {entry['key']}")
    return value


def regenerate(entry: dict) -> torch.Tensor:
    generator = torch.Generator().manual_seed(zlib.crc32(entry["key"].encode()))
    value = torch.randn(tuple(entry["shape"]), generator=generator) * 0.02
    if entry["rule"] in ("norm_weight:1+|v|", "running_var:1+|v|"):
        value = 1 + value.abs()
    elif entry["rule"] != "v":
        raise ValueError(f"unexpected rule {entry['rule']!r} for {entry['key']}")
    return value


def reference_state_dict(fixture_dir: Path, prefixes: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """The reference model's state_dict (reference key names), optionally only some prefixes."""
    prefixes = tuple(prefixes) if prefixes is not None else None
    integer_buffers: dict[str, torch.Tensor] = {}  # one stored copy serves every identical buffer
    state = {}
    for entry in reference_entries(fixture_dir):
        if prefixes is not None and not entry["key"].startswith(prefixes):
            continue
        if entry["rule"] == "int_untouched":
            digest = entry["int_values_sha256"]
            if digest not in integer_buffers:
                integer_buffers[digest] = integer_buffer(entry, fixture_dir)
            state[entry["key"]] = integer_buffers[digest].clone()
        else:
            state[entry["key"]] = regenerate(entry)
    return state


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
