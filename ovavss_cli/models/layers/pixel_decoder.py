"""Mask2Former's multi-scale deformable-attention pixel decoder (``PixelDecoder``, what AVSC's audio-independent
segmenter uses) and OV-AVSS's, which adds one audio-visual fusion block (``AudioVisualPixelDecoder``, the
reference's ``MSDeformAttnPixelDecoderAVBi``):

1. res5, res4, res3 (in that order) -> 1×1 conv + GroupNorm to ``conv_dim`` (``input_proj.{0,1,2}``);
2. OV-AVSS only: the tokens of all three levels of each frame are concatenated and fused with that frame's
   audio embedding (``AudioVisualBiAttention``, applied once);
3. 6 post-norm deformable encoder layers (query = token + 2-D sine position + level embedding);
4. one FPN level on res2: lateral 1×1 conv + GN, plus the bilinearly upsampled stride-8 output, then
   3×3 conv + GN + ReLU, then the 1×1 ``mask_features`` conv.

Every frame is processed independently (no temporal interaction). The whole forward runs in float32
with autocast disabled, as the reference does. Module and parameter names follow the reference, so
its checkpoint keys under ``sem_seg_head.pixel_decoder.`` load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .deform_attn import MultiScaleDeformableAttention
from .fusion import AudioVisualBiAttention
from .position_encoding import sine_position_encoding_2d

# Encoder levels from coarse to fine, as the reference orders them.
ENCODER_FEATURES: tuple[str, str, str] = ("res5", "res4", "res3")


@dataclass
class PixelDecoderConfig:
    """Defaults: the reference R50 model (``OV_AVSS_R50.yaml``)."""

    in_channels: tuple[int, int, int, int] = (256, 512, 1024, 2048)  # res2..res5; Swin-B: (128, 256, 512, 1024)
    conv_dim: int = 256
    mask_dim: int = 256
    num_groups: int = 32  # GroupNorm groups
    num_encoder_layers: int = 6
    num_heads: int = 8
    num_points: int = 4
    ffn_dim: int = 1024  # hard-coded for the deformable encoder in the reference
    dropout: float = 0.0
    # The fusion block's sizes: read by AudioVisualPixelDecoder only.
    audio_dim: int = 128
    fusion_dim: int = 1024  # the reference passes the encoder's FFN width as the fusion attention width
    fusion_heads: int = 8
    fusion_dropout: float = 0.1  # hard-coded in the reference; training only


def float32(features: dict[str, torch.Tensor]) -> torch.autocast:
    """Deformable attention is kept in float32: autocast off (as the reference)."""
    return torch.autocast(device_type=features["res2"].device.type, enabled=False)


def _c2_xavier_fill(conv: nn.Conv2d) -> None:
    # detectron2's c2_xavier_fill: Caffe2's "XavierFill" is kaiming_uniform with a = 1.
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class ConvGroupNorm(nn.Conv2d):
    """Bias-free conv followed by GroupNorm held in ``norm`` (detectron2's ``Conv2d(norm=...)`` key layout)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_groups: int, relu: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.GroupNorm(num_groups, out_channels)
        self.relu = relu
        _c2_xavier_fill(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(super().forward(x))
        return F.relu(x) if self.relu else x


class DeformableEncoderLayer(nn.Module):
    """Post-norm: x = LN1(x + MSDA(x + pos, x)); x = LN2(x + FFN(x))."""

    def __init__(self, config: PixelDecoderConfig, num_levels: int):
        super().__init__()
        dim = config.conv_dim
        self.self_attn = MultiScaleDeformableAttention(dim, num_levels, config.num_heads, config.num_points)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, config.ffn_dim)
        self.linear2 = nn.Linear(config.ffn_dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        tokens: torch.Tensor,
        pos: torch.Tensor,
        reference_points: torch.Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
    ) -> torch.Tensor:
        """tokens (N, L, C), pos (1, L, C), reference_points (1, L, 2) -> (N, L, C)."""
        attended = self.self_attn(tokens + pos, reference_points, tokens, spatial_shapes)
        tokens = self.norm1(tokens + self.dropout(attended))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tokens), inplace=True)))
        return self.norm2(tokens + self.dropout(ffn))


class DeformableEncoder(nn.Module):
    """The deformable layers (the reference's ``transformer.encoder``)."""

    def __init__(self, config: PixelDecoderConfig, num_levels: int):
        super().__init__()
        self.build(config, num_levels)

    def build(self, config: PixelDecoderConfig, num_levels: int) -> None:
        """Create the modules; a subclass adds its own here, in the reference's creation order (which fixes the
        seeded initial weights and the parameter order)."""
        self.layers = nn.ModuleList(
            DeformableEncoderLayer(config, num_levels) for _ in range(config.num_encoder_layers)
        )

    def forward(
        self,
        tokens: torch.Tensor,
        pos: torch.Tensor,
        reference_points: torch.Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
    ) -> torch.Tensor:
        """tokens (N, L, C), pos (1, L, C), reference_points (1, L, 2) -> encoded tokens (N, L, C)."""
        for layer in self.layers:
            tokens = layer(tokens, pos, reference_points, spatial_shapes)
        return tokens


class AudioFusedDeformableEncoder(DeformableEncoder):
    """OV-AVSS's early fusion block, then the deformable layers."""

    def build(self, config: PixelDecoderConfig, num_levels: int) -> None:
        fusion = AudioVisualBiAttention(
            config.conv_dim, config.audio_dim, config.fusion_dim, config.fusion_heads, config.fusion_dropout
        )
        # The reference wraps the block as VLFuse.b_attn; the ModuleDict keeps its keys "vl_layer.b_attn.*".
        # It is created before the layers, as in the reference.
        self.vl_layer = nn.ModuleDict({"b_attn": fusion})
        super().build(config, num_levels)

    def forward(  # type: ignore[override]
        self,
        tokens: torch.Tensor,
        audio: torch.Tensor,
        pos: torch.Tensor,
        reference_points: torch.Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (N, L, C), audio (N, A) one embedding per frame -> encoded tokens (N, L, C), fused audio (N, A)."""
        tokens, audio = self.vl_layer["b_attn"](tokens, audio)
        return super().forward(tokens, pos, reference_points, spatial_shapes), audio


def token_centers(spatial_shapes: Sequence[tuple[int, int]], device: torch.device) -> torch.Tensor:
    """(1, sum H_l·W_l, 2): normalised (x, y) centre of every token, levels concatenated."""
    centers = []
    for height, width in spatial_shapes:
        y = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
        x = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
        grid_y, grid_x = torch.meshgrid(y, x, indexing="ij")
        centers.append(torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), -1))
    return torch.cat(centers)[None]


class DeformableTransformerEncoder(nn.Module):
    """Flattens the levels into one token sequence per frame, adds positions, runs the encoder (the reference's
    ``transformer``, ``MSDeformAttnTransformerEncoderOnly``)."""

    encoder_class: type[DeformableEncoder] = DeformableEncoder

    def __init__(self, config: PixelDecoderConfig, num_levels: int):
        super().__init__()
        self.level_embed = nn.Parameter(torch.empty(num_levels, config.conv_dim))
        self.encoder = self.encoder_class(config, num_levels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The reference's order: Xavier on every matrix, then the deformable layers' own init.
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for module in self.modules():
            if isinstance(module, MultiScaleDeformableAttention):
                module.reset_parameters()
        nn.init.normal_(self.level_embed)

    def forward(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        """levels [(N, C, H_l, W_l)] coarse to fine -> encoded levels (same shapes)."""
        tokens, pos, reference_points, spatial_shapes = self.flatten(levels)
        return self.unflatten(self.encoder(tokens, pos, reference_points, spatial_shapes), spatial_shapes)

    def flatten(
        self, levels: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        """levels [(N, C, H_l, W_l)] -> tokens (N, L, C), pos (1, L, C), reference points (1, L, 2), [(H_l, W_l)]."""
        spatial_shapes = [tuple(level.shape[-2:]) for level in levels]
        tokens = torch.cat([level.flatten(2).transpose(1, 2) for level in levels], 1)  # (N, L, C)
        pos = torch.cat(
            [
                sine_position_encoding_2d(h, w, level.shape[1] // 2, device=level.device).flatten(1).T + embed
                for (h, w), level, embed in zip(spatial_shapes, levels, self.level_embed, strict=True)
            ]
        )[None]  # (1, L, C)
        return tokens, pos, token_centers(spatial_shapes, tokens.device), spatial_shapes

    @staticmethod
    def unflatten(tokens: torch.Tensor, spatial_shapes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
        """tokens (N, L, C) -> levels [(N, C, H_l, W_l)]."""
        sizes = [h * w for h, w in spatial_shapes]
        return [
            chunk.transpose(1, 2).reshape(tokens.shape[0], -1, h, w)
            for chunk, (h, w) in zip(tokens.split(sizes, 1), spatial_shapes, strict=True)
        ]


class AudioFusedTransformerEncoder(DeformableTransformerEncoder):
    """The same with the early fusion block in its encoder (the reference's, for OV-AVSS)."""

    encoder_class = AudioFusedDeformableEncoder

    def forward(  # type: ignore[override]
        self, levels: list[torch.Tensor], audio: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """levels [(N, C, H_l, W_l)] coarse to fine, audio (N, A) -> encoded levels (same shapes), fused audio."""
        tokens, pos, reference_points, spatial_shapes = self.flatten(levels)
        tokens, audio = self.encoder(tokens, audio, pos, reference_points, spatial_shapes)
        return self.unflatten(tokens, spatial_shapes), audio


class PixelDecoder(nn.Module):
    """Mask2Former's pixel decoder: backbone features -> mask features and three encoder levels."""

    transformer_class: type[DeformableTransformerEncoder] = DeformableTransformerEncoder

    def __init__(self, config: PixelDecoderConfig | None = None):
        super().__init__()
        config = config or PixelDecoderConfig()
        self.config = config
        dim = config.conv_dim
        res2_channels, *encoder_channels = config.in_channels  # encoder_channels: res3, res4, res5
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, dim, kernel_size=1), nn.GroupNorm(config.num_groups, dim))
            for channels in reversed(encoder_channels)
        )
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight)
            nn.init.zeros_(proj[0].bias)
        self.transformer = self.transformer_class(config, num_levels=len(ENCODER_FEATURES))
        self.mask_features = nn.Conv2d(dim, config.mask_dim, kernel_size=1)
        _c2_xavier_fill(self.mask_features)
        self.adapter_1 = ConvGroupNorm(res2_channels, dim, 1, config.num_groups)
        self.layer_1 = ConvGroupNorm(dim, dim, 3, config.num_groups, relu=True)

    def forward(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """features {"res2".."res5": (B·T, C_l, H/s, W/s)} ->
        mask_features (B·T, mask_dim, H/4, W/4),
        multi_scale_features [(B·T, C, H/32, W/32), (B·T, C, H/16, W/16), (B·T, C, H/8, W/8)]."""
        with float32(features):
            multi_scale_features = self.transformer(self.project(features))
            return self.fpn(features, multi_scale_features), multi_scale_features

    def project(self, features: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The encoder's input levels, coarse to fine [(B·T, C, h_l, w_l)]."""
        return [proj(features[name].float()) for proj, name in zip(self.input_proj, ENCODER_FEATURES, strict=True)]

    def fpn(self, features: dict[str, torch.Tensor], multi_scale_features: list[torch.Tensor]) -> torch.Tensor:
        """The res2 FPN level: mask features (B·T, mask_dim, H/4, W/4)."""
        lateral = self.adapter_1(features["res2"].float())
        upsampled = F.interpolate(
            multi_scale_features[-1], size=lateral.shape[-2:], mode="bilinear", align_corners=False
        )
        return self.mask_features(self.layer_1(lateral + upsampled))


class AudioVisualPixelDecoder(PixelDecoder):
    """OV-AVSS's pixel decoder: the same, with each frame's tokens fused with its audio before the encoder layers."""

    transformer_class = AudioFusedTransformerEncoder

    def forward(  # type: ignore[override]
        self, features: dict[str, torch.Tensor], audio: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """features {"res2".."res5": (B·T, C_l, H/s, W/s)}, audio (B·T, A) one embedding per frame ->
        mask_features, multi_scale_features (as ``PixelDecoder``'s), fused audio (B·T, A)."""
        with float32(features):
            multi_scale_features, audio = self.transformer(self.project(features), audio.float())
            return self.fpn(features, multi_scale_features), multi_scale_features, audio
