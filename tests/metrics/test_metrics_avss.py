"""Metric A (GZSL confusion matrix) and metric B (AVSS per-frame, bug-for-bug) on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from avss_oracle import reference_frame_scores

from ovavss_cli.data.classes import BASE_IDS, NOVEL_IDS
from ovavss_cli.metrics.avss import (
    HISTC_LABEL_TO_BIN,
    SegmentationMetrics,
    avss_frame_scores,
    avss_scores,
    confusion_matrix,
    harmonic_mean,
)

# Class ids used below and their AVSBench-OV split (asserted so the expectations stay honest).
NOVEL_A, NOVEL_B = 1, 3  # accordion, axe
BASE_A, BASE_B = 2, 7  # airplane, bird


def test_class_ids_used_here_have_the_expected_split():
    assert {NOVEL_A, NOVEL_B} <= set(NOVEL_IDS)
    assert {BASE_A, BASE_B} <= set(BASE_IDS)


def score(gt, pred):
    metrics = SegmentationMetrics()
    metrics.update(np.array(gt), np.array(pred))
    return metrics.compute()


# ------------------------------------------------------------------ metric A


def test_gzsl_hand_computed_two_by_two():
    # Confusion: (bg->base_a) 1, (novel_a->novel_a) 1, (novel_a->bg) 1, (base_a->base_a) 1.
    gt = [[NOVEL_A, NOVEL_A], [0, BASE_A]]
    pred = [[NOVEL_A, 0], [BASE_A, BASE_A]]
    gzsl = score(gt, pred).gzsl
    assert gzsl.iou[0] == 0.0  # 0 / (1 + 1 - 0)
    assert gzsl.iou[NOVEL_A] == pytest.approx(1 / 2)  # 1 / (2 + 1 - 1)
    assert gzsl.iou[BASE_A] == pytest.approx(1 / 2)  # 1 / (1 + 2 - 1)
    assert np.isnan(gzsl.iou[BASE_B])  # neither in GT nor predicted
    assert gzsl.miou == pytest.approx(1 / 3)  # background counts in the all-class mean
    assert gzsl.miou_base == pytest.approx(1 / 2)
    assert gzsl.miou_novel == pytest.approx(1 / 2)
    assert gzsl.miou_harmonic == pytest.approx(1 / 2)


def test_gzsl_predicted_but_absent_class_counts_as_zero():
    gt = [[BASE_A, BASE_A], [BASE_A, BASE_A]]
    pred = [[BASE_A, BASE_A], [BASE_A, BASE_B]]
    gzsl = score(gt, pred).gzsl
    assert gzsl.iou[BASE_A] == pytest.approx(3 / 4)
    assert gzsl.iou[BASE_B] == 0.0
    assert gzsl.miou_base == pytest.approx((3 / 4 + 0) / 2)
    assert math.isnan(gzsl.miou_novel)
    assert gzsl.miou_harmonic == 0.0  # undefined novel side -> 0, as the reference


def test_gzsl_background_false_positive_lowers_predicted_class():
    gt = np.zeros((2, 4), dtype=np.int64)
    gt[0, :2] = BASE_A
    pred = gt.copy()
    pred[1, :] = BASE_A  # 4 background pixels predicted as BASE_A
    gzsl = score(gt, pred).gzsl
    assert gzsl.iou[BASE_A] == pytest.approx(2 / 6)
    assert gzsl.iou[0] == pytest.approx(2 / 6)  # background: 6 GT px, 2 predicted bg, 2 correct


def test_gzsl_empty_prediction():
    gt = np.zeros((4, 4), dtype=np.int64)
    gt[:2, :2] = NOVEL_A
    gt[2:, 2:] = BASE_A
    gzsl = score(gt, np.zeros_like(gt)).gzsl
    assert gzsl.iou[NOVEL_A] == 0.0 and gzsl.iou[BASE_A] == 0.0
    assert gzsl.iou[0] == pytest.approx(8 / 16)
    assert gzsl.miou == pytest.approx(0.5 / 3)
    assert gzsl.miou_harmonic == 0.0


def test_gzsl_pools_pixels_over_frames_not_frame_means():
    # Frame 1: 1/1 correct; frame 2: 1 of 3 GT pixels found. Pooled IoU = 2/4, frame mean would be 2/3.
    metrics = SegmentationMetrics()
    metrics.update(np.array([[BASE_A, 0, 0, 0]]), np.array([[BASE_A, 0, 0, 0]]))
    metrics.update(np.array([[BASE_A, BASE_A, BASE_A, 0]]), np.array([[BASE_A, 0, 0, 0]]))
    assert metrics.compute().gzsl.iou[BASE_A] == pytest.approx(2 / 4)


def test_confusion_matrix_is_int64_and_oriented_gt_rows():
    confusion = confusion_matrix(np.array([[BASE_A]]), np.array([[NOVEL_A]]))
    assert confusion.dtype == np.int64 and confusion.shape == (71, 71)
    assert confusion[BASE_A, NOVEL_A] == 1 and confusion.sum() == 1


def test_harmonic_mean():
    assert harmonic_mean(0.5, 0.25) == pytest.approx(2 / (2 + 4))
    assert harmonic_mean(0.0, 0.5) == 0.0
    assert harmonic_mean(float("nan"), 0.5) == 0.0


def test_rejects_out_of_range_ids_and_shape_mismatch():
    with pytest.raises(ValueError):
        confusion_matrix(np.array([[71]]), np.array([[0]]))
    with pytest.raises(ValueError):
        avss_frame_scores(np.zeros((2, 2), dtype=np.int64), np.zeros((2, 3), dtype=np.int64))


# ------------------------------------------------------------------ metric B


def test_histc_bins_shift_classes_by_one_and_leave_last_bin_empty():
    assert HISTC_LABEL_TO_BIN[0].sum() == 0  # background is below min=1: no bin
    for label in range(1, 71):
        assert HISTC_LABEL_TO_BIN[label].argmax() == label - 1 and HISTC_LABEL_TO_BIN[label].sum() == 1
    assert HISTC_LABEL_TO_BIN[:, 70].sum() == 0  # bin 70 never receives a label


def test_avss_hand_computed_frame():
    gt = [[NOVEL_A, NOVEL_A], [0, 0]]
    pred = [[NOVEL_A, NOVEL_B], [NOVEL_B, 0]]  # the NOVEL_B on GT background is discarded
    avss = score(gt, pred).avss
    f_novel_a = 1.3 * 1.0 * 0.5 / (0.3 * 1.0 + 0.5)  # prec 1/1, rec 1/2
    assert avss.bin_iou[NOVEL_A - 1] == pytest.approx(0.5)
    assert avss.bin_fscore[NOVEL_A - 1] == pytest.approx(f_novel_a)
    assert avss.bin_iou[NOVEL_B - 1] == 0.0 and avss.bin_frames[NOVEL_B - 1] == 1
    assert avss.bin_frames.sum() == 2
    assert avss.miou == pytest.approx(0.5 / 71)  # mean over all 71 bins
    assert avss.fscore == pytest.approx(f_novel_a / 71)
    assert avss.class_fscore[NOVEL_A] == pytest.approx(f_novel_a)
    assert avss.fscore_novel == pytest.approx(f_novel_a / 2)  # novel classes that occur: a and b
    assert math.isnan(avss.fscore_base)


def test_avss_ignores_background_false_positives_and_empty_frames():
    gt = np.zeros((3, 3), dtype=np.int64)
    pred = np.full_like(gt, BASE_A)
    scores = score(gt, pred)
    assert scores.avss.bin_frames.sum() == 0 and scores.avss.miou == 0.0 and scores.avss.fscore == 0.0
    assert scores.gzsl.iou[BASE_A] == 0.0  # metric A does punish them


def test_avss_empty_prediction_counts_gt_classes_with_zero():
    gt = np.zeros((2, 2), dtype=np.int64)
    gt[0] = BASE_A
    avss = score(gt, np.zeros_like(gt)).avss
    assert avss.bin_frames[BASE_A - 1] == 1
    assert avss.bin_iou[BASE_A - 1] == 0.0 and avss.bin_fscore[BASE_A - 1] == 0.0
    assert avss.fscore_base == 0.0


def test_avss_ten_frame_clip_averages_over_frames_where_class_occurs():
    gt = np.zeros((10, 4, 4), dtype=np.int64)
    pred = np.zeros_like(gt)
    gt[:5, :2] = BASE_A  # BASE_A sounds in frames 0-4 (8 px each), predicted perfectly
    pred[:5, :2] = BASE_A
    gt[5:, 2:] = NOVEL_A  # NOVEL_A in frames 5-9: half found in frames 5-6, missed in 7-9
    pred[5:7, 2] = NOVEL_A
    avss = score(gt, pred).avss
    assert avss.bin_frames[BASE_A - 1] == 5 and avss.bin_iou[BASE_A - 1] == pytest.approx(1.0)
    assert avss.bin_frames[NOVEL_A - 1] == 5
    assert avss.bin_iou[NOVEL_A - 1] == pytest.approx((0.5 + 0.5 + 0 + 0 + 0) / 5)
    f_half = 1.3 * 1.0 * 0.5 / (0.3 + 0.5)
    assert avss.bin_fscore[NOVEL_A - 1] == pytest.approx(2 * f_half / 5)
    assert avss.miou == pytest.approx((1.0 + 0.2) / 71)
    assert avss.fscore_base == pytest.approx(1.0) and avss.fscore_novel == pytest.approx(2 * f_half / 5)


def test_avss_matches_per_frame_torch_histc_on_random_maps():
    rng = np.random.default_rng(0)
    # Few labels per frame (including 70) so that intersections and unions are non-trivial.
    labels = np.array([0, 0, 1, 2, 35, 69, 70])
    gt = labels[rng.integers(0, len(labels), size=(6, 12, 10))]
    pred = np.where(rng.random(gt.shape) < 0.6, gt, labels[rng.integers(0, len(labels), size=gt.shape)])
    ours = avss_frame_scores(gt, pred)
    iou, fscore, occurs = reference_frame_scores(torch.from_numpy(gt), torch.from_numpy(pred))
    np.testing.assert_array_equal(ours.occurs, occurs)
    np.testing.assert_allclose(ours.iou, iou, atol=1e-6)
    np.testing.assert_allclose(ours.fscore, fscore, atol=1e-6)
    assert ours.iou[:, 69].any()  # class 70 exercised, landing in bin 69


def test_avss_scores_aggregate_nan_to_zero():
    frames = np.zeros(71, dtype=np.int64)
    frames[4] = 2
    iou_sum = np.zeros(71)
    iou_sum[4] = 1.5
    avss = avss_scores(iou_sum, iou_sum, frames)
    assert avss.bin_iou[4] == pytest.approx(0.75) and avss.bin_iou[3] == 0.0
    assert avss.class_iou[5] == pytest.approx(0.75) and np.isnan(avss.class_iou[4]) and np.isnan(avss.class_iou[0])


def test_stacked_update_equals_frame_by_frame():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 5, size=(4, 8, 8))
    pred = rng.integers(0, 5, size=(4, 8, 8))
    stacked, single = SegmentationMetrics(), SegmentationMetrics()
    stacked.update(gt, pred)
    for frame in range(4):
        single.update(gt[frame], pred[frame])
    a, b = stacked.compute(), single.compute()
    assert a.frames == b.frames == 4
    np.testing.assert_array_equal(a.confusion, b.confusion)
    np.testing.assert_allclose(a.avss.bin_iou, b.avss.bin_iou)
    assert a.gzsl.miou == pytest.approx(b.gzsl.miou)
