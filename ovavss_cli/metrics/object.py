"""AVSBench-object (S4 / MS3) metrics: the official TPAVI J and F, and a batch-independent variant.

**Official** (avsbench-format.md §4.1; AVSBench ``avs_scripts/avs_s4/utils/utility.py``
``mask_iou`` and ``Eval_Fmeasure``, identical for MS3), computed per test batch in float32 as there:

* J per frame: P = [sigmoid(logit) > 0.5]; |P ∧ G| / (|P ∨ G| + 1e-7) when G has foreground, else
  the fraction of pixels correctly left empty. The batch value is the mean over its frames.
* F per batch: for 255 thresholds t = linspace(0, 1 - 1e-10, 255) on the probabilities,
  prec = TP / (|p >= t| + 1e-20), rec = TP / (|G| + 1e-20), F = 1.3·prec·rec / (0.3·prec + rec)
  (NaN -> 0), averaged over the batch's frames with non-empty GT, then the **max over t**. A batch
  without any foreground frame scores 0.
* Reported J and F are unweighted means of the batch values, so they depend on the batch size
  (the official ``test.sh`` uses 4 clips x 5 frames) and on a smaller last batch.

**Clean** (our choice, batch-independent): J averaged over all frames (same per-frame rule), and F
per frame on the same binary mask as J (p > 0.5, beta^2 = 0.3; 0 when TP = 0), averaged over the
frames with non-empty GT. A fixed threshold was chosen over dataset-level max-F because it scores
the masks a user actually gets (and saved binary PNGs), and it needs no threshold tuned on test data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .running_sum import RunningSum

#: beta^2 of the AVSBench F-measure (precision weighted over recall), as in salient-object detection;
#: S4 / MS3 and AVSS use it alike.
F_BETA2 = 0.3
#: The official F-measure thresholds (float32: the last one rounds to exactly 1.0).
OFFICIAL_THRESHOLDS = torch.linspace(0, 1 - 1e-10, 255)
INPUT_KINDS = ("logits", "probs")


def _as_tensor(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = array if isinstance(array, torch.Tensor) else torch.from_numpy(np.asarray(array))
    if tensor.ndim != 3:
        raise ValueError(f"expected (N, H, W), got shape {tuple(tensor.shape)}")
    return tensor


def to_probabilities(pred: np.ndarray | torch.Tensor, inputs: str = "logits") -> torch.Tensor:
    """(N, H, W) logits (sigmoid applied, as the official code does) or probabilities -> float32."""
    if inputs not in INPUT_KINDS:
        raise ValueError(f"inputs must be one of {INPUT_KINDS}, got {inputs!r}")
    pred = _as_tensor(pred).to(torch.float32)
    return torch.sigmoid(pred) if inputs == "logits" else pred


def frame_jaccard(prob: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(N, H, W) probabilities and binary GT -> (N,) float32 J with the official empty-GT rule."""
    pred = (prob > 0.5).to(torch.float32)
    target = (gt > 0).to(torch.float32)
    inter = (pred * target).sum(dim=(1, 2))
    union = torch.maximum(pred, target).sum(dim=(1, 2))
    empty = target.sum(dim=(1, 2)) == 0
    # Empty GT: the share of pixels correctly left empty (AVSBench issue #22).
    inter = torch.where(empty, ((1 - target) * (1 - pred)).sum(dim=(1, 2)), inter)
    union = torch.where(empty, torch.full_like(union, float(pred.shape[1] * pred.shape[2])), union)
    return inter / (union + 1e-7)


def _count_at_least(sorted_values: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """How many of the (ascending) values are >= each threshold: the same float32 comparisons as
    ``(values >= t).sum()`` per threshold, without materialising 255 masks."""
    return (sorted_values.numel() - torch.searchsorted(sorted_values, thresholds, right=False)).to(torch.float32)


def official_fmeasure_curve(prob: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(H, W) probabilities and binary GT of one frame -> (255,) F at each official threshold."""
    target = gt > 0
    predicted = _count_at_least(prob.flatten().sort().values, OFFICIAL_THRESHOLDS)
    true_positive = _count_at_least(prob[target].sort().values, OFFICIAL_THRESHOLDS)
    precision = true_positive / (predicted + 1e-20)
    recall = true_positive / (target.sum().to(torch.float32) + 1e-20)
    fscore = (1 + F_BETA2) * precision * recall / (F_BETA2 * precision + recall)
    return torch.nan_to_num(fscore, nan=0.0)


def _clean_frame_fscore(prob: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(N,) float64 F on the binary mask p > 0.5, per frame (0 when the intersection is empty)."""
    pred = prob > 0.5
    target = gt > 0
    true_positive = (pred & target).sum(dim=(1, 2)).double()
    precision = true_positive / pred.sum(dim=(1, 2)).double().clamp(min=1)
    recall = true_positive / target.sum(dim=(1, 2)).double().clamp(min=1)
    fscore = (1 + F_BETA2) * precision * recall / (F_BETA2 * precision + recall)
    return torch.where(true_positive > 0, fscore, torch.zeros_like(fscore))


@dataclass(frozen=True)
class ObjectScores:
    """J (mIoU) and F of both variants, fractions in [0, 1]; ``fscore`` is NaN without any
    foreground frame."""

    official_miou: float
    official_fscore: float
    miou: float
    fscore: float
    frames: int
    batches: int


class ObjectMetrics:
    """Accumulates both variants. Each :meth:`update` call is one official test batch; the accumulators of
    consecutive runs of batches :meth:`merged` in run order compute exactly what one pass computes."""

    def __init__(self, inputs: str = "logits") -> None:
        if inputs not in INPUT_KINDS:
            raise ValueError(f"inputs must be one of {INPUT_KINDS}, got {inputs!r}")
        self.inputs = inputs
        self.batch_jaccard: list[float] = []
        self.batch_fscore: list[float] = []
        self.jaccard_sum = RunningSum()
        self.frames = 0
        self.fscore_sum = RunningSum()
        self.foreground_frames = 0

    def update(self, pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> None:
        """One batch: (N, H, W) logits or probabilities and (N, H, W) binary GT (> 0 = object)."""
        prob = to_probabilities(pred, self.inputs)
        gt = _as_tensor(gt)
        if prob.shape != gt.shape:
            raise ValueError(f"prediction {tuple(prob.shape)} and GT {tuple(gt.shape)} differ in shape")
        jaccard = frame_jaccard(prob, gt)
        self.batch_jaccard.append(float(jaccard.sum() / jaccard.numel()))
        self.jaccard_sum.add(float(jaccard.double().sum()))
        self.frames += jaccard.numel()

        foreground = [n for n in range(gt.shape[0]) if bool((gt[n] > 0).any())]
        # The official running mean: float32 sum over foreground frames, then / count, then max.
        curve_sum = torch.zeros_like(OFFICIAL_THRESHOLDS)
        for n in foreground:
            curve_sum = curve_sum + official_fmeasure_curve(prob[n], gt[n])
        self.batch_fscore.append(float((curve_sum / len(foreground)).max()) if foreground else 0.0)
        self.fscore_sum.add(float(_clean_frame_fscore(prob[foreground], gt[foreground]).sum()))
        self.foreground_frames += len(foreground)

    @classmethod
    def merged(cls, parts: Sequence[ObjectMetrics]) -> ObjectMetrics:
        """One accumulator of the batches of ``parts`` (non-empty, same ``inputs``), in this order."""
        merged = cls(parts[0].inputs)
        merged.batch_jaccard = [value for part in parts for value in part.batch_jaccard]
        merged.batch_fscore = [value for part in parts for value in part.batch_fscore]
        merged.jaccard_sum = RunningSum.concatenated([part.jaccard_sum for part in parts])
        merged.fscore_sum = RunningSum.concatenated([part.fscore_sum for part in parts])
        merged.frames = sum(part.frames for part in parts)
        merged.foreground_frames = sum(part.foreground_frames for part in parts)
        return merged

    def compute(self) -> ObjectScores:
        batches = len(self.batch_jaccard)
        nan = float("nan")
        return ObjectScores(
            official_miou=math.fsum(self.batch_jaccard) / batches if batches else nan,
            official_fscore=math.fsum(self.batch_fscore) / batches if batches else nan,
            miou=self.jaccard_sum.value / self.frames if self.frames else nan,
            fscore=self.fscore_sum.value / self.foreground_frames if self.foreground_frames else nan,
            frames=self.frames,
            batches=batches,
        )


def object_metrics(
    pred: np.ndarray | torch.Tensor,
    gt: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 1,
    frames_per_clip: int = 5,
    inputs: str = "logits",
) -> ObjectScores:
    """Both variants over (N, H, W) frames, cut into official batches of ``batch_size`` clips of
    ``frames_per_clip`` frames (the last batch may be smaller, as in the official loader)."""
    if batch_size < 1 or frames_per_clip < 1:
        raise ValueError("batch_size and frames_per_clip must be >= 1")
    pred, gt = _as_tensor(pred), _as_tensor(gt)
    metrics = ObjectMetrics(inputs)
    step = batch_size * frames_per_clip
    for start in range(0, pred.shape[0], step):
        metrics.update(pred[start : start + step], gt[start : start + step])
    return metrics.compute()
