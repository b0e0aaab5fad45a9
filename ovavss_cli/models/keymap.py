"""Key names: official OV-AVSS (detectron2) state_dict -> ovavss module names.

Our module tree mirrors the reference 1:1 below these prefixes, so the map is a prefix rename,
except the ResNet trunk, which is torchvision's ``resnet50`` (detectron2 names differ):

=====================================  =========================
reference prefix                       ovavss prefix
=====================================  =========================
``backbone.`` (detectron2 ResNet)      ``backbone.`` (torchvision names)
``backbone.`` (Mask2Former Swin)       ``backbone.`` (unchanged)
``sem_seg_head.pixel_decoder.``        ``pixel_decoder.``
``sem_seg_head.predictor.``            ``transformer_decoder.``
``audio_encoder.audio_backbone.``      ``audio_encoder.``
``clip_adapter.clip_model.``           ``open_vocab.clip.``
=====================================  =========================

Dropped on purpose (constants, not weights): ``criterion.empty_weight``,
``clip_adapter.pixel_mean``, ``clip_adapter.pixel_std``.
"""

from __future__ import annotations

import re

PREFIX_MAP: tuple[tuple[str, str], ...] = (
    ("sem_seg_head.pixel_decoder.", "pixel_decoder."),
    ("sem_seg_head.predictor.", "transformer_decoder."),
    ("audio_encoder.audio_backbone.", "audio_encoder."),
    ("clip_adapter.clip_model.", "open_vocab.clip."),
    ("backbone.", "backbone."),
)

DROPPED_KEYS: frozenset[str] = frozenset(
    {"criterion.empty_weight", "clip_adapter.pixel_mean", "clip_adapter.pixel_std"}
)

_D2_STEM = re.compile(r"^stem\.conv1\.(norm\.)?(\w+)$")
_D2_BLOCK = re.compile(r"^res([2-5])\.(\d+)\.(conv[123]|shortcut)\.(norm\.)?(\w+)$")


def detectron2_resnet_key(key: str) -> str | None:
    """Rename one detectron2 ResNet key (without ``backbone.``) to torchvision's; None if not ResNet."""
    if match := _D2_STEM.match(key):
        is_norm, param = match.groups()
        return f"bn1.{param}" if is_norm else f"conv1.{param}"
    if match := _D2_BLOCK.match(key):
        stage, block, layer, is_norm, param = match.groups()
        prefix = f"layer{int(stage) - 1}.{block}"
        if layer == "shortcut":
            return f"{prefix}.downsample.{1 if is_norm else 0}.{param}"
        index = layer[-1]
        return f"{prefix}.bn{index}.{param}" if is_norm else f"{prefix}.{layer}.{param}"
    return None


def map_reference_key(key: str) -> str | None:
    """Our name for a reference key; ``None`` when the key is a known constant we drop.

    Raises ``KeyError`` for a key no rule covers (the converter reports those as unmapped).
    """
    if key in DROPPED_KEYS:
        return None
    for old, new in PREFIX_MAP:
        if key.startswith(old):
            rest = key[len(old) :]
            if old == "backbone.":
                rest = detectron2_resnet_key(rest) or rest  # Swin keys pass through unchanged
            return new + rest
    raise KeyError(key)
