import numpy as np
import pytest
from PIL import Image

from ovavss_cli.data.avsbench import load_avss
from ovavss_cli.data.labelmap import write_label_png
from ovavss_cli.data.synthetic import generate_avss
from ovavss_cli.errors import OvavssError
from ovavss_cli.viz import compare


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("avss") / "avss"
    generate_avss(root, clips=3, size=(48, 64))
    return load_avss(root)


def _predictions(dataset, pred_dir, clip, perfect: bool):
    for frame in dataset.label_frames(clip):
        truth = dataset.read_labels(clip, frame).ids
        write_label_png(pred_dir / clip.uid / f"{frame}.png", truth if perfect else np.zeros_like(truth))


def test_perfect_prediction_looks_like_the_ground_truth(dataset, tmp_path):
    clip = next(c for c in dataset.clips if len(dataset.label_frames(c)) > 1)
    _predictions(dataset, tmp_path / "pred", clip, perfect=True)
    sheet = np.asarray(compare.comparison_image(dataset, clip, tmp_path / "pred", panel_width=128)).astype(int)
    rows = len(dataset.label_frames(clip))
    assert sheet.shape[1] == 256 and sheet.shape[0] > rows * 96  # each 64x48 frame scaled to 128x96
    body = sheet[-rows * 96 :]
    assert np.abs(body[:, :128] - body[:, 128:]).max() <= 1  # GT panel == prediction panel


def test_empty_prediction_shows_the_plain_frame_and_missing_files_are_drawn(dataset, tmp_path):
    clip = dataset.clips[0]
    _predictions(dataset, tmp_path / "pred", clip, perfect=False)
    sheet = np.asarray(compare.comparison_image(dataset, clip, tmp_path / "pred", panel_width=64)).astype(int)
    frame = np.asarray(Image.open(dataset.frame_paths(clip)[0]).convert("RGB")).astype(int)
    first_row = sheet[sheet.shape[0] - len(dataset.label_frames(clip)) * 48 :][:48]
    assert np.abs(first_row[24:, 64:] - frame[24:]).max() <= 2  # lower half: below any legend
    assert np.abs(first_row[24:, :64] - frame[24:]).max() > 20  # the GT side is painted
    (tmp_path / "pred" / clip.uid / "0.png").unlink()
    sheet = np.asarray(compare.comparison_image(dataset, clip, tmp_path / "pred", panel_width=64)).astype(int)
    first_row = sheet[sheet.shape[0] - len(dataset.label_frames(clip)) * 48 :][:48]
    assert np.abs(first_row[40:, 64:] - 90).max() <= 2  # the grey "no prediction" panel


def test_clip_selection(dataset, tmp_path):
    pred = tmp_path / "pred"
    with pytest.raises(OvavssError, match="predictions folder not found"):
        compare.clips_with_predictions(dataset, pred)
    pred.mkdir()
    with pytest.raises(OvavssError, match="no folder named after a clip"):
        compare.clips_with_predictions(dataset, pred)
    (pred / dataset.clips[1].uid).mkdir()
    assert compare.clips_with_predictions(dataset, pred) == [dataset.clips[1]]
    assert compare.clips_with_predictions(dataset, pred, [dataset.clips[2].uid]) == [dataset.clips[2]]
    with pytest.raises(OvavssError, match="'nope' is not in the metadata"):
        compare.clips_with_predictions(dataset, pred, ["nope"])


def test_cli_visualize_dataset(cli, dataset, tmp_path):
    for clip in dataset.clips[:2]:
        _predictions(dataset, tmp_path / "pred", clip, perfect=True)
    result = cli("visualize", tmp_path / "pred", "--data", dataset.root)
    assert result.exit_code == 0, result.output
    out = tmp_path / "pred_viz"
    assert result.stdout.strip() == str(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{c.uid}.jpg" for c in dataset.clips[:2])
    only = cli("visualize", tmp_path / "pred", "--data", dataset.root, "--clip", dataset.clips[0].uid, "-o", out)
    assert only.exit_code == 1 and "already exists" in only.stderr
    only = cli(
        "visualize", tmp_path / "pred", "--data", dataset.root, "--clip", dataset.clips[0].uid, "-o", out, "--force"
    )
    assert only.exit_code == 0 and [p.name for p in out.iterdir()] == [f"{dataset.clips[0].uid}.jpg"]


def test_cli_visualize_refuses_the_options_of_the_other_drawing(cli, dataset, tmp_path):
    # --clip picks clips of a --data comparison; --video re-decodes a predict output: each alone does nothing.
    clip = cli("visualize", tmp_path / "pred", "--clip", dataset.clips[0].uid)
    assert clip.exit_code == 1 and clip.stderr.strip().startswith("error: --clip: only with --data")
    video = cli("visualize", tmp_path / "pred", "--data", dataset.root, "--video", tmp_path / "walk.mp4")
    assert video.exit_code == 1 and video.stderr.strip().startswith("error: --video: only without --data")
    assert not (tmp_path / "pred_viz").exists()
