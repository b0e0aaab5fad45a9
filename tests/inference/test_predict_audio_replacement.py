"""``ovavss predict --audio silence|noise|PATH``: the model hears the replacement (fitted to the video's length),
overlay.mp4 carries it, predictions.json records it, and a bad file is a one-line error before any work.

Uses ``BoxModel`` (tests/media_testkit.py), which paints "siren" in frames whose paired audio is loud."""

import json

import numpy as np
import pytest
from audio_files import tone, write_audio, write_pcm16_wav, write_silent_video
from media_testkit import BoxModel, make_video

from ovavss_cli.data.audio import load_audio
from ovavss_cli.data.audio_conditions import NOISE_RMS, AudioReplacement, load_replacement
from ovavss_cli.inference.predictor import VideoPredictor


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """6 s at 10 fps, loud in odd seconds (BoxModel paints "siren" in frames 1, 3, 5)."""
    return make_video(tmp_path_factory.mktemp("videos") / "clip.mp4", seconds=6.0, fps=10)


def siren_frames(out) -> list[int]:
    data = json.loads((out / "predictions.json").read_text())
    return [f["index"] for f in data["frames"] if any(s["label"] == "siren" for s in f["segments"])]


def rms(waveform: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(waveform, dtype=np.float64))))


def test_silence_reaches_the_model_and_the_overlay(clip, tmp_path):
    model = BoxModel()
    predictor = VideoPredictor(model, ["dog", "siren"], audio=load_replacement("silence"))
    out = predictor.predict_to_folder(clip, tmp_path / "o")
    assert siren_frames(out) == []  # with its own sound: [1, 3, 5]
    assert all(call["audio"] and call["rate"] == 16000 for call in model.calls)
    data = json.loads((out / "predictions.json").read_text())
    assert data["audio"] == {"source": "silence"} and data["silent_audio"] is True
    overlay, rate = load_audio(out / "overlay.mp4")
    assert len(overlay) / rate == pytest.approx(6.0, abs=0.1) and np.abs(overlay).max() < 1e-3


def test_a_files_audio_is_resampled_and_padded_to_the_video(clip, tmp_path):
    # 2.5 s of stereo 44.1 kHz: loud from 0.5 s to 1.5 s; the 6-s video gets 3.5 s of silence after it
    rate = 44100
    wave = tone(440.0, 2.5, rate, amplitude=0.02)
    wave[round(0.5 * rate) : round(1.5 * rate)] *= 25
    path = write_audio(tmp_path / "swap.m4a", np.stack([wave, wave]).astype(np.float32), rate, "aac", "fltp")
    out = VideoPredictor(BoxModel(), ["dog", "siren"], audio=load_replacement(str(path))).predict_to_folder(
        clip, tmp_path / "o"
    )
    assert siren_frames(out) == [0, 1]  # sample k sits at k + 0.5 s: the loud second of the file
    data = json.loads((out / "predictions.json").read_text())
    assert data["audio"]["source"] == "file" and data["audio"]["path"] == str(path.resolve())
    assert data["audio"]["fitted"] == "zero-padded" and data["audio"]["file_seconds"] == pytest.approx(2.5, abs=0.05)
    assert data["silent_audio"] is False
    overlay, overlay_rate = load_audio(out / "overlay.mp4")
    second = overlay_rate
    assert len(overlay) / overlay_rate == pytest.approx(6.0, abs=0.1)
    assert rms(overlay[second : round(1.4 * second)]) > 0.2  # the file's loud part
    assert rms(overlay[3 * second : 5 * second]) < 1e-3  # the padding, not the video's loud seconds


def test_a_longer_file_is_cut_and_a_mute_video_needs_no_allow_silent(tmp_path):
    mute = make_video(tmp_path / "mute.mp4", seconds=3.0, audio_rate=None)
    wav = write_pcm16_wav(tmp_path / "long.wav", tone(440.0, 8.0, 16000, amplitude=0.5))
    out = VideoPredictor(BoxModel(), ["dog", "siren"], audio=load_replacement(str(wav))).predict_to_folder(
        mute, tmp_path / "o"
    )
    assert siren_frames(out) == [0, 1, 2]
    data = json.loads((out / "predictions.json").read_text())
    assert data["audio"]["fitted"] == "cut"
    overlay, rate = load_audio(out / "overlay.mp4")
    assert len(overlay) / rate == pytest.approx(3.0, abs=0.1)


def test_noise_is_seeded_white_noise_at_the_documented_level(clip, tmp_path):
    replacement = AudioReplacement("noise", seed=3)
    track = replacement.track(6.0, "clip.mp4")
    assert len(track) == 96000 and rms(track) == pytest.approx(NOISE_RMS, rel=0.02)
    assert np.array_equal(track, AudioReplacement("noise", seed=3).track(6.0, "clip.mp4"))
    out = VideoPredictor(BoxModel(), ["dog"], audio=replacement).predict_to_folder(clip, tmp_path / "o")
    data = json.loads((out / "predictions.json").read_text())
    assert data["audio"] == {"source": "noise", "noise": "gaussian white", "rms": NOISE_RMS, "seed": 3}
    overlay, _ = load_audio(out / "overlay.mp4")
    assert rms(overlay[16000:80000]) == pytest.approx(NOISE_RMS, rel=0.2)  # AAC is lossy


def test_allow_silent_with_audio_is_refused(cli, clip, tmp_path):
    # --audio gives every video a sound track, so --allow-silent could never act.
    out = tmp_path / "out"
    result = cli("predict", clip, "--vocab", "dog", "--audio", "silence", "--allow-silent", "--out", out)
    assert result.exit_code == 1 and result.stderr.strip().startswith("error: --allow-silent: not with --audio (")
    assert not out.exists()


@pytest.mark.parametrize("problem", ["missing", "no-audio-stream", "not-media"])
def test_bad_audio_file_is_one_line_and_writes_nothing(cli, clip, tmp_path, problem):
    audio = tmp_path / "bad"
    if problem == "no-audio-stream":
        audio = write_silent_video(tmp_path / "bad.mp4")
    elif problem == "not-media":
        audio.write_text("not a media file")
    out = tmp_path / "out"
    result = cli("predict", clip, "--vocab", "dog", "--audio", audio, "--out", out, "--weights", "unused")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and str(audio) in lines[0], result.output
    assert not out.exists()


def test_real_model_encoder_hears_the_replacement(cli, clip, tmp_path, tiny_weights):
    import torch

    from ovavss_cli import load_model
    from ovavss_cli.data.audio import SILENCE_LOG_MEL

    model = load_model(str(tiny_weights))
    seen = []
    hook = model.audio_encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    try:
        frames = list(VideoPredictor(model, ["dog"], audio=load_replacement("silence")).predict_frames(clip))
    finally:
        hook.remove()
    assert len(frames) == 6 and len(seen) == 2  # two windows (5 + 1 frames)
    assert all(torch.allclose(examples, torch.full_like(examples, SILENCE_LOG_MEL)) for examples in seen)
    # the command passes --audio through and records it
    out = tmp_path / "out"
    result = cli("predict", clip, "--vocab", "dog", "--weights", tiny_weights, "--out", out, "--audio", "noise",
                 "--no-video", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "predictions.json").read_text())["audio"]["source"] == "noise"
