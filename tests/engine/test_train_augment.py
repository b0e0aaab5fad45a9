"""Per-clip training augmentation: one short side and one flip for all frames and masks, from a generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ovavss_cli.engine.augment import (
    AugmentConfig,
    ClipAugmentation,
    apply_clip_augmentation,
    augment_clip,
    draw_clip_augmentation,
)
from ovavss_cli.models.preprocess import resize_shortest_edge

T, H, W = 3, 20, 30


def marked_clip() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames with a white box on the left (shifting per frame), its instance mask and a label map."""
    frames = torch.zeros(T, H, W, 3, dtype=torch.uint8)
    masks = torch.zeros(2, T, H, W, dtype=torch.bool)
    labels = torch.zeros(T, H, W, dtype=torch.uint8)
    for t in range(T):
        frames[t, 4:12, 2 + t : 10 + t] = 255
        masks[0, t, 4:12, 2 + t : 10 + t] = True
        labels[t, 4:12, 2 + t : 10 + t] = 37
        labels[t, 14:18, 20:28] = 5
    masks[1] = torch.from_numpy(labels.numpy() == 5)
    return frames, masks, labels


def test_draws_come_from_the_generator_and_cover_the_choices():
    config = AugmentConfig()
    draws = [draw_clip_augmentation(config, torch.Generator().manual_seed(seed)) for seed in range(60)]
    assert {d.short_edge for d in draws} == {240, 360, 480}
    assert {d.flip for d in draws} == {True, False}
    assert all(d.max_size == 1333 for d in draws)
    torch.manual_seed(0)  # the global RNG plays no part
    again = [draw_clip_augmentation(config, torch.Generator().manual_seed(seed)) for seed in range(60)]
    assert draws == again
    never = AugmentConfig(short_edges=(360,), flip_prob=0.0)
    assert draw_clip_augmentation(never, torch.Generator()) == ClipAugmentation(360, 1333, False)
    with pytest.raises(ValueError):
        AugmentConfig(short_edges=())


@pytest.mark.parametrize("flip", [False, True])
def test_every_frame_and_mask_gets_the_same_transform(flip):
    frames, masks, labels = marked_clip()
    augmentation = ClipAugmentation(short_edge=240, max_size=1333, flip=flip)
    out_frames, (out_masks, out_labels) = apply_clip_augmentation(augmentation, frames, [masks, labels])
    assert out_frames.shape == (T, 240, 360, 3) and out_frames.dtype == torch.uint8
    assert out_masks.shape == (2, T, 240, 360) and out_masks.dtype == torch.bool
    assert out_labels.shape == (T, 240, 360) and out_labels.dtype == torch.uint8

    for t in range(T):
        # Frames: the inference resize, frame by frame, then the flip.
        expected = resize_shortest_edge(frames[t : t + 1], 240, 1333)[0]
        assert torch.equal(out_frames[t], expected.flip(1) if flip else expected)
        # Label maps: Pillow nearest (detectron2's apply_segmentation), then the same flip.
        nearest = np.asarray(Image.fromarray(labels[t].numpy()).resize((360, 240), Image.NEAREST))
        assert np.array_equal(out_labels[t].numpy(), nearest[:, ::-1] if flip else nearest)
        # The mask still covers the white box it was drawn on (bilinear blurs the box's edges a little).
        white = out_frames[t].min(-1).values > 127
        overlap = (white & out_masks[0, t]).sum() / (white | out_masks[0, t]).sum()
        assert overlap > 0.9
        assert (out_masks[0, t].nonzero()[:, 1].float().mean() > 180) == flip  # box moved to the right half
    assert set(out_labels.unique().tolist()) == {0, 5, 37}  # nearest never blends labels


def test_augment_clip_is_reproducible_and_caps_the_long_side():
    frames, masks, _ = marked_clip()
    first = augment_clip(frames, [masks], generator=torch.Generator().manual_seed(4))
    second = augment_clip(frames.numpy(), [masks], generator=torch.Generator().manual_seed(4))
    assert first[2] == second[2]
    assert torch.equal(first[0], second[0]) and torch.equal(first[1][0], second[1][0])

    wide = torch.zeros(2, 10, 100, 3, dtype=torch.uint8)
    out, _, augmentation = augment_clip(wide, generator=torch.Generator(), config=AugmentConfig(short_edges=(480,)))
    assert augmentation.short_edge == 480
    assert out.shape == (2, 133, 1333, 3)  # 480 x 4800 would break the 1333 cap


def test_bad_maps_are_rejected():
    frames, masks, _ = marked_clip()
    augmentation = ClipAugmentation(short_edge=240, max_size=1333, flip=False)
    with pytest.raises(ValueError, match="map 0"):
        apply_clip_augmentation(augmentation, frames, [masks[..., :-1]])
    with pytest.raises(ValueError, match="bool or uint8"):
        apply_clip_augmentation(augmentation, frames, [masks.float()])
    with pytest.raises(ValueError, match="one clip"):
        apply_clip_augmentation(augmentation, frames[None], [])
