"""Hungarian matcher on hand-made clips: perfect matches, permutations, exact costs, valid frames, ignore."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from engine_toys import bilinear_reference, block_masks, confident_logits

from ovavss_cli.engine.matcher import ClipTarget, HungarianMatcher
from ovavss_cli.engine.point_sampling import uniform_points

T, SIZE = 3, 24


def as_mapping(indices: tuple[torch.Tensor, torch.Tensor]) -> dict[int, int]:
    """GT index -> query index."""
    query_idx, gt_idx = indices
    return dict(zip(gt_idx.tolist(), query_idx.tolist(), strict=True))


def one_clip(logits: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"pred_logits": logits[None], "pred_masks": masks[None]}


def test_perfect_predictions_match_their_gt():
    generator = torch.Generator().manual_seed(0)
    gt = block_masks(3, T, SIZE, generator)
    pred = confident_logits(torch.zeros(6, T, SIZE, SIZE))  # every query says "nothing" ...
    slots = [4, 0, 2]
    for obj, slot in enumerate(slots):
        pred[slot] = confident_logits(gt[obj])  # ... except one exact query per object
    logits = torch.zeros(6, 2)  # uninformative classes: the masks must decide
    target = ClipTarget(torch.zeros(3, dtype=torch.int64), gt)
    indices = HungarianMatcher(num_points=256)(one_clip(logits, pred), [target], [torch.Generator().manual_seed(1)])
    assert as_mapping(indices[0]) == {0: 4, 1: 0, 2: 2}


def test_matching_is_permutation_invariant():
    generator = torch.Generator().manual_seed(2)
    gt = block_masks(4, T, SIZE, generator)
    logits = torch.randn(7, 2, generator=generator)
    pred = torch.randn(7, T, SIZE // 2, SIZE // 2, generator=generator) * 3
    labels = torch.zeros(4, dtype=torch.int64)
    matcher = HungarianMatcher(num_points=128)
    base = as_mapping(matcher(one_clip(logits, pred), [ClipTarget(labels, gt)], [torch.Generator().manual_seed(9)])[0])
    assert len(base) == 4

    query_perm = torch.randperm(7, generator=generator)
    gt_perm = torch.randperm(4, generator=generator)
    permuted = matcher(
        one_clip(logits[query_perm], pred[query_perm]),
        [ClipTarget(labels, gt[gt_perm])],
        [torch.Generator().manual_seed(9)],  # same points: they do not depend on query or GT order
    )
    mapped = {gt_perm[g].item(): query_perm[q].item() for g, q in as_mapping(permuted[0]).items()}
    assert mapped == base


def test_cost_matrix_equals_a_hand_computation():
    """2*class + 5*BCE + 5*dice over (valid frames x shared points), with ignore weights, written out."""
    generator = torch.Generator().manual_seed(4)
    num_points = 7
    gt = block_masks(2, T, 8, generator)
    pred = torch.randn(3, T, 4, 4, generator=generator) * 2
    logits = torch.randn(3, 2, generator=generator)
    ignore = torch.zeros(T, 8, 8, dtype=torch.bool)
    ignore[:, :, :3] = True
    valid = [True, False, True]
    target = ClipTarget(torch.zeros(2, dtype=torch.int64), gt, torch.tensor(valid), ignore)

    cost = HungarianMatcher(num_points=num_points).cost_matrix(logits, pred, target, torch.Generator().manual_seed(8))
    coords = uniform_points(1, num_points, torch.Generator().manual_seed(8), torch.device("cpu"))[0].tolist()

    expected = np.zeros((3, 2))
    for q in range(3):
        probs = torch.softmax(logits[q], 0).tolist()
        for n in range(2):
            bce, inter, pred_sum, gt_sum, count = 0.0, 0.0, 0.0, 0.0, 0
            for t in [t for t in range(T) if valid[t]]:
                for x, y in coords:
                    logit = bilinear_reference(pred[q, t].numpy(), x, y)
                    label = bilinear_reference(gt[n, t].numpy(), x, y)
                    weight = 1.0 - bilinear_reference(ignore[t].float().numpy(), x, y)
                    prob = 1.0 / (1.0 + math.exp(-logit))
                    bce += weight * -(label * math.log(prob) + (1 - label) * math.log(1 - prob))
                    inter += weight * prob * label
                    pred_sum += weight * prob
                    gt_sum += weight * label
                    count += 1
            dice = 1.0 - (2 * inter + 1) / (pred_sum + gt_sum + 1)
            expected[q, n] = 2 * -probs[0] + 5 * bce / count + 5 * dice
    np.testing.assert_allclose(cost.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_only_supervised_frames_count():
    generator = torch.Generator().manual_seed(5)
    gt = block_masks(1, T, SIZE, generator)
    wrong = confident_logits(1.0 - gt[0])
    right = confident_logits(gt[0])
    pred = torch.stack([right, wrong]).clone()  # query 0: right on frame 0 only; query 1: right on frames 1, 2
    pred[0, 1:] = wrong[1:]
    pred[1, 1:] = right[1:]
    logits = torch.zeros(2, 2)
    matcher = HungarianMatcher(num_points=256)

    def matched_query(valid: list[bool]) -> int:
        target = ClipTarget(torch.zeros(1, dtype=torch.int64), gt, torch.tensor(valid))
        return as_mapping(matcher(one_clip(logits, pred), [target], [torch.Generator().manual_seed(0)])[0])[0]

    assert matched_query([True, True, True]) == 1
    assert matched_query([True, False, False]) == 0

    # Whatever an unsupervised frame predicts, the costs do not move.
    target = ClipTarget(torch.zeros(1, dtype=torch.int64), gt, torch.tensor([True, False, True]))
    before = matcher.cost_matrix(logits, pred, target, torch.Generator().manual_seed(3))
    noisy = pred.clone()
    noisy[:, 1] = torch.randn(2, SIZE, SIZE, generator=generator) * 50
    after = matcher.cost_matrix(logits, noisy, target, torch.Generator().manual_seed(3))
    assert torch.equal(before, after)


def test_ignored_pixels_do_not_change_the_cost():
    generator = torch.Generator().manual_seed(6)
    gt = block_masks(2, T, SIZE, generator)
    pred = torch.randn(4, T, SIZE, SIZE, generator=generator)
    logits = torch.randn(4, 2, generator=generator)
    ignore = torch.zeros(T, SIZE, SIZE, dtype=torch.bool)
    ignore[:, :, : SIZE // 2] = True
    changed = pred.clone()
    # Pixels whose every bilinear neighbourhood lies inside the ignored half (away from the zero-padded border).
    changed[:, :, 1:-1, 1 : SIZE // 2 - 1] += 7.0
    matcher = HungarianMatcher(num_points=512)

    def cost(masks: torch.Tensor, ignore_map: torch.Tensor | None) -> torch.Tensor:
        target = ClipTarget(torch.zeros(2, dtype=torch.int64), gt, ignore=ignore_map)
        return matcher.cost_matrix(logits, masks, target, torch.Generator().manual_seed(1))

    assert torch.equal(cost(pred, ignore), cost(changed, ignore))
    assert not torch.allclose(cost(pred, None), cost(changed, None))  # without ignore the change matters


def test_empty_target_and_bad_inputs():
    matcher = HungarianMatcher(num_points=16)
    outputs = one_clip(torch.zeros(5, 2), torch.zeros(5, T, 4, 4))
    empty = ClipTarget(torch.zeros(0, dtype=torch.int64), torch.zeros(0, T, 8, 8))
    query_idx, gt_idx = matcher(outputs, [empty], [torch.Generator()])[0]
    assert query_idx.numel() == gt_idx.numel() == 0

    with pytest.raises(ValueError, match="batch of 1"):
        matcher(outputs, [empty, empty], [torch.Generator()] * 2)
    wrong_frames = ClipTarget(torch.zeros(1, dtype=torch.int64), torch.zeros(1, T + 1, 8, 8))
    with pytest.raises(ValueError, match="frames"):
        matcher(outputs, [wrong_frames], [torch.Generator()])
    with pytest.raises(ValueError):
        HungarianMatcher(cost_class=0, cost_mask=0, cost_dice=0)


def test_clip_target_validation():
    masks = torch.zeros(2, T, 8, 8)
    with pytest.raises(ValueError, match="labels"):
        ClipTarget(torch.zeros(3, dtype=torch.int64), masks)
    with pytest.raises(ValueError, match="no frame"):
        ClipTarget(torch.zeros(2, dtype=torch.int64), masks, torch.zeros(T, dtype=torch.bool))
    with pytest.raises(ValueError, match="frame_valid"):
        ClipTarget(torch.zeros(2, dtype=torch.int64), masks, torch.ones(T + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="ignore"):
        ClipTarget(torch.zeros(2, dtype=torch.int64), masks, ignore=torch.zeros(T, 8, 9, dtype=torch.bool))
    target = ClipTarget(torch.zeros(2, dtype=torch.int64), masks, torch.tensor([True, False, True]))
    assert target.valid_frames.tolist() == [0, 2]
    assert target.num_objects == 2
