"""Mask2Former(-VIS)'s masked-attention decoder (``MaskDecoder``) and OV-AVSS's audio-conditioned one
(``AudioConditionedMaskDecoder``, the reference's ``AudioVideoMultiScaleMaskedTransformerDecoder``).

Mask2Former-VIS's decoder has clip-level queries; OV-AVSS adds audio (ovavss-spec §4):

* the per-frame fused audio -> ``audio_proj`` MLP -> T audio tokens with learned temporal embeddings;
* ``v2a``: the queries cross-attend to the audio tokens, then prediction 0 is made;
* ``a2a``: the audio tokens self-attend once (after v2a, so v2a saw the raw tokens);
* each of the 9 layers: masked cross-attention to one pixel-decoder level of ALL T frames jointly
  (levels round-robin, stride 32, 16, 8), self-attention, audio cross-attention, FFN, prediction.

All sub-layers are post-norm without dropout. A prediction is the 2-way class logits (sounding object
vs none) and per-frame mask logits at stride 4; its masks, resized to the next level, give the next
layer's attention mask (blocked where sigmoid < 0.5; a query with everything blocked attends
everywhere). Unlike the reference, which reshapes the (B·T) audio straight to (T, B) and so mixes clips
when B > 1, every tensor here is batch-first and the audio is reshaped (B·T, C) -> (B, T, C): any batch
size is correct. AVSC uses the plain ``MaskDecoder``, one frame per clip (image-level queries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .position_encoding import sine_position_encoding_3d

# The decoder always attends to the pixel decoder's three coarsest levels (strides 32, 16, 8).
NUM_FEATURE_LEVELS = 3


@dataclass
class MaskDecoderConfig:
    """Defaults: the reference R50/Swin-B models (``OV_AVSS_R50.yaml``)."""

    hidden_dim: int = 256
    num_queries: int = 100
    num_heads: int = 8
    ffn_dim: int = 2048
    num_layers: int = 9  # the reference's DEC_LAYERS 10 counts the prediction on the initial queries
    mask_dim: int = 256
    audio_dim: int = 128  # read by AudioConditionedMaskDecoder only
    num_frames: int = 5  # the longest clip the decoder takes (OV-AVSS: the rows of audio_query_embed)
    num_classes: int = 1  # class-agnostic: logits are [sounding object, no object]


def _xavier_init(module: nn.Module) -> None:
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with ``nn.MultiheadAttention``'s parameters (packed q/k/v ``in_proj_*``,
    ``out_proj``), batch-first, whose attention mask is one (B, L, S) mask broadcast over the heads
    instead of ``nn.MultiheadAttention``'s (B·heads, L, S) copy."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor, index: int) -> torch.Tensor:
        # (B, L, C) -> projection ``index`` (0 = q, 1 = k, 2 = v) -> (B, heads, L, C / heads)
        dim = x.shape[-1]
        rows = slice(index * dim, (index + 1) * dim)
        projected = F.linear(x, self.in_proj_weight[rows], self.in_proj_bias[rows])
        return projected.view(*x.shape[:2], self.num_heads, -1).transpose(1, 2)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, blocked: torch.Tensor | None = None
    ) -> torch.Tensor:
        """query (B, L, C), key/value (B, S, C), blocked (B, L, S) bool, True = may not attend -> (B, L, C)."""
        allowed = None if blocked is None else ~blocked[:, None]
        out = F.scaled_dot_product_attention(self._heads(query, 0), self._heads(key, 1), self._heads(value, 2), allowed)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class SelfAttentionLayer(nn.Module):
    """x = LN(x + MHA(x + pos, x + pos, x))."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, num_heads)
        self.norm = nn.LayerNorm(dim)
        _xavier_init(self)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """x (B, L, C), pos broadcastable to it -> (B, L, C)."""
        q = x + pos
        return self.norm(x + self.self_attn(q, q, x))


class CrossAttentionLayer(nn.Module):
    """x = LN(x + MHA(x + query_pos, memory + memory_pos, memory, blocked))."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.multihead_attn = MultiHeadAttention(dim, num_heads)
        self.norm = nn.LayerNorm(dim)
        _xavier_init(self)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        query_pos: torch.Tensor,
        memory_pos: torch.Tensor,
        blocked: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, Q, C), memory (B, S, C), positions broadcastable to them, blocked (B, Q, S) bool -> (B, Q, C)."""
        return self.norm(x + self.multihead_attn(x + query_pos, memory + memory_pos, memory, blocked))


class FeedForwardLayer(nn.Module):
    """x = LN(x + W2·ReLU(W1·x))."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, dim)
        self.norm = nn.LayerNorm(dim)
        _xavier_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.linear2(F.relu(self.linear1(x))))


class MLP(nn.Module):
    """Linear layers with ReLU between them (none after the last)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def attention_mask_from_masks(mask_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Mask logits (B, Q, T, H, W) -> bool attention mask (B, Q, T·h·w) at ``size`` (h, w), True = blocked.

    Blocked where sigmoid(logit) < 0.5 after bilinear resizing (the sigmoid, not the logit sign, as the
    reference: they differ for |logit| below ~6e-8). A query blocked everywhere attends everywhere.
    Memory columns are t-major (t, y, x), matching the decoder's memories.
    """
    batch, queries = mask_logits.shape[:2]
    resized = F.interpolate(mask_logits.flatten(0, 1), size=size, mode="bilinear", align_corners=False)
    blocked = resized.sigmoid().view(batch, queries, -1) < 0.5
    blocked[blocked.all(-1)] = False
    return blocked


class MaskDecoder(nn.Module):
    """Mask2Former(-VIS)'s masked-attention decoder: clip-level queries -> per-clip class logits and per-frame masks
    (AVSC's instance segmenter: one frame per clip, i.e. image-level queries)."""

    def __init__(self, config: MaskDecoderConfig | None = None):
        super().__init__()
        self.config = config or MaskDecoderConfig()
        # Three stages that a subclass extends in place, so its modules are created where the reference creates
        # them (this fixes the seeded initial weights and the parameter order).
        self.build_layers()
        self.build_queries()
        self.build_heads()

    def build_layers(self) -> None:
        """The per-layer blocks."""
        config, dim, heads = self.config, self.config.hidden_dim, self.config.num_heads
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(dim, heads) for _ in range(config.num_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(dim, heads) for _ in range(config.num_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(
            FeedForwardLayer(dim, config.ffn_dim) for _ in range(config.num_layers)
        )

    def build_queries(self) -> None:
        """The final norm and the learned queries."""
        dim = self.config.hidden_dim
        self.decoder_norm = nn.LayerNorm(dim)
        self.query_feat = nn.Embedding(self.config.num_queries, dim)  # learnable query features
        self.query_embed = nn.Embedding(self.config.num_queries, dim)  # learnable query positions

    def build_heads(self) -> None:
        """The memory level embedding and the prediction heads."""
        dim = self.config.hidden_dim
        self.level_embed = nn.Embedding(NUM_FEATURE_LEVELS, dim)  # added to the memory values, not positions
        self.class_embed = nn.Linear(dim, self.config.num_classes + 1)
        self.mask_embed = MLP(dim, dim, self.config.mask_dim, 3)

    def forward(self, multi_scale_features: list[torch.Tensor], mask_features: torch.Tensor, batch_size: int) -> dict:
        """multi_scale_features [(B·T, C, h_l, w_l)] strides 32, 16, 8; mask_features (B·T, mask_dim, H/4, W/4);
        rows batch-major (clip b, frame t at b·T + t) ->
        {"pred_logits": (B, Q, K+1), "pred_masks": (B, Q, T, H/4, W/4),
         "aux_outputs": [{"pred_logits", "pred_masks"}] × num_layers (the earlier predictions, first to last)}."""
        return self.decode(multi_scale_features, mask_features, batch_size, None)

    def frames_per_clip(self, mask_features: torch.Tensor, batch_size: int) -> int:
        frames = mask_features.shape[0] // batch_size
        if frames * batch_size != mask_features.shape[0] or not 1 <= frames <= self.config.num_frames:
            raise ValueError(
                f"{mask_features.shape[0]} frames do not split into {batch_size} clips of 1..{self.config.num_frames}"
            )
        return frames

    def condition_initial(
        self, queries: torch.Tensor, query_pos: torch.Tensor, context: Any
    ) -> tuple[torch.Tensor, Any]:
        """Before the first prediction: queries (B, Q, C) -> queries, context for :meth:`condition_layer`
        (Mask2Former: unchanged)."""
        return queries, context

    def condition_layer(self, index: int, queries: torch.Tensor, query_pos: torch.Tensor, context: Any) -> torch.Tensor:
        """In layer ``index``, between self-attention and FFN: queries (B, Q, C) -> queries (Mask2Former: unchanged)."""
        return queries

    def decode(
        self, multi_scale_features: list[torch.Tensor], mask_features: torch.Tensor, batch_size: int, context: Any
    ) -> dict:
        """:meth:`forward`, with ``context`` handed to the conditioning steps."""
        if len(multi_scale_features) != NUM_FEATURE_LEVELS:
            raise ValueError(f"expected {NUM_FEATURE_LEVELS} feature levels, got {len(multi_scale_features)}")
        frames = self.frames_per_clip(mask_features, batch_size)
        dim = self.config.hidden_dim
        height, width = mask_features.shape[-2:]
        # (B·T, C, H, W) -> (B, C, T·H·W) once, so every prediction's masks are one batched matmul.
        mask_features = mask_features.view(batch_size, frames, -1, height * width).transpose(1, 2).flatten(2)
        mask_shape = (batch_size, self.config.num_queries, frames, height, width)

        # Memories (B, T·h·w, C), t-major as the reference's, and their 3-D positions (1, T·h·w, C).
        memories, positions, sizes = [], [], []
        for level, feature in enumerate(multi_scale_features):
            sizes.append(tuple(feature.shape[-2:]))
            pos = sine_position_encoding_3d(frames, *sizes[-1], dim // 2, device=feature.device)  # (T, C, h, w)
            positions.append(pos.flatten(2).transpose(1, 2).reshape(1, -1, dim))
            memory = feature.flatten(2) + self.level_embed.weight[level][None, :, None]  # (B·T, C, h·w)
            memories.append(memory.view(batch_size, frames, dim, -1).transpose(2, 3).reshape(batch_size, -1, dim))

        query_pos = self.query_embed.weight[None]  # (1, Q, C)
        queries = self.query_feat.weight[None].expand(batch_size, -1, -1)  # (B, Q, C)
        queries, context = self.condition_initial(queries, query_pos, context)
        predictions = [self._predict(queries, mask_features, mask_shape)]
        blocked = attention_mask_from_masks(predictions[-1][1], sizes[0])

        for i in range(self.config.num_layers):
            level = i % NUM_FEATURE_LEVELS
            queries = self.transformer_cross_attention_layers[i](
                queries, memories[level], query_pos, positions[level], blocked
            )
            queries = self.transformer_self_attention_layers[i](queries, query_pos)
            queries = self.condition_layer(i, queries, query_pos, context)
            queries = self.transformer_ffn_layers[i](queries)
            predictions.append(self._predict(queries, mask_features, mask_shape))
            if i + 1 < self.config.num_layers:  # the last prediction's mask would never be used
                blocked = attention_mask_from_masks(predictions[-1][1], sizes[(i + 1) % NUM_FEATURE_LEVELS])

        (pred_logits, pred_masks), earlier = predictions[-1], predictions[:-1]
        return {
            "pred_logits": pred_logits,
            "pred_masks": pred_masks,
            "aux_outputs": [{"pred_logits": logits, "pred_masks": masks} for logits, masks in earlier],
        }

    def _predict(
        self, queries: torch.Tensor, mask_features: torch.Tensor, mask_shape: tuple[int, ...]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, Q, C), mask_features (B, C, T·H·W) -> class logits (B, Q, K+1), mask logits (B, Q, T, H, W)."""
        decoded = self.decoder_norm(queries)
        mask_logits = torch.bmm(self.mask_embed(decoded), mask_features).view(mask_shape)
        return self.class_embed(decoded), mask_logits


class AudioConditionedMaskDecoder(MaskDecoder):
    """OV-AVSS's decoder: the same, conditioned on the clip's audio (the reference's
    ``AudioVideoMultiScaleMaskedTransformerDecoder``)."""

    def build_layers(self) -> None:
        super().build_layers()
        dim, heads = self.config.hidden_dim, self.config.num_heads
        self.transformer_audio_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(dim, heads) for _ in range(self.config.num_layers)
        )

    def build_queries(self) -> None:
        super().build_queries()
        self.audio_query_embed = nn.Embedding(self.config.num_frames, self.config.hidden_dim)  # audio-token positions

    def build_heads(self) -> None:
        super().build_heads()
        dim, heads = self.config.hidden_dim, self.config.num_heads
        self.audio_proj = MLP(self.config.audio_dim, dim, dim, 2)
        self.v2a = CrossAttentionLayer(dim, heads)
        self.a2a = SelfAttentionLayer(dim, heads)

    def forward(  # type: ignore[override]
        self,
        multi_scale_features: list[torch.Tensor],
        mask_features: torch.Tensor,
        audio: torch.Tensor,
        batch_size: int,
    ) -> dict:
        """As :meth:`MaskDecoder.forward`, with audio (B·T, A) the fused per-frame audio, rows batch-major."""
        frames = self.frames_per_clip(mask_features, batch_size)
        tokens = self.audio_proj(audio).view(batch_size, frames, self.config.hidden_dim)  # (B, T, C): clip-major rows
        return self.decode(
            multi_scale_features, mask_features, batch_size, (tokens, self.audio_query_embed.weight[None, :frames])
        )

    def condition_initial(
        self, queries: torch.Tensor, query_pos: torch.Tensor, context: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """v2a: the queries cross-attend to the audio tokens; a2a: then the tokens self-attend once (so v2a saw
        the raw tokens). context: audio tokens (B, T, C), their positions (1, T, C)."""
        tokens, pos = context
        queries = self.v2a(queries, tokens, query_pos, pos)
        return queries, (self.a2a(tokens, pos), pos)

    def condition_layer(
        self, index: int, queries: torch.Tensor, query_pos: torch.Tensor, context: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """The layer's audio cross-attention."""
        tokens, pos = context
        return self.transformer_audio_cross_attention_layers[index](queries, tokens, query_pos, pos)
