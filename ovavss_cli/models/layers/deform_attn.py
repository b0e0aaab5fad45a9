"""Multi-scale deformable attention (Deformable DETR) in pure PyTorch.

``F.grid_sample(bilinear, zeros, align_corners=False)`` on the grid ``2·loc − 1`` samples exactly
``loc·W − 0.5`` with out-of-map corners counted as 0, which is the function the compiled CUDA kernel
computes (ovavss-spec §2.3); only the float summation order differs. No compiled op is needed, and the
levels are processed one at a time so the per-level samples are never stacked in memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def multi_scale_deformable_attention(
    value: torch.Tensor,
    spatial_shapes: Sequence[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Weighted sum of bilinear samples over levels and points.

    value: (N, M, D, sum_l H_l·W_l) per-head values, levels concatenated in ``spatial_shapes`` order.
    sampling_locations: (N, Lq, M, L, P, 2) normalised (x, y) in [0, 1] (may fall outside).
    attention_weights: (N, Lq, M, L, P), already softmaxed over (L, P).
    Returns (N, Lq, M·D).
    """
    batch, heads, head_dim, _ = value.shape
    _, num_queries, _, _, points, _ = sampling_locations.shape
    # Point-major layouts, so that each point's samples and weights are contiguous rows of length Lq:
    # grids (N·M, L, P, Lq, 2), weights (N·M, 1, L, P, Lq).
    grids = (2 * sampling_locations - 1).permute(0, 2, 3, 4, 1, 5).flatten(0, 1)
    weights = attention_weights.permute(0, 2, 3, 4, 1).reshape(batch * heads, 1, -1, points, num_queries)
    output = None
    start = 0
    for level, (height, width) in enumerate(spatial_shapes):
        # (N, M, D, H_l·W_l) slice -> (N·M, D, H, W), a view
        value_l = value[..., start : start + height * width].flatten(0, 1).unflatten(-1, (height, width))
        start += height * width
        sampled = F.grid_sample(value_l, grids[:, level], mode="bilinear", padding_mode="zeros", align_corners=False)
        # sampled (N·M, D, P, Lq); accumulate Σ_p w_p·s_p in place: ~3× faster on CPU than one mul + sum.
        for point in range(points):
            if output is None:
                output = sampled[:, :, point] * weights[:, :, level, point]
            else:
                output.addcmul_(sampled[:, :, point], weights[:, :, level, point])
    return output.view(batch, heads * head_dim, num_queries).transpose(1, 2)


class MultiScaleDeformableAttention(nn.Module):
    """Deformable attention over L feature levels: each query samples P points per level and head.

    Parameter names (``sampling_offsets``, ``attention_weights``, ``value_proj``, ``output_proj``) and
    initialisation are the reference's (Deformable DETR's ``MSDeformAttn``).
    """

    def __init__(self, dim: int = 256, num_levels: int = 3, num_heads: int = 8, num_points: int = 4):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_levels = num_levels
        self.num_heads = num_heads
        self.num_points = num_points
        self.sampling_offsets = nn.Linear(dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # Offsets start as a rotating grid: head h points in direction 2πh/M, point p at distance p + 1.
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        directions = torch.stack([thetas.cos(), thetas.sin()], -1)
        directions = directions / directions.abs().max(-1, keepdim=True)[0]
        distances = torch.arange(1, self.num_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        grid = directions.view(self.num_heads, 1, 1, 2).repeat(1, self.num_levels, self.num_points, 1) * distances
        self.sampling_offsets.bias.copy_(grid.flatten())
        # Uniform attention over (level, point) at start.
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        value: torch.Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
    ) -> torch.Tensor:
        """query (N, Lq, C), reference_points (N or 1, Lq, 2) normalised (x, y), the same at every level
        (no padding mask, so valid ratios are 1), value (N, sum H_l·W_l, C) -> (N, Lq, C)."""
        batch, num_queries, _ = query.shape
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        # value_proj straight into (N, C, L), the channels-first layout grid_sample reads: no transpose copy.
        value = torch.baddbmm(
            self.value_proj.bias[:, None], self.value_proj.weight.expand(batch, -1, -1), value.transpose(1, 2)
        ).view(batch, heads, self.dim // heads, -1)
        offsets = self.sampling_offsets(query).view(batch, num_queries, heads, levels, points, 2)
        weights = self.attention_weights(query).view(batch, num_queries, heads, levels * points)
        weights = weights.softmax(-1).view(batch, num_queries, heads, levels, points)
        # Offsets are in pixels of each level: divide by (W_l, H_l).
        normalizer = torch.tensor([[w, h] for h, w in spatial_shapes], dtype=query.dtype, device=query.device)
        locations = reference_points[:, :, None, None, None, :] + offsets / normalizer[None, None, None, :, None, :]
        output = multi_scale_deformable_attention(value, spatial_shapes, locations, weights)
        return self.output_proj(output)
