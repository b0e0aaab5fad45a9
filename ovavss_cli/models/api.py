"""The stable Python API: ``create_model`` (fresh weights from a preset) and ``load_model`` (weights)."""

from __future__ import annotations

import torch

from ..device import resolve_device
from ..errors import OvavssError
from ..hub import resolve_weights
from .checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from .ovavss.config import OVAVSSConfig, config_from_dict, config_to_dict, preset_config
from .ovavss.model import OVAVSS

ARCHITECTURE = "ovavss"


def create_model(name_or_config: str | OVAVSSConfig, device: str | torch.device = "cpu") -> OVAVSS:
    """An OV-AVSS model with freshly initialised weights, from a preset name or a config."""
    config = preset_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    return OVAVSS(config).to(resolve_device(device))


def model_checkpoint_config(config: OVAVSSConfig) -> dict:
    """The ``config`` entry our checkpoints carry for a full model."""
    return {"architecture": ARCHITECTURE, "model": config_to_dict(config)}


def model_config_of(checkpoint: Checkpoint) -> OVAVSSConfig:
    if checkpoint.kind != "model":
        raise OvavssError(
            f"a '{checkpoint.kind}' checkpoint (training init / audio weights), not a full model", path=checkpoint.path
        )
    architecture = checkpoint.config.get("architecture")
    if architecture != ARCHITECTURE:
        raise OvavssError(f"holds a '{architecture}' model, not OV-AVSS", path=checkpoint.path)
    return config_from_dict(checkpoint.config["model"])


def load_state(model: OVAVSS, state: dict[str, torch.Tensor], source) -> None:
    """Strict load; CLIP tensors may be absent only when the config fetches them (``open_vocab.pretrained``)."""
    result = model.load_state_dict(state, strict=False)
    missing = [
        k for k in result.missing_keys if not (model.config.open_vocab.pretrained and k.startswith("open_vocab.clip."))
    ]
    if missing or result.unexpected_keys:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if result.unexpected_keys:
            problems.append(f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[0]})")
        raise OvavssError(f"weights do not fit the model: {', '.join(problems)}", path=source)


def save_model(model: OVAVSS, path, *, info: dict | None = None, dtype: torch.dtype | None = None) -> str:
    """Write ``model`` as an ovavss checkpoint (``.safetensors`` + ``.json``); returns its sha256.

    ``dtype`` (e.g. ``torch.float16``) stores floating-point tensors at lower precision to save space
    (they are loaded back into the model's float32 parameters).
    """
    state = {
        key: value.to(dtype) if dtype is not None and value.is_floating_point() else value
        for key, value in model.state_dict().items()
    }
    return save_checkpoint(path, state, kind="model", config=model_checkpoint_config(model.config), info=info)


def load_model(path_or_name: str, device: str | torch.device = "cpu") -> OVAVSS:
    """Load an OV-AVSS (or, by the checkpoint's ``architecture``, an AVSC) model: a registry name, a
    ``.safetensors`` path or ``hf://org/repo[/file]``.

    The model is in eval mode on ``device``; the precision is chosen per call
    (``model.predict_clip(..., precision="bf16")``), not stored in the model.
    """
    resolved = resolve_weights(path_or_name)
    checkpoint = read_checkpoint(resolved.path, expected_sha256=resolved.expected_sha256)
    if checkpoint.config.get("architecture") == "avsc":  # the second model family: models/avsc
        from .avsc.weights import avsc_from_checkpoint

        return avsc_from_checkpoint(checkpoint, resolved.weights_id, device)
    config = model_config_of(checkpoint)
    model = OVAVSS(config)
    load_state(model, checkpoint.state, resolved.path)
    model.weights_id, model.weights_sha256 = resolved.weights_id, checkpoint.sha256
    return model.to(resolve_device(device)).eval()
