"""AVSC checkpoints in our format: ``kind="model"`` with ``config = {"architecture": "avsc", "model": ...}``."""

from __future__ import annotations

from pathlib import Path

import torch

from ...device import resolve_device
from ...errors import OvavssError
from ...hub import resolve_weights
from ..checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from .config import ARCHITECTURE, AVSCConfig, config_from_dict, config_to_dict
from .model import AVSC, build_avsc


def avsc_checkpoint_config(config: AVSCConfig) -> dict:
    """The ``config`` entry of an AVSC checkpoint (``models.api.load_model`` dispatches on ``architecture``)."""
    return {"architecture": ARCHITECTURE, "model": config_to_dict(config)}


def save_avsc(model: AVSC, path: str | Path, *, info: dict | None = None) -> str:
    """Write ``model`` as an ovavss checkpoint (``.safetensors`` + ``.json`` sidecar); returns its sha256."""
    return save_checkpoint(
        path, model.state_dict(), kind="model", config=avsc_checkpoint_config(model.config), info=info
    )


def avsc_from_checkpoint(
    checkpoint: Checkpoint, weights_id: str | None = None, device: str | torch.device = "cpu"
) -> AVSC:
    """The AVSC model a read checkpoint holds, in eval mode on ``device`` (every tensor must fit, strictly)."""
    if checkpoint.kind != "model" or checkpoint.config.get("architecture") != ARCHITECTURE:
        what = checkpoint.config.get("architecture") or checkpoint.kind
        raise OvavssError(f"holds '{what}' weights, not an AVSC model", path=checkpoint.path)
    model = build_avsc(config_from_dict(checkpoint.config["model"]))
    result = model.load_state_dict(checkpoint.state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        key = (result.missing_keys or result.unexpected_keys)[0]
        raise OvavssError(
            f"weights do not fit the model: {len(result.missing_keys)} missing, {len(result.unexpected_keys)} "
            f"unexpected (e.g. {key})",
            path=checkpoint.path,
        )
    model.weights_id, model.weights_sha256 = weights_id or str(checkpoint.path), checkpoint.sha256
    return model.to(resolve_device(device)).eval()


def load_avsc(path_or_name: str, device: str | torch.device = "cpu") -> AVSC:
    """Load an AVSC model: a ``.safetensors`` path, a registry name or ``hf://org/repo[/file]``."""
    resolved = resolve_weights(path_or_name)
    checkpoint = read_checkpoint(resolved.path, expected_sha256=resolved.expected_sha256)
    return avsc_from_checkpoint(checkpoint, resolved.weights_id, device)
