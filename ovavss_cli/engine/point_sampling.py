"""PointRend-style point sampling for mask losses: read maps at continuous points, pick uncertain ones.

Masks are compared at a few thousand points instead of every pixel (Mask2Former / PointRend). Points are
normalised ``(x, y)`` coordinates in ``[0, 1]^2`` over the padded frame, so a stride-4 prediction and a
full-resolution target are read at the same physical location without resizing either.

All randomness is drawn from an explicit ``torch.Generator`` so that a training step can be replayed exactly
(resume) and so that the points of one clip never depend on which other clips share its batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class ImportanceSamplingConfig:
    """How many points a mask loss reads and how they are chosen (Mask2Former's training defaults)."""

    num_points: int = 12544  # 112 x 112
    oversample_ratio: float = 3.0  # candidates drawn = ratio x num_points
    importance_sample_ratio: float = 0.75  # share of the points taken from the most uncertain candidates

    def __post_init__(self) -> None:
        if self.num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {self.num_points}")
        if self.oversample_ratio < 1.0:
            raise ValueError(f"oversample_ratio must be >= 1, got {self.oversample_ratio}")
        if not 0.0 <= self.importance_sample_ratio <= 1.0:
            raise ValueError(f"importance_sample_ratio must be in [0, 1], got {self.importance_sample_ratio}")

    @property
    def num_candidates(self) -> int:
        return int(self.num_points * self.oversample_ratio)

    @property
    def num_uncertain(self) -> int:
        return int(self.importance_sample_ratio * self.num_points)

    @property
    def num_uniform(self) -> int:
        return self.num_points - self.num_uncertain


def _as_grid(coords: Tensor) -> Tensor:
    """(N, P, 2) points in [0, 1] -> (N, P, 1, 2) float32 grid in grid_sample's [-1, 1] convention."""
    return 2.0 * coords.float().unsqueeze(2) - 1.0


def _read(maps: Tensor, grid: Tensor) -> Tensor:
    """(N, C, H, W), (N, P, 1, 2) -> (N, C, P): bilinear, zeros outside, align_corners False, in float32."""
    return F.grid_sample(maps.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)[..., 0]


def point_sample(maps: Tensor, coords: Tensor) -> Tensor:
    """Bilinearly read ``maps`` at normalised points (detectron2's ``point_sample``, align_corners False).

    maps: (N, C, H, W) of any dtype; coords: (N, P, 2) as (x, y) in [0, 1]. Returns (N, C, P) float32 (low-precision
    coordinates would move the points, so the read is always in float32). Points outside the map read zeros,
    exactly as ``grid_sample`` with zero padding.
    """
    return _read(maps, _as_grid(coords))


def point_sample_shared(maps: Tensor, coords: Tensor) -> Tensor:
    """Read many maps at the same points: maps (N, H, W), coords (P, 2) -> (N, P) float32.

    Laid out as N single-channel maps sharing one stride-0 grid: on CPU ``grid_sample`` is ~4x faster this way
    than as one N-channel map, with identical values.
    """
    grid = _as_grid(coords.unsqueeze(0)).expand(maps.shape[0], -1, -1, -1)
    return _read(maps.unsqueeze(1), grid)[:, 0]


def uniform_points(num_rows: int, num_points: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """(num_rows, num_points, 2) uniform points in [0, 1)^2, drawn on the generator's device, returned on ``device``.

    Drawing on the generator's own device (normally the CPU) makes the points identical on every device.
    """
    coords = torch.rand(num_rows, num_points, 2, generator=generator, device=generator.device)
    return coords.to(device)


def logit_uncertainty(logits: Tensor) -> Tensor:
    """Uncertainty of a mask logit: highest where the logit is closest to the decision boundary 0."""
    return -logits.abs()


def importance_points(logits: Tensor, config: ImportanceSamplingConfig, generator: torch.Generator) -> Tensor:
    """Points biased towards the uncertain parts of each mask (detectron2's
    ``get_uncertain_point_coords_with_randomness``).

    logits: (R, 1, h, w) mask logits, one row per (matched pair, frame). From ``num_candidates`` uniform
    candidates per row the ``num_uncertain`` with the highest uncertainty are kept, then ``num_uniform`` fresh
    uniform points are appended. Returns (R, num_points, 2). Not differentiable (the points are a choice).
    """
    num_rows = logits.shape[0]
    # Both draws come before any selection, so the random stream consumed per row is fixed.
    candidates = uniform_points(num_rows, config.num_candidates, generator, logits.device)
    extra = uniform_points(num_rows, config.num_uniform, generator, logits.device)
    with torch.no_grad():
        uncertainty = logit_uncertainty(point_sample(logits.detach(), candidates))[:, 0]  # (R, num_candidates)
        top = uncertainty.topk(config.num_uncertain, dim=1).indices  # (R, num_uncertain)
    uncertain = torch.gather(candidates, 1, top.unsqueeze(-1).expand(-1, -1, 2))
    return torch.cat([uncertain, extra], dim=1)


# Independent random streams per clip and step, so that e.g. the augmentation never replays the loss points.
LOSS_STREAM = 0
AUGMENT_STREAM = 1


def derive_seed(run_seed: int, step: int, sample_id: int, stream: int = LOSS_STREAM) -> int:
    """A 63-bit seed for one clip at one training step, well mixed from ``(run_seed, step, sample_id, stream)``.

    ``sample_id`` must identify the clip itself (e.g. its dataset index or ``step * batch_size + i``), never
    only its slot in the batch, so that its points do not change when the batch composition changes. Seeds
    that are pure functions of the step make a resumed run replay the same randomness without saved state.
    """
    parts = {"run_seed": run_seed, "step": step, "sample_id": sample_id, "stream": stream}
    for name, value in parts.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    state = np.random.SeedSequence(list(parts.values())).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def sample_generators(
    run_seed: int, step: int, sample_ids: list[int], stream: int = LOSS_STREAM
) -> list[torch.Generator]:
    """One fresh CPU generator per clip of a batch, seeded by :func:`derive_seed`."""
    return [torch.Generator().manual_seed(derive_seed(run_seed, step, i, stream)) for i in sample_ids]
