"""The predict pipeline end to end with ``BoxModel``, a test double of the documented model API
(tests/media_testkit.py): it checks windows, padding, timestamps, audio pairing, writers and the CLI.
The real model's end-to-end tests live with the model."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media_testkit import BoxModel, loud_second, make_video

from ovavss_cli.errors import OvavssError
from ovavss_cli.inference.predict_jobs import plan_outputs
from ovavss_cli.inference.predictor import VideoPredictor
from ovavss_cli.models import api as models_api
from ovavss_cli.viz.overlay import vocab_colours


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 s, 64x48 at 10 fps, stereo 44.1 kHz audio that is loud in odd seconds."""
    return make_video(tmp_path_factory.mktemp("videos") / "clip.mp4", seconds=12.0, fps=10)


def test_frames_come_window_by_window_without_padding(clip):
    model = BoxModel()
    frames = list(VideoPredictor(model, ["dog", "siren"]).predict_frames(clip))
    assert [call["frames"] for call in model.calls] == [5, 5, 2]
    assert all(call["rate"] == 16000 and call["audio"] for call in model.calls)
    assert [f.index for f in frames] == list(range(12))
    assert [f.sample_time for f in frames] == pytest.approx([k + 0.5 for k in range(12)])
    for frame in frames:
        assert frame.label_map.shape == (48, 64) and frame.label_map.dtype == np.uint8
        assert frame.label_map[24, 32] == 1 and frame.scores[1] == pytest.approx(0.9)
        # the double paints "siren" when the audio centred on the frame is loud: the pairing is right
        assert (frame.label_map[2, 2] == 2) == loud_second(frame.time)


def test_padded_frames_never_reach_the_output(clip):
    class PaddingModel(BoxModel):
        def predict_clip(self, frames, *args, **kwargs):
            prediction = super().predict_clip(frames, *args, **kwargs)
            pad = self.window_size - len(frames)  # a model that returns its padded window
            prediction.label_maps = torch.cat([prediction.label_maps, prediction.label_maps[-1:].repeat(pad, 1, 1)])
            return prediction

    frames = list(VideoPredictor(PaddingModel(), ["dog", "siren"]).predict_frames(clip))
    assert len(frames) == 12 and [f.index for f in frames[-2:]] == [10, 11]


def test_a_model_returning_too_few_maps_is_a_bug_not_silent_truncation(clip):
    class ShortModel(BoxModel):
        def predict_clip(self, frames, *args, **kwargs):
            prediction = super().predict_clip(frames, *args, **kwargs)
            prediction.label_maps = prediction.label_maps[:1]
            return prediction

    with pytest.raises(RuntimeError, match="label maps"):
        list(VideoPredictor(ShortModel(), ["dog"]).predict_frames(clip))


def test_bad_fps_or_threshold():
    with pytest.raises(OvavssError, match="--fps must be positive"):
        VideoPredictor(BoxModel(), ["dog"], fps=0)
    with pytest.raises(OvavssError, match=r"--threshold must be in \[0, 1\]"):
        VideoPredictor(BoxModel(), ["dog"], threshold=1.5)


def test_output_folder_has_masks_json_and_overlay_with_sound(clip, tmp_path):
    out = VideoPredictor(BoxModel(), ["dog", "siren"], device="cpu").predict_to_folder(clip, tmp_path / "out")
    data = json.loads((out / "predictions.json").read_text())
    assert data["vocabulary"] == ["dog", "siren"] and data["sample_fps"] == 1.0 and data["threshold"] == 0.3
    assert data["weights"] == {"id": "box-double", "sha256": "0" * 64} and data["device"] == "cpu"
    assert data["input"] == str(clip.resolve()) and data["video"]["width"] == 64
    assert len(data["frames"]) == 12 and data["summary"]["frames_with_label"] == {"dog": 12, "siren": 6}
    siren = [f["index"] for f in data["frames"] if any(s["label"] == "siren" for s in f["segments"])]
    assert siren == [1, 3, 5, 7, 9, 11]
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"{k:05d}.png" for k in range(12)]
    with av.open(str(out / "overlay.mp4")) as container:
        assert container.streams.audio and container.streams.audio[0].codec_context.name == "aac"
        images = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(images) == 120  # every original frame, at the original rate
    dog = vocab_colours(2)[1].astype(float)
    # frame 15's right half is black: the dog box there is half dog colour (below the one-row legend)
    # (H.264 at crf 20 on a 64x48 picture moves saturated colours by up to ~20 levels)
    np.testing.assert_allclose(images[15][30:34, 38:42].mean(axis=(0, 1)), 0.5 * dog, atol=25)
    assert images[15][44, 60].max() < 20  # background stays the original frame


def test_no_video_and_silent_input(tmp_path):
    mute = make_video(tmp_path / "mute.mp4", seconds=3.0, audio_rate=None)
    predictor = VideoPredictor(BoxModel(), ["dog"])
    with pytest.raises(OvavssError, match="has no audio track"):
        predictor.predict_to_folder(mute, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    out = VideoPredictor(BoxModel(), ["dog"], allow_silent=True).predict_to_folder(
        mute, tmp_path / "b", write_video=False
    )
    data = json.loads((out / "predictions.json").read_text())
    assert data["silent_audio"] is True and data["overlay"] is None and len(data["frames"]) == 3
    assert not (out / "overlay.mp4").exists()


def test_odd_size_and_variable_frame_rate(tmp_path):
    times = [0.0, 0.3, 0.45, 1.38, 1.6, 2.2, 2.9]
    video = make_video(
        tmp_path / "odd.mkv", frame_times=times, seconds=3.0, size=(33, 25), codec="ffv1", pix_fmt="yuv444p"
    )
    out = VideoPredictor(BoxModel(), ["dog"]).predict_to_folder(video, tmp_path / "out")
    data = json.loads((out / "predictions.json").read_text())
    assert [f["time"] for f in data["frames"]] == pytest.approx([0.45, 1.6, 2.2])
    assert data["frames"][0]["segments"][0]["rle"]["size"] == [25, 33]
    with av.open(str(out / "overlay.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (34, 26)
        assert [round(float(f.time), 3) for f in container.decode(stream)] == times


def test_plan_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_ovavss").mkdir()
    videos = [tmp_path / "x" / "a.mp4", tmp_path / "y" / "a.mkv", tmp_path / "b.mp4"]
    assert plan_outputs(videos, None, False) == [tmp_path / n for n in ("a_ovavss-1", "a_ovavss-2", "b_ovavss")]
    assert plan_outputs(videos[:1], tmp_path / "o", True) == [tmp_path / "o"]
    assert plan_outputs(videos, tmp_path / "o", False) == [tmp_path / "o" / n for n in ("a", "a-1", "b")]


# ---------------------------------------------------------------------------------------------
# ovavss predict


@pytest.fixture
def fake_load_model(monkeypatch):
    loaded = []

    def load_model(spec, device="cpu", **kwargs):
        loaded.append((spec, str(device)))
        if spec == "no-such-weights":
            raise OvavssError("unknown weights name 'no-such-weights'")
        return BoxModel()

    monkeypatch.setattr(models_api, "load_model", load_model)
    return loaded


def test_cli_predict_writes_one_folder(cli, clip, tmp_path, fake_load_model):
    result = cli("predict", clip, "--vocab", "dog, siren", "--out", tmp_path / "out", "--device", "cpu", "--no-video")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "out")
    assert fake_load_model[0][1] == "cpu"
    assert (tmp_path / "out" / "predictions.json").is_file() and not (tmp_path / "out" / "overlay.mp4").exists()
    again = cli("predict", clip, "--vocab", "dog", "--out", tmp_path / "out", "--no-video")
    assert again.exit_code == 1 and "already exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    forced = cli("predict", clip, "--vocab", "cat", "--out", tmp_path / "out", "--no-video", "--force", "--fps", "2")
    assert forced.exit_code == 0
    data = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert data["vocabulary"] == ["cat"] and len(data["frames"]) == 24


def test_cli_predict_reports_bad_inputs_and_processes_the_rest(cli, tmp_path, fake_load_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = make_video(tmp_path / "good.mp4", seconds=2.0)
    folder = tmp_path / "more"
    folder.mkdir()
    make_video(folder / "other.webm", seconds=2.0, codec="libvpx-vp9", audio_codec="libopus", audio_rate=48000)
    (folder / "readme.txt").write_text("ignored: not a video extension")
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    result = cli("predict", fake, good, tmp_path / "missing.mov", folder, "--vocab", "dog", "--no-video")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(set(errors)) == 2 and len(errors) == 4  # each as it happens, then listed again at the end
    assert "2 of 4 inputs failed:" in lines and lines[-2:] == errors[:2]
    report = json.loads((tmp_path / "predict-report.json").read_text())
    assert [(Path(r["input"]).name, r["status"]) for r in report["inputs"]] == [
        ("missing.mov", "failed"),
        ("fake.mp4", "failed"),
        ("good.mp4", "done"),
        ("other.webm", "done"),
    ]
    assert report["counts"] == {"done": 2, "skipped": 0, "failed": 2}
    assert report["inputs"][2]["frames"] == 2 and report["inputs"][2]["seconds"] > 0
    assert any("missing.mov: file not found" in line for line in errors)
    assert any("fake.mp4: not a readable media file" in line for line in errors)
    assert result.stdout.split() == [str(tmp_path / "good_ovavss"), str(tmp_path / "other_ovavss")]
    assert (tmp_path / "other_ovavss" / "predictions.json").is_file()


def test_cli_predict_bad_vocab_fails_before_loading_the_model(cli, clip, tmp_path, fake_load_model):
    result = cli("predict", clip, "--vocab", "dog,,cat", "--out", tmp_path / "o")
    assert result.exit_code == 1 and "--vocab: name 2 is empty" in result.stderr
    assert fake_load_model == [] and not (tmp_path / "o").exists()


def test_cli_predict_unknown_weights_is_one_line(cli, clip, tmp_path, fake_load_model):
    result = cli("predict", clip, "--vocab", "dog", "--weights", "no-such-weights", "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: unknown weights name 'no-such-weights'"


def test_cli_help_renders(cli):
    for command in ("predict", "visualize"):
        result = cli(command, "--help")
        assert result.exit_code == 0 and "--out" in result.output
    assert "hf://org/repo[/file]" in cli("predict", "--help").output


def test_cli_predict_passes_precision_and_fast_mode_to_every_call(cli, clip, tmp_path, fake_load_model):
    out = tmp_path / "out"
    result = cli("predict", clip, "--vocab", "dog", "--out", out, "--no-video", "--precision", "bf16", "--clip-queries", "3")
    assert result.exit_code == 0, result.output
    data = json.loads((out / "predictions.json").read_text())
    assert (data["precision"], data["clip_queries"]) == ("bf16", 3)
    default = cli("predict", clip, "--vocab", "dog", "--out", tmp_path / "d", "--no-video", "--device", "cpu")
    assert default.exit_code == 0, default.output
    data = json.loads((tmp_path / "d" / "predictions.json").read_text())
    assert (data["precision"], data["clip_queries"]) == ("fp32", None)  # auto on the CPU: the parity path


def test_video_predictor_hands_the_run_options_to_the_model(clip):
    model = BoxModel()
    list(VideoPredictor(model, ["dog"], precision="fp16", clip_queries=7).predict_frames(clip))
    assert {(call["precision"], call["clip_queries"]) for call in model.calls} == {("fp16", 7)}


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--precision", "fp8", "--precision: must be one of auto, fp32, fp16, bf16"),
     ("--clip-queries", "0", "--clip-queries: must be 'all' or a whole number >= 1"),
     ("--clip-queries", "ten", "--clip-queries: must be 'all' or a whole number >= 1")],
)  # fmt: skip
def test_cli_predict_bad_run_options_fail_before_loading_the_model(cli, clip, tmp_path, fake_load_model, option, value, message):
    result = cli("predict", clip, "--vocab", "dog", "--out", tmp_path / "o", option, value)
    assert result.exit_code == 1 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert fake_load_model == [] and not (tmp_path / "o").exists()
