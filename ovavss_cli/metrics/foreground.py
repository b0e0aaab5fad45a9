"""Class-agnostic sounding-object IoU: how well the union of predicted masks covers the sounding pixels,
and :class:`ForegroundFraction`, the share of pixels painted (the false-positive rate when the GT is empty).

What OV-AVSS training optimises, measured without naming: GT is every pixel of a sounding object (any class),
the prediction every pixel of any mask the model keeps. Two aggregates:

* ``iou``: intersection over union pooled over all frames (large objects weigh more);
* ``mean_frame_iou``: the mean of per-frame IoUs, where a frame with neither GT nor prediction scores 1
  (nothing to find, nothing found) and a frame with only one of them scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .running_sum import RunningSum


@dataclass
class ForegroundIoU:
    """Accumulates class-agnostic IoU over frames: ``update(pred, gt)`` per clip, then read the properties."""

    intersection: int = 0
    union: int = 0
    frame_iou_sum: RunningSum = field(default_factory=RunningSum)
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
        self.frame_iou_sum.add(float(np.where(union > 0, intersection / np.maximum(union, 1), 1.0).sum()))
        self.frames += pred.shape[0]

    @classmethod
    def merged(cls, parts: Sequence[ForegroundIoU]) -> ForegroundIoU:
        """One accumulator of the frames of ``parts`` (non-empty), which follow each other in this order."""
        return cls(
            sum(part.intersection for part in parts),
            sum(part.union for part in parts),
            RunningSum.concatenated([part.frame_iou_sum for part in parts]),
            sum(part.frames for part in parts),
        )

    @property
    def iou(self) -> float:
        return self.intersection / self.union if self.union else 1.0

    @property
    def mean_frame_iou(self) -> float:
        return self.frame_iou_sum.value / self.frames if self.frames else float("nan")


@dataclass
class ForegroundFraction:
    """Mean over frames of the share of pixels predicted foreground: ``update(pred, gt)`` per frame or clip.

    Scored against an empty ground truth (audio muted, replaced by noise or by another clip's sound) this
    is the false-positive rate of AVSBench-Robust (arXiv 2502.00358): every painted pixel is wrong. ``gt``
    is accepted (and ignored) so that it fills the same slot as :class:`ForegroundIoU`.
    """

    fraction_sum: RunningSum = field(default_factory=RunningSum)
    frames: int = 0

    def update(self, pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor | None = None) -> None:
        """pred: (H, W) or (T, H, W) mask (bool, or non-zero = foreground)."""
        pred = np.asarray(torch.as_tensor(pred).cpu()) != 0
        if pred.ndim not in (2, 3):
            raise ValueError(f"pred {pred.shape} must be an (H, W) or (T, H, W) mask")
        if pred.ndim == 2:
            pred = pred[None]
        self.fraction_sum.add(float(pred.mean(axis=(1, 2)).sum()))
        self.frames += pred.shape[0]

    @classmethod
    def merged(cls, parts: Sequence[ForegroundFraction]) -> ForegroundFraction:
        """One accumulator of the frames of ``parts`` (non-empty), which follow each other in this order."""
        return cls(RunningSum.concatenated([part.fraction_sum for part in parts]), sum(part.frames for part in parts))

    @property
    def mean(self) -> float:
        return self.fraction_sum.value / self.frames if self.frames else float("nan")
