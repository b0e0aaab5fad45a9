"""Regenerate the golden fixture's deterministic reference weights (fixture README, "Weight rule").

For a float tensor with key K and shape S: ``g = Generator().manual_seed(crc32(K))``,
``v = randn(S, generator=g) * 0.02``; norm weights and running_var become ``1 + |v|``.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from pathlib import Path

import torch


def reference_entries(fixture_dir: Path) -> list[dict]:
    return json.loads((fixture_dir / "state_dict_keys.json").read_text())["entries"]


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
    return {
        entry["key"]: regenerate(entry)
        for entry in reference_entries(fixture_dir)
        if prefixes is None or entry["key"].startswith(prefixes)
    }
