"""Accumulators of consecutive runs of frames, merged in run order, compute exactly what one pass computes
(what a sharded ``eval`` relies on), where adding up the runs' partial float sums would not."""

from __future__ import annotations

import numpy as np
import torch

from ovavss_cli.metrics.avss import SegmentationMetrics
from ovavss_cli.metrics.foreground import ForegroundFraction, ForegroundIoU
from ovavss_cli.metrics.object import ObjectMetrics
from ovavss_cli.metrics.running_sum import RunningSum


def test_running_sums_of_runs_concatenate_to_the_one_pass_sum_where_partial_sums_do_not():
    terms = [0.1, 0.2, 0.3, 1e16, 1.0, -1e16]
    one_pass, first, second = RunningSum(), RunningSum(), RunningSum()
    for index, term in enumerate(terms):
        one_pass.add(term)
        (first if index < 3 else second).add(term)
    assert RunningSum.concatenated([first, second]).value == one_pass.value
    assert first.value + second.value != one_pass.value  # why the terms are kept


def test_merged_segmentation_and_foreground_accumulators_equal_one_pass():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 5, size=(7, 16, 16)) * (rng.random((7, 16, 16)) > 0.3)
    pred = np.where(rng.random((7, 16, 16)) > 0.4, gt, rng.integers(0, 5, size=(7, 16, 16)))
    one, runs = SegmentationMetrics(), [SegmentationMetrics(), SegmentationMetrics(), SegmentationMetrics()]
    iou_one, iou_runs = ForegroundIoU(), [ForegroundIoU() for _ in runs]
    fraction_one, fraction_runs = ForegroundFraction(), [ForegroundFraction() for _ in runs]
    for frame in range(7):
        run = 0 if frame < 2 else 1 if frame < 5 else 2
        one.update(gt[frame], pred[frame])
        runs[run].update(gt[frame], pred[frame])
        iou_one.update(pred[frame], gt[frame])
        iou_runs[run].update(pred[frame], gt[frame])
        fraction_one.update(pred[frame])
        fraction_runs[run].update(pred[frame])
    merged, expected = SegmentationMetrics.merged(runs).compute(), one.compute()
    assert (merged.confusion == expected.confusion).all() and merged.frames == 7
    assert merged.avss.miou == expected.avss.miou and merged.avss.fscore == expected.avss.fscore
    assert np.array_equal(merged.avss.bin_iou, expected.avss.bin_iou)
    assert ForegroundIoU.merged(iou_runs).mean_frame_iou == iou_one.mean_frame_iou
    assert ForegroundFraction.merged(fraction_runs).mean == fraction_one.mean


def test_merged_object_metrics_of_whole_batches_equal_one_pass():
    generator = torch.Generator().manual_seed(0)
    prob = torch.rand((6, 8, 8), generator=generator)
    gt = (torch.rand((6, 8, 8), generator=generator) > 0.6).to(torch.int64)
    one, first, second = ObjectMetrics("probs"), ObjectMetrics("probs"), ObjectMetrics("probs")
    for start in (0, 2, 4):  # batches of 2 frames
        one.update(prob[start : start + 2], gt[start : start + 2])
        (first if start < 2 else second).update(prob[start : start + 2], gt[start : start + 2])
    assert ObjectMetrics.merged([first, second]).compute() == one.compute()
