"""What both model families build the same way: the Mask2Former-style visual stack and the VGGish audio encoder.

The attribute names (``backbone``, ``audio_encoder``, ``pixel_decoder``, ``transformer_decoder``) are the
checkpoint keys of both families, so Mask2Former ``kind="init"`` checkpoints and VGGish weights load into
either; they are created in this order, so a seed gives both families the same initial visual stack.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .backbone import build_backbone
from .decoder import AudioConditionedMaskDecoder
from .pixel_decoder import AudioVisualPixelDecoder
from .vggish import build_vggish


class AudioVisualSegmenter(nn.Module):
    """The shared parts; a family subclasses it, adds its heads after ``super().__init__`` and implements
    ``models.interface.SegmentationModel``. ``config`` has ``backbone``, ``audio_encoder``, ``pixel_decoder``,
    ``decoder``, ``freeze_audio_encoder`` and ``window_size``."""

    def __init__(self, config: Any):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone)
        self.audio_encoder = build_vggish(config.audio_encoder, frozen=config.freeze_audio_encoder)
        self.pixel_decoder = AudioVisualPixelDecoder(config.pixel_decoder)
        self.transformer_decoder = AudioConditionedMaskDecoder(config.decoder)
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
