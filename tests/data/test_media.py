import av
import numpy as np
import pytest
from media_testkit import frame_code, loud_second, make_audio_with_cover, make_still_image, make_video, read_frame_code

from ovavss_cli.data import media
from ovavss_cli.data.audio import resample
from ovavss_cli.errors import OvavssError

# ---------------------------------------------------------------------------------------------
# probe and bad input


def test_probe_reads_size_rate_duration_and_audio(tmp_path):
    path = make_video(tmp_path / "clip.mp4", seconds=2.0, fps=10, size=(64, 48), audio_rate=44100, channels=2)
    info = media.probe(path)
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert info.fps == pytest.approx(10.0)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert (info.has_audio, info.audio_rate, info.audio_channels) == (True, 44100, 2)
    assert info.start_time == 0.0
    assert info.to_json()["path"] == str(path)


def test_bad_files_give_one_line_errors_naming_the_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    with pytest.raises(OvavssError, match="not a readable media file") as error:
        media.probe(text)
    assert str(error.value).startswith(str(text)) and "\n" not in str(error.value)
    with pytest.raises(OvavssError, match="file not found"):
        media.probe(tmp_path / "missing.mp4")
    with pytest.raises(OvavssError, match="is a folder"):
        media.probe(tmp_path)
    audio_only = tmp_path / "sound.wav"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(media.NotAVideoError, match="sound.wav: is an audio file"):
        media.probe(audio_only)


def test_cover_art_is_not_video_and_still_images_are_refused(tmp_path):
    for name in ("song.mp3", "song.m4a"):  # the attached picture is listed as a video stream by PyAV
        path = make_audio_with_cover(tmp_path / name)
        with av.open(str(path)) as container:
            (picture,) = container.streams.video
            assert picture.disposition & av.stream.Disposition.attached_pic
        with pytest.raises(media.NotAVideoError, match=f"{name}: is an audio file") as error:
            media.probe(path)
        assert "\n" not in str(error.value)
    for name in ("photo.jpg", "photo.png"):
        path = make_still_image(tmp_path / name)
        with pytest.raises(media.NotAVideoError, match=f"{name}: is a still image"):
            media.probe(path)


def test_overlay_of_a_large_video_is_written_at_the_working_size(tmp_path):
    path = make_video(tmp_path / "wide.mp4", seconds=0.5, fps=10, size=(320, 180))
    sizes = []

    def paint(image, time):
        sizes.append(image.shape)
        return image

    written = media.write_painted_video(path, tmp_path / "o.mp4", paint, max_side=160)
    assert written == 5 and set(sizes) == {(90, 160, 3)}
    assert media.probe(tmp_path / "o.mp4").width == 160
    assert media.working_size(4000, 3000, 1280) == (1280, 960) and media.working_size(64, 48, 1280) == (64, 48)


def test_truncated_file_is_reported(tmp_path):
    path = make_video(tmp_path / "clip.mp4", seconds=2.0)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # MP4's index sits at the end
    with pytest.raises(OvavssError, match="broken.mp4"):
        media.probe(broken)


# ---------------------------------------------------------------------------------------------
# sampling (pure logic)


def _samples(times, fps, default_duration=0.1, last_duration=None):
    frames = [(t, last_duration if i == len(times) - 1 else None, i) for i, t in enumerate(times)]
    return [(k, s, t) for k, s, t, _ in media.sample_nearest(frames, fps, default_duration)]


def test_nearest_frame_to_each_interval_centre():
    times = [i / 10 for i in range(30)]  # 3 s at 10 fps
    got = _samples(times, fps=1.0)
    assert [(k, s) for k, s, _ in got] == [(0, 0.5), (1, 1.5), (2, 2.5)]
    assert [t for _, _, t in got] == pytest.approx([0.5, 1.5, 2.5])


def test_variable_frame_rate_picks_nearest_and_ties_go_earlier():
    times = [0.0, 0.1, 0.2, 0.9, 1.0, 1.05, 1.1, 2.5, 2.6]
    got = _samples(times, fps=2.0)  # samples at 0.25, 0.75, 1.25, 1.75, 2.25; the video ends at 2.7
    assert [t for _, _, t in got] == [0.2, 0.9, 1.1, 1.1, 2.5]
    tie = _samples([0.0, 0.4, 0.6], fps=1.0)  # 0.5 is 0.1 from both 0.4 and 0.6
    assert tie[0][2] == 0.4


def test_short_video_still_gives_one_sample_and_fast_sampling_repeats_frames():
    assert _samples([0.0, 0.1, 0.2], fps=1.0) == [(0, 0.5, 0.2)]
    assert _samples([0.0], fps=1.0, default_duration=0.04) == [(0, 0.5, 0.0)]
    got = _samples([0.0, 0.5, 1.0], fps=4.0)  # 4 samples/s from a 2 fps video; it ends one gap after 1.0 s
    assert [t for _, _, t in got] == [0.0, 0.5, 0.5, 1.0, 1.0, 1.0]  # samples 0.125, 0.375, ...; ends at 1.5 s


def test_the_last_frame_lasts_its_own_duration_when_known():
    assert len(_samples([0.0, 0.3, 2.9], fps=1.0)) == 5  # one gap (2.6 s) after 2.9: ends at 5.5
    assert len(_samples([0.0, 0.3, 2.9], fps=1.0, last_duration=0.1)) == 3  # ends at 3.0


def test_sample_count_matches_expected_samples():
    for frames, fps in [(125, 1.0), (135, 1.0), (140, 1.0), (8, 1.0), (181, 2.0), (182, 2.0)]:
        times = [i * 0.04 for i in range(frames)]  # 25 fps: the video lasts frames * 0.04 s
        assert len(_samples(times, fps, 0.04)) == media.expected_samples(frames * 0.04, fps)


def test_sampling_is_lazy():
    pulled = []

    def frames():
        for i in range(10_000):
            pulled.append(i)
            yield i / 10, None, i

    first = next(media.sample_nearest(frames(), 1.0, 0.1))
    assert first[:3] == (0, 0.5, 0.5)
    assert len(pulled) <= 7  # frames up to 0.6 s, not the whole (1000-s) video


# ---------------------------------------------------------------------------------------------
# decoding real files


def test_variable_frame_rate_file_is_sampled_by_timestamps(tmp_path):
    times = [0.0, 0.1, 0.2, 0.9, 1.0, 1.05, 1.1, 2.5, 2.6]
    path = make_video(tmp_path / "vfr.mkv", frame_times=times, seconds=2.7)
    frames = list(media.iter_sampled_frames(path, fps=2.0))
    assert [read_frame_code(f.image) for f in frames] == [2, 3, 6, 6, 7]
    assert [f.time for f in frames] == pytest.approx([0.2, 0.9, 1.1, 1.1, 2.5])


@pytest.mark.parametrize("rotation", [90, -90])
def test_rotated_phone_video_is_turned_upright(tmp_path, rotation):
    path = make_video(tmp_path / "phone.mp4", seconds=1.0, fps=10, size=(64, 48), rotation=rotation)
    info = media.probe(path)
    assert (info.width, info.height, info.rotation) == (48, 64, rotation % 360)
    image = next(media.iter_sampled_frames(path, 1.0, info)).image  # frame 5: left half 80, right half 0
    assert image.shape == (64, 48, 3)
    # Counter-clockwise by 90 moves the stored left half to the bottom; clockwise moves it to the top.
    bright, dark = (image[40:, :].mean(), image[:24, :].mean())
    assert (bright > dark + 40) if rotation == 90 else (dark > bright + 40)


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "audio_codec"),
    [
        ("clip.mkv", "libx264", "yuv420p", "aac"),
        ("clip.webm", "libvpx-vp9", "yuv420p", "libopus"),
        ("clip.mov", "mjpeg", "yuvj444p", "aac"),
    ],
)
def test_other_containers(tmp_path, name, codec, pix_fmt, audio_codec):
    rate = 48000 if audio_codec == "libopus" else 22050
    path = make_video(
        tmp_path / name, seconds=2.0, fps=10, codec=codec, pix_fmt=pix_fmt, audio_codec=audio_codec, audio_rate=rate
    )
    window = next(media.iter_windows(path, fps=1.0))
    assert [read_frame_code(f.image) for f in window.frames] == [5, 15]
    assert window.audio is not None and window.audio.dtype == np.float32


def test_odd_sized_video_decodes_at_its_size(tmp_path):
    path = make_video(tmp_path / "odd.mkv", seconds=1.0, fps=5, size=(321, 239), codec="ffv1", pix_fmt="yuv444p")
    frame = next(media.iter_sampled_frames(path, 1.0))
    assert frame.image.shape == (239, 321, 3)


# ---------------------------------------------------------------------------------------------
# windows and audio pairing


def test_windows_of_five_last_one_short_and_audio_centred_on_each_frame(tmp_path):
    path = make_video(tmp_path / "clip.mp4", seconds=12.0, fps=10, audio_rate=44100, channels=2)
    windows = list(media.iter_windows(path, fps=1.0, window_size=5))
    assert [len(w.frames) for w in windows] == [5, 5, 2]
    assert [f.index for w in windows for f in w.frames] == list(range(12))
    assert [read_frame_code(f.image) for w in windows for f in w.frames] == [10 * k + 5 for k in range(12)]
    for window in windows:
        assert window.images.shape == (len(window.frames), 48, 64, 3)
        for frame, centre in zip(window.frames, window.audio_times, strict=True):
            at = round(centre * window.sample_rate)
            assert at - 4000 >= 0 and at + 4000 <= len(window.audio)
            rms = float(np.sqrt(np.mean(window.audio[at - 4000 : at + 4000] ** 2)))
            # the tone is 0.5 in odd seconds and 0.02 in even ones; the stereo down-mix keeps it
            assert rms == pytest.approx(0.5 / np.sqrt(2) if loud_second(frame.time) else 0.02 / np.sqrt(2), rel=0.05)


@pytest.mark.parametrize("name", ["late.mkv", "late.mp4"])
def test_audio_is_placed_by_its_own_timestamps(tmp_path, name):
    # the track starts 0.6 s after the first frame: audio time a plays at video time a + 0.6, so
    # reading at video time t + 0.6 must give audio time t (ignoring the delay would give t + 0.6,
    # the other second's loudness)
    path = make_video(tmp_path / name, seconds=6.0, fps=10, audio_rate=44100, audio_delay=0.6)
    (window, *_) = list(media.iter_windows(path, fps=1.0))
    for frame, centre in zip(window.frames, window.audio_times, strict=True):
        at = round((centre + 0.6) * window.sample_rate)
        rms = float(np.sqrt(np.mean(window.audio[at - 3000 : at + 3000] ** 2)))
        assert (rms > 0.2) == loud_second(frame.time), (frame.time, rms)


def test_audio_outside_the_track_is_silence(tmp_path):
    path = make_video(tmp_path / "clip.mp4", seconds=2.0, fps=10, audio_rate=16000, channels=1)
    (window,) = list(media.iter_windows(path, fps=1.0))
    # the window spans [0.5 - 1, 1.5 + 1] s: the first 0.5 s are before the track starts
    assert window.audio_start == pytest.approx(-0.5)
    assert np.abs(window.audio[:7000]).max() == 0.0
    assert np.abs(window.audio[9000:20000]).max() > 0.01


def test_video_shorter_than_a_window(tmp_path):
    path = make_video(tmp_path / "short.mp4", seconds=2.2, fps=10)
    windows = list(media.iter_windows(path, fps=1.0))
    assert len(windows) == 1 and [f.index for f in windows[0].frames] == [0, 1]
    tiny = make_video(tmp_path / "tiny.mp4", seconds=0.3, fps=10)
    (window,) = list(media.iter_windows(tiny, fps=1.0))
    assert len(window.frames) == 1


def test_missing_audio_track_needs_allow_silent(tmp_path):
    path = make_video(tmp_path / "mute.mp4", seconds=2.0, audio_rate=None)
    with pytest.raises(OvavssError, match=r"mute.mp4: has no audio track \(pass --allow-silent"):
        next(media.iter_windows(path))
    (window,) = list(media.iter_windows(path, allow_silent=True))
    assert window.audio is None and len(window.frames) == 2


def test_audio_memory_stays_bounded(tmp_path):
    path = make_video(tmp_path / "long.mp4", seconds=40.0, fps=2, size=(32, 32), audio_rate=48000, channels=1)
    info = media.probe(path)
    with media.open_media(path) as container:
        cursor = media.AudioCursor(container.decode(container.streams.audio[0]), info.start_time, path)
        for start in np.arange(0.0, 38.0, 5.0):
            audio, _ = cursor.window(start, start + 7.0)
            assert len(audio) == 7 * 16000
            assert cursor.buffered_seconds < 7.0 + 6.0  # one window plus one resampling chunk, not the track


@pytest.mark.parametrize("rate", [44100, 48000, 8000, 22050, 16000, 44101])
def test_streaming_resampler_equals_one_call_on_the_whole_signal(rate):
    rng = np.random.default_rng(rate)
    signal = rng.standard_normal(int(rate * 4.3)) * 0.1
    expected = resample(signal, rate, 16000)
    resampler = media.StreamingResampler(rate, chunk_seconds=1.0)  # several pieces, each with its context
    pieces, position = [], 0
    while position < len(signal):
        size = int(rng.integers(1, 4000))
        pieces.append(resampler.push(signal[position : position + size]))
        position += size
    pieces.append(resampler.flush())
    got = np.concatenate(pieces)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# writing the overlay video


def test_painted_video_keeps_timing_audio_and_pads_odd_sizes(tmp_path):
    times = [0.0, 0.1, 0.2, 0.9, 1.0, 1.05, 1.1, 1.5, 1.6]
    src = make_video(tmp_path / "vfr.mp4", frame_times=times, seconds=1.7, size=(63, 47), codec="ffv1")
    src = src.rename(tmp_path / "vfr.mkv")
    seen = []

    def paint(image, time):
        seen.append(time)
        return 255 - image

    dst = tmp_path / "overlay.mp4"
    media.write_painted_video(src, dst, paint)
    assert seen == pytest.approx(times)
    with av.open(str(dst)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        decoded = [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    assert [t for t, _ in decoded] == pytest.approx(times, abs=1e-3)
    image = decoded[3][1]
    assert image.shape == (48, 64, 3)  # 63x47 padded by one replicated column and row
    assert abs(read_frame_code(255 - image[:47, :63]) - 3) == 0
    np.testing.assert_allclose(image[47].astype(float), image[46].astype(float), atol=12)


def test_painted_video_of_silent_input_has_no_audio_and_mono_stays_mono(tmp_path):
    mute = make_video(tmp_path / "mute.mp4", seconds=1.0, audio_rate=None)
    media.write_painted_video(mute, tmp_path / "a.mp4", lambda image, time: image)
    with av.open(str(tmp_path / "a.mp4")) as container:
        assert not container.streams.audio and container.streams.video[0].frames == 10
    mono = make_video(tmp_path / "mono.mp4", seconds=1.0, audio_rate=8000, channels=1)
    media.write_painted_video(mono, tmp_path / "b.mp4", lambda image, time: image)
    with av.open(str(tmp_path / "b.mp4")) as container:
        audio = container.streams.audio[0]
        assert (audio.codec_context.channels, audio.codec_context.sample_rate) == (1, 8000)
        samples = sum(frame.samples for frame in container.decode(audio))
    assert samples == pytest.approx(8000, abs=1100)  # AAC works in 1024-sample frames


def test_frame_code_helper_round_trips():
    assert read_frame_code(frame_code(37, 48, 64)) == 37
