"""Hungarian matching of clip-level queries to ground-truth objects (Mask2Former-VIS, as OV-AVSS trains).

Each query predicts one mask over all T frames of a clip. Its cost against a GT object is
``2 * class + 5 * mask BCE + 5 * dice``, with the mask terms read at 12,544 uniform random points shared by
all queries, all GT objects and all supervised frames of the clip (ovavss-spec.md §6). scipy's
``linear_sum_assignment`` then picks the cheapest one-to-one assignment, independently for every clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from .point_sampling import point_sample, point_sample_shared, uniform_points

MatchIndices = tuple[Tensor, Tensor]  # (query indices, GT indices), both int64 (n,), in assignment order


@dataclass
class ClipTarget:
    """Ground truth of one training clip, at the padded input resolution.

    ``frame_valid`` marks the frames that carry supervision: an AVSBench v1s training clip is annotated on
    frame 0 only, so its other frames are masked out of matching and losses (never sliced away, so a batch can
    mix v1s clips with fully annotated ones). ``ignore`` marks pixels that must not be supervised either way
    (e.g. the masks of novel classes under the ``ignore-novel`` split rule): points falling there get weight 0
    in the mask terms; the class term is unaffected.
    """

    labels: Tensor  # (N,) int64 class ids; all 0 for OV-AVSS's class-agnostic "sounding object"
    masks: Tensor  # (N, T, H, W) {0, 1} (bool or float); zero in frames where the object is absent
    frame_valid: Tensor | None = None  # (T,) bool; None means every frame is supervised
    ignore: Tensor | None = None  # (T, H, W) bool; None means no pixel is ignored

    def __post_init__(self) -> None:
        if self.masks.dim() != 4:
            raise ValueError(f"masks must be (N, T, H, W), got shape {tuple(self.masks.shape)}")
        num_objects, num_frames, height, width = self.masks.shape
        if self.labels.shape != (num_objects,):
            raise ValueError(f"labels must be ({num_objects},) to match masks, got {tuple(self.labels.shape)}")
        if self.frame_valid is None:
            self.frame_valid = torch.ones(num_frames, dtype=torch.bool, device=self.masks.device)
        if self.frame_valid.shape != (num_frames,) or self.frame_valid.dtype != torch.bool:
            raise ValueError(f"frame_valid must be a ({num_frames},) bool tensor")
        if not bool(self.frame_valid.any()):
            raise ValueError("frame_valid selects no frame: a training clip needs at least one supervised frame")
        if self.ignore is not None and self.ignore.shape != (num_frames, height, width):
            raise ValueError(f"ignore must be ({num_frames}, {height}, {width}), got {tuple(self.ignore.shape)}")

    @property
    def num_objects(self) -> int:
        return self.labels.shape[0]

    @property
    def valid_frames(self) -> Tensor:
        """(T_valid,) indices of the supervised frames."""
        return self.frame_valid.nonzero()[:, 0]

    def supervised(self, per_frame: Tensor) -> Tensor:
        """The supervised frames of a (K, T, ...) tensor (predictions or masks); no copy when all frames are."""
        return per_frame if bool(self.frame_valid.all()) else per_frame[:, self.valid_frames]

    def frame_weights(self, coords: Tensor) -> Tensor:
        """Supervision weight at points: 1 - the (bilinear) ignored fraction, 1 everywhere without ``ignore``.

        coords: (R, P, 2) with rows cycling over the valid frames (row r reads frame ``valid_frames[r % T_valid]``),
        R a multiple of T_valid. Returns (R, P) float.
        """
        if self.ignore is None:
            return torch.ones(coords.shape[:2], device=coords.device)
        ignore = self.ignore[self.valid_frames]  # (T_valid, H, W)
        ignore = ignore.repeat(coords.shape[0] // ignore.shape[0], 1, 1).unsqueeze(1)  # (R, 1, H, W)
        return 1.0 - point_sample(ignore, coords)[:, 0]


def pairwise_mask_bce(logits: Tensor, labels: Tensor, weights: Tensor | None) -> Tensor:
    """Mean (weighted) BCE-with-logits of every prediction against every target: (Q, K), (N, K), (K,) -> (Q, N)."""
    against_one = F.softplus(-logits)  # BCE of a logit against label 1
    against_zero = against_one + logits  # ... against label 0: softplus(x) = softplus(-x) + x, one pass saved
    if weights is not None:
        against_one, against_zero = against_one * weights, against_zero * weights
    return (against_one @ labels.T + against_zero @ (1.0 - labels).T) / logits.shape[1]


def pairwise_dice(logits: Tensor, labels: Tensor, weights: Tensor | None) -> Tensor:
    """(Weighted) dice loss of every prediction against every target: (Q, K), (N, K), (K,) -> (Q, N)."""
    probs = logits.sigmoid()
    if weights is not None:
        probs, labels_sum = probs * weights, (labels * weights).sum(-1)
    else:
        labels_sum = labels.sum(-1)
    overlap = 2.0 * probs @ labels.T
    sizes = probs.sum(-1)[:, None] + labels_sum[None, :]
    return 1.0 - (overlap + 1.0) / (sizes + 1.0)


class HungarianMatcher(nn.Module):
    """Assigns GT objects to queries by minimum total cost, one clip at a time (no learnable state)."""

    def __init__(
        self, cost_class: float = 2.0, cost_mask: float = 5.0, cost_dice: float = 5.0, num_points: int = 12544
    ):
        super().__init__()
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("at least one matching cost must be non-zero")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points

    @torch.no_grad()
    def cost_matrix(self, logits: Tensor, masks: Tensor, target: ClipTarget, generator: torch.Generator) -> Tensor:
        """Matching cost of one clip.

        logits: (Q, C+1) class logits; masks: (Q, T, h, w) mask logits. Draws ``num_points`` shared points from
        ``generator``. Returns (Q, N) float32.
        """
        if masks.shape[1] != target.masks.shape[1]:
            raise ValueError(f"predictions have {masks.shape[1]} frames but the target has {target.masks.shape[1]}")
        coords = uniform_points(1, self.num_points, generator, masks.device)[0]  # (P, 2)
        # Every (query or object, frame) map is read at the same points, then a query's frames are concatenated.
        pred = point_sample_shared(target.supervised(masks).flatten(0, 1), coords)  # (Q*Tv, P)
        gt = point_sample_shared(target.supervised(target.masks).flatten(0, 1), coords)  # (N*Tv, P)
        pred = pred.reshape(masks.shape[0], -1)  # (Q, Tv*P)
        gt = gt.reshape(target.num_objects, -1)  # (N, Tv*P)
        weights = None  # every point counts fully unless some pixels are ignored
        if target.ignore is not None:
            num_valid = target.valid_frames.numel()
            weights = target.frame_weights(coords.expand(num_valid, -1, -1)).flatten()  # (Tv*P,)

        cost_class = -logits.float().softmax(-1)[:, target.labels.to(logits.device)]  # (Q, N)
        return (
            self.cost_class * cost_class
            + self.cost_mask * pairwise_mask_bce(pred, gt, weights)
            + self.cost_dice * pairwise_dice(pred, gt, weights)
        )

    @torch.no_grad()
    def forward(
        self, outputs: dict[str, Tensor], targets: list[ClipTarget], generators: list[torch.Generator]
    ) -> list[MatchIndices]:
        """outputs: {"pred_logits": (B, Q, C+1), "pred_masks": (B, Q, T, h, w)}; one target and one generator
        per clip. Returns, per clip, (query indices, GT indices) of length min(Q, N)."""
        logits, masks = outputs["pred_logits"], outputs["pred_masks"]
        if not len(targets) == len(generators) == logits.shape[0]:
            raise ValueError(
                f"batch of {logits.shape[0]} clips needs as many targets ({len(targets)}) "
                f"and generators ({len(generators)})"
            )
        indices = []
        for clip_logits, clip_masks, target, generator in zip(logits, masks, targets, generators, strict=True):
            if target.num_objects == 0:
                empty = torch.zeros(0, dtype=torch.int64)
                indices.append((empty, empty.clone()))
                continue
            cost = self.cost_matrix(clip_logits, clip_masks, target, generator)
            query_idx, gt_idx = linear_sum_assignment(cost.cpu().numpy())
            indices.append((torch.as_tensor(query_idx, dtype=torch.int64), torch.as_tensor(gt_idx, dtype=torch.int64)))
        return indices
