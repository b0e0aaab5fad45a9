"""What both model families build the same way: the Mask2Former-style visual stack and the VGGish audio encoder.

The attribute names (``backbone``, ``audio_encoder``, ``pixel_decoder``, ``transformer_decoder``) are the
checkpoint keys of both families, so Mask2Former ``kind="init"`` checkpoints and VGGish weights load into
either; they are created in this order, so a seed gives both families the same initial visual stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ...errors import OvavssError
from .backbone import build_backbone
from .decoder import MaskDecoder
from .pixel_decoder import PixelDecoder
from .vggish import build_vggish


class AudioVisualSegmenter(nn.Module):
    """The shared parts; a family subclasses it, names its pixel and mask decoder classes (the plain Mask2Former
    ones or subclasses), adds its heads after ``super().__init__`` and implements
    ``models.interface.SegmentationModel``. ``config`` has ``backbone``, ``audio_encoder``, ``pixel_decoder``,
    ``decoder``, ``freeze_audio_encoder`` and ``window_size``."""

    pixel_decoder_class: type[PixelDecoder] = PixelDecoder
    mask_decoder_class: type[MaskDecoder] = MaskDecoder

    def __init__(self, config: Any):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone)
        self.audio_encoder = build_vggish(config.audio_encoder, frozen=config.freeze_audio_encoder)
        self.pixel_decoder = self.pixel_decoder_class(config.pixel_decoder)
        self.transformer_decoder = self.mask_decoder_class(config.decoder)
        # Set by models.api.load_model: which weights these are (registry name / path / hf:// id) and their
        # sha256 (predictions.json records them).
        self.weights_id: str | None = None
        self.weights_sha256: str | None = None

    @property
    def device(self) -> torch.device:
        """Where the model's weights are (inputs are moved there)."""
        return self.transformer_decoder.query_feat.weight.device

    @property
    def window_size(self) -> int:
        """Frames per ``predict_clip`` call from the video predictor."""
        return self.config.window_size

    def embed_audio(self, log_mel: torch.Tensor) -> torch.Tensor:
        """(N, 1, 96, 64) log-mel examples -> (N, A) VGGish embeddings (no autograd graph when frozen: a
        frozen VGGish has no parameter that requires a gradient)."""
        return self.audio_encoder(log_mel.to(self.device))


# The switches the shared decoders had before the audio layers became subclasses: (config section, field).
REMOVED_AUDIO_SWITCHES = (("pixel_decoder", "audio_fusion"), ("decoder", "audio_conditioning"))


def drop_removed_audio_switches(data: Mapping[str, Any], *, audio: bool, family: str) -> dict[str, Any]:
    """An older checkpoint's model config without ``pixel_decoder.audio_fusion`` / ``decoder.audio_conditioning``.

    They are accepted where they hold what the family builds (``audio``: OV-AVSS's audio layers, or AVSC's
    audio-independent segmenter) and refused with one line otherwise: no model of this version is built that way.
    """
    data = dict(data)
    for section, switch in REMOVED_AUDIO_SWITCHES:
        if isinstance(data.get(section), Mapping) and switch in data[section]:
            value = data[section][switch]
            if value is not audio:
                raise OvavssError(
                    f"{family} model config: {section}.{switch} must be {str(audio).lower()} ({family} models are "
                    f"built {'with' if audio else 'without'} audio layers), got {value!r}"
                )
            data[section] = {key: v for key, v in data[section].items() if key != switch}
    return data
