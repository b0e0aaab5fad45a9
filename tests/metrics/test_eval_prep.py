"""GT / prediction preparation of the OV-AVSS evaluation: the two nearest rules and the a_obj filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from avss_oracle import reference_prediction
from PIL import Image

from ovavss_cli.data.labelmap import encode_palette, write_label_png
from ovavss_cli.errors import OvavssError
from ovavss_cli.metrics.evaluate import (
    keep_sounding_classes,
    read_gt_labels,
    read_prediction,
    resize_gt_nearest,
    resize_prediction_nearest,
)


def as_image(ids: np.ndarray) -> Image.Image:
    return Image.fromarray(ids.astype(np.uint8), mode="L")


def test_the_two_nearest_rules_pick_different_pixels_hand_computed():
    row = np.tile(np.arange(5), (5, 1))  # ids 0..4 across, 5x5
    # torch legacy nearest: src = floor(dst * 5/2) -> columns 0, 2.
    np.testing.assert_array_equal(resize_prediction_nearest(row, size=2), [[0, 2], [0, 2]])
    # PIL nearest samples pixel centres: src = floor((dst + 0.5) * 5/2) -> columns 1, 3.
    np.testing.assert_array_equal(resize_gt_nearest(as_image(row), size=2), [[1, 3], [1, 3]])


def test_prediction_resize_matches_nn_upsample_on_odd_sizes():
    rng = np.random.default_rng(0)
    for shape in [(37, 53), (240, 360), (300, 200), (224, 224)]:
        ids = rng.integers(0, 71, size=shape)
        np.testing.assert_array_equal(resize_prediction_nearest(ids), reference_prediction(ids))


@pytest.mark.parametrize("shape", [(37, 53), (405, 720), (100, 300)])
def test_gt_read_equals_decoding_then_resizing_the_ids(tmp_path, shape):
    # Nearest only picks pixels, so the reference's resize-then-decode equals decode-then-resize.
    ids = np.random.default_rng(1).integers(0, 71, size=shape)
    rgb_path, index_path = tmp_path / "rgb.png", tmp_path / "index.png"
    Image.fromarray(encode_palette(ids)).save(rgb_path)
    write_label_png(index_path, ids)
    expected = np.asarray(resize_gt_nearest(as_image(ids)))
    for path, source in [(rgb_path, "rgb"), (index_path, "semantic")]:
        gt, unknown = read_gt_labels(path, source)
        assert unknown == 0 and gt.dtype == np.int64
        np.testing.assert_array_equal(gt, expected)


def test_gt_read_counts_unknown_colours_at_eval_size(tmp_path):
    rgb = encode_palette(np.full((40, 56), 28))
    rgb[:3, :3] = (255, 0, 255)
    Image.fromarray(rgb).save(tmp_path / "gt.png")
    gt, unknown = read_gt_labels(tmp_path / "gt.png", "rgb")
    # PIL rows floor((y + 0.5) * 40/224) < 3 -> y <= 16; columns floor((x + 0.5) * 56/224) < 3 -> x <= 11.
    assert unknown == 17 * 12
    assert (gt[:17, :12] == 0).all() and (gt[17:] == 28).all() and (gt[:, 12:] == 28).all()


def test_keep_sounding_classes_zeroes_everything_else():
    gt = np.array([[0, 3, 7], [28, 3, 70]])
    np.testing.assert_array_equal(keep_sounding_classes(gt, (3, 70)), [[0, 3, 0], [0, 3, 70]])
    np.testing.assert_array_equal(keep_sounding_classes(gt, ()), np.zeros_like(gt))


def test_prediction_resize_reproduces_the_reference_label_map(reference_fixture):
    outputs = torch.load(reference_fixture / "outputs.pt", weights_only=True)
    full = outputs["thr0.0_label_map_fullres"].numpy().astype(np.int64)  # (5, 224, 320)
    expected = outputs["thr0.0_label_map_224x224"].numpy().astype(np.int64)
    ours = np.stack([resize_prediction_nearest(frame) for frame in full])
    np.testing.assert_array_equal(ours, expected)
    # PIL's rule would not: the fixture separates the two.
    assert not np.array_equal(np.stack([np.asarray(resize_gt_nearest(as_image(frame))) for frame in full]), expected)


def test_prediction_png_encodings(tmp_path):
    ids = np.array([[0, 28, 68], [70, 1, 0]])
    write_label_png(tmp_path / "ours.png", ids)  # 'P' with the AVSS palette: read by colour = ids
    Image.fromarray(encode_palette(ids)).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([encode_palette(ids), np.full(ids.shape, 255, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(ids.astype(np.uint8), mode="L").save(tmp_path / "gray.png")
    Image.fromarray(ids.astype(np.uint8), mode="L").convert("P").save(tmp_path / "grey-palette.png")
    # An RGB prediction quantised to 'P' with its own entry order: entry 0 = woman, 1 = black, ...
    order = np.array([70, 0, 28, 68, 1])
    shuffled = Image.fromarray(np.argmax(ids[..., None] == order, axis=-1).astype(np.uint8), mode="P")
    shuffled.putpalette(encode_palette(order).reshape(-1).tolist())
    shuffled.save(tmp_path / "shuffled.png")
    for name in ("ours", "rgb", "rgba", "gray", "grey-palette", "shuffled"):
        np.testing.assert_array_equal(read_prediction(tmp_path / f"{name}.png"), ids, err_msg=name)


def test_unsupported_prediction_mode_is_a_one_line_error(tmp_path):
    path = tmp_path / "la.png"
    Image.new("LA", (4, 4)).save(path)
    with pytest.raises(OvavssError, match="la.png: unsupported PNG mode 'LA'"):
        read_prediction(path)
