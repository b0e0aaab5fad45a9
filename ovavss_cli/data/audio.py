"""Audio in: PyAV decoding to mono 16 kHz, and the exact VGGish log-mel front end.

Decoding: any container PyAV opens, any sample format, channels averaged (the reference's down-mix),
then resampled exactly as the reference's ``resampy.resample(x, sr, 16000)`` (resampy 0.4.3, filter
``kaiser_best``), re-derived here in vectorised torch.

Front end (the reference's ``vggish_input.py`` / ``mel_features.py``, re-derived in torch float64):
400-sample periodic Hann window, hop 160, ``|rfft|`` of length 512, a 257x64 HTK triangular mel matrix
over 125-7500 Hz with the DC row zeroed, ``log(mel + 0.01)``, then 96-frame (0.96 s) examples with hop
96 and the incomplete tail dropped. torchaudio's ``MelSpectrogram`` differs in several of these, so it
is not used.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from ..errors import OvavssError

TARGET_RATE = 16_000

# ----------------------------------------------------------------------------------------------------
# Decoding and resampling
# ----------------------------------------------------------------------------------------------------

_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


@dataclass(frozen=True)
class SincFilter:
    """A Kaiser-windowed sinc low-pass, tabulated like resampy's pre-computed filters."""

    num_zeros: int  # zero crossings kept on each side
    precision: int  # table entries per zero crossing
    rolloff: float  # cut-off as a fraction of the lower Nyquist
    beta: float  # Kaiser window shape


# resampy >= 0.3 "kaiser_best" (the reference's resampy 0.4.3). Its docs print the rounded values
# (beta 12.9846, roll 0.917347, 50 zeros, 2^13 precision); these full-precision ones are read back from
# the shipped table (rolloff is stored in it; beta is recovered from it to 1e-13). torchaudio's documented
# "kaiser_best" equivalent (width 64, rolloff 0.9476, beta 14.77) describes resampy < 0.3 and is 1e-2 off.
KAISER_BEST = SincFilter(num_zeros=50, precision=2**13, rolloff=0.9173473712608761, beta=12.98458524704)

# Resampling memory bounds (float64 elements): the per-period kernel of common rate pairs (44.1 kHz ->
# 16 kHz: 160 x 718) is far below the first; a block of input windows stays near the second (32 MB).
_DENSE_KERNEL_LIMIT = 1 << 22
_BLOCK_ELEMENTS = 1 << 22


def audio_frame_to_float(frame: av.AudioFrame) -> np.ndarray:
    """One decoded PyAV audio frame -> (channels, samples) float64 in [-1, 1].

    Integer PCM is scaled by 2^(bits-1) (int16 / 32768, exactly as the reference's soundfile read).
    """
    fmt = frame.format.name
    planar = fmt.endswith("p")
    base = fmt[:-1] if planar else fmt
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not planar:  # packed: (1, samples * channels), interleaved
        array = array.reshape(-1, channels).T
    array = array.astype(np.float64)
    if base == "u8":
        return (array - 128.0) / 128.0
    if base in _INT_SCALE:
        return array / _INT_SCALE[base]
    return array  # flt / dbl are already in [-1, 1]


@functools.lru_cache(maxsize=2)
def _filter_table(spec: SincFilter) -> torch.Tensor:
    """(num_zeros * precision + 1,) float64 right wing of the filter, at steps of 1 / precision zero crossings."""
    position = torch.arange(spec.num_zeros * spec.precision + 1, dtype=torch.float64) / spec.precision
    ramp = position / spec.num_zeros
    window = torch.special.i0(spec.beta * torch.sqrt(1.0 - ramp * ramp)) / torch.special.i0(
        torch.tensor(spec.beta, dtype=torch.float64)
    )
    return spec.rolloff * torch.sinc(spec.rolloff * position) * window


def _resample_tensor(waveform: torch.Tensor, rate: int, target_rate: int) -> torch.Tensor:
    """Band-limited resampling of a 1-D float64 tensor, computed as resampy computes it.

    Output t sits at input time t * rate / target_rate; each side sums the neighbouring inputs times the
    filter, read from the table with linear interpolation. Quirks kept for parity: the filter stride is
    truncated to whole table entries (``int(scale * precision)``), the last partial stride is dropped,
    the output has floor(n * target / rate) samples, and inputs outside the signal count as zeros.

    resampy evaluates that per output; here the weights are computed once per output phase (the
    pattern repeats every ``rate / gcd`` inputs) and applied as strided correlations.
    """
    if rate == target_rate:
        return waveform
    ratio = target_rate / rate
    scale = min(1.0, ratio)
    table = _filter_table(KAISER_BEST) * (ratio if ratio < 1 else 1.0)  # downsampling: the filter's gain is the ratio
    delta = torch.diff(table, append=table[-1:])
    table_size = table.numel()
    step = int(scale * KAISER_BEST.precision)
    taps = torch.arange(table_size // step + 1)  # the most taps one wing can have
    width = taps.numel()
    period_in, phases = rate // math.gcd(rate, target_rate), target_rate // math.gcd(rate, target_rate)

    time = torch.arange(phases, dtype=torch.float64) * (1.0 / ratio)  # of each phase's first output, in inputs
    base = time.long()  # the input at or before it
    left_frac = scale * (time - base)
    wings = []
    for frac in (left_frac, scale - left_frac):  # left wing: inputs base, base-1, ...; right: base+1, ...
        index_frac = frac * KAISER_BEST.precision
        offset = index_frac.long()
        eta = index_frac - offset
        entry = (offset[:, None] + taps * step).clamp(max=table_size - 1)  # (phases, width) table positions
        kept = taps < ((table_size - offset) // step)[:, None]
        wings.append((table[entry] + eta[:, None] * delta[entry]) * kept)
    kernels = torch.cat([wings[0].flip(1), wings[1]], dim=1)  # (phases, 2 * width): inputs base-width+1 .. base+width

    num_out = waveform.numel() * target_rate // rate
    span = period_in + 2 * width - 1  # inputs one period of outputs reads
    padded = torch.nn.functional.pad(waveform, (width - 1, span + period_in))
    if phases * span <= _DENSE_KERNEL_LIMIT:
        # every common rate: one (phases, span) kernel per period, applied to blocks of periods with a matmul
        dense = waveform.new_zeros(phases, span).scatter_(1, base[:, None] + torch.arange(2 * width), kernels)
        frames = padded.unfold(0, span, period_in)  # (periods, span), a view
        rows = max(1, _BLOCK_ELEMENTS // span)
        periods = -(-num_out // phases)
        blocks = [frames[start : min(start + rows, periods)] @ dense.T for start in range(0, periods, rows)]
        return torch.cat(blocks).flatten()[:num_out] if blocks else waveform.new_zeros(0)
    # odd rates (a large period): one strided pass over the signal per phase
    output = waveform.new_zeros(num_out)
    for phase in range(min(phases, num_out)):
        windows = padded[base[phase] :].unfold(0, 2 * width, period_in)[: len(range(phase, num_out, phases))]
        output[phase::phases] = windows @ kernels[phase]
    return output


def resample(waveform: np.ndarray, rate: int, target_rate: int = TARGET_RATE) -> np.ndarray:
    """Resample a 1-D float waveform as ``resampy.resample(waveform, rate, target_rate)`` does (kaiser_best).

    Matches resampy 0.4.3 to ~1e-12 (float64); the output has floor(n * target_rate / rate) samples.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float64))
    return _resample_tensor(tensor, rate, target_rate).numpy()


def load_audio(path: str | Path, target_rate: int | None = TARGET_RATE) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of ``path`` to a mono float64 waveform.

    Channels are averaged (the reference's down-mix); with ``target_rate`` set the waveform is
    resampled to it. Returns ``(waveform (samples,), sample_rate)``.

    Unlike the reference (``soundfile.read(dtype="int16")``), 24-bit, 32-bit and float sources keep
    their full precision instead of being rounded to 16 bits first.
    """
    path = Path(path)
    if not path.exists():
        raise OvavssError("audio file not found", path=path)
    if not path.is_file():
        raise OvavssError("is not a file (expected an audio or video file)", path=path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise OvavssError("no audio stream", path=path)
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate or stream.rate
            chunks = [audio_frame_to_float(frame) for frame in container.decode(stream)]
    except av.FFmpegError as error:
        raise OvavssError(f"cannot decode audio ({error.strerror or error})", path=path) from None
    if not chunks or not rate:
        raise OvavssError("audio stream is empty", path=path)
    waveform = np.concatenate(chunks, axis=1).mean(axis=0)
    if target_rate is not None:
        waveform, rate = resample(waveform, rate, target_rate), target_rate
    return waveform, int(rate)


# ----------------------------------------------------------------------------------------------------
# VGGish log-mel front end
# ----------------------------------------------------------------------------------------------------


# The reference zero-pads every clip to 10 examples in the *log-mel* domain (vggish.py `_preprocess`).
# A zero log-mel is not silence: silence is log(0 + 0.01), see `SILENCE_LOG_MEL`.
REFERENCE_NUM_EXAMPLES = 10
REFERENCE_PAD_VALUE = 0.0

# Long waveforms are turned into log-mel frames in slices of this many STFT frames (~82 s of audio,
# ~70 MB of complex spectrum), so memory stays bounded whatever the input length.
_FRAMES_PER_SLICE = 8192


@dataclass(frozen=True)
class LogMelConfig:
    """VGGish's front-end parameters (``vggish_params.py``); the released weights expect the defaults."""

    sample_rate: int = TARGET_RATE
    window_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    fft_length: int = 512  # next power of two above the window
    num_mel_bins: int = 64
    mel_min_hz: float = 125.0
    mel_max_hz: float = 7500.0
    log_offset: float = 0.01
    example_frames: int = 96  # 0.96 s of 10-ms frames per example
    example_hop_frames: int = 96  # no overlap

    def __post_init__(self) -> None:
        if not 0.0 <= self.mel_min_hz < self.mel_max_hz <= self.sample_rate / 2:
            raise ValueError(f"mel band {self.mel_min_hz}-{self.mel_max_hz} Hz must lie in 0..Nyquist")
        if self.fft_length < self.window_length:
            raise ValueError("fft_length must be at least window_length")

    @property
    def example_samples(self) -> int:
        """Waveform samples one example reads: 96 frames of 400 samples, 160 apart (15,600 = 0.975 s)."""
        return (self.example_frames - 1) * self.hop_length + self.window_length


DEFAULT_LOG_MEL = LogMelConfig()
SILENCE_LOG_MEL = math.log(DEFAULT_LOG_MEL.log_offset)  # log-mel value of digital silence (about -4.605)


def hertz_to_mel(frequencies_hz: torch.Tensor | float) -> torch.Tensor:
    """HTK mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * torch.log(1.0 + torch.as_tensor(frequencies_hz, dtype=torch.float64) / 700.0)


def mel_filter_matrix(config: LogMelConfig = DEFAULT_LOG_MEL) -> torch.Tensor:
    """(fft_length // 2 + 1, num_mel_bins) float64: rfft magnitudes @ matrix = mel energies.

    Triangles are linear in mel between band edges evenly spaced in mel over [mel_min_hz, mel_max_hz];
    band i rises from edge i to edge i+1 and falls to edge i+2. HTK ignores the DC bin, so its row is 0.
    """
    num_bins = config.fft_length // 2 + 1
    bin_mel = hertz_to_mel(torch.linspace(0.0, config.sample_rate / 2, num_bins, dtype=torch.float64))[:, None]
    edges = torch.linspace(
        hertz_to_mel(config.mel_min_hz).item(),
        hertz_to_mel(config.mel_max_hz).item(),
        config.num_mel_bins + 2,
        dtype=torch.float64,
    )
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - lower) / (center - lower)
    falling = (upper - bin_mel) / (upper - center)
    matrix = torch.minimum(rising, falling).clamp(min=0.0)
    matrix[0] = 0.0
    return matrix


def periodic_hann(length: int) -> torch.Tensor:
    """(length,) float64 raised cosine of period ``length`` (Matlab's "periodic" Hann)."""
    return 0.5 - 0.5 * torch.cos(2.0 * math.pi / length * torch.arange(length, dtype=torch.float64))


def _frames_to_log_mel(frames: torch.Tensor, config: LogMelConfig) -> torch.Tensor:
    """(F, window_length) float64 waveform frames -> (F, num_mel_bins) float64 log-mel, sliced for memory."""
    window = periodic_hann(config.window_length)
    mel_matrix = mel_filter_matrix(config)
    slices = [
        torch.log(torch.fft.rfft(chunk * window, n=config.fft_length).abs() @ mel_matrix + config.log_offset)
        for chunk in frames.split(_FRAMES_PER_SLICE)
    ]
    return torch.cat(slices) if slices else frames.new_zeros(0, config.num_mel_bins)


def _as_waveform(waveform: np.ndarray | torch.Tensor, sample_rate: int, config: LogMelConfig) -> torch.Tensor:
    """Any 1-D float waveform -> float64 CPU tensor at the front end's sample rate."""
    tensor = torch.as_tensor(waveform).detach().to("cpu", torch.float64)
    if tensor.dim() != 1:
        raise ValueError(f"expected a 1-D mono waveform, got shape {tuple(tensor.shape)}")
    return _resample_tensor(tensor, sample_rate, config.sample_rate)


def log_mel_spectrogram(waveform: np.ndarray | torch.Tensor, config: LogMelConfig = DEFAULT_LOG_MEL) -> torch.Tensor:
    """(samples,) waveform at ``config.sample_rate`` -> (frames, num_mel_bins) float64 log-mel.

    No centring or padding: frames = 1 + (samples - 400) // 160 (zero frames for under 400 samples).
    """
    wave = _as_waveform(waveform, config.sample_rate, config)
    if wave.numel() < config.window_length:
        return wave.new_zeros(0, config.num_mel_bins)
    frames = wave.unfold(0, config.window_length, config.hop_length)  # (F, 400), a view
    return _frames_to_log_mel(frames, config)


def log_mel_examples(
    waveform: np.ndarray | torch.Tensor,
    sample_rate: int = TARGET_RATE,
    pad_to: int | None = None,
    *,
    pad_value: float = REFERENCE_PAD_VALUE,
    config: LogMelConfig = DEFAULT_LOG_MEL,
) -> torch.Tensor:
    """Waveform -> (N, 1, 96, 64) float32 VGGish examples, as the reference builds them per clip.

    Examples are consecutive, non-overlapping 0.96-s blocks of log-mel frames; an incomplete tail is
    dropped (5.0 s gives 5 examples, 10.0 s gives 10). With ``pad_to`` the result has exactly that many
    rows: missing rows are filled with ``pad_value`` (0.0, the reference's log-mel-domain zero padding;
    pass ``SILENCE_LOG_MEL`` for true silence), and rows beyond ``pad_to`` are cut (the reference
    would fail on a clip longer than its 10 slots).
    """
    log_mel = log_mel_spectrogram(_as_waveform(waveform, sample_rate, config), config)
    if log_mel.shape[0] >= config.example_frames:
        examples = log_mel.unfold(0, config.example_frames, config.example_hop_frames).transpose(1, 2)
    else:
        examples = log_mel.new_zeros(0, config.example_frames, config.num_mel_bins)
    examples = examples.float()  # the reference casts to float32 before padding
    if pad_to is not None:
        padded = examples.new_full((pad_to, config.example_frames, config.num_mel_bins), pad_value)
        kept = min(pad_to, examples.shape[0])
        padded[:kept] = examples[:kept]
        examples = padded
    return examples[:, None].contiguous()  # (N, 1, 96, 64)


def log_mel_examples_at(
    waveform: np.ndarray | torch.Tensor,
    sample_rate: int,
    centers_s: Sequence[float],
) -> torch.Tensor:
    """One (1, 96, 64) example per timestamp, its 0.975-s window centred on it -> (T, 1, 96, 64) float32.

    For arbitrary videos: each sampled frame is paired with the audio around its own timestamp. The
    window holds ``DEFAULT_LOG_MEL.example_samples`` (15,600) samples from round(center * rate) - 7,800. Where it
    reaches past either end of the waveform it reads digital silence (zeros in the waveform, so fully
    outside frames are ``SILENCE_LOG_MEL``, not the reference's log-mel zero padding). AVSBench's
    example k is exactly the window centred at ``(k * 15360 + 7800) / 16000`` = 0.96 k + 0.4875 s.
    """
    wave = _as_waveform(waveform, sample_rate, DEFAULT_LOG_MEL)
    span = DEFAULT_LOG_MEL.example_samples
    starts = torch.tensor(
        [math.floor(center * DEFAULT_LOG_MEL.sample_rate + 0.5) - span // 2 for center in centers_s], dtype=torch.long
    )
    if starts.numel() == 0:
        return torch.zeros(0, 1, DEFAULT_LOG_MEL.example_frames, DEFAULT_LOG_MEL.num_mel_bins)
    left = max(0, -int(starts.min()))
    right = max(0, int(starts.max()) + span - wave.numel())
    padded = torch.nn.functional.pad(wave, (left, right))
    segments = padded[(starts + left)[:, None] + torch.arange(span)]  # (T, 15600)
    frames = segments.unfold(1, DEFAULT_LOG_MEL.window_length, DEFAULT_LOG_MEL.hop_length)  # (T, 96, 400)
    log_mel = _frames_to_log_mel(frames.reshape(-1, DEFAULT_LOG_MEL.window_length), DEFAULT_LOG_MEL)
    return log_mel.view(-1, 1, DEFAULT_LOG_MEL.example_frames, DEFAULT_LOG_MEL.num_mel_bins).float()
