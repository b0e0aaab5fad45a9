"""Audio decoding: sample formats, codecs, down-mix, resampling to 16 kHz, user errors."""

from __future__ import annotations

import numpy as np
import pytest
from audio_files import tone, write_audio, write_pcm16_wav, write_silent_video

from ovavss_cli.data.audio import TARGET_RATE, load_audio, resample
from ovavss_cli.errors import OvavssError


def dominant_frequency(waveform: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return float(np.fft.rfftfreq(len(waveform), 1 / rate)[spectrum.argmax()])


def band_energy_ratio(waveform: np.ndarray, rate: int, low_hz: float) -> float:
    """Energy above ``low_hz`` over total energy."""
    power = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform)))) ** 2
    return float(power[np.fft.rfftfreq(len(waveform), 1 / rate) > low_hz].sum() / power.sum())


SIGNAL = tone(440, 0.5, TARGET_RATE, amplitude=0.9)


# Each format gets integer samples it can store exactly; the decoder must scale them by 2^(bits-1).
@pytest.mark.parametrize(
    ("suffix", "codec", "sample_format", "stored"),
    [
        ("wav", "pcm_u8", "u8", (np.round(SIGNAL * 127) + 128).astype(np.uint8)),
        ("wav", "pcm_s16le", "s16", np.round(SIGNAL * 32767).astype(np.int16)),
        ("wav", "pcm_s24le", "s32", np.round(SIGNAL * (2**23 - 1)).astype(np.int32) << 8),  # 24 bits, s32-aligned
        ("wav", "pcm_s32le", "s32", np.round(SIGNAL * (2**31 - 1)).astype(np.int32)),
        ("wav", "pcm_f32le", "flt", SIGNAL.astype(np.float32)),
        ("flac", "flac", "s16", np.round(SIGNAL * 32767).astype(np.int16)),
    ],
    ids=["u8", "s16", "s24", "s32", "f32", "flac"],
)
def test_pcm_and_lossless_formats_decode_exactly(tmp_path, suffix, codec, sample_format, stored):
    path = write_audio(tmp_path / f"clip.{suffix}", stored[None], TARGET_RATE, codec, sample_format)
    waveform, rate = load_audio(path, target_rate=None)
    scale = {"u8": 128.0, "s16": 32768.0, "s32": 2.0**31, "flt": 1.0}[sample_format]
    offset = 128.0 if sample_format == "u8" else 0.0
    assert rate == TARGET_RATE and waveform.dtype == np.float64
    np.testing.assert_array_equal(waveform, (stored.astype(np.float64) - offset) / scale)
    # and the value range is right: the signal's amplitude survives the scaling
    assert abs(np.abs(waveform).max() - 0.9) < 0.01


@pytest.mark.parametrize(
    ("suffix", "codec", "sample_format", "rate"),
    [("ogg", "libopus", "flt", 48_000), ("m4a", "aac", "fltp", 44_100), ("mp3", "libmp3lame", "fltp", 44_100)],
)
def test_compressed_formats_decode_to_16k_mono(tmp_path, suffix, codec, sample_format, rate):
    stereo = np.stack([tone(1000, 2.0, rate), tone(1000, 2.0, rate)]).astype(np.float32)
    path = write_audio(tmp_path / f"clip.{suffix}", stereo, rate, codec, sample_format)
    waveform, out_rate = load_audio(path)
    assert out_rate == TARGET_RATE
    # encoder delay / padding may add a few ms, never much
    assert abs(len(waveform) / TARGET_RATE - 2.0) < 0.1
    assert dominant_frequency(waveform, TARGET_RATE) == pytest.approx(1000, abs=1)
    middle = waveform[TARGET_RATE // 2 : 3 * TARGET_RATE // 2]
    assert np.abs(middle).max() == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("num_channels", [2, 6])
def test_multichannel_audio_is_averaged_to_mono(tmp_path, num_channels):
    channels = np.stack([tone(300 * (c + 1), 0.25, TARGET_RATE, amplitude=0.8 / (c + 1)) for c in range(num_channels)])
    stored = np.round(channels * 32767).astype(np.int16)
    path = write_audio(tmp_path / "multi.wav", stored, TARGET_RATE, "pcm_s16le", "s16")
    waveform, _ = load_audio(path, target_rate=None)
    np.testing.assert_allclose(waveform, (stored / 32768.0).mean(axis=0), rtol=0, atol=1e-15)


@pytest.mark.parametrize("rate", [44_100, 48_000, 8_000, 22_050])
def test_resampling_keeps_frequency_amplitude_and_length(rate):
    source = tone(1000, 2.0, rate)
    out = resample(source, rate)
    assert len(out) == len(source) * TARGET_RATE // rate  # resampy's output length (the reference)
    assert dominant_frequency(out, TARGET_RATE) == pytest.approx(1000, abs=0.6)
    expected = tone(1000, 2.0, TARGET_RATE)[: len(out)]
    interior = slice(TARGET_RATE // 4, len(out) - TARGET_RATE // 4)  # away from the zero-padded ends
    np.testing.assert_allclose(out[interior], expected[interior], atol=1e-3)
    if rate < TARGET_RATE:  # upsampling must not invent content above the source's Nyquist
        assert band_energy_ratio(out, TARGET_RATE, rate / 2 + 100) < 1e-6


def test_resampling_removes_content_above_the_new_nyquist():
    rate = 44_100
    mixture = tone(1000, 1.0, rate) + tone(11_000, 1.0, rate)  # 11 kHz would alias to 5 kHz
    out = resample(mixture, rate)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    freqs = np.fft.rfftfreq(len(out), 1 / TARGET_RATE)
    alias = spectrum[np.abs(freqs - 5000) < 20].max()
    wanted = spectrum[np.abs(freqs - 1000) < 20].max()
    assert alias < 1e-4 * wanted


def golden_input(rate: int) -> np.ndarray:
    n = np.arange(rate // 10 + 7)
    return (0.3 * np.sin(2 * np.pi * 440 * n / rate) + 0.2 * np.sin(2 * np.pi * 2500 * n / rate + 1)
            + 0.1 * np.sin(2 * np.pi * 7000 * n / rate))  # fmt: skip


# resampy 0.4.3 ``resample(golden_input(rate), rate, 16000)`` (filter "kaiser_best", the reference's
# resampler), printed with repr: (output length, {index: value}). 7 kHz sits in the filter's transition
# band, so a different filter (e.g. torchaudio's "kaiser_best" equivalent, ~1e-2 off) fails here.
RESAMPY_GOLDEN = {
    44_100: (1602, {0: 0.18840389607872515, 1: 0.25289736503508786, 2: 0.08576269069445708,
                    50: 0.10805767168921343, 777: 0.10484414294929763, 1599: -0.06849198753976787,
                    1600: 0.15053620521985653, 1601: 0.2922700131734894}),
    48_000: (1602, {0: 0.1869442357694131, 1: 0.2529881435441306, 2: 0.08586202249574786,
                    50: 0.10808721044827387, 777: 0.10487345539751389, 1599: -0.06852408871344252,
                    1600: 0.14996543616658048, 1601: 0.29444402829182975}),
    8_000: (1614, {0: 0.16863172751383965, 1: 0.17803054481585712, 2: 0.06569291067756264,
                   50: 0.10603982196603985, 777: 0.18026137228277414, 1611: 0.3191367438054031,
                   1612: 0.37740896148289516, 1613: 0.24339096278932112}),
    22_050: (1605, {0: 0.20075487893446373, 1: 0.24930537402272598, 2: 0.08738549466768732,
                    50: 0.10805700920937537, 777: 0.1048413365038873, 1602: 0.0730093297709179,
                    1603: 0.08121653482782473, 1604: -0.07203598292546892}),
}  # fmt: skip


@pytest.mark.parametrize("rate", sorted(RESAMPY_GOLDEN))
def test_resampling_matches_resampy_kaiser_best(rate):
    length, values = RESAMPY_GOLDEN[rate]
    out = resample(golden_input(rate), rate)
    assert len(out) == length
    for index, expected in values.items():
        assert out[index] == pytest.approx(expected, abs=1e-10), index


@pytest.mark.parametrize("rate", [44_100, 8_000, 37_800])
def test_odd_rate_path_agrees_with_the_dense_kernel(monkeypatch, rate):
    import ovavss_cli.data.audio as audio

    source = golden_input(rate)
    dense = resample(source, rate)
    monkeypatch.setattr(audio, "_DENSE_KERNEL_LIMIT", 0)  # force the per-phase path
    np.testing.assert_allclose(resample(source, rate), dense, rtol=0, atol=1e-12)


def test_load_audio_resamples_a_44k_file(tmp_path):
    path = write_audio(tmp_path / "cd.wav", np.round(tone(440, 1.0, 44_100)[None] * 32767).astype(np.int16),
                       44_100, "pcm_s16le", "s16")  # fmt: skip
    waveform, rate = load_audio(path)
    assert rate == TARGET_RATE and len(waveform) == TARGET_RATE
    assert dominant_frequency(waveform, rate) == pytest.approx(440, abs=1)
    native, native_rate = load_audio(path, target_rate=None)
    assert native_rate == 44_100 and len(native) == 44_100


def one_line_error_naming(path, call) -> str:
    with pytest.raises(OvavssError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_file_is_a_user_error(tmp_path):
    path = tmp_path / "nope.wav"
    assert "not found" in one_line_error_naming(path, lambda: load_audio(path))


def test_directory_is_a_user_error(tmp_path):
    assert "not a file" in one_line_error_naming(tmp_path, lambda: load_audio(tmp_path))


@pytest.mark.parametrize("content", [b"this is not audio at all\n" * 20, b""], ids=["text", "empty"])
def test_non_audio_file_is_a_user_error(tmp_path, content):
    path = tmp_path / "notes.wav"
    path.write_bytes(content)
    assert "cannot decode" in one_line_error_naming(path, lambda: load_audio(path))


def test_video_without_audio_is_a_user_error(tmp_path):
    path = write_silent_video(tmp_path / "silent.mp4")
    assert "no audio stream" in one_line_error_naming(path, lambda: load_audio(path))


def test_pcm16_helper_roundtrip(tmp_path):
    # the WAV writer other tests rely on stores exactly round(32767 x)
    waveform = tone(440, 0.1, TARGET_RATE)
    decoded, _ = load_audio(write_pcm16_wav(tmp_path / "x.wav", waveform), target_rate=None)
    np.testing.assert_array_equal(decoded, np.round(waveform * 32767) / 32768)
