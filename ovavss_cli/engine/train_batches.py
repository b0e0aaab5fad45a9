"""Training batches of both tasks: augment each clip with its own generator, normalise and pad, and wrap the
targets of ``data.train_targets`` into the losses' types; a batch is padded to its largest frame.

* OV-AVSS (:func:`ovavss_batch`): T = the decoder's window of frames per sample (``train_targets.sample_frames``),
  one class-agnostic target per clip (``matcher.ClipTarget``), frames without annotation masked out.
* AVSC (:func:`avsc_batch`): only a clip's annotated frames are segmented; every second's log-mel goes with them
  (the audio loss pools a clip's seconds), one instance target per frame (``avsc_criterion.InstanceTarget``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..data.train_clips import ObjectTrainClip, TrainClip
from ..data.train_targets import pad_bottom_right, sample_frames, sounding_object_masks
from ..errors import OvavssError
from ..models.preprocess import normalize_and_pad
from .augment import AugmentConfig, augment_clip
from .avsc_criterion import AVSCLossConfig, AVSCTargets, InstanceTarget, build_instance_target
from .matcher import ClipTarget

# ---------------------------------------------------------------------------------------------- OV-AVSS


@dataclass
class OVAVSSBatch:
    images: Tensor  # (B, T, 3, Hp, Wp) normalised frames, zero-padded after normalisation
    audio: Tensor  # (B, T, A) audio embedding of each sampled frame, or (B, T, 1, 96, 64) log-mel examples
    targets: list[ClipTarget]  # per clip, masks at (Hp, Wp)
    uids: list[str]


@dataclass
class ClipSample:
    """One augmented sample before batching."""

    images: Tensor  # (T, 3, Hp, Wp)
    audio: Tensor  # (T, A)
    target: ClipTarget  # masks (N, T, h, w) at the augmented, unpadded size


def make_sample(
    clip: TrainClip, window: int, size_divisibility: int, augment: AugmentConfig, generator: torch.Generator
) -> ClipSample:
    """Sample frames, augment, and build the class-agnostic target of one clip (all draws from ``generator``)."""
    chosen = sample_frames(clip.annotated, window, generator)
    if len(chosen) != window:
        raise OvavssError(f"clip {clip.uid} has {clip.frames.shape[0]} frames; training needs at least {window}")
    frame_valid = torch.from_numpy(clip.annotated[chosen])
    frames, (labels,), _ = augment_clip(
        clip.frames[chosen], [torch.from_numpy(clip.labels[chosen])], generator=generator, config=augment
    )
    masks, ignore = sounding_object_masks(labels, frame_valid, clip.ignore_ids)
    images, _ = normalize_and_pad(frames, size_divisibility)
    target = ClipTarget(torch.zeros(masks.shape[0], dtype=torch.int64), masks, frame_valid, ignore)
    return ClipSample(images, clip.audio[chosen], target)


def batch_samples(samples: Sequence[ClipSample], uids: Sequence[str]) -> OVAVSSBatch:
    """Pad every sample to the largest padded size of the batch (as detectron2's ImageList) and stack."""
    height = max(sample.images.shape[-2] for sample in samples)
    width = max(sample.images.shape[-1] for sample in samples)
    targets = []
    for sample in samples:
        target = sample.target
        ignore = None if target.ignore is None else pad_bottom_right(target.ignore, height, width)
        masks = pad_bottom_right(target.masks, height, width)
        targets.append(ClipTarget(target.labels, masks, target.frame_valid, ignore))
    images = torch.stack([pad_bottom_right(sample.images, height, width) for sample in samples])
    return OVAVSSBatch(images, torch.stack([sample.audio for sample in samples]), targets, list(uids))


def ovavss_batch(
    items: Sequence[TrainClip],
    generators: Sequence[torch.Generator],
    window: int,
    size_divisibility: int,
    augment: AugmentConfig,
) -> OVAVSSBatch:
    """One sample per clip (``generators[i]`` drives clip i's frame choice and augmentation), batched."""
    samples = [
        make_sample(item, window, size_divisibility, augment, generator)
        for item, generator in zip(items, generators, strict=True)
    ]
    return batch_samples(samples, [item.uid for item in items])


def target_to(target: ClipTarget, device: torch.device) -> ClipTarget:
    ignore = None if target.ignore is None else target.ignore.to(device, non_blocking=True)
    return ClipTarget(
        target.labels.to(device), target.masks.to(device, non_blocking=True), target.frame_valid.to(device), ignore
    )


# ---------------------------------------------------------------------------------------------- AVSC


@dataclass
class AVSCBatch:
    images: Tensor  # (N, 3, Hp, Wp) the segmented frames of all clips, clip-major
    log_mel: Tensor  # (M, 1, 96, 64) every second of every clip
    frame_audio: Tensor  # (N,) int64: the row of log_mel paired with each frame
    targets: AVSCTargets
    names: list[str]


def avsc_batch(
    items: Sequence[ObjectTrainClip],
    generators: Sequence[torch.Generator],
    augment: AugmentConfig,
    size_divisibility: int,
    loss: AVSCLossConfig,
    num_categories: int,
) -> AVSCBatch:
    """Augment each clip with its generator, normalise and pad, and build the per-frame targets."""
    images, masks = [], []
    for item, generator in zip(items, generators, strict=True):
        frames, (clip_masks,), _ = augment_clip(
            item.frames, [torch.from_numpy(item.masks)], generator=generator, config=augment
        )
        images.append(normalize_and_pad(frames, size_divisibility)[0])
        masks.append(clip_masks)
    height, width = max(x.shape[-2] for x in images), max(x.shape[-1] for x in images)
    images = torch.cat([pad_bottom_right(x, height, width) for x in images])
    masks = torch.cat([pad_bottom_right(m, height, width) for m in masks])
    frame_clip = torch.cat([torch.full((len(item.frame_ids),), i) for i, item in enumerate(items)])
    offsets = np.cumsum([0] + [item.log_mel.shape[0] for item in items])
    frame_audio = torch.cat([torch.from_numpy(item.frame_ids + offsets[i]) for i, item in enumerate(items)])
    clip_categories = [item.categories for item in items]
    instances: list[InstanceTarget] = [
        build_instance_target(mask.numpy(), clip_categories[clip], num_categories, loss)
        for mask, clip in zip(masks, frame_clip.tolist(), strict=True)
    ]
    categories = np.stack([c if c is not None else np.zeros(num_categories, dtype=bool) for c in clip_categories])
    targets = AVSCTargets(
        instances=instances,
        sounding_masks=masks.float(),
        audio_clip=torch.cat([torch.full((item.log_mel.shape[0],), i) for i, item in enumerate(items)]),
        categories=torch.from_numpy(categories),
        known=torch.tensor([c is not None for c in clip_categories]),
        frame_clip=frame_clip,
    )
    log_mel = torch.cat([item.log_mel for item in items])
    return AVSCBatch(images, log_mel, frame_audio.long(), targets, [item.name for item in items])
