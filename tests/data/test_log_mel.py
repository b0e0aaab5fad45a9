"""The VGGish log-mel front end: mel matrix, framing, examples, padding, centred windows, frame->example map.

Exact agreement with the reference's numbers is checked in tests/models/test_vggish_parity.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from audio_files import tone

from ovavss_cli.data.audio import (
    DEFAULT_LOG_MEL,
    SILENCE_LOG_MEL,
    LogMelConfig,
    hertz_to_mel,
    log_mel_examples,
    log_mel_examples_at,
    log_mel_spectrogram,
    mel_filter_matrix,
    periodic_hann,
)

RATE = DEFAULT_LOG_MEL.sample_rate


def mel_to_hertz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (torch.exp(mel / 1127.0) - 1.0)


def band_centers_hz(config: LogMelConfig = DEFAULT_LOG_MEL) -> torch.Tensor:
    edges = torch.linspace(hertz_to_mel(config.mel_min_hz).item(), hertz_to_mel(config.mel_max_hz).item(), 66)
    return mel_to_hertz(edges[1:-1].double())


def test_htk_mel_scale():
    assert hertz_to_mel(0.0).item() == 0.0
    assert hertz_to_mel(700.0).item() == pytest.approx(1127.0 * math.log(2.0))
    assert hertz_to_mel(1000.0).item() == pytest.approx(1000.0, abs=0.1)  # the scale's anchor


def test_periodic_hann_is_a_full_period_cosine():
    window = periodic_hann(400)
    assert window[0] == 0.0 and window[200] == pytest.approx(1.0)
    assert window[1] == pytest.approx(window[399])  # periodic: no repeated end zero
    assert window.dtype == torch.float64


def test_mel_matrix_structure():
    matrix = mel_filter_matrix()
    assert matrix.shape == (257, 64) and matrix.dtype == torch.float64
    assert torch.all(matrix[0] == 0)  # HTK drops DC
    assert torch.all(matrix >= 0) and torch.all(matrix <= 1)
    bin_hz = torch.linspace(0, RATE / 2, 257, dtype=torch.float64)
    # nothing outside 125..7500 Hz contributes; every band has support; band peaks rise monotonically
    assert torch.all(matrix[(bin_hz < 125) | (bin_hz > 7500)] == 0)
    assert torch.all(matrix.sum(0) > 0)
    peaks = bin_hz[matrix.argmax(0)]
    assert torch.all(peaks[1:] >= peaks[:-1])
    # each band peaks at the FFT bin nearest its mel-spaced centre frequency (within one bin, 31.25 Hz)
    assert torch.all((peaks - band_centers_hz()).abs() <= 31.25)


def test_mel_matrix_triangle_values():
    # bin 64 (2000 Hz) lies between mel edges j-1 and j: it is on the rising side of band j-1 and on the
    # falling side of band j-2, with weights linear in mel that add up to 1 (HTK's complementary bands)
    matrix = mel_filter_matrix()
    mel = hertz_to_mel(2000.0).item()
    edges = torch.linspace(hertz_to_mel(125.0).item(), hertz_to_mel(7500.0).item(), 66, dtype=torch.float64)
    j = int(torch.searchsorted(edges, torch.tensor(mel, dtype=torch.float64)))
    rising = (mel - edges[j - 1]) / (edges[j] - edges[j - 1])
    assert matrix[64, j - 1].item() == pytest.approx(rising.item(), abs=1e-9)
    assert matrix[64, j - 2].item() == pytest.approx(1 - rising.item(), abs=1e-9)
    assert matrix[64].count_nonzero() == 2


@pytest.mark.parametrize("samples", [0, 399, 400, 559, 560, 16_000, 80_000])
def test_frame_count_has_no_centring_or_padding(samples):
    log_mel = log_mel_spectrogram(np.zeros(samples))
    assert log_mel.shape == (max(0, 1 + (samples - 400) // 160), 64)
    assert log_mel.dtype == torch.float64


def test_silence_is_log_offset():
    assert torch.all(log_mel_spectrogram(np.zeros(1600)) == SILENCE_LOG_MEL)
    assert SILENCE_LOG_MEL == pytest.approx(math.log(0.01))


def test_a_tone_lands_in_the_band_centred_nearest_to_it():
    log_mel = log_mel_spectrogram(tone(1500, 0.5, RATE))
    assert torch.all(log_mel.argmax(1) == (band_centers_hz() - 1500).abs().argmin())


def test_long_input_is_sliced_without_changing_values(monkeypatch):
    import ovavss_cli.data.audio as audio

    waveform = np.random.default_rng(0).standard_normal(RATE) * 0.1
    whole = log_mel_spectrogram(waveform)
    monkeypatch.setattr(audio, "_FRAMES_PER_SLICE", 7)
    torch.testing.assert_close(log_mel_spectrogram(waveform), whole, rtol=0, atol=1e-12)


def test_numpy_and_torch_inputs_agree_and_2d_is_rejected():
    waveform = tone(440, 0.2, RATE)
    torch.testing.assert_close(log_mel_spectrogram(waveform), log_mel_spectrogram(torch.from_numpy(waveform)))
    single = log_mel_spectrogram(torch.from_numpy(waveform).float())  # float32 input is computed in float64 too
    torch.testing.assert_close(single, log_mel_spectrogram(waveform), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="1-D"):
        log_mel_spectrogram(np.zeros((2, 1600)))


@pytest.mark.parametrize(("seconds", "expected"), [(5.0, 5), (10.0, 10), (0.96, 0), (0.98, 1), (0.5, 0)])
def test_example_count_drops_the_incomplete_tail(seconds, expected):
    examples = log_mel_examples(np.zeros(round(seconds * RATE)))
    assert examples.shape == (expected, 1, 96, 64) and examples.dtype == torch.float32


def test_examples_are_consecutive_96_frame_blocks():
    waveform = np.random.default_rng(1).standard_normal(3 * RATE) * 0.1
    log_mel = log_mel_spectrogram(waveform).float()
    examples = log_mel_examples(waveform)
    assert examples.shape[0] == 3
    for k in range(3):
        torch.testing.assert_close(examples[k, 0], log_mel[96 * k : 96 * (k + 1)], rtol=0, atol=0)


def test_padding_to_ten_uses_zeros_like_the_reference_or_silence_on_request():
    waveform = tone(440, 5.0, RATE)
    padded = log_mel_examples(waveform, pad_to=10)
    assert padded.shape == (10, 1, 96, 64)
    torch.testing.assert_close(padded[:5], log_mel_examples(waveform), rtol=0, atol=0)
    assert torch.all(padded[5:] == 0)
    silent = log_mel_examples(waveform, pad_to=10, pad_value=SILENCE_LOG_MEL)
    assert torch.all(silent[5:] == torch.tensor(SILENCE_LOG_MEL, dtype=torch.float32))


def test_a_clip_longer_than_pad_to_is_cut():
    examples = log_mel_examples(np.zeros(12 * RATE), pad_to=10)
    assert examples.shape == (10, 1, 96, 64)


def test_examples_resample_other_rates_first():
    at_16k = log_mel_examples(tone(1000, 2.0, RATE))
    at_44k = log_mel_examples(tone(1000, 2.0, 44_100), sample_rate=44_100)
    assert at_44k.shape == at_16k.shape == (2, 1, 96, 64)
    # same tone, so the same spectrum up to the resampler's ripple and onset transient (a 44.1 kHz
    # waveform read as 16 kHz would put the tone at 2.76 kHz: errors of several units)
    torch.testing.assert_close(at_44k, at_16k, rtol=0, atol=5e-2)


def test_centred_windows_reproduce_the_reference_examples():
    waveform = np.random.default_rng(2).standard_normal(5 * RATE) * 0.1
    centers = [(k * 96 * 160 + DEFAULT_LOG_MEL.example_samples / 2) / RATE for k in range(5)]
    assert centers[1] == pytest.approx(0.96 + 0.4875)
    torch.testing.assert_close(log_mel_examples_at(waveform, RATE, centers), log_mel_examples(waveform),
                               rtol=0, atol=0)  # fmt: skip


def test_centred_windows_read_silence_past_the_edges():
    waveform = np.random.default_rng(3).standard_normal(2 * RATE) * 0.1
    first, outside = log_mel_examples_at(waveform, RATE, [0.0, 10.0])
    assert first.shape == outside.shape == (1, 96, 64)
    assert torch.all(outside == torch.tensor(SILENCE_LOG_MEL, dtype=torch.float32))
    # centred on t=0: frame j starts at sample 160 j - 7800, so frames 0..46 lie wholly before the start
    assert torch.all(first[0, :47] == torch.tensor(SILENCE_LOG_MEL, dtype=torch.float32))
    # frames 49.. start at samples 40, 200, ... inside the waveform: plain log-mel of waveform[40:]
    from_sample_40 = log_mel_spectrogram(waveform[40:]).float()
    torch.testing.assert_close(first[0, 49:], from_sample_40[: 96 - 49], rtol=0, atol=1e-6)


def test_centred_windows_follow_the_timestamp():
    # a tone switched on at 1 s: the window centred at 0.3 s is silent, the one at 1.7 s is not
    waveform = np.concatenate([np.zeros(RATE), tone(1000, 1.0, RATE)])
    before, after = log_mel_examples_at(waveform, RATE, [0.3, 1.7])
    assert torch.all(before == torch.tensor(SILENCE_LOG_MEL, dtype=torch.float32))
    assert after.max() > 0
    assert log_mel_examples_at(waveform, RATE, []).shape == (0, 1, 96, 64)


def test_config_rejects_impossible_mel_bands():
    with pytest.raises(ValueError):
        LogMelConfig(mel_max_hz=9000.0)
    with pytest.raises(ValueError):
        LogMelConfig(mel_min_hz=8000.0, mel_max_hz=7000.0)
