import json

import numpy as np
import pytest
from media_testkit import BoxModel, make_video
from PIL import Image

from ovavss_cli.inference.predictor import VideoPredictor
from ovavss_cli.viz import overlay


def test_vocab_colours_are_distinct_and_background_is_black():
    colours = overlay.vocab_colours(70)
    assert colours.shape == (71, 3) and colours.dtype == np.uint8
    assert (colours[0] == 0).all()
    assert len({tuple(c) for c in colours[1:]}) == 70
    np.testing.assert_array_equal(overlay.vocab_colours(3), colours[:4])  # a name keeps its colour


def test_blend_mixes_labelled_pixels_only():
    image = np.full((4, 6, 3), 100, np.uint8)
    label_map = np.zeros((4, 6), np.int64)
    label_map[1:3, 2:5] = 2
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 200, 0]], np.uint8)
    out = overlay.blend(image, label_map, colours, alpha=0.25)
    np.testing.assert_array_equal(out[label_map == 0], image[label_map == 0])
    np.testing.assert_array_equal(out[label_map == 2], np.tile([75, 125, 75], (6, 1)))
    assert (image == 100).all()  # the input is not modified
    with pytest.raises(ValueError, match="does not match"):
        overlay.blend(image, label_map[:3], colours)


def test_legend_entries_all_or_present():
    label_map = np.array([[0, 2], [2, 0]])
    colours = overlay.vocab_colours(3)
    everything = overlay.legend_entries(label_map, ["dog", "siren", "bell"], colours, show_all=True)
    assert [(e.name, e.active) for e in everything] == [("dog", False), ("siren", True), ("bell", False)]
    present = overlay.legend_entries(label_map, ["dog", "siren", "bell"], colours, show_all=False)
    assert [e.name for e in present] == ["siren"] and present[0].colour == tuple(int(c) for c in colours[2])


def test_legend_stays_in_the_top_left_and_in_the_upper_half():
    image = np.full((240, 320, 3), 128, np.uint8)
    entries = [overlay.LegendEntry(f"name {i}", (255, 0, 0), i == 30) for i in range(40)]
    out = overlay.draw_legend(image, entries)
    changed = np.argwhere((out != image).any(axis=2))
    assert changed.size and changed[:, 0].max() < 120 and changed[:, 1].max() < 200
    assert (out[130:] == 128).all()
    # an active name is kept even when the legend has to leave names out
    layer = overlay.legend_layer(240, 320, entries)
    assert layer.getbbox()[3] <= 120
    tiny = np.zeros((16, 16, 3), np.uint8)
    np.testing.assert_array_equal(overlay.draw_legend(tiny, entries), tiny)  # no room: no legend


def test_overlay_painter_equals_the_still_overlay():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    label_map = np.zeros((120, 160), np.int64)
    label_map[30:90, 40:100] = 1
    label_map[:20, :30] = 2
    names, colours = ["dog", "siren"], overlay.vocab_colours(2)
    painter = overlay.OverlayPainter(names, colours)
    expected = overlay.overlay(image, label_map, names, colours, show_all_names=True)
    for _ in range(2):  # the second call reuses the cached legend
        got = painter.paint(image, label_map, key=0)
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


# ---------------------------------------------------------------------------------------------
# ovavss visualize on a predict output folder


@pytest.fixture
def predicted(tmp_path):
    video = make_video(tmp_path / "walk.mp4", seconds=6.0, fps=10, size=(96, 64))
    out = VideoPredictor(BoxModel(), ["dog", "siren"]).predict_to_folder(video, tmp_path / "walk_ovavss", False)
    return video, out


def test_cli_visualize_prediction_folder(cli, predicted, tmp_path):
    video, out = predicted
    result = cli("visualize", out)
    assert result.exit_code == 0, result.output
    viz = tmp_path / "walk_ovavss_viz"
    assert result.stdout.strip() == str(viz)
    names = sorted(p.name for p in (viz / "overlays").iterdir())
    assert names == [f"{k:05d}.jpg" for k in range(6)]
    with Image.open(viz / "overlays" / "00003.jpg") as image:
        assert image.size == (96, 64)
        pixels = np.asarray(image.convert("RGB")).astype(float)
    dog = overlay.vocab_colours(2)[1]
    frame_right_half = 35 // 16 * 16  # frame 35: right half grey level 32
    np.testing.assert_allclose(pixels[40, 60], 0.5 * dog + 0.5 * frame_right_half, atol=20)
    with Image.open(viz / "timeline.png") as timeline:
        assert timeline.width >= 480
    assert cli("visualize", out).stdout.strip() == str(tmp_path / "walk_ovavss_viz-1")  # never overwrites


def test_cli_visualize_after_the_video_moved(cli, predicted, tmp_path):
    video, out = predicted
    moved = video.rename(tmp_path / "elsewhere.mp4")
    result = cli("visualize", out, "--out", tmp_path / "v")
    assert result.exit_code == 1
    assert "walk.mp4: the predicted video is not there any more (pass --video PATH)" in result.stderr
    assert not (tmp_path / "v").exists()
    assert cli("visualize", out, "--out", tmp_path / "v", "--video", moved).exit_code == 0


def test_cli_visualize_wrong_video_or_folder(cli, predicted, tmp_path):
    _, out = predicted
    other = make_video(tmp_path / "other.mp4", seconds=6.0, size=(64, 48))
    result = cli("visualize", out, "--video", other, "--out", tmp_path / "v")
    assert result.exit_code == 1 and "does not match the masks" in result.stderr
    result = cli("visualize", tmp_path)
    assert result.exit_code == 1 and "no predictions.json here" in result.stderr
    data = json.loads((out / "predictions.json").read_text())
    assert data["overlay"] is None  # the fixture skipped overlay.mp4
