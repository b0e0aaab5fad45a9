"""AVSC's objective: the silent-object-aware instance term, matching over category sets, the GT objects of a frame,
the attended-mask term and the audio term."""

import math

import numpy as np
import pytest
import torch

from ovavss_cli.data.train_targets import sounding_components
from ovavss_cli.engine.avsc_criterion import (
    AVSCLossConfig,
    LabelSetMatcher,
    SilentAwareCriterion,
    attended_mask_losses,
    audio_category_loss,
    build_instance_target,
)
from ovavss_cli.engine.criterion import CriterionConfig
from ovavss_cli.engine.point_sampling import ImportanceSamplingConfig

K = 3  # categories; logit K is "no object"
SIZE = 16
BIG = 20.0


def frame_with_a_silent_object(silent_probs):
    """Category 0 sounds (left half, the GT object); category 1 is visible but silent (right half, no GT).

    q0 predicts the sounding object, q1 the silent object with class probabilities ``silent_probs``, q2 nothing.
    """
    gt = np.zeros((SIZE, SIZE), dtype=bool)
    gt[:, : SIZE // 2] = True
    target = build_instance_target(gt, np.array([True, False, False]), K, AVSCLossConfig())
    left, right = torch.full((SIZE, SIZE), -BIG), torch.full((SIZE, SIZE), -BIG)
    left[:, : SIZE // 2] = BIG
    right[:, SIZE // 2 :] = BIG
    masks = torch.stack([left, right, torch.full((SIZE, SIZE), -BIG)])[None, :, None]  # (1, Q, 1, H, W)
    probs = torch.tensor([[0.97, 0.01, 0.01, 0.01], silent_probs, [0.01, 0.01, 0.01, 0.97]])
    outputs = {"pred_logits": probs.log()[None].clone().requires_grad_(True), "pred_masks": masks.requires_grad_(True)}
    return outputs, target


def criterion(silent_objective="partial"):
    config = CriterionConfig(
        num_classes=K, matcher_points=256, sampling=ImportanceSamplingConfig(num_points=256), deep_supervision=False
    )
    return SilentAwareCriterion(config, silent_objective)


def losses(outputs, target, objective="partial"):
    return criterion(objective)(outputs, [target], [torch.Generator().manual_seed(0)])


def test_a_silent_object_is_not_pushed_to_no_object():
    claims_its_category = [0.001, 0.99, 0.004, 0.005]  # the silent object's query says "category 1"
    outputs, target = frame_with_a_silent_object(claims_its_category)
    result = losses(outputs, target)
    result.terms["loss_ce"].backward()
    silent_grad = outputs["pred_logits"].grad[0, 1]
    # Its mass is all on outcomes an unmatched query may have (no object, or a category that does not sound here).
    assert silent_grad.abs().max() < 2e-3

    outputs, target = frame_with_a_silent_object(claims_its_category)
    plain = losses(outputs, target, "off")  # plain Mask2Former: every unmatched query -> no object
    plain.terms["loss_ce"].backward()
    plain_grad = outputs["pred_logits"].grad[0, 1]
    assert plain_grad[1] > 0.05 and plain_grad[K] < -0.05  # gradient descent moves it from category 1 to no object


def test_moving_mass_between_no_object_and_a_silent_category_leaves_the_term_unchanged():
    as_silent_object = losses(*frame_with_a_silent_object([0.05, 0.9, 0.02, 0.03])).terms["loss_ce"]
    as_no_object = losses(*frame_with_a_silent_object([0.05, 0.02, 0.02, 0.91])).terms["loss_ce"]
    assert as_silent_object.item() == pytest.approx(as_no_object.item(), rel=1e-6)
    # ...whereas plain Mask2Former prefers "no object", and every rule penalises claiming the sounding category.
    assert (
        losses(*frame_with_a_silent_object([0.05, 0.9, 0.02, 0.03]), "off").terms["loss_ce"]
        > losses(*frame_with_a_silent_object([0.05, 0.02, 0.02, 0.91]), "off").terms["loss_ce"]
    )
    duplicate = losses(*frame_with_a_silent_object([0.9, 0.05, 0.02, 0.03])).terms["loss_ce"]
    assert duplicate > as_silent_object + 0.1


def test_partial_term_by_hand():
    outputs, target = frame_with_a_silent_object([0.05, 0.9, 0.02, 0.03])
    result = losses(outputs, target)
    matched = -math.log(0.97)  # q0 -> category 0, weight 1
    unmatched = [-math.log(0.9 + 0.02 + 0.03), -math.log(0.01 + 0.01 + 0.97)]  # allowed: 1, 2, no object; weight 0.1
    expected = (matched + 0.1 * sum(unmatched)) / (1 + 0.2)
    assert result.terms["loss_ce"].item() == pytest.approx(expected, rel=1e-5)


def test_ignore_rule_skips_queries_that_look_like_silent_objects():
    outputs, target = frame_with_a_silent_object([0.05, 0.9, 0.02, 0.03])
    result = losses(outputs, target, "ignore")
    expected = (-math.log(0.97) + 0.1 * -math.log(0.97)) / 1.1  # q1 (argmax: silent category 1) has weight 0
    assert result.terms["loss_ce"].item() == pytest.approx(expected, rel=1e-5)


def test_unmatched_masks_get_no_mask_loss():
    outputs, target = frame_with_a_silent_object([0.05, 0.9, 0.02, 0.03])
    result = losses(outputs, target)
    (result.terms["loss_mask"] + result.terms["loss_dice"]).backward()
    grad = outputs["pred_masks"].grad[0]
    assert grad[1].abs().sum() == 0 and grad[2].abs().sum() == 0 and grad[0].abs().sum() > 0


def test_matching_uses_the_mass_on_the_category_set():
    matcher = LabelSetMatcher(cost_class=2.0, cost_mask=0.0, cost_dice=1e-9, num_points=16)
    target = build_instance_target(np.ones((4, 4), dtype=bool), np.array([True, False, True]), K, AVSCLossConfig())
    assert target.label_sets.tolist() == [[True, False, True, False]]
    probs = torch.tensor([[0.5, 0.0, 0.0, 0.5], [0.3, 0.0, 0.3, 0.4], [0.0, 0.9, 0.0, 0.1]]) + 1e-6
    cost = matcher.cost_matrix(probs.log(), torch.zeros(3, 1, 4, 4), target, torch.Generator().manual_seed(0))
    assert cost[:, 0].tolist() == pytest.approx([-1.0, -1.2, 0.0], abs=1e-4)  # -2 x (p0 + p2)
    indices = matcher({"pred_logits": probs.log()[None], "pred_masks": torch.zeros(1, 3, 1, 4, 4)}, [target],
                      [torch.Generator().manual_seed(0)])  # fmt: skip
    assert indices[0][0].tolist() == [1]


def test_frame_targets_single_source_multi_source_and_unknown():
    mask = np.zeros((12, 12), dtype=bool)
    mask[1:5, 1:5] = True  # 16 pixels
    mask[7:11, 6:11] = True  # 20 pixels
    config = AVSCLossConfig(min_component_pixels=16)
    single = build_instance_target(mask, np.array([False, True, False]), K, config)
    assert single.num_objects == 1 and single.masks.sum() == 36  # one category: the whole mask is its object
    assert single.unmatched_classes.tolist() == [True, False, True, True]
    multi = build_instance_target(mask, np.array([True, True, False]), K, config)
    assert multi.num_objects == 2 and multi.masks[0].sum() == 20 and multi.masks[1].sum() == 16  # largest first
    assert multi.label_sets.tolist() == [[True, True, False, False]] * 2
    union = build_instance_target(mask, np.array([True, True, False]), K, AVSCLossConfig(split_multi_source=False))
    assert union.num_objects == 1
    unknown = build_instance_target(mask, None, K, config)
    assert unknown.label_sets.tolist() == [[True, True, True, False]] * 2
    assert unknown.unmatched_classes.all()
    empty = build_instance_target(np.zeros((12, 12), dtype=bool), np.array([True, False, False]), K, config)
    assert empty.num_objects == 0 and empty.masks.shape == (0, 1, 12, 12)
    assert len(sounding_components(mask, min_pixels=17)) == 1


def test_attended_mask_losses():
    gt = torch.zeros(1, 8, 8)
    gt[0, :4] = 1.0  # top half, at stride 4 the top row of a 2x2 map
    perfect = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    bce, dice = attended_mask_losses(perfect, gt)
    assert bce.item() < 1e-5 and dice.item() == pytest.approx(0.0, abs=1e-5)
    half = torch.full((1, 2, 2), 0.5)
    bce, dice = attended_mask_losses(half, gt)
    assert bce.item() == pytest.approx(math.log(2), rel=1e-5)
    assert dice.item() == pytest.approx(1 - (2 * 1.0 + 1) / (2.0 + 2.0 + 1), rel=1e-5)
    edge = torch.zeros(1, 8, 8)
    edge[0, :2] = 1.0  # half of the top cells: soft label 0.5 after pooling
    assert attended_mask_losses(half, edge)[0].item() == pytest.approx(math.log(2), rel=1e-5)


def test_audio_term_pools_a_clips_seconds_and_skips_unknown_clips():
    logits = torch.tensor([[5.0, -5.0], [-5.0, -5.0], [0.0, 0.0], [0.0, 0.0]])  # clip 0: rows 0-1; clip 1: rows 2-3
    clips = torch.tensor([0, 0, 1, 1])
    categories = torch.tensor([[True, False], [False, True]])
    known = torch.tensor([True, False])
    loss = audio_category_loss(logits, clips, categories, known)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-5.0)), rel=1e-5)  # max over seconds: (5, -5) vs (1, 0)
    both = audio_category_loss(logits, clips, categories, torch.tensor([True, True]))
    assert both > loss
