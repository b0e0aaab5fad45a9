"""Training building blocks: matcher and set criterion, point sampling, optimiser and schedule, augmentation."""

from .augment import AugmentConfig, ClipAugmentation, augment_clip
from .criterion import CriterionConfig, SetCriterion, SetLoss, build_criterion
from .matcher import ClipTarget, HungarianMatcher
from .optim import (
    OptimizerConfig,
    ScheduleConfig,
    build_lr_scheduler,
    build_optimizer,
    clip_full_model_gradients,
)
from .point_sampling import AUGMENT_STREAM, LOSS_STREAM, ImportanceSamplingConfig, derive_seed, sample_generators

__all__ = [
    "AUGMENT_STREAM",
    "LOSS_STREAM",
    "AugmentConfig",
    "ClipAugmentation",
    "ClipTarget",
    "CriterionConfig",
    "HungarianMatcher",
    "ImportanceSamplingConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "SetCriterion",
    "SetLoss",
    "augment_clip",
    "build_criterion",
    "build_lr_scheduler",
    "build_optimizer",
    "clip_full_model_gradients",
    "derive_seed",
    "sample_generators",
]
