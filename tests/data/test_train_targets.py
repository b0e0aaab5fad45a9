"""data/train_targets.py: frame sampling and both tasks' targets as plain arrays (no model, no loss)."""

import numpy as np
import torch

from ovavss_cli.data.train_targets import frame_objects, pad_bottom_right, sample_frames, sounding_object_masks


def test_a_window_long_clip_keeps_every_frame_and_a_longer_one_samples_around_an_annotated_frame():
    generator = torch.Generator().manual_seed(0)
    assert sample_frames(np.ones(5, dtype=bool), 5, generator) == [0, 1, 2, 3, 4]
    assert generator.initial_seed() == 0 and torch.equal(
        generator.get_state(), torch.Generator().manual_seed(0).get_state()
    )
    annotated = np.zeros(10, dtype=bool)
    annotated[7] = True
    for seed in range(5):
        chosen = sample_frames(annotated, 5, torch.Generator().manual_seed(seed))
        assert len(set(chosen)) == 5 and chosen == sorted(chosen) and 7 in chosen and max(chosen) < 10
    again = [sample_frames(annotated, 5, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert again[0] == again[1]


def test_one_mask_per_sounding_class_of_the_annotated_frames_and_ignored_pixels():
    labels = torch.zeros(3, 4, 4, dtype=torch.uint8)
    labels[0, :2] = 5  # class 5 in the annotated frame 0
    labels[1, 2:] = 9  # class 9 only in frame 1, which has no annotation
    labels[2, :, :1] = 7  # class 7 is ignored (e.g. a novel class under ignore-novel)
    labels[2, :, 3:] = 5
    frame_valid = torch.tensor([True, False, True])
    masks, ignore = sounding_object_masks(labels, frame_valid, (7,))
    assert masks.shape == (1, 3, 4, 4) and masks.dtype == torch.bool
    assert masks[0, 0].sum() == 8 and masks[0, 2].sum() == 4 and not masks[0, 1].any()
    assert ignore is not None and ignore[2].sum() == 4 and not ignore[:2].any()
    empty, none = sounding_object_masks(torch.zeros(2, 3, 3, dtype=torch.uint8), torch.tensor([True, True]), ())
    assert empty.shape == (0, 2, 3, 3) and none is None


def test_a_multi_source_frame_splits_into_its_components_and_an_unknown_clip_allows_every_category():
    mask = np.zeros((12, 12), dtype=bool)
    mask[:5, :5] = True  # 25 pixels
    mask[8:, 8:] = True  # 16 pixels
    mask[0, 11] = True  # a speck
    two = frame_objects(mask, np.array([True, True, False]), 3, split_multi_source=True, min_component_pixels=16)
    assert two.masks.shape == (2, 12, 12) and two.masks[0].sum() == 25 and two.masks[1].sum() == 16
    assert two.label_set.tolist() == [True, True, False, False]
    assert two.unmatched_classes.tolist() == [False, False, True, True]
    whole = frame_objects(mask, np.array([True, True, False]), 3, split_multi_source=False, min_component_pixels=16)
    assert whole.masks.shape == (1, 12, 12) and whole.masks[0].sum() == 42
    unknown = frame_objects(mask, None, 3, split_multi_source=True, min_component_pixels=16)
    assert unknown.label_set.tolist() == [True, True, True, False] and unknown.unmatched_classes.all()


def test_padding_goes_to_the_bottom_and_the_right():
    padded = pad_bottom_right(torch.ones(2, 3, 4), 5, 6)
    assert padded.shape == (2, 5, 6) and padded[:, :3, :4].all() and padded.sum() == 24
