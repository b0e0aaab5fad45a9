"""Class-agnostic sounding-object IoU: how well the union of predicted masks covers the sounding pixels,
and :class:`ForegroundFraction`, the share of pixels painted (the false-positive rate when the GT is empty).

What OV-AVSS training optimises, measured without naming: GT is every pixel of a sounding object (any class),
the prediction every pixel of any mask the model keeps. Two aggregates:

* ``iou``: intersection over union pooled over all frames (large objects weigh more);
* ``mean_frame_iou``: the mean of per-frame IoUs, where a frame with neither GT nor prediction scores 1
  (nothing to find, nothing found) and a frame with only one of them scores 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ForegroundIoU:
    """Accumulates class-agnostic IoU over frames: ``update(pred, gt)`` per clip, then read the properties."""

    intersection: int = 0
    union: int = 0
    frame_iou_sum: float = 0.0
    frames: int = 0

    def update(self, pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> None:
        """pred, gt: (H, W) or (T, H, W) masks (bool, or non-zero = foreground) of the same shape."""
        pred = np.asarray(torch.as_tensor(pred).cpu()) != 0
        gt = np.asarray(torch.as_tensor(gt).cpu()) != 0
        if pred.shape != gt.shape or pred.ndim not in (2, 3):
            raise ValueError(f"pred {pred.shape} and gt {gt.shape} must be equal (H, W) or (T, H, W) masks")
        if pred.ndim == 2:
            pred, gt = pred[None], gt[None]
        intersection = (pred & gt).sum(axis=(1, 2))
        union = (pred | gt).sum(axis=(1, 2))
        self.intersection += int(intersection.sum())
        self.union += int(union.sum())
        self.frame_iou_sum += float(np.where(union > 0, intersection / np.maximum(union, 1), 1.0).sum())
        self.frames += pred.shape[0]

    @property
    def iou(self) -> float:
        return self.intersection / self.union if self.union else 1.0

    @property
    def mean_frame_iou(self) -> float:
        return self.frame_iou_sum / self.frames if self.frames else float("nan")


@dataclass
class ForegroundFraction:
    """Mean over frames of the share of pixels predicted foreground: ``update(pred, gt)`` per frame or clip.

    Scored against an empty ground truth (audio muted, replaced by noise or by another clip's sound) this
    is the false-positive rate of AVSBench-Robust (arXiv 2502.00358): every painted pixel is wrong. ``gt``
    is accepted (and ignored) so that it fills the same slot as :class:`ForegroundIoU`.
    """

    fraction_sum: float = 0.0
    frames: int = 0

    def update(self, pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor | None = None) -> None:
        """pred: (H, W) or (T, H, W) mask (bool, or non-zero = foreground)."""
        pred = np.asarray(torch.as_tensor(pred).cpu()) != 0
        if pred.ndim not in (2, 3):
            raise ValueError(f"pred {pred.shape} must be an (H, W) or (T, H, W) mask")
        if pred.ndim == 2:
            pred = pred[None]
        self.fraction_sum += float(pred.mean(axis=(1, 2)).sum())
        self.frames += pred.shape[0]

    @property
    def mean(self) -> float:
        return self.fraction_sum / self.frames if self.frames else float("nan")
