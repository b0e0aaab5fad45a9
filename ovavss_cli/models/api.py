"""The stable Python API for every model family (open_clip-style).

* :func:`list_models` / :func:`list_pretrained`: the presets, and the registry's weights per preset;
* :func:`create_model`: a preset (or config) with fresh weights, or with ``pretrained=`` weights;
* :func:`load_model` / :func:`save_model`: ovavss checkpoints (``models/checkpoint.py``) of any family,
  dispatched on the ``architecture`` the checkpoint records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..config_json import from_dict, to_dict
from ..device import resolve_device
from ..errors import OvavssError
from ..hub import HF_SCHEME, load_registry, resolve_weights
from .avsc.config import PRESETS as AVSC_PRESETS
from .avsc.config import AVSCConfig
from .avsc.config import upgrade_config_dict as upgrade_avsc_config_dict
from .avsc.model import AVSC
from .checkpoint import Checkpoint, load_state, read_checkpoint, read_metadata, save_checkpoint
from .interface import ModelFamily, SegmentationModel
from .ovavss.config import PRESETS as OVAVSS_PRESETS
from .ovavss.config import OVAVSSConfig
from .ovavss.config import upgrade_config_dict as upgrade_ovavss_config_dict
from .ovavss.model import OVAVSS

FAMILIES: dict[str, ModelFamily] = {
    family.architecture: family
    for family in (
        ModelFamily(OVAVSS.architecture, OVAVSS, OVAVSSConfig, OVAVSS_PRESETS, upgrade_ovavss_config_dict),
        ModelFamily(AVSC.architecture, AVSC, AVSCConfig, AVSC_PRESETS, upgrade_avsc_config_dict),
    )
}


def list_models() -> list[str]:
    """Every preset name, all families."""
    return [name for family in FAMILIES.values() for name in family.presets]


def list_pretrained() -> list[tuple[str, str]]:
    """(preset, weights name) for every checkpoint in the registry (``weights/registry.json``)."""
    return [(entry.preset, entry.name) for entry in load_registry().values()]


def family_of(config_or_architecture: Any) -> ModelFamily:
    if isinstance(config_or_architecture, str):
        if config_or_architecture not in FAMILIES:
            raise OvavssError(f"unknown model architecture '{config_or_architecture}' (known: {', '.join(FAMILIES)})")
        return FAMILIES[config_or_architecture]
    for family in FAMILIES.values():
        if isinstance(config_or_architecture, family.config_class):
            return family
    raise TypeError(f"{type(config_or_architecture).__name__} is not the config of a model family")


def family_of_weights(path_or_name: str) -> ModelFamily | None:
    """The family a ``--weights`` value holds, when that is known without downloading or reading tensors:
    a registry name's preset, or a local checkpoint's header. None for ``hf://`` ids (loading tells)."""
    registry = load_registry()
    if path_or_name in registry:
        return family_of(preset_config(registry[path_or_name].preset))
    if path_or_name.startswith(HF_SCHEME):
        return None
    path = resolve_weights(path_or_name).path  # a local file or an imported name: nothing to download
    config = json.loads(read_metadata(path).get("config", "{}"))
    return FAMILIES.get(config.get("architecture"))


def preset_config(name: str) -> Any:
    """The config of preset ``name``, whatever its family."""
    for family in FAMILIES.values():
        if name in family.presets:
            return family.presets[name]()
    raise OvavssError(f"unknown model preset '{name}' (known: {', '.join(list_models())})")


def model_config_from_dict(architecture: str, data: dict[str, Any]) -> Any:
    """The family's config from its JSON form (``config_json.to_dict``); bad fields give an OvavssError."""
    family = family_of(architecture)
    return from_dict(family.config_class, family.upgrade_config(data), f"{architecture} model config")


def model_checkpoint_config(config: Any) -> dict[str, Any]:
    """The ``config`` entry a full-model checkpoint carries: ``{"architecture": ..., "model": ...}``."""
    return {"architecture": family_of(config).architecture, "model": to_dict(config)}


def create_model(
    name_or_config: str | Any, pretrained: str | None = None, device: str | torch.device = "cpu"
) -> SegmentationModel:
    """A model from a preset name or a config: freshly initialised, or with ``pretrained`` weights (a registry
    name, a ``.safetensors`` path or ``hf://org/repo[/file]``) that must hold that preset."""
    config = preset_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    if pretrained is None:
        return family_of(config).model_class(config).to(resolve_device(device))
    model = load_model(pretrained, device, architecture=family_of(config).architecture)
    if model.config.name != config.name:
        raise OvavssError(f"pretrained weights '{pretrained}' hold a '{model.config.name}' model, not '{config.name}'")
    return model


def model_from_checkpoint(
    checkpoint: Checkpoint, weights_id: str | None = None, *, architecture: str | None = None
) -> SegmentationModel:
    """The model a read checkpoint holds (strictly loaded, on the CPU, in train mode)."""
    if checkpoint.kind != "model":
        raise OvavssError(
            f"a '{checkpoint.kind}' checkpoint (training init / audio weights), not a full model", path=checkpoint.path
        )
    held = checkpoint.config.get("architecture")
    if architecture is not None and held != architecture:
        raise OvavssError(f"holds '{held}' weights, not an {architecture.upper()} model", path=checkpoint.path)
    if held not in FAMILIES:
        raise OvavssError(f"holds a '{held}' model, which this version cannot build", path=checkpoint.path)
    model = FAMILIES[held].model_class(model_config_from_dict(held, checkpoint.config["model"]))
    load_state(model, checkpoint.state, checkpoint.path)
    model.weights_id, model.weights_sha256 = weights_id or str(checkpoint.path), checkpoint.sha256
    return model


def load_model(
    path_or_name: str, device: str | torch.device = "cpu", *, architecture: str | None = None
) -> SegmentationModel:
    """Load a model of any family: a registry name, a ``.safetensors`` path or ``hf://org/repo[/file]``.

    ``architecture`` (e.g. ``"avsc"``): refuse weights of another family. The model is in eval mode on
    ``device``; the precision is chosen per call (``model.predict_clip(..., precision="bf16")``).
    """
    resolved = resolve_weights(path_or_name)
    checkpoint = read_checkpoint(resolved.path, expected_sha256=resolved.expected_sha256)
    model = model_from_checkpoint(checkpoint, resolved.weights_id, architecture=architecture)
    return model.to(resolve_device(device)).eval()


def save_model(
    model: SegmentationModel, path: str | Path, *, info: dict | None = None, dtype: torch.dtype | None = None
) -> str:
    """Write ``model`` as an ovavss checkpoint (``.safetensors`` + ``.json``); returns its sha256.

    ``dtype`` (e.g. ``torch.float16``) stores floating-point tensors at lower precision to save space
    (they are loaded back into the model's float32 parameters).
    """
    state = {
        key: value.to(dtype) if dtype is not None and value.is_floating_point() else value
        for key, value in model.state_dict().items()
    }
    return save_checkpoint(path, state, kind="model", config=model_checkpoint_config(model.config), info=info)
