"""AVSC model configuration: one dataclass tree, named presets, and its JSON form in checkpoints.

AVSC (Liu et al., ACM MM 2023) re-implemented from the paper's description (peers.md §(a); no code was
published). The visual branch is Mask2Former with image-level queries over ``categories`` + "no object",
built from the plain shared blocks (``layers.pixel_decoder.PixelDecoder`` and ``layers.decoder.MaskDecoder``,
which OV-AVSS extends with its audio layers), so it is audio-independent by construction. The audio branch is a
frozen VGGish (the paper uses BEATs) and a small multi-label head. See ``correlation.py`` for how the two meet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...data.classes import CLASS_NAMES, S4_CATEGORY_TO_CLASS
from ...errors import OvavssError
from ..layers.backbone import ResNetConfig, SwinConfig
from ..layers.decoder import MaskDecoderConfig
from ..layers.pixel_decoder import PixelDecoderConfig
from ..layers.segmenter import drop_removed_audio_switches
from ..layers.tiny import tiny_backbone, tiny_decoder, tiny_pixel_decoder, tiny_vggish
from ..layers.vggish import VGGishConfig
from .audio_head import AudioHeadConfig
from .correlation import CorrelationConfig

ARCHITECTURE = "avsc"
#: The 23 AVSBench-object S4 categories under their AVSS class names (MS3's v1m rows use 21 of them).
AVSBENCH_OBJECT_CATEGORIES: tuple[str, ...] = tuple(sorted(set(S4_CATEGORY_TO_CLASS.values())))


def _segmenter_decoder(num_categories: int, **overrides: Any) -> MaskDecoderConfig:
    # One frame per query set (image-level Mask2Former), K categories + "no object".
    return MaskDecoderConfig(num_classes=num_categories, num_frames=1, **overrides)


@dataclass
class AVSCConfig:
    """Everything that defines an AVSC model; the defaults are the ResNet-50 model."""

    name: str = "avsc-r50"
    categories: tuple[str, ...] = AVSBENCH_OBJECT_CATEGORIES  # AVSS class names, in logit order
    backbone: ResNetConfig | SwinConfig = field(default_factory=ResNetConfig)
    pixel_decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    decoder: MaskDecoderConfig = field(default_factory=lambda: _segmenter_decoder(len(AVSBENCH_OBJECT_CATEGORIES)))
    audio_encoder: VGGishConfig = field(default_factory=VGGishConfig)
    audio_head: AudioHeadConfig = field(default_factory=AudioHeadConfig)
    correlation: CorrelationConfig = field(default_factory=CorrelationConfig)
    freeze_audio_encoder: bool = True  # VGGish is a fixed feature extractor, as in every AVSBench baseline
    min_size_test: int = 360  # inference resize (short side), as OV-AVSS; AVSBench-object frames are 224x224
    max_size_test: int = 1333
    size_divisibility: int = 32
    window_size: int = 5  # frames per predict_clip call from the video predictor (the model itself is per frame)

    def __post_init__(self) -> None:
        unknown = [name for name in self.categories if name not in CLASS_NAMES]
        if unknown or not self.categories or len(set(self.categories)) != len(self.categories):
            raise OvavssError(f"model config: categories must be distinct AVSS class names (bad: {unknown})")
        if self.decoder.num_classes != len(self.categories):
            raise OvavssError(
                f"model config: decoder.num_classes {self.decoder.num_classes} != {len(self.categories)} categories"
            )

    @property
    def num_categories(self) -> int:
        return len(self.categories)


def avsc_r50() -> AVSCConfig:
    """ResNet-50 segmenter (Mask2Former-sized), full VGGish, 23 AVSBench-object categories."""
    return AVSCConfig(name="avsc-r50")


def avsc_swinb() -> AVSCConfig:
    """Swin-B (IN21k-384 layout, as OV-AVSS's) segmenter; otherwise as ``avsc-r50``."""
    return AVSCConfig(
        name="avsc-swinb",
        backbone=SwinConfig(),
        pixel_decoder=PixelDecoderConfig(in_channels=(128, 256, 512, 1024)),
    )


def avsc_tiny() -> AVSCConfig:
    """Every width and depth cut down (``layers.tiny``, as ``ovavss-tiny``): for tests, CPU smoke runs and data.

    There is no pretrained VGGish at this size, and a frozen random one is useless here: its embeddings vary
    by ~1e-4 between sounds around a ~0.03 offset, and the head learned nothing from them in 300 steps
    (chance accuracy on 4 generated tones), whereas the same VGGish trained end to end separated them in 100.
    So the tiny preset trains its audio encoder; the full presets keep the released VGGish frozen.
    """
    return AVSCConfig(
        name="avsc-tiny",
        backbone=tiny_backbone(),
        pixel_decoder=tiny_pixel_decoder(),
        decoder=tiny_decoder(num_classes=len(AVSBENCH_OBJECT_CATEGORIES), num_frames=1),
        audio_encoder=tiny_vggish(),
        audio_head=AudioHeadConfig(hidden_dim=64),
        freeze_audio_encoder=False,
        min_size_test=64,
    )


PRESETS = {"avsc-r50": avsc_r50, "avsc-swinb": avsc_swinb, "avsc-tiny": avsc_tiny}


def preset_config(name: str) -> AVSCConfig:
    if name not in PRESETS:
        raise OvavssError(f"unknown AVSC preset '{name}' (known: {', '.join(PRESETS)})")
    return PRESETS[name]()


def upgrade_config_dict(data: dict[str, Any]) -> dict[str, Any]:
    """The config dict of an older checkpoint in the current form."""
    return drop_removed_audio_switches(data, audio=False, family="avsc")
