"""Unit tests of the selection and painting of label maps (pure tensor code, no CLIP)."""

from __future__ import annotations

import torch

from ovavss_cli.models.ovavss.postprocess import (
    KeptMask,
    PostprocessConfig,
    masks_at_frame_size,
    paint_label_maps,
    postprocess,
    select_predictions,
)


def test_selection_is_topk_then_threshold_best_first():
    probs = torch.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])  # queries 3 and 8
    kept = select_predictions(probs, torch.tensor([3, 8]), top_k=2, score_threshold=0.3)
    assert [(k.query, k.label) for k in kept] == [(8, 1), (3, 2)]
    assert kept[0].score == torch.tensor(0.7).item()
    # top_k cuts before the threshold: the third-best 0.4 is not considered.
    assert len(select_predictions(probs, torch.tensor([3, 8]), top_k=3, score_threshold=0.3)) == 3
    assert len(select_predictions(probs, torch.tensor([3, 8]), top_k=10, score_threshold=0.3)) == 3


def test_threshold_is_strict_and_ties_are_deterministic():
    probs = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]])
    assert select_predictions(probs, torch.tensor([0, 1]), 10, 0.25) == []
    kept = select_predictions(probs, torch.tensor([4, 2]), top_k=3, score_threshold=0.0)
    assert [(k.query, k.label) for k in kept] == [(4, 1), (4, 2), (4, 3)]  # lower flat index first


def test_painting_keeps_the_first_label_per_pixel():
    masks = torch.zeros(3, 2, 2, 3, dtype=torch.bool)  # (K, T, H, W), best first
    masks[0, 0, 0, :2] = True
    masks[1, 0, 0, 1:] = True  # overlaps the best mask at (0, 1)
    masks[2, 1] = True
    maps = paint_label_maps(masks, [5, 7, 9])
    assert maps.dtype == torch.int64
    assert maps.tolist() == [[[5, 5, 7], [0, 0, 0]], [[9, 9, 9], [9, 9, 9]]]
    assert paint_label_maps(masks[[1, 0, 2]], [7, 5, 9])[0, 0].tolist() == [5, 7, 7]  # order decides


def test_masks_are_cropped_to_the_image_before_resizing():
    logits = torch.full((1, 1, 8, 8), -1.0)  # padded 8x8 holding a 6x4 image (h, w)
    logits[0, 0, :, 4:] = 1.0  # positive only in the padding columns
    assert not masks_at_frame_size(logits, (8, 8), (6, 4), (12, 8)).any()
    logits[0, 0, :3, :] = 1.0  # top half of the image
    masks = masks_at_frame_size(logits, (8, 8), (6, 4), (12, 8))
    assert masks.shape == (1, 1, 12, 8)
    assert masks[0, 0, :5].all() and not masks[0, 0, 7:].any()


def test_postprocess_paints_kept_queries_only():
    mask_logits = torch.full((4, 2, 4, 4), -3.0)  # (Q, T, h, w), padded 16x16 -> image 16x16
    mask_logits[1, :, :2] = 3.0  # query 1: top half, both frames
    mask_logits[3, 0] = 3.0  # query 3: whole frame 0
    probs = torch.tensor([[0.8, 0.2], [0.1, 0.9], [0.5, 0.5]])  # queries 1, 2, 3
    out = postprocess(probs, torch.tensor([1, 2, 3]), mask_logits, (16, 16), (16, 16), (8, 8))
    assert out.kept == [
        KeptMask(query=2, label=2, score=out.kept[0].score),
        KeptMask(query=1, label=1, score=out.kept[1].score),
        KeptMask(query=3, label=1, score=0.5),
        KeptMask(query=3, label=2, score=0.5),
    ]
    # Query 2 has no positive logit, so query 1 (label 1) then query 3 paint.
    assert out.label_maps.shape == (2, 8, 8) and out.label_maps.dtype == torch.int64
    assert (out.label_maps[0, :4] == 1).all() and (out.label_maps[0, 4:] == 1).all()
    assert (out.label_maps[1, :4] == 1).all() and (out.label_maps[1, 4:] == 0).all()


def test_nothing_passing_is_all_background():
    mask_logits = torch.ones(3, 5, 4, 4)
    uniform = torch.full((3, 70), 1 / 70)
    out = postprocess(uniform, torch.arange(3), mask_logits, (16, 16), (12, 16), (6, 8))
    assert out.kept == [] and out.label_maps.shape == (5, 6, 8) and not out.label_maps.any()
    none_valid = postprocess(torch.zeros(0, 70), torch.zeros(0, dtype=torch.int64), mask_logits, (16, 16), (12, 16),
                             (6, 8), PostprocessConfig(score_threshold=0.0))  # fmt: skip
    assert none_valid.kept == [] and not none_valid.label_maps.any()
