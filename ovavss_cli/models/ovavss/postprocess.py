"""From per-query class probabilities and decoder masks to per-frame label maps (0 = background).

Reference: ``video_maskformer.py`` ``inference_video`` (top-10 over the flattened (query × class)
probabilities, masks resized to the frame and thresholded at logit > 0), ``demo_video/predictor.py``
``run_on_video_avsbench`` (keep scores > 0.3, sort descending) and ``demo_video/avsbench_utils.py``
``save_and_compute`` (paint in that order with class index + 1, a pixel keeps the first label).

Two output-neutral changes: the threshold is applied before the masks are resized, so only the kept
masks (at most ``top_k``) are ever upsampled; and ties are broken deterministically (lower query, then
lower class index first) where the reference's ``topk(sorted=False)`` order is an implementation detail.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class PostprocessConfig:
    """Selection settings; the defaults are the reference's (``--confidence_threshold 0.3``, top-10)."""

    top_k: int = 10
    score_threshold: float = 0.3  # kept when probability > threshold (strictly)


@dataclass(frozen=True)
class KeptMask:
    """One selected (query, class) pair."""

    query: int  # decoder query index
    label: int  # painted value: vocabulary index + 1 (0 is background)
    score: float  # CLIP class probability


@dataclass
class LabelMapPrediction:
    label_maps: Tensor  # (T, H, W) int64, 0 = background, v + 1 = vocabulary entry v
    kept: list[KeptMask]  # painting order: score descending


def select_predictions(
    class_probs: Tensor, query_ids: Tensor, top_k: int = 10, score_threshold: float = 0.3
) -> list[KeptMask]:
    """Top-k (query, class) pairs over the flattened (M, V) probabilities with score > threshold, best first."""
    scores = class_probs.float().flatten()
    order = torch.sort(scores, descending=True, stable=True).indices[:top_k]
    num_classes = class_probs.shape[1]
    return [
        KeptMask(query=int(query_ids[index // num_classes]), label=int(index % num_classes) + 1, score=score)
        for index, score in zip(order.tolist(), scores[order].tolist(), strict=True)
        if score > score_threshold
    ]


def masks_at_frame_size(
    mask_logits: Tensor, padded_size: tuple[int, int], image_size: tuple[int, int], output_size: tuple[int, int]
) -> Tensor:
    """(K, T, h, w) decoder mask logits -> (K, T, H, W) bool at the original frame size.

    Upsampled bilinearly to the padded input size, cropped to the unpadded resized image, resized
    bilinearly to ``output_size`` and thresholded at logit > 0 (align_corners False throughout).
    """
    masks = F.interpolate(mask_logits.float(), size=padded_size, mode="bilinear", align_corners=False)
    masks = masks[:, :, : image_size[0], : image_size[1]]
    return F.interpolate(masks, size=output_size, mode="bilinear", align_corners=False) > 0


def paint_label_maps(masks: Tensor, labels: list[int]) -> Tensor:
    """(K, T, H, W) bool masks, best first -> (T, H, W) int64: each pixel takes the first label covering it."""
    label_maps = torch.zeros(masks.shape[1:], dtype=torch.int64, device=masks.device)
    for mask, label in zip(masks, labels, strict=True):
        label_maps[mask & (label_maps == 0)] = label
    return label_maps


def postprocess(
    class_probs: Tensor,
    query_ids: Tensor,
    mask_logits: Tensor,
    padded_size: tuple[int, int],
    image_size: tuple[int, int],
    output_size: tuple[int, int],
    config: PostprocessConfig | None = None,
) -> LabelMapPrediction:
    """Select, resize and paint one clip.

    class_probs (M, V) for the queries ``query_ids`` (M,); mask_logits (Q, T, h, w) for all queries;
    ``image_size`` is the unpadded resized input inside ``padded_size``; ``output_size`` the original
    frame size. When nothing passes the threshold the maps are all background, as in the reference.
    """
    config = config or PostprocessConfig()
    kept = select_predictions(class_probs, query_ids, config.top_k, config.score_threshold)
    num_frames = mask_logits.shape[1]
    if not kept:
        empty = torch.zeros((num_frames, *output_size), dtype=torch.int64, device=mask_logits.device)
        return LabelMapPrediction(empty, kept)
    selected = mask_logits[torch.tensor([k.query for k in kept], device=mask_logits.device)]
    masks = masks_at_frame_size(selected, padded_size, image_size, output_size)
    return LabelMapPrediction(paint_label_maps(masks, [k.label for k in kept]), kept)
