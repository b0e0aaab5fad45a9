"""The two AVSS segmentation metrics of the OV-AVSS evaluation, as pure array functions.

Both take label maps of ids 0..70 (0 = background) that are already at the evaluation
resolution (see :mod:`ovavss_cli.metrics.evaluate` for the GT / prediction preparation).

**Metric A, "GZSL"** (reference ``scores_gzsl``, the one OV-AVSS prints; spec §9.2). One 71x71
confusion matrix over every pixel of the whole test set (rows = GT, columns = prediction),
IoU_c = H_cc / (row_c + col_c - H_cc), classes with 0/0 left out by ``nanmean``:
``miou`` over all 71 ids (background included), ``miou_base`` / ``miou_novel`` over the 40 / 30
ids of the AVSBench-OV split, and their harmonic mean (0 when undefined).

**Metric B, "AVSS per-frame"** (reference ``_batch_miou_fscore``, computed but never printed;
spec §9.3), reproduced bug-for-bug: predictions on GT background are discarded, per-frame
histograms use ``torch.histc(bins=71, min=1, max=71)`` (class k lands in bin k-1, bin 70 is always
empty, background falls outside), per-bin IoU and F (beta^2 = 0.3) are summed over frames and
divided by the number of frames where the bin's union is non-empty, then averaged over all **71
bins** (the empty bin and classes absent from the test set count as 0). ``fscore_base`` /
``fscore_novel`` are not in the reference: they map bin k-1 back to class k and average the per-class
F over the base / novel classes that occur (count > 0), the natural reading of spec §9.3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.classes import BASE_IDS, NOVEL_IDS, NUM_LABELS
from .object import F_BETA2  # AVSS's F-score weights precision over recall as S4 / MS3's does
from .running_sum import RunningSum


def _histc_label_to_bin(num_labels: int) -> np.ndarray:
    """(num_labels, num_labels) int64: row k = ``torch.histc`` of a single pixel of value k.

    ``histc`` bins every element on its own, so the histogram of a label map is exactly
    ``label_counts @ this matrix``. Computing the matrix with ``histc`` itself keeps the reference's
    float bin edges (width 70/71) instead of re-deriving them.
    """
    values = torch.arange(num_labels, dtype=torch.float32)
    rows = [torch.histc(value.reshape(1), bins=num_labels, min=1, max=num_labels) for value in values]
    return torch.stack(rows).to(torch.int64).numpy()


#: Label id -> metric-B histogram bin, as a one-hot matrix (label 0 has no bin, bin 70 no label).
HISTC_LABEL_TO_BIN: np.ndarray = _histc_label_to_bin(NUM_LABELS)
HISTC_LABEL_TO_BIN.setflags(write=False)


def _as_frames(labels: np.ndarray) -> np.ndarray:
    """(H, W) or (N, H, W) integer ids -> (N, H*W) int64, checking the id range."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels[None]
    if labels.ndim != 3:
        raise ValueError(f"label maps must be (H, W) or (N, H, W), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_LABELS):
        raise ValueError(f"label ids must be in 0..{NUM_LABELS - 1}")
    return labels.reshape(labels.shape[0], -1).astype(np.int64, copy=False)


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if np.shape(gt) != np.shape(pred):
        raise ValueError(f"GT {np.shape(gt)} and prediction {np.shape(pred)} differ in shape")
    return _as_frames(gt), _as_frames(pred)


def _per_frame_counts(labels: np.ndarray) -> np.ndarray:
    """(N, P) ids -> (N, 71) pixel count per frame and label."""
    frames = labels.shape[0]
    offsets = np.arange(frames, dtype=np.int64)[:, None] * NUM_LABELS
    return np.bincount((labels + offsets).ravel(), minlength=frames * NUM_LABELS).reshape(frames, NUM_LABELS)


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise numerator / denominator with 0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def _nanmean(values: np.ndarray) -> float:
    """Mean over non-NaN entries; NaN when there are none (``np.nanmean`` without the warning)."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def harmonic_mean(a: float, b: float) -> float:
    """2 / (1/a + 1/b) as the reference computes it: 0 when either side is 0 or undefined."""
    if not (a > 0 and b > 0):  # also catches NaN
        return 0.0
    return 2.0 / (1.0 / a + 1.0 / b)


# --------------------------------------------------------------------------------------------
# Metric A: dataset-level confusion matrix
# --------------------------------------------------------------------------------------------


def confusion_matrix(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(H, W) or (N, H, W) GT and prediction ids -> (71, 71) int64 counts, rows = GT, cols = prediction."""
    gt, pred = _check_pair(gt, pred)
    flat = gt.ravel() * NUM_LABELS + pred.ravel()
    return np.bincount(flat, minlength=NUM_LABELS * NUM_LABELS).reshape(NUM_LABELS, NUM_LABELS)


@dataclass(frozen=True)
class GzslScores:
    """Metric A. ``iou`` is (71,) float64 with NaN for classes neither in GT nor predicted."""

    iou: np.ndarray
    miou: float
    miou_base: float
    miou_novel: float
    miou_harmonic: float


def gzsl_scores(
    confusion: np.ndarray, base_ids: tuple[int, ...] = BASE_IDS, novel_ids: tuple[int, ...] = NOVEL_IDS
) -> GzslScores:
    """Per-class IoU and the all / base / novel / harmonic mIoU of a (71, 71) confusion matrix."""
    confusion = np.asarray(confusion, dtype=np.int64)
    true_positive = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=1) + confusion.sum(axis=0) - np.diag(confusion)
    with np.errstate(invalid="ignore"):
        iou = true_positive / union  # 0/0 -> NaN: the class is left out of every mean
    miou_base = _nanmean(iou[list(base_ids)])
    miou_novel = _nanmean(iou[list(novel_ids)])
    return GzslScores(
        iou=iou,
        miou=_nanmean(iou),
        miou_base=miou_base,
        miou_novel=miou_novel,
        miou_harmonic=harmonic_mean(miou_base, miou_novel),
    )


# --------------------------------------------------------------------------------------------
# Metric B: per-frame AVSS IoU / F-score, bug-for-bug
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameBinScores:
    """Metric B for N frames, per histogram bin: (N, 71) IoU, F-score, and "union non-empty"."""

    iou: np.ndarray
    fscore: np.ndarray
    occurs: np.ndarray


def avss_frame_scores(gt: np.ndarray, pred: np.ndarray) -> FrameBinScores:
    """Per-frame, per-bin IoU and F of the reference ``_batch_miou_fscore`` (spec §9.3)."""
    gt, pred = _check_pair(gt, pred)
    # Step 1 of the reference: predictions on GT-background pixels are discarded.
    pred = pred * (gt > 0)
    # Intersection map: the label where prediction and GT agree; background (0) has no bin anyway.
    inter = pred * (pred == gt)
    area_inter = _per_frame_counts(inter) @ HISTC_LABEL_TO_BIN
    area_pred = _per_frame_counts(pred) @ HISTC_LABEL_TO_BIN
    area_gt = _per_frame_counts(gt) @ HISTC_LABEL_TO_BIN
    area_union = area_pred + area_gt - area_inter
    # The reference divides by (2.22e-16 + union): 0 where the union is empty, exact otherwise.
    iou = _safe_ratio(area_inter, area_union)
    precision = _safe_ratio(area_inter, area_pred)
    recall = _safe_ratio(area_inter, area_gt)
    # F is NaN -> 0 in the reference exactly when the intersection is empty.
    fscore = _safe_ratio((1 + F_BETA2) * precision * recall, F_BETA2 * precision + recall)
    return FrameBinScores(iou=iou, fscore=fscore, occurs=area_union > 0)


@dataclass(frozen=True)
class AvssScores:
    """Metric B aggregated over a dataset.

    ``bin_iou`` / ``bin_fscore`` / ``bin_frames`` are per histogram bin (71,). ``class_iou`` /
    ``class_fscore`` are the same numbers per label id (71,), NaN for background and for classes
    that never occur (``class_frames == 0``).
    """

    bin_iou: np.ndarray
    bin_fscore: np.ndarray
    bin_frames: np.ndarray
    class_iou: np.ndarray
    class_fscore: np.ndarray
    class_frames: np.ndarray
    miou: float
    fscore: float
    fscore_base: float
    fscore_novel: float


def avss_scores(
    iou_sum: np.ndarray,
    fscore_sum: np.ndarray,
    frames: np.ndarray,
    base_ids: tuple[int, ...] = BASE_IDS,
    novel_ids: tuple[int, ...] = NOVEL_IDS,
) -> AvssScores:
    """Aggregate per-bin sums over frames (and the per-bin frame counts) into metric B."""
    bin_iou = _safe_ratio(iou_sum, frames)  # the reference's 0/0 -> NaN -> 0
    bin_fscore = _safe_ratio(fscore_sum, frames)
    # Bin k-1 -> class k: read each label's bin through the same histc matrix.
    label_has_bin = HISTC_LABEL_TO_BIN.any(axis=1)
    label_bin = HISTC_LABEL_TO_BIN.argmax(axis=1)
    class_frames = np.where(label_has_bin, np.asarray(frames)[label_bin], 0)
    occurs = class_frames > 0
    class_iou = np.where(occurs, bin_iou[label_bin], np.nan)
    class_fscore = np.where(occurs, bin_fscore[label_bin], np.nan)
    return AvssScores(
        bin_iou=bin_iou,
        bin_fscore=bin_fscore,
        bin_frames=np.asarray(frames, dtype=np.int64),
        class_iou=class_iou,
        class_fscore=class_fscore,
        class_frames=class_frames.astype(np.int64),
        miou=float(bin_iou.mean()),  # over all 71 bins, as the reference
        fscore=float(bin_fscore.mean()),
        fscore_base=_nanmean(class_fscore[list(base_ids)]),
        fscore_novel=_nanmean(class_fscore[list(novel_ids)]),
    )


# --------------------------------------------------------------------------------------------
# Accumulator
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentationScores:
    """Both metrics for one evaluation, plus the raw confusion matrix they came from."""

    gzsl: GzslScores
    avss: AvssScores
    confusion: np.ndarray
    frames: int


class SegmentationMetrics:
    """Accumulates metric A and metric B frame by frame: a (71, 71) confusion matrix, and per update the
    (71,) metric-B terms (:class:`~.running_sum.RunningSum`: 1 KiB per frame).

    Usage: ``metrics.update(gt, pred)`` once per frame (H, W) or stack (N, H, W), then
    ``metrics.compute()``. The accumulators of consecutive runs of frames (e.g. the shards of a
    ``torchrun`` job) :meth:`merged` in run order compute exactly what one pass computes.
    """

    def __init__(self) -> None:
        self.confusion = np.zeros((NUM_LABELS, NUM_LABELS), dtype=np.int64)
        self.iou_sum = RunningSum(np.zeros(NUM_LABELS, dtype=np.float64))
        self.fscore_sum = RunningSum(np.zeros(NUM_LABELS, dtype=np.float64))
        self.bin_frames = np.zeros(NUM_LABELS, dtype=np.int64)
        self.frames = 0

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one frame (H, W) or a stack of frames (N, H, W) of GT and predicted ids."""
        self.confusion += confusion_matrix(gt, pred)
        per_frame = avss_frame_scores(gt, pred)
        self.iou_sum.add(per_frame.iou.sum(axis=0))
        self.fscore_sum.add(per_frame.fscore.sum(axis=0))
        self.bin_frames += per_frame.occurs.sum(axis=0)
        self.frames += per_frame.iou.shape[0]

    @classmethod
    def merged(cls, parts: Sequence[SegmentationMetrics]) -> SegmentationMetrics:
        """One accumulator of the frames of ``parts`` (non-empty), which follow each other in this order."""
        merged = cls()
        merged.confusion = sum((part.confusion for part in parts), merged.confusion)
        merged.iou_sum = RunningSum.concatenated([part.iou_sum for part in parts])
        merged.fscore_sum = RunningSum.concatenated([part.fscore_sum for part in parts])
        merged.bin_frames = sum((part.bin_frames for part in parts), merged.bin_frames)
        merged.frames = sum(part.frames for part in parts)
        return merged

    def compute(
        self, base_ids: tuple[int, ...] = BASE_IDS, novel_ids: tuple[int, ...] = NOVEL_IDS
    ) -> SegmentationScores:
        return SegmentationScores(
            gzsl=gzsl_scores(self.confusion, base_ids, novel_ids),
            avss=avss_scores(self.iou_sum.value, self.fscore_sum.value, self.bin_frames, base_ids, novel_ids),
            confusion=self.confusion.copy(),
            frames=self.frames,
        )
