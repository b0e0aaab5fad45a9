"""The OV-AVSS training loss: Hungarian-matched set loss with PointRend-sampled mask terms (ovavss-spec.md §6).

For every decoder output (the final one and, with deep supervision, the 9 auxiliary ones) queries are matched
to GT objects anew, then

* ``loss_ce``: cross-entropy over all queries, matched -> the GT class, unmatched -> "no object" (weight 0.1),
  as a class-weighted mean over the batch's queries;
* ``loss_mask`` / ``loss_dice``: for every matched (query, GT) pair and every *supervised* frame, BCE and dice
  at 12,544 importance-sampled points, summed and divided by the number of GT objects (not objects x frames).

The total is ``sum over outputs of 2 * loss_ce + 5 * loss_mask + 5 * loss_dice``.

What "a batch equals its clips" means here. All randomness of clip i comes from its own generator, so its
matching and its points do not depend on the other clips. The terms are normalised over the whole batch, so
the identity that holds is additive: with ``n_k`` GT objects in clip k (a clip's own normaliser is
``max(n_k, 1)``, which changes nothing since a clip without objects has no mask terms) and ``W_k`` the sum of the
class weights of its queries (``n_k * 1 + (Q - n_k) * 0.1``)::

    loss_mask(A, B) * (n_A + n_B) == loss_mask(A) * n_A + loss_mask(B) * n_B      (same for loss_dice)
    loss_ce(A, B) * (W_A + W_B)   == loss_ce(A) * W_A + loss_ce(B) * W_B
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .matcher import ClipTarget, HungarianMatcher, MatchIndices
from .point_sampling import ImportanceSamplingConfig, importance_points, point_sample


@dataclass(frozen=True)
class CriterionConfig:
    """The reference's loss settings (``MASK_FORMER.*`` in configs/avsbench/OV_AVSS_R50.yaml)."""

    num_classes: int = 1  # class-agnostic "sounding object"; the head adds one "no object" logit
    class_weight: float = 2.0  # weights of the loss terms and of the matching costs alike
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    matcher_points: int = 12544
    sampling: ImportanceSamplingConfig = field(default_factory=ImportanceSamplingConfig)
    deep_supervision: bool = True


@dataclass
class SetLoss:
    """The weighted total to back-propagate and every named term (``loss_ce``, ``loss_mask_3``, ...) to log."""

    total: Tensor
    terms: dict[str, Tensor]


def mask_bce(logits: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """Per-row mean over points of weighted BCE-with-logits: (R, P) x3 -> (R,). Zero-weight points add nothing."""
    return (F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * weights).mean(1)


def dice(logits: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """Per-row weighted dice loss with +1 smoothing: (R, P) x3 -> (R,)."""
    probs = logits.sigmoid() * weights
    overlap = 2.0 * (probs * labels).sum(1)
    sizes = probs.sum(1) + (labels * weights).sum(1)
    return 1.0 - (overlap + 1.0) / (sizes + 1.0)


def count_objects(targets: list[ClipTarget], device: torch.device) -> float:
    """The mask-loss normaliser: GT objects per rank, averaged over ranks when distributed, at least 1."""
    count = torch.tensor([float(sum(target.num_objects for target in targets))], device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(count)
        count /= dist.get_world_size()
    return max(count.item(), 1.0)


class SetCriterion(nn.Module):
    """Matches queries to GT objects per output and sums the weighted class, mask and dice terms."""

    def __init__(
        self,
        matcher: HungarianMatcher,
        num_classes: int = 1,
        class_weight: float = 2.0,
        mask_weight: float = 5.0,
        dice_weight: float = 5.0,
        no_object_weight: float = 0.1,
        sampling: ImportanceSamplingConfig | None = None,
        deep_supervision: bool = True,
    ):
        super().__init__()
        self.matcher = matcher
        self.num_classes = num_classes
        self.term_weights = {"loss_ce": class_weight, "loss_mask": mask_weight, "loss_dice": dice_weight}
        self.sampling = sampling or ImportanceSamplingConfig()
        self.deep_supervision = deep_supervision
        class_weights = torch.ones(num_classes + 1)
        class_weights[-1] = no_object_weight  # the last logit is "no object"
        self.register_buffer("class_weights", class_weights, persistent=False)

    def class_loss(self, logits: Tensor, targets: list[ClipTarget], indices: list[MatchIndices]) -> Tensor:
        """logits: (B, Q, C+1). Class-weighted mean cross-entropy over all B*Q queries."""
        classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        for clip, ((query_idx, gt_idx), target) in enumerate(zip(indices, targets, strict=True)):
            classes[clip, query_idx] = target.labels[gt_idx]
        weights = self.class_weights.to(logits.device)  # follows the outputs even if the criterion was never moved
        return F.cross_entropy(logits.float().transpose(1, 2), classes, weight=weights)

    def mask_losses(
        self,
        masks: Tensor,
        targets: list[ClipTarget],
        indices: list[MatchIndices],
        generators: list[torch.Generator],
        num_objects: float,
    ) -> tuple[Tensor, Tensor]:
        """masks: (B, Q, T, h, w) logits. Returns (loss_mask, loss_dice), each summed over matched pairs and
        supervised frames and divided by ``num_objects``."""
        logits, labels, weights = [], [], []
        for clip, ((query_idx, gt_idx), target, generator) in enumerate(zip(indices, targets, generators, strict=True)):
            if query_idx.numel() == 0:
                continue
            # One row per (matched pair, supervised frame), pair-major: row r reads supervised frame r % T_valid.
            pred = target.supervised(masks[clip, query_idx]).flatten(0, 1).unsqueeze(1)  # (R, 1, h, w)
            coords = importance_points(pred, self.sampling, generator)  # (R, P, 2), from this clip's stream only
            with torch.no_grad():
                gt = target.supervised(target.masks[gt_idx]).flatten(0, 1).unsqueeze(1)  # (R, 1, H, W)
                labels.append(point_sample(gt, coords)[:, 0])  # bilinear: soft labels at object edges
                weights.append(target.frame_weights(coords))
            logits.append(point_sample(pred, coords)[:, 0])
        if not logits:
            # No object anywhere in the batch: zero terms that still reach the graph (DDP needs every output used).
            zero = masks.sum() * 0.0
            return zero, zero.clone()
        logits, labels, weights = torch.cat(logits), torch.cat(labels), torch.cat(weights)
        return mask_bce(logits, labels, weights).sum() / num_objects, dice(logits, labels, weights).sum() / num_objects

    def forward(self, outputs: dict, targets: list[ClipTarget], generators: list[torch.Generator]) -> SetLoss:
        """outputs: {"pred_logits": (B, Q, C+1), "pred_masks": (B, Q, T, h, w), "aux_outputs": [same] x 9};
        ``targets`` (on the outputs' device) and ``generators``: one per clip, in batch order."""
        num_objects = count_objects(targets, outputs["pred_logits"].device)
        layers = [outputs] + (list(outputs.get("aux_outputs", [])) if self.deep_supervision else [])
        terms: dict[str, Tensor] = {}
        total = outputs["pred_logits"].new_zeros((), dtype=torch.float32)
        for layer_index, layer in enumerate(layers):
            # The reference names the final output's terms bare and the auxiliary ones loss_*_0 .. loss_*_8.
            suffix = "" if layer_index == 0 else f"_{layer_index - 1}"
            indices = self.matcher(layer, targets, generators)
            loss_mask, loss_dice = self.mask_losses(layer["pred_masks"], targets, indices, generators, num_objects)
            layer_terms = {
                "loss_ce": self.class_loss(layer["pred_logits"], targets, indices),
                "loss_mask": loss_mask,
                "loss_dice": loss_dice,
            }
            for name, value in layer_terms.items():
                terms[name + suffix] = value
                total = total + self.term_weights[name] * value
        return SetLoss(total=total, terms=terms)


def build_criterion(config: CriterionConfig | None = None) -> SetCriterion:
    """The OV-AVSS criterion; the matcher uses the loss weights as its cost weights, as the reference does."""
    config = config or CriterionConfig()
    matcher = HungarianMatcher(
        cost_class=config.class_weight,
        cost_mask=config.mask_weight,
        cost_dice=config.dice_weight,
        num_points=config.matcher_points,
    )
    return SetCriterion(
        matcher,
        num_classes=config.num_classes,
        class_weight=config.class_weight,
        mask_weight=config.mask_weight,
        dice_weight=config.dice_weight,
        no_object_weight=config.no_object_weight,
        sampling=config.sampling,
        deep_supervision=config.deep_supervision,
    )
