"""OV-AVSS model configuration: one dataclass tree, named presets, and its JSON form in checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ...errors import OvavssError
from ..layers.backbone import ResNetConfig, SwinConfig
from ..layers.decoder import MaskDecoderConfig
from ..layers.pixel_decoder import PixelDecoderConfig
from ..layers.segmenter import drop_removed_audio_switches
from ..layers.tiny import tiny_backbone, tiny_decoder, tiny_pixel_decoder, tiny_vggish
from ..layers.vggish import VGGishConfig
from .open_vocab import OpenVocabConfig


@dataclass
class OVAVSSConfig:
    """Everything that defines an OV-AVSS model; the defaults are the reference R50 model."""

    name: str = "ovavss-r50"
    backbone: ResNetConfig | SwinConfig = field(default_factory=ResNetConfig)
    pixel_decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    decoder: MaskDecoderConfig = field(default_factory=MaskDecoderConfig)
    audio_encoder: VGGishConfig = field(default_factory=VGGishConfig)
    open_vocab: OpenVocabConfig = field(default_factory=OpenVocabConfig)
    freeze_audio_encoder: bool = True  # the reference's VGGish never trains (FREEZE_AUDIO_EXTRACTOR)
    min_size_test: int = 360  # inference resize: short side (detectron2 ResizeShortestEdge)
    max_size_test: int = 1333
    size_divisibility: int = 32

    @property
    def window_size(self) -> int:
        """Frames per model window: the rows of the decoder's temporal audio embedding (5)."""
        return self.decoder.num_frames


def ovavss_r50() -> OVAVSSConfig:
    """OV-AVSS R50 (``OV_AVSS_R50.yaml``): ResNet-50, CLIP ViT-B/16 (OpenAI) at 224."""
    return OVAVSSConfig(name="ovavss-r50")


def ovavss_swinb() -> OVAVSSConfig:
    """OV-AVSS Swin-B (``OV_AVSS_SwinB.yaml``): Swin-B (IN21k-384), CLIP ViT-L/14@336 (OpenAI)."""
    return OVAVSSConfig(
        name="ovavss-swinb",
        backbone=SwinConfig(),
        pixel_decoder=PixelDecoderConfig(in_channels=(128, 256, 512, 1024)),
        open_vocab=OpenVocabConfig(clip_model="ViT-L-14-336-quickgelu", image_size=336),
    )


#: A CLIP small enough to train and run anywhere in seconds (same tokenizer and prompt machinery).
TINY_CLIP_ARCHITECTURE: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def ovavss_tiny() -> OVAVSSConfig:
    """Same architecture, every width and depth cut down: for tests, CPU smoke runs and the demo model."""
    return OVAVSSConfig(
        name="ovavss-tiny",
        backbone=tiny_backbone(),
        pixel_decoder=tiny_pixel_decoder(),
        decoder=tiny_decoder(),
        audio_encoder=tiny_vggish(),
        # There is no pretrained VGGish of this size to freeze, so the tiny encoder learns with the rest.
        freeze_audio_encoder=False,
        open_vocab=OpenVocabConfig(image_size=64, clip_architecture=TINY_CLIP_ARCHITECTURE),
        min_size_test=128,
    )


PRESETS = {"ovavss-r50": ovavss_r50, "ovavss-swinb": ovavss_swinb, "ovavss-tiny": ovavss_tiny}


def with_openai_clip(config: OVAVSSConfig) -> OVAVSSConfig:
    """A copy of ``config`` whose CLIP loads open_clip's OpenAI weights (those the reference's ``clip.load`` gives)."""
    return replace(config, open_vocab=replace(config.open_vocab, pretrained="openai"))


def preset_config(name: str) -> OVAVSSConfig:
    if name not in PRESETS:
        raise OvavssError(f"unknown model preset '{name}' (known: {', '.join(PRESETS)})")
    return PRESETS[name]()


# ------------------------------------------------------------------------------------------ JSON form


def upgrade_config_dict(data: dict[str, Any]) -> dict[str, Any]:
    """The config dict of an older checkpoint in the current form."""
    open_vocab = data.get("open_vocab")
    if isinstance(open_vocab, dict) and open_vocab.get("max_clip_queries", 0) is None:
        # Written before the fast mode became a run option (``clip_queries``); null meant "all queries".
        data = {**data, "open_vocab": {k: v for k, v in open_vocab.items() if k != "max_clip_queries"}}
    return drop_removed_audio_switches(data, audio=True, family="ovavss")
