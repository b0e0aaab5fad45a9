"""AVSC's training objective: silent-object-aware instance loss + attended-mask loss + audio category loss.

AVSBench masks cover only the objects that sound. A category that sounds in one clip is unlabeled background in
another where it is visible but silent, so a plain class-aware Mask2Former loss would teach the segmenter to
call it "no object" there. The paper's silent-object-aware objective avoids that; its exact form is not
published, ours is:

* **Instance term** (per frame, Mask2Former with K categories + "no object"; Hungarian matching and the
  PointRend-sampled mask/dice terms of ``engine.criterion`` unchanged). A GT object is a sounding region whose
  category is one of a *set* (the clip's sounding categories; one category in S4). Class cost and loss use
  the probability mass on that set: -sum_{k in set} p(k) and -log sum_{k in set} p(k).
  Unmatched queries (``silent_objective``):

  - ``"partial"`` (default): the query is "no object" *or* a visible silent object of a category that does not
    sound in the clip: loss -log(p(no object) + sum_{k not sounding} p(k)). Moving mass between those
    outcomes changes nothing, so a silent object's query is never pushed to "no object"; only claiming a
    sounding category (a duplicate, all sounding objects being matched) is penalised. No mask term touches it.
  - ``"ignore"``: queries whose argmax is a non-sounding category get no class loss; the others -> no object.
  - ``"off"``: plain Mask2Former (every unmatched query -> no object), the naive baseline.

  Clips whose categories are unknown (MS3 without an AVSBench-semantic root) use every category as the set.
* **Attended-mask term**: BCE + dice between the combined sounding probability (``correlation.py``, at stride 4)
  and the GT sounding mask (average-pooled to stride 4). With ``silent_aware_gradient`` it reaches the
  instance masks and class confidences of the clip's sounding categories only; the others get it through
  their audio score alone, so a silent object is suppressed by the audio, not erased from the segmenter.
* **Audio term**: BCE between the clip's category logits (max over its seconds: a category sounds in the clip
  if it sounds in some second) and the clip's categories (multi-hot), for clips with known categories.

Total = instance (2 ce + 5 mask + 5 dice per decoder layer) + 5 attended BCE + 5 attended dice + 2 audio.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.train_targets import frame_objects
from .criterion import CriterionConfig, SetCriterion, SetLoss, dice, mask_bce
from .matcher import ClipTarget, HungarianMatcher, MatchIndices

SILENT_OBJECTIVES = ("partial", "ignore", "off")


@dataclass(frozen=True)
class AVSCLossConfig:
    instance: CriterionConfig = field(default_factory=CriterionConfig)  # num_classes is the model's K
    silent_objective: str = "partial"  # "partial" | "ignore" | "off"
    silent_aware_gradient: bool = True
    attended_bce_weight: float = 5.0
    attended_dice_weight: float = 5.0
    audio_weight: float = 2.0
    # Frames with several sounding categories (MS3) have one binary mask: split it into connected components
    # (one GT object each, any of the clip's categories) instead of one object for the whole mask.
    split_multi_source: bool = True
    min_component_pixels: int = 16  # smaller components are no GT object (they stay in the attended target)

    def __post_init__(self) -> None:
        if self.silent_objective not in SILENT_OBJECTIVES:
            raise ValueError(f"silent_objective must be one of {SILENT_OBJECTIVES}, got {self.silent_objective!r}")


@dataclass
class InstanceTarget(ClipTarget):
    """A frame's GT objects with the *set* of categories each may have (``labels`` holds a representative)."""

    label_sets: Tensor | None = None  # (N, K+1) bool; the last column ("no object") is False
    unmatched_classes: Tensor | None = None  # (K+1,) bool: what an unmatched query may be ("partial" rule)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.label_sets is None or self.label_sets.shape[0] != self.num_objects or self.unmatched_classes is None:
            raise ValueError("label_sets (N, K+1) and unmatched_classes (K+1,) are required")

    def to(self, device: torch.device) -> InstanceTarget:
        return InstanceTarget(
            self.labels.to(device),
            self.masks.to(device),
            self.frame_valid.to(device),
            None if self.ignore is None else self.ignore.to(device),
            self.label_sets.to(device),
            self.unmatched_classes.to(device),
        )


def build_instance_target(
    mask: np.ndarray, categories: np.ndarray | None, num_categories: int, config: AVSCLossConfig
) -> InstanceTarget:
    """One frame's target (``data.train_targets.frame_objects``). mask (H, W) bool sounding pixels; categories
    (K,) bool of the clip, or None (unknown)."""
    frame = frame_objects(
        mask,
        categories,
        num_categories,
        split_multi_source=config.split_multi_source,
        min_component_pixels=config.min_component_pixels,
    )
    count = frame.masks.shape[0]
    return InstanceTarget(
        labels=torch.full((count,), int(np.argmax(frame.label_set)), dtype=torch.int64),
        masks=torch.from_numpy(frame.masks[:, None]).float(),
        label_sets=torch.from_numpy(np.tile(frame.label_set, (count, 1))),
        unmatched_classes=torch.from_numpy(frame.unmatched_classes),
    )


class LabelSetMatcher(HungarianMatcher):
    """Hungarian matching whose class cost is -sum of the probabilities of the GT object's category set."""

    def __init__(self, cost_class: float, cost_mask: float, cost_dice: float, num_points: int):
        super().__init__(0.0, cost_mask, cost_dice, num_points)  # the base's single-label class cost is replaced
        self.set_cost_class = cost_class

    @torch.no_grad()
    def cost_matrix(self, logits: Tensor, masks: Tensor, target: InstanceTarget, generator: torch.Generator) -> Tensor:
        """logits (Q, K+1), masks (Q, 1, h, w) -> (Q, N) cost."""
        cost = super().cost_matrix(logits, masks, target, generator)
        probs = logits.float().softmax(-1)
        return cost - self.set_cost_class * probs @ target.label_sets.to(probs).T


class SilentAwareCriterion(SetCriterion):
    """``SetCriterion`` (matching per output, deep supervision, sampled mask terms) with a class term over
    category sets and the silent-object rule for unmatched queries (module docstring)."""

    def __init__(self, config: CriterionConfig, silent_objective: str = "partial"):
        c = config
        matcher = LabelSetMatcher(c.class_weight, c.mask_weight, c.dice_weight, c.matcher_points)
        super().__init__(
            matcher, c.num_classes, c.class_weight, c.mask_weight, c.dice_weight, c.no_object_weight, c.sampling,
            c.deep_supervision,
        )  # fmt: skip
        if silent_objective not in SILENT_OBJECTIVES:
            raise ValueError(f"silent_objective must be one of {SILENT_OBJECTIVES}, got {silent_objective!r}")
        self.silent_objective = silent_objective

    def class_loss(self, logits: Tensor, targets: list[InstanceTarget], indices: list[MatchIndices]) -> Tensor:
        """logits (B, Q, K+1) -> weighted mean over queries of -log p(allowed classes); matched queries weigh 1,
        unmatched ones the no-object weight (0 for those the "ignore" rule skips)."""
        log_probs = logits.float().log_softmax(-1)
        num_queries, device = log_probs.shape[1], log_probs.device
        no_object_only = torch.zeros(log_probs.shape[-1], dtype=torch.bool, device=device)
        no_object_only[-1] = True
        allowed, weights = [], []
        for clip, ((query_idx, gt_idx), target) in enumerate(zip(indices, targets, strict=True)):
            silent_ok = target.unmatched_classes.to(device)
            unmatched = silent_ok if self.silent_objective == "partial" else no_object_only
            clip_allowed = unmatched.expand(num_queries, -1).clone()
            clip_allowed[query_idx] = target.label_sets[gt_idx].to(device)
            clip_weights = torch.full((num_queries,), float(self.class_weights[-1]), device=device)
            if self.silent_objective == "ignore":
                predicted = log_probs[clip].argmax(-1)
                clip_weights[silent_ok[predicted] & (predicted != self.num_classes)] = 0.0
            clip_weights[query_idx] = 1.0
            allowed.append(clip_allowed)
            weights.append(clip_weights)
        allowed, weights = torch.stack(allowed), torch.stack(weights)
        per_query = -log_probs.masked_fill(~allowed, float("-inf")).logsumexp(-1)  # (B, Q)
        return (weights * per_query).sum() / weights.sum().clamp(min=1e-6)


def attended_mask_losses(probs: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    """probs (N, h, w) sounding probabilities at stride s of gt (N, H, W) {0, 1} -> (BCE, dice), means over frames.

    The GT is average-pooled to the prediction's grid (soft labels at object edges); both terms are computed in
    float32 as BCE-with-logits on logit(p) (autocast forbids fp16 BCE on probabilities).
    """
    stride = gt.shape[-1] // probs.shape[-1]
    with torch.autocast(probs.device.type, enabled=False):
        target = F.avg_pool2d(gt[:, None].float(), stride)[:, 0].flatten(1) if stride > 1 else gt.float().flatten(1)
        logits = torch.logit(probs.float(), eps=1e-6).flatten(1)
        weights = torch.ones_like(logits)
        return mask_bce(logits, target, weights).mean(), dice(logits, target, weights).mean()


def audio_category_loss(audio_logits: Tensor, audio_clip: Tensor, categories: Tensor, known: Tensor) -> Tensor:
    """audio_logits (M, K) per second, audio_clip (M,) the clip of each row, categories (B, K) bool, known (B,)
    -> BCE of the per-clip max logit against the clip's categories, mean over known clips and categories."""
    batch, num_categories = categories.shape
    logits = audio_logits.float()
    clip_logits = logits.new_full((batch, num_categories), float("-inf"))
    clip_logits = clip_logits.scatter_reduce(0, audio_clip[:, None].expand_as(logits), logits, "amax")
    if not bool(known.any()):
        return audio_logits.sum() * 0.0  # still part of the graph (DDP needs every output used)
    return F.binary_cross_entropy_with_logits(clip_logits[known], categories[known].float())


@dataclass
class AVSCTargets:
    """One batch's supervision, frame-major for the segmenter and clip-major for the audio."""

    instances: list[InstanceTarget]  # one per segmented frame
    sounding_masks: Tensor  # (N, Hp, Wp) {0, 1} float: the GT sounding mask of each frame
    audio_clip: Tensor  # (M,) int64: the clip of each audio example
    categories: Tensor  # (B, K) bool
    known: Tensor  # (B,) bool: whether the clip's categories are known
    frame_clip: Tensor  # (N,) int64: the clip of each frame

    def to(self, device: torch.device) -> AVSCTargets:
        return AVSCTargets(
            [target.to(device) for target in self.instances],
            *(tensor.to(device) for tensor in (self.sounding_masks, self.audio_clip, self.categories, self.known)),
            self.frame_clip.to(device),
        )

    def trainable_categories(self) -> Tensor:
        """(N, K) bool: the sounding categories of each frame's clip (every category when unknown)."""
        return self.categories[self.frame_clip] | ~self.known[self.frame_clip, None]


class AVSCCriterion(nn.Module):
    def __init__(self, config: AVSCLossConfig, num_categories: int):
        super().__init__()
        self.config = config
        instance = dataclasses.replace(config.instance, num_classes=num_categories)
        self.instances = SilentAwareCriterion(instance, config.silent_objective)

    def forward(self, outputs: dict, targets: AVSCTargets, frame_generators: list[torch.Generator]) -> SetLoss:
        """outputs: ``AVSC.forward``'s; targets on the outputs' device; one generator per frame (a clip's frames
        may share its generator: they consume it in a fixed order)."""
        instance = self.instances(outputs, targets.instances, frame_generators)
        bce, dice_loss = attended_mask_losses(outputs["attended_masks"], targets.sounding_masks)
        audio = audio_category_loss(outputs["audio_logits"], targets.audio_clip, targets.categories, targets.known)
        config = self.config
        total = (
            instance.total
            + config.attended_bce_weight * bce
            + config.attended_dice_weight * dice_loss
            + config.audio_weight * audio
        )
        terms = {**instance.terms, "loss_attended_bce": bce, "loss_attended_dice": dice_loss, "loss_audio": audio}
        return SetLoss(total=total, terms=terms)
