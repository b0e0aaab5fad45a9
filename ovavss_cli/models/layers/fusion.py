"""Audio-visual early fusion: GLIP-style bi-directional attention between visual tokens and one audio token.

The reference (``VLFuse`` -> ``BiAttentionBlockForCheckpoint`` -> ``BiMultiHeadAttention``) fuses the
concatenated multi-scale tokens of each frame (N = B·T frames, L_v tokens of 256) with that frame's
128-d VGGish embedding, used as a single "language" token:

    v̂, â = LN_v(v), LN_a(a)
    S    = (v_proj(v̂)·d^-1/2)·l_proj(â)ᵀ                      per head, (L_v, 1), clamped to ±50000
    v'   = v̂ + γ_v ⊙ out_v_proj(softmax_1(S)·values_l_proj(â))  the softmax over ONE key is exactly 1
    a'   = â + γ_a ⊙ out_l_proj(softmax_Lv(Sᵀ − max)·values_v_proj(v̂))

Because there is a single audio key, two products are folded through the (linear) projections here
instead of materialising three (N, L_v, 1024) tensors: the scores use ``l_proj(â)`` pushed back
through ``v_proj``'s weights, and the audio update pools v̂ first and projects the pooled vector.
The result is the same function (to float rounding) at a fraction of the time and memory. The
attention dropout (hard-coded 0.1 in the reference, training only) is kept on both directions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The reference clamps scores to this range (fp16-safe) before both softmaxes.
SCORE_CLAMP = 50000.0


class BiDirectionalAttention(nn.Module):
    """The projections of the reference's ``BiMultiHeadAttention`` and both attention directions."""

    def __init__(self, visual_dim: int, audio_dim: int, embed_dim: int, num_heads: int, dropout: float = 0.1):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.v_proj = nn.Linear(visual_dim, embed_dim)
        self.l_proj = nn.Linear(audio_dim, embed_dim)
        self.values_v_proj = nn.Linear(visual_dim, embed_dim)
        self.values_l_proj = nn.Linear(audio_dim, embed_dim)
        self.out_v_proj = nn.Linear(embed_dim, visual_dim)
        self.out_l_proj = nn.Linear(embed_dim, audio_dim)
        for linear in (
            self.v_proj,
            self.l_proj,
            self.values_v_proj,
            self.values_l_proj,
            self.out_v_proj,
            self.out_l_proj,
        ):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def _per_head(self, linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        # weight (H·d, C) -> (H, d, C); bias (H·d,) -> (H, d)
        return linear.weight.view(self.num_heads, self.head_dim, -1), linear.bias.view(self.num_heads, self.head_dim)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """visual (N, L, Cv) normalised tokens, audio (N, Ca) normalised -> updates
        (delta_visual (N, L, Cv) in training, (N, 1, Cv) in eval (the same for every token), delta_audio (N, Ca))."""
        batch, length, _ = visual.shape
        heads = self.num_heads
        key = self.l_proj(audio).view(batch, heads, self.head_dim)  # (N, H, d)
        audio_value = self.values_l_proj(audio).view(batch, heads, self.head_dim)  # (N, H, d)

        # Scores S[n, h, l] = d^-1/2 · (v̂_l W_q,hᵀ + b_q,h) · k_n,h, with k folded into W_q first.
        query_weight, query_bias = self._per_head(self.v_proj)
        folded_weight = torch.einsum("nhd,hdc->nhc", key, query_weight)  # (N, H, Cv)
        folded_bias = torch.einsum("nhd,hd->nh", key, query_bias)  # (N, H)
        scores = (torch.einsum("nlc,nhc->nhl", visual, folded_weight) + folded_bias[..., None]) * self.head_dim**-0.5
        scores = scores.clamp(-SCORE_CLAMP, SCORE_CLAMP)

        # Audio <- visual: softmax over the L visual tokens after max-subtraction (and the clamp again).
        audio_probs = (scores - scores.max(-1, keepdim=True)[0]).clamp(-SCORE_CLAMP, SCORE_CLAMP).softmax(-1)
        audio_probs = F.dropout(audio_probs, p=self.dropout, training=self.training)  # (N, H, L)
        # Σ_l p_l·values_v_proj(v̂_l) = (Σ_l p_l v̂_l) W_vᵀ + (Σ_l p_l) b_v: pool first, project once.
        value_weight, value_bias = self._per_head(self.values_v_proj)
        pooled = torch.einsum("nhl,nlc->nhc", audio_probs, visual)  # (N, H, Cv)
        audio_out = torch.einsum("nhc,hdc->nhd", pooled, value_weight) + audio_probs.sum(-1)[..., None] * value_bias
        delta_audio = self.out_l_proj(audio_out.reshape(batch, heads * self.head_dim))

        # Visual <- audio: the softmax over one key is 1, so every token receives the audio value;
        # out_v_proj is applied per head so that the training dropout can drop (token, head) pairs.
        out_weight = self.out_v_proj.weight.view(-1, heads, self.head_dim)  # (Cv, H, d)
        per_head = torch.einsum("nhd,chd->nhc", audio_value, out_weight)  # (N, H, Cv)
        if self.training:
            keep = F.dropout(visual.new_ones(batch, heads, length), p=self.dropout, training=True)
            delta_visual = torch.einsum("nhl,nhc->nlc", keep, per_head) + self.out_v_proj.bias
        else:
            delta_visual = (per_head.sum(1) + self.out_v_proj.bias)[:, None, :]
        return delta_visual, delta_audio


class AudioVisualBiAttention(nn.Module):
    """Early fusion block (the reference's ``b_attn``): pre-norm, bi-directional attention, layer-scaled residuals.

    The residuals are added to the NORMALISED inputs (GLIP style), so the fused visual tokens that
    enter the deformable encoder are LayerNorm-ed.
    """

    def __init__(
        self,
        visual_dim: int = 256,
        audio_dim: int = 128,
        embed_dim: int = 1024,
        num_heads: int = 8,
        dropout: float = 0.1,
        layer_scale_init: float = 1.0 / 6,
    ):
        super().__init__()
        self.layer_norm_v = nn.LayerNorm(visual_dim)
        self.layer_norm_l = nn.LayerNorm(audio_dim)
        self.attn = BiDirectionalAttention(visual_dim, audio_dim, embed_dim, num_heads, dropout)
        self.gamma_v = nn.Parameter(torch.full((visual_dim,), layer_scale_init))
        self.gamma_l = nn.Parameter(torch.full((audio_dim,), layer_scale_init))

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """visual (N, L, Cv) tokens of N frames, audio (N, Ca) one embedding per frame -> (N, L, Cv), (N, Ca)."""
        visual = self.layer_norm_v(visual)
        audio = self.layer_norm_l(audio)
        delta_visual, delta_audio = self.attn(visual, audio)
        return visual + self.gamma_v * delta_visual, audio + self.gamma_l * delta_audio
