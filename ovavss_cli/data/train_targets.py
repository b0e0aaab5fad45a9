"""What the training tasks supervise, from the decoded clips of ``train_clips.py``: frame sampling and the
targets of both tasks as plain arrays (``engine/train_batches.py`` wraps them into the losses' target types).

* OV-AVSS: class-agnostic sounding objects, one per sounding class present in the sample's annotated frames
  (AVSS has semantic maps, so a class is an object), and the pixels that must not be supervised.
* AVSC: a frame's sounding-object masks (a multi-source frame's binary mask split into connected
  components), the categories each may have and what an unmatched query may be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor


def pad_bottom_right(x: Tensor, height: int, width: int) -> Tensor:
    """Zero-pad the last two dimensions (bottom / right) to (height, width): how a batch is padded to its largest
    frame (as detectron2's ImageList)."""
    return F.pad(x, (0, width - x.shape[-1], 0, height - x.shape[-2]))


# ---------------------------------------------------------------------------------------------- OV-AVSS


def sample_frames(annotated: np.ndarray, window: int, generator: torch.Generator) -> list[int]:
    """Sorted frame indices of one sample: all frames when the clip has ``window``; else a reference frame drawn
    among the annotated ones plus ``window - 1`` others drawn uniformly (for fully annotated clips: a uniformly
    random subset, the reference's distribution). Draws from ``generator`` only when there is a choice."""
    num_frames = annotated.shape[0]
    if num_frames == window:
        return list(range(window))
    candidates = np.flatnonzero(annotated)
    reference = int(candidates[int(torch.randint(len(candidates), (1,), generator=generator))])
    others = [i for i in range(num_frames) if i != reference]
    picked = torch.randperm(len(others), generator=generator)[: window - 1].tolist()
    return sorted([reference, *(others[i] for i in picked)])


def sounding_object_masks(
    labels: Tensor, frame_valid: Tensor, ignore_ids: Sequence[int]
) -> tuple[Tensor, Tensor | None]:
    """labels (T, H, W) class ids of the sampled frames, frame_valid (T,) bool (frames with GT), ``ignore_ids``
    classes whose pixels are not supervised -> masks (N, T, H, W) bool, one per class present in the annotated
    frames (zero in frames without annotation), and the ignored pixels (T, H, W) bool or None."""
    ignore = None
    if ignore_ids:
        ignore = torch.isin(labels, torch.tensor(ignore_ids, dtype=labels.dtype)) & frame_valid[:, None, None]
    present = labels[frame_valid].unique().tolist()
    object_ids = [i for i in present if i != 0 and i not in ignore_ids]
    masks = torch.stack([labels == i for i in object_ids]) if object_ids else torch.zeros(0, *labels.shape, dtype=bool)
    return masks & frame_valid[None, :, None, None], ignore


# ---------------------------------------------------------------------------------------------- AVSC


@dataclass
class FrameObjects:
    """One frame's AVSC ground truth."""

    masks: np.ndarray  # (N, H, W) bool: the sounding objects
    label_set: np.ndarray  # (K+1,) bool: the categories every object may have ("no object", last, is False)
    unmatched_classes: np.ndarray  # (K+1,) bool: what an unmatched query may be


def sounding_components(mask: np.ndarray, min_pixels: int) -> list[np.ndarray]:
    """(H, W) bool -> the 8-connected components with at least ``min_pixels`` pixels, largest first."""
    labelled, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(labelled.ravel(), minlength=count + 1)[1:]
    order = [index + 1 for index in np.argsort(-sizes, kind="stable") if sizes[index] >= min_pixels]
    return [labelled == index for index in order]


def frame_objects(
    mask: np.ndarray,
    categories: np.ndarray | None,
    num_categories: int,
    *,
    split_multi_source: bool,
    min_component_pixels: int,
) -> FrameObjects:
    """mask (H, W) bool sounding pixels; categories (K,) bool of the clip, or None (unknown). A frame with several
    sounding categories is split into its connected components when ``split_multi_source``; objects smaller
    than ``min_component_pixels`` are none."""
    known = categories is not None
    sounding = np.asarray(categories, dtype=bool) if known else np.ones(num_categories, dtype=bool)
    if sounding.sum() > 1 and split_multi_source:
        objects = sounding_components(mask, min_component_pixels)
    else:
        objects = [mask] if mask.sum() >= min_component_pixels else []
    # Unmatched: no object, or a silent object of a category that does not sound here (any, when unknown).
    unmatched = np.append(~sounding if known else np.ones(num_categories, dtype=bool), True)
    masks = np.stack(objects) if objects else np.zeros((0, *mask.shape), dtype=bool)
    return FrameObjects(masks, np.append(sounding, False), unmatched)
