import json
import os

import numpy as np
import pytest

from ovavss_cli import atomic
from ovavss_cli.data import predictions
from ovavss_cli.data.labelmap import read_label_png, write_label_png
from ovavss_cli.errors import OvavssError
from ovavss_cli.inference.predictor import VideoFramePrediction, _MaskOverlay

# ---------------------------------------------------------------------------------------------
# RLE, boxes, segments


def test_rle_follows_coco_column_major_background_first():
    # [[0, 1], [1, 1]] column by column is 0, 1, 1, 1 -> one background pixel, then three
    assert predictions.rle_encode(np.array([[0, 1], [1, 1]], bool)) == {"size": [2, 2], "counts": [1, 3]}
    # starting with foreground: an empty background run comes first
    assert predictions.rle_encode(np.array([[1, 0, 0]], bool)) == {"size": [1, 3], "counts": [0, 1, 2]}
    assert predictions.rle_encode(np.zeros((2, 3), bool)) == {"size": [2, 3], "counts": [6]}


def test_rle_round_trips_random_masks():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (7, 5), (48, 64), (239, 321)]:
        for density in (0.0, 0.1, 0.5, 1.0):
            mask = rng.random(shape) < density
            rle = predictions.rle_encode(mask)
            assert sum(rle["counts"]) == mask.size
            np.testing.assert_array_equal(predictions.rle_decode(rle), mask)
            assert json.loads(json.dumps(rle)) == rle  # plain ints, JSON-safe


def test_rle_decode_rejects_wrong_total():
    with pytest.raises(ValueError, match="sum to 3"):
        predictions.rle_decode({"size": [2, 2], "counts": [1, 2]})


def test_bbox_is_exclusive_at_the_far_edges():
    mask = np.zeros((10, 20), bool)
    mask[2:5, 7:13] = True
    assert predictions.mask_bbox(mask) == [7, 2, 13, 5]


def test_segments_per_label_with_scores_areas_and_masks():
    label_map = np.zeros((6, 8), np.uint8)
    label_map[1:3, 1:4] = 2  # 6 px "siren"
    label_map[4:6, :] = 1  # 16 px "dog"
    segments = predictions.frame_segments(label_map, {1: 0.4, 2: 0.8, 3: 0.9}, ["dog", "siren", "bell"])
    assert [(s["label"], s["label_id"], s["score"], s["area"]) for s in segments] == [
        ("siren", 2, 0.8, 6),
        ("dog", 1, 0.4, 16),
    ]
    assert segments[0]["bbox"] == [1, 1, 4, 3]
    np.testing.assert_array_equal(predictions.rle_decode(segments[1]["rle"]), label_map == 1)


# ---------------------------------------------------------------------------------------------
# the writer


def _frame(index, label_map, scores):
    return VideoFramePrediction(
        index, index + 0.5, index + 0.48, np.zeros((*label_map.shape, 3), np.uint8), label_map, scores
    )


def test_writer_streams_valid_json_and_mask_pngs(tmp_path):
    maps = [np.zeros((4, 5), np.uint8), np.ones((4, 5), np.uint8)]
    header = {"input": "/x.mp4", "vocabulary": ["dog"], "sample_fps": 1.0, "video": {"width": 5, "height": 4}}
    with predictions.PredictionWriter(tmp_path, header, ["dog"]) as writer:
        for index, label_map in enumerate(maps):
            writer.add(_frame(index, label_map, {1: 0.75}))
        writer.finish({"overlay": None})
    text = (tmp_path / "predictions.json").read_text()
    data = json.loads(text)
    assert data["format"] == predictions.FORMAT and data["video"] == {"width": 5, "height": 4}
    assert [f["mask"] for f in data["frames"]] == ["masks/00000.png", "masks/00001.png"]
    assert data["frames"][0]["segments"] == []
    assert data["frames"][1]["segments"][0]["area"] == 20 and data["frames"][1]["time"] == 1.48
    assert data["summary"] == {"frames": 2, "frames_with_label": {"dog": 1}} and data["overlay"] is None
    assert len(text.splitlines()) < 40  # one line per frame, not one per RLE count
    for frame, label_map in zip(data["frames"], maps, strict=True):
        ids, unknown = read_label_png(tmp_path / frame["mask"])
        np.testing.assert_array_equal(ids, label_map)
        assert not unknown.any()
    folder = predictions.read_prediction_folder(tmp_path)
    assert folder.vocab == ("dog",)
    np.testing.assert_array_equal(folder.score_matrix(), [[0.0], [0.75]])


def test_reading_a_folder_that_is_not_a_predict_output(tmp_path):
    with pytest.raises(OvavssError, match="no predictions.json here"):
        predictions.read_prediction_folder(tmp_path)
    (tmp_path / "predictions.json").write_text("{broken")
    with pytest.raises(OvavssError, match="not valid JSON"):
        predictions.read_prediction_folder(tmp_path)
    (tmp_path / "predictions.json").write_text('{"format": "something-else"}')
    with pytest.raises(OvavssError, match="not an ovavss-predictions/1 file"):
        predictions.read_prediction_folder(tmp_path)


# ---------------------------------------------------------------------------------------------
# output folders


def test_unique_folder_never_reuses_an_existing_or_taken_name(tmp_path):
    (tmp_path / "clip_ovavss").mkdir()
    (tmp_path / "clip_ovavss-1").mkdir()
    assert atomic.unique_folder(tmp_path, "clip_ovavss") == tmp_path / "clip_ovavss-2"
    taken = [tmp_path / "clip_ovavss-2"]
    assert atomic.unique_folder(tmp_path, "clip_ovavss", taken=taken) == tmp_path / "clip_ovavss-3"
    assert atomic.unique_folder(tmp_path, "clip_ovavss", skip_existing=False) == tmp_path / "clip_ovavss"


def test_output_folder_appears_only_when_complete(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic.output_folder(target) as folder:
            (folder / "half.txt").write_text("x")
            raise RuntimeError("crash mid-way")
    assert not target.exists() and os.listdir(tmp_path) == []
    with atomic.output_folder(target) as folder:
        (folder / "done.txt").write_text("x")
    assert (target / "done.txt").read_text() == "x"


def test_existing_output_needs_force_and_survives_a_failed_replacement(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(OvavssError, match="already exists.*--force"):
        with atomic.output_folder(target):
            pass
    with pytest.raises(RuntimeError):
        with atomic.output_folder(target, force=True) as folder:
            (folder / "new.txt").write_text("new")
            raise RuntimeError("crash")
    assert sorted(os.listdir(target)) == ["old.txt"]
    with atomic.output_folder(target, force=True) as folder:
        (folder / "new.txt").write_text("new")
    assert sorted(os.listdir(target)) == ["new.txt"]
    assert sorted(os.listdir(tmp_path)) == ["out"]  # nothing left aside


def test_overlay_frames_scaled_below_the_mask_size_get_the_mask_scaled_too(tmp_path):
    # overlay.mp4 of a video larger than OVERLAY_MAX_SIDE is painted on scaled-down frames (a 4K video crashed)
    label_map = np.zeros((8, 12), np.uint8)
    label_map[:, 6:] = 1
    write_label_png(tmp_path / predictions.mask_file(0), label_map)
    painted = _MaskOverlay(tmp_path, ["dog"], 1.0, 1)(np.zeros((4, 6, 3), np.uint8), 0.0)
    assert painted.shape == (4, 6, 3)
    assert painted[:, 4:].any() and not painted[:, :2].any()  # the right half (the dog) is painted, the left not
