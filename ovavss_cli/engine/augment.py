"""Training augmentation of OV-AVSS: one random short side and one random flip per clip (ovavss-spec.md §7).

The reference (``choice_by_clip`` / ``flip_by_clip``) draws the short side from {240, 360, 480} (long side at
most 1333) and a horizontal flip with p = 0.5 once per clip, and applies them to every frame and every mask,
so the clip stays consistent in time. There is no crop, colour or rotation augmentation. Frames go through
the same resize as inference (Pillow bilinear); masks and label maps through Pillow nearest, as detectron2's
``apply_segmentation`` does, so label values are never blended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..models.preprocess import resize_shortest_edge

SWIN_SHORT_EDGES: tuple[int, ...] = (240, 360)  # the Swin-B config drops 480 (memory)


@dataclass(frozen=True)
class AugmentConfig:
    """``INPUT.MIN_SIZE_TRAIN`` / ``MAX_SIZE_TRAIN`` / ``RANDOM_FLIP`` of the R50 config."""

    short_edges: tuple[int, ...] = (240, 360, 480)
    max_size: int = 1333
    flip_prob: float = 0.5

    def __post_init__(self) -> None:
        if not self.short_edges:
            raise ValueError("short_edges must not be empty")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {self.flip_prob}")


@dataclass(frozen=True)
class ClipAugmentation:
    """The augmentation drawn for one clip; apply it to the frames and to every mask of that clip."""

    short_edge: int
    max_size: int
    flip: bool


def draw_clip_augmentation(config: AugmentConfig, generator: torch.Generator) -> ClipAugmentation:
    """Draw a clip's short side, then its flip, from ``generator`` (always two draws, in this order)."""
    choice = int(torch.randint(len(config.short_edges), (1,), generator=generator, device=generator.device))
    flip = float(torch.rand((), generator=generator, device=generator.device)) < config.flip_prob
    return ClipAugmentation(short_edge=config.short_edges[choice], max_size=config.max_size, flip=flip)


def resize_nearest(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize bool or uint8 maps (..., H, W) to ``size`` = (h, w) with Pillow NEAREST, map by map."""
    height, width = size
    planes = maps.reshape(-1, *maps.shape[-2:]).to(torch.uint8).cpu().numpy()
    resized = np.stack([np.asarray(Image.fromarray(p).resize((width, height), Image.NEAREST)) for p in planes])
    return torch.from_numpy(resized).reshape(*maps.shape[:-2], height, width).to(maps.device, maps.dtype)


def apply_clip_augmentation(
    augmentation: ClipAugmentation, frames: Tensor | np.ndarray, maps: Sequence[Tensor] = ()
) -> tuple[Tensor, list[Tensor]]:
    """Resize and maybe flip a clip.

    frames: (T, H, W, 3) uint8; maps: tensors (..., H, W) bool/uint8 at the frames' size (instance masks
    (N, T, H, W), label maps (T, H, W), ignore maps ...). Returns frames (T, h, w, 3) and the maps (..., h, w).
    """
    frames = torch.as_tensor(frames)
    if frames.dim() != 4:
        raise ValueError(f"expected the frames of one clip (T, H, W, 3), got shape {tuple(frames.shape)}")
    original = tuple(frames.shape[1:3])
    frames = resize_shortest_edge(frames, augmentation.short_edge, augmentation.max_size)
    size = tuple(frames.shape[1:3])
    out_maps = []
    for index, mask in enumerate(maps):
        if mask.dim() < 2 or tuple(mask.shape[-2:]) != original:
            raise ValueError(f"map {index} must be (..., {original[0]}, {original[1]}), got {tuple(mask.shape)}")
        if mask.dtype not in (torch.bool, torch.uint8):
            raise ValueError(f"map {index} must be bool or uint8 (nearest resizing keeps labels), got {mask.dtype}")
        out_maps.append(mask if size == original else resize_nearest(mask, size))
    if augmentation.flip:
        frames = frames.flip(-2)  # width of (T, H, W, 3)
        out_maps = [mask.flip(-1) for mask in out_maps]
    return frames.contiguous(), [mask.contiguous() for mask in out_maps]


def augment_clip(
    frames: Tensor | np.ndarray,
    maps: Sequence[Tensor] = (),
    *,
    generator: torch.Generator,
    config: AugmentConfig | None = None,
) -> tuple[Tensor, list[Tensor], ClipAugmentation]:
    """Draw one augmentation for the clip and apply it to its frames and maps (see ``apply_clip_augmentation``).

    For a replayable run, seed ``generator`` per clip and step, e.g. ``sample_generators(run_seed, step,
    clip_ids, AUGMENT_STREAM)``, a stream independent of the loss points.
    """
    augmentation = draw_clip_augmentation(config or AugmentConfig(), generator)
    frames, maps = apply_clip_augmentation(augmentation, frames, maps)
    return frames, maps, augmentation
