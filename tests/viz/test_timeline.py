import numpy as np
import pytest
from PIL import Image

from ovavss_cli.viz import timeline


def _pixels_of(image: Image.Image, colour) -> np.ndarray:
    return np.argwhere((np.asarray(image) == np.array(colour, np.uint8)).all(axis=2))


def test_score_colour_runs_along_viridis():
    assert timeline.score_colour(0.0) == (68, 1, 84)
    assert timeline.score_colour(0.5) == (33, 145, 140)
    assert timeline.score_colour(1.0) == (253, 231, 37)
    assert timeline.score_colour(2.0) == timeline.score_colour(1.0)  # clipped


def test_rows_are_names_cells_are_coloured_by_score():
    names = ["dog", "siren", "church bell"]
    scores = np.zeros((8, 3))
    scores[[1, 2, 5], 0] = 0.8  # dog sounds in three frames
    scores[6, 1] = 0.4  # siren in one
    image = timeline.timeline_image(names, [k + 0.5 for k in range(8)], scores, fps=1.0)
    dog, siren = _pixels_of(image, timeline.score_colour(0.8)), _pixels_of(image, timeline.score_colour(0.4))
    bar_top = image.height - 40  # the colour bar sits under the axis; count the plot cells only
    dog, siren = dog[dog[:, 0] < bar_top], siren[siren[:, 0] < bar_top]
    assert len(dog) == pytest.approx(3 * len(siren), rel=0.1)
    assert dog[:, 0].max() < siren[:, 0].min()  # dog's row is above siren's
    # siren's single cell is the 7th of 8 intervals: right of every dog cell
    assert siren[:, 1].min() > dog[:, 1].max()
    assert len(_pixels_of(image, timeline._EMPTY)) > len(dog)  # church bell's row stays empty


def test_more_names_make_a_taller_image_and_bad_shapes_fail(tmp_path):
    small = timeline.timeline_image(["a"], [0.5], np.zeros((1, 1)), fps=1.0)
    tall = timeline.timeline_image(list("abcdef"), [0.5], np.zeros((1, 6)), fps=1.0)
    assert tall.height > small.height
    with pytest.raises(ValueError, match="must be"):
        timeline.timeline_image(["a", "b"], [0.5, 1.5], np.zeros((2, 3)), fps=1.0)
    path = tmp_path / "t.png"
    timeline.write_timeline(path, ["a"], [0.5, 1.5], np.array([[0.9], [0.0]]), fps=1.0)
    with Image.open(path) as image:
        assert image.format == "PNG"
