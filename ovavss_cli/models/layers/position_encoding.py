"""DETR-style normalised sine position encodings: 2-D for the pixel decoder, 3-D for the mask decoder.

Without a padding mask (the reference never uses one) the encoding is the same for every image, so
these functions return one map and let the caller broadcast it over the batch. The float32 arithmetic
is the reference's, operation for operation, so the values are bit-identical to it.
"""

from __future__ import annotations

import math

import torch

TEMPERATURE = 10000.0
SCALE = 2 * math.pi  # normalised positions span (0, 2π]


def _normalized_positions(length: int, device: torch.device | None) -> torch.Tensor:
    # (length,) positions 1..length, normalised to (0, SCALE]; eps as in DETR.
    positions = torch.arange(1, length + 1, dtype=torch.float32, device=device)
    return positions / (positions[-1:] + 1e-6) * SCALE


def _sine_features(positions: torch.Tensor, num_feats: int) -> torch.Tensor:
    # (N,) -> (N, F): channels alternate sin(p / d_0), cos(p / d_1), ... with d_i = 10000^(2 floor(i/2) / F).
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=positions.device).div(2, rounding_mode="floor")
    dim_t = TEMPERATURE ** (2 * dim_t / num_feats)
    angles = positions[:, None] / dim_t
    return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)


def sine_position_encoding_2d(
    height: int, width: int, num_feats: int = 128, device: torch.device | None = None
) -> torch.Tensor:
    """(2·num_feats, H, W): channels [y-features, x-features]."""
    pos_y = _sine_features(_normalized_positions(height, device), num_feats)  # (H, F)
    pos_x = _sine_features(_normalized_positions(width, device), num_feats)  # (W, F)
    return torch.cat(
        (pos_y[:, None, :].expand(height, width, num_feats), pos_x[None, :, :].expand(height, width, num_feats)), dim=2
    ).permute(2, 0, 1)


def sine_position_encoding_3d(
    frames: int, height: int, width: int, num_feats: int = 128, device: torch.device | None = None
) -> torch.Tensor:
    """(T, 2·num_feats, H, W): the 2-D encoding plus (ADDED, not concatenated) a 2·num_feats time encoding.

    As in the reference (Mask2Former-VIS): the time term uses the normalised frame index (t+1)/T·2π
    with its own frequencies d_i = 10000^(2 floor(i/2) / (2·num_feats)).
    """
    spatial = sine_position_encoding_2d(height, width, num_feats, device)  # (2F, H, W)
    temporal = _sine_features(_normalized_positions(frames, device), 2 * num_feats)  # (T, 2F)
    return spatial[None] + temporal[:, :, None, None]
