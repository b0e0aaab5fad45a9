"""Audio-conditioned masked-attention decoder (the reference's ``AudioVideoMultiScaleMaskedTransformerDecoder``).

Mask2Former-VIS's decoder with clip-level queries, plus audio (ovavss-spec §4):

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
size is correct. With ``audio_conditioning`` off the audio steps are skipped and the decoder is
Mask2Former(-VIS)'s; AVSC uses it that way, one frame per clip (image-level queries).
"""

from __future__ import annotations

from dataclasses import dataclass

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
    audio_dim: int = 128
    num_frames: int = 5  # rows of audio_query_embed: the longest clip the decoder takes
    num_classes: int = 1  # class-agnostic: logits are [sounding object, no object]
    # False: no audio layers (no v2a, a2a, audio cross-attention, audio_proj, audio_query_embed), i.e.
    # Mask2Former(-VIS)'s decoder, for audio-independent segmenters such as AVSC's instance branch.
    audio_conditioning: bool = True


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


class AudioConditionedMaskDecoder(nn.Module):
    """Clip-level queries -> per-clip class logits and per-frame masks, conditioned on the clip's audio
    (unless ``audio_conditioning`` is off: then the audio modules do not exist and ``audio`` is None)."""

    def __init__(self, config: MaskDecoderConfig | None = None):
        super().__init__()
        config = config or MaskDecoderConfig()
        self.config = config
        dim, heads = config.hidden_dim, config.num_heads
        audio = config.audio_conditioning  # the audio modules are created in the default's order, so seeds match
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(dim, heads) for _ in range(config.num_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(dim, heads) for _ in range(config.num_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(
            FeedForwardLayer(dim, config.ffn_dim) for _ in range(config.num_layers)
        )
        self.transformer_audio_cross_attention_layers = (
            nn.ModuleList(CrossAttentionLayer(dim, heads) for _ in range(config.num_layers)) if audio else None
        )
        self.decoder_norm = nn.LayerNorm(dim)
        self.query_feat = nn.Embedding(config.num_queries, dim)  # learnable query features
        self.query_embed = nn.Embedding(config.num_queries, dim)  # learnable query positions
        # learnable audio-token positions (time)
        self.audio_query_embed = nn.Embedding(config.num_frames, dim) if audio else None
        self.level_embed = nn.Embedding(NUM_FEATURE_LEVELS, dim)  # added to the memory values, not positions
        self.class_embed = nn.Linear(dim, config.num_classes + 1)
        self.mask_embed = MLP(dim, dim, config.mask_dim, 3)
        self.audio_proj = MLP(config.audio_dim, dim, dim, 2) if audio else None
        self.v2a = CrossAttentionLayer(dim, heads) if audio else None
        self.a2a = SelfAttentionLayer(dim, heads) if audio else None

    def forward(
        self,
        multi_scale_features: list[torch.Tensor],
        mask_features: torch.Tensor,
        audio: torch.Tensor | None,
        batch_size: int,
    ) -> dict:
        """multi_scale_features [(B·T, C, h_l, w_l)] strides 32, 16, 8; mask_features (B·T, mask_dim, H/4, W/4);
        audio (B·T, A) fused per-frame audio (None without ``audio_conditioning``); rows of all three are
        batch-major (clip b, frame t at b·T + t) ->
        {"pred_logits": (B, Q, K+1), "pred_masks": (B, Q, T, H/4, W/4),
         "aux_outputs": [{"pred_logits", "pred_masks"}] × num_layers (the earlier predictions, first to last)}."""
        if len(multi_scale_features) != NUM_FEATURE_LEVELS:
            raise ValueError(f"expected {NUM_FEATURE_LEVELS} feature levels, got {len(multi_scale_features)}")
        if (audio is not None) != self.config.audio_conditioning:
            raise ValueError("audio must be given exactly when audio_conditioning is on")
        frames = mask_features.shape[0] // batch_size
        if frames * batch_size != mask_features.shape[0] or not 1 <= frames <= self.config.num_frames:
            raise ValueError(
                f"{mask_features.shape[0]} frames do not split into {batch_size} clips of 1..{self.config.num_frames}"
            )
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
        if audio is not None:
            audio_tokens = self.audio_proj(audio).view(batch_size, frames, dim)  # (B, T, C): clip-major rows
            audio_pos = self.audio_query_embed.weight[None, :frames]  # (1, T, C)
            queries = self.v2a(queries, audio_tokens, query_pos, audio_pos)
        predictions = [self._predict(queries, mask_features, mask_shape)]
        blocked = attention_mask_from_masks(predictions[-1][1], sizes[0])
        if audio is not None:
            audio_tokens = self.a2a(audio_tokens, audio_pos)

        for i in range(self.config.num_layers):
            level = i % NUM_FEATURE_LEVELS
            queries = self.transformer_cross_attention_layers[i](
                queries, memories[level], query_pos, positions[level], blocked
            )
            queries = self.transformer_self_attention_layers[i](queries, query_pos)
            if audio is not None:
                queries = self.transformer_audio_cross_attention_layers[i](queries, audio_tokens, query_pos, audio_pos)
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
