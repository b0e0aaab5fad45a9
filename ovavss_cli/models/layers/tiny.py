"""The shared layers with every width and depth cut down: what the ``*-tiny`` presets of both families are
built from (tests, CPU smoke runs, the demo model)."""

from __future__ import annotations

from typing import Any

from .backbone import ResNetConfig
from .decoder import MaskDecoderConfig
from .pixel_decoder import PixelDecoderConfig
from .vggish import VGGishConfig


def tiny_backbone() -> ResNetConfig:
    return ResNetConfig(depth=18, blocks=(1, 1, 1, 1))


def tiny_pixel_decoder(**overrides: Any) -> PixelDecoderConfig:
    sizes: dict[str, Any] = dict(
        in_channels=(64, 128, 256, 512), conv_dim=32, mask_dim=32, num_groups=8, num_encoder_layers=1,
        num_heads=4, num_points=2, ffn_dim=64, audio_dim=32, fusion_dim=64, fusion_heads=4,
    )  # fmt: skip
    return PixelDecoderConfig(**{**sizes, **overrides})


def tiny_decoder(**overrides: Any) -> MaskDecoderConfig:
    sizes: dict[str, Any] = dict(hidden_dim=32, num_queries=10, num_heads=4, ffn_dim=64, num_layers=3, mask_dim=32)
    return MaskDecoderConfig(**{**sizes, "audio_dim": 32, **overrides})


def tiny_vggish() -> VGGishConfig:
    return VGGishConfig(block_widths=(8, 16, 32, 32), hidden_dim=64, embed_dim=32)
