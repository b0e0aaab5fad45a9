"""OV-AVSS: universal sound-source localisation (class-agnostic masks of sounding objects) plus
open-vocabulary naming with a frozen CLIP (Guo et al., ACM MM 2024).

The attribute names below define the checkpoint keys (see ``models/keymap.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from .backbone import build_backbone
from .config import OVAVSSConfig
from .decoder import AudioConditionedMaskDecoder
from .open_vocab import OpenVocabClassifier
from .pixel_decoder import AudioVisualPixelDecoder
from .predict import predict_clip
from .vggish import build_vggish


class OVAVSS(nn.Module):
    architecture = "ovavss"  # what checkpoints record; ``ovavss predict --model`` checks it

    def __init__(self, config: OVAVSSConfig):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone)
        self.audio_encoder = build_vggish(config.audio_encoder, frozen=config.freeze_audio_encoder)
        self.pixel_decoder = AudioVisualPixelDecoder(config.pixel_decoder)
        self.transformer_decoder = AudioConditionedMaskDecoder(config.decoder)
        self.open_vocab = OpenVocabClassifier(config.open_vocab)
        # Set by load_model: which weights these are (registry name / path / hf:// id) and their sha256.
        self.weights_id: str | None = None
        self.weights_sha256: str | None = None

    @property
    def device(self) -> torch.device:
        return self.transformer_decoder.query_feat.weight.device

    @property
    def window_size(self) -> int:
        return self.config.window_size

    def embed_audio(self, log_mel: torch.Tensor) -> torch.Tensor:
        """(N, 1, 96, 64) log-mel examples -> (N, A) audio embeddings (no autograd graph when frozen: a
        frozen VGGish has no parameter that requires a gradient)."""
        return self.audio_encoder(log_mel.to(self.device))

    def forward(self, images: torch.Tensor, audio: torch.Tensor) -> dict:
        """The class-agnostic sounding-object segmenter (what training optimises).

        images (B, T, 3, Hp, Wp): normalised, zero-padded frames (``preprocess.normalize_and_pad``);
        audio (B, T, A): one audio embedding per frame, or (B, T, 1, 96, 64) log-mel examples, embedded
        here (how a model whose audio encoder trains sees its audio) ->
        {"pred_logits": (B, Q, 2), "pred_masks": (B, Q, T, Hp/4, Wp/4), "aux_outputs": [...]}.
        """
        batch, frames = images.shape[:2]
        if audio.dim() == 5:
            audio = self.embed_audio(audio.flatten(0, 1)).view(batch, frames, -1)
        features = self.backbone(images.flatten(0, 1))  # {"res2".."res5": (B·T, C, H/s, W/s)}
        mask_features, multi_scale, fused_audio = self.pixel_decoder(features, audio.flatten(0, 1))
        return self.transformer_decoder(multi_scale, mask_features, fused_audio, batch)

    # Segment and name the sounding objects of one clip: see predict.predict_clip.
    predict_clip = predict_clip


def build_ovavss(config: OVAVSSConfig) -> OVAVSS:
    """An OV-AVSS model with freshly initialised weights (frozen parts in eval mode)."""
    return OVAVSS(config)
