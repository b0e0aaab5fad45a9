"""AVSBench-object (S4/MS3) J and F: the official per-batch variant and the clean one, hand-computed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ovavss_cli.metrics.object import (
    OFFICIAL_THRESHOLDS,
    ObjectMetrics,
    frame_jaccard,
    object_metrics,
    official_fmeasure_curve,
)

GT_TOP_ROW = [[1, 1], [0, 0]]
PROBS_A = [[0.9, 0.2], [0.6, 0.1]]  # against GT_TOP_ROW: best F = 0.8125 for t in (0.6, 0.9]
GT_TOP_LEFT = [[1, 0], [0, 0]]
PROBS_B = [[0.3, 0.05], [0.05, 0.05]]  # against GT_TOP_LEFT: F = 1 for t in (0.05, 0.3]


def f_beta(precision: float, recall: float) -> float:
    return 1.3 * precision * recall / (0.3 * precision + recall)


def probs(*frames) -> torch.Tensor:
    return torch.tensor(frames, dtype=torch.float32)


def test_jaccard_with_the_empty_gt_rule():
    logits = torch.tensor([[[5.0, -5.0], [5.0, -5.0]], [[5.0, -5.0], [-5.0, -5.0]]])
    gt = torch.tensor([GT_TOP_ROW, [[0, 0], [0, 0]]])
    jaccard = frame_jaccard(torch.sigmoid(logits), gt)
    assert jaccard[0].item() == pytest.approx(1 / 3)  # inter 1, union 3
    assert jaccard[1].item() == pytest.approx(3 / 4)  # empty GT: 3 of 4 pixels correctly left empty
    scores = object_metrics(logits, gt, batch_size=1, frames_per_clip=2)
    assert scores.official_miou == pytest.approx((1 / 3 + 3 / 4) / 2)
    assert scores.miou == pytest.approx((1 / 3 + 3 / 4) / 2)


def test_official_f_is_max_over_thresholds_of_one_frame():
    curve = official_fmeasure_curve(probs(PROBS_A)[0], torch.tensor(GT_TOP_ROW))
    assert curve.shape == (255,)
    assert curve.max().item() == pytest.approx(0.8125)
    assert curve[0].item() == pytest.approx(f_beta(0.5, 1.0))  # t = 0: every pixel predicted
    assert curve[-1].item() == 0.0  # t = 1.0: nothing predicted -> 0, not NaN


def test_official_f_takes_max_of_the_batch_mean_so_batching_changes_it():
    pred = probs(PROBS_A, PROBS_B)
    gt = torch.tensor([GT_TOP_ROW, GT_TOP_LEFT])
    together = object_metrics(pred, gt, batch_size=2, frames_per_clip=1, inputs="probs")
    apart = object_metrics(pred, gt, batch_size=1, frames_per_clip=1, inputs="probs")
    # One batch: best common threshold is in (0.1, 0.2]: A has prec 2/3, rec 1; B is perfect.
    assert together.official_fscore == pytest.approx((f_beta(2 / 3, 1.0) + 1.0) / 2, abs=1e-6)
    assert apart.official_fscore == pytest.approx((0.8125 + 1.0) / 2, abs=1e-6)
    assert together.batches == 1 and apart.batches == 2
    # The clean F does not depend on batching: fixed p > 0.5 (A: prec 1/2, rec 1/2; B: nothing predicted).
    assert together.fscore == apart.fscore == pytest.approx((f_beta(0.5, 0.5) + 0.0) / 2)


def test_empty_gt_frames_count_in_j_but_not_in_f_and_an_all_empty_batch_scores_zero_f():
    pred = probs(PROBS_A, [[0.1, 0.1], [0.1, 0.9]])
    gt = torch.tensor([GT_TOP_ROW, [[0, 0], [0, 0]]])
    scores = object_metrics(pred, gt, batch_size=1, frames_per_clip=1, inputs="probs")
    assert scores.official_fscore == pytest.approx((0.8125 + 0.0) / 2)  # second batch has no foreground
    assert scores.fscore == pytest.approx(f_beta(0.5, 0.5))  # clean F: only the foreground frame
    assert scores.miou == pytest.approx((1 / 3 + 3 / 4) / 2)


def test_smaller_last_batch_is_over_weighted_in_the_official_mean_only():
    logits = torch.tensor([[[5.0, -5.0]], [[5.0, 5.0]], [[-5.0, -5.0]]])  # (3, 1, 2)
    gt = torch.tensor([[[1, 1]], [[1, 1]], [[1, 1]]])
    scores = object_metrics(logits, gt, batch_size=2, frames_per_clip=1)
    assert scores.official_miou == pytest.approx(((0.5 + 1.0) / 2 + 0.0) / 2)
    assert scores.miou == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def _brute_force_official_f(prob: torch.Tensor, gt: torch.Tensor) -> float:
    """Oracle from avsbench-format.md §4.1: one full mask per threshold, float32 throughout."""
    total, count = torch.zeros(255), 0
    for n in range(prob.shape[0]):
        y = gt[n].float()
        if torch.mean(y) == 0.0:
            continue
        prec, rec = torch.zeros(255), torch.zeros(255)
        for i, threshold in enumerate(torch.linspace(0, 1 - 1e-10, 255)):
            y_temp = (prob[n] >= threshold).float()
            tp = (y_temp * y).sum()
            prec[i], rec[i] = tp / (y_temp.sum() + 1e-20), tp / (y.sum() + 1e-20)
        f = (1 + 0.3) * prec * rec / (0.3 * prec + rec)
        f[f != f] = 0
        total = total + f
        count += 1
    return (total / count).max().item() if count else 0.0


def test_official_f_equals_the_per_threshold_masks_exactly():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 9, 11, generator=generator) * 3
    gt = torch.rand(4, 9, 11, generator=generator) > 0.6
    gt[2] = False  # one empty-GT frame
    metrics = ObjectMetrics("logits")
    metrics.update(logits, gt)
    assert metrics.batch_fscore[0] == _brute_force_official_f(torch.sigmoid(logits), gt)


def test_thresholds_are_the_official_float32_linspace():
    assert OFFICIAL_THRESHOLDS.dtype == torch.float32 and OFFICIAL_THRESHOLDS.numel() == 255
    assert OFFICIAL_THRESHOLDS[0].item() == 0.0 and OFFICIAL_THRESHOLDS[-1].item() == 1.0


def test_logits_and_probabilities_agree_and_numpy_inputs_work():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 6, 6, generator=generator) * 4
    gt = (torch.rand(5, 6, 6, generator=generator) > 0.5).numpy()
    from_logits = object_metrics(logits.numpy(), gt, frames_per_clip=5)
    from_probs = object_metrics(torch.sigmoid(logits), gt, frames_per_clip=5, inputs="probs")
    assert from_logits == from_probs


def test_no_frames_and_bad_arguments():
    assert math.isnan(ObjectMetrics().compute().official_miou)
    with pytest.raises(ValueError):
        ObjectMetrics(inputs="masks")
    with pytest.raises(ValueError):
        object_metrics(np.zeros((2, 3, 3)), np.zeros((2, 3, 4)))
    with pytest.raises(ValueError):
        object_metrics(np.zeros((3, 3)), np.zeros((3, 3)))
