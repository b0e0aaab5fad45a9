"""Audio decoding through PyAV: any container, sample rate and channel count -> mono float at 16 kHz."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
import torchaudio.functional as AF

from ..errors import OvavssError

TARGET_RATE = 16_000

# torchaudio's documented equivalent of resampy's "kaiser_best" filter (what the reference uses).
_KAISER_BEST = dict(
    lowpass_filter_width=64, rolloff=0.9475937167399596, resampling_method="sinc_interp_kaiser",
    beta=14.769656459379492,
)  # fmt: skip

_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


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


def resample(waveform: np.ndarray, rate: int, target_rate: int = TARGET_RATE) -> np.ndarray:
    """Band-limited sinc resampling (kaiser_best parameters) of a 1-D float waveform."""
    if rate == target_rate:
        return waveform
    tensor = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float64))
    return AF.resample(tensor, rate, target_rate, **_KAISER_BEST).numpy()


def load_audio(path: str | Path, target_rate: int | None = TARGET_RATE) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of ``path`` to a mono float64 waveform.

    Channels are averaged (the reference's down-mix); with ``target_rate`` set the waveform is
    resampled to it. Returns ``(waveform (samples,), sample_rate)``.
    """
    path = Path(path)
    if not path.is_file():
        raise OvavssError("audio file not found", path=path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise OvavssError("no audio stream", path=path)
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate or stream.rate
            chunks = [audio_frame_to_float(frame) for frame in container.decode(stream)]
    except av.FFmpegError as error:
        raise OvavssError(f"cannot decode audio ({error})", path=path) from None
    if not chunks or not rate:
        raise OvavssError("audio stream is empty", path=path)
    waveform = np.concatenate(chunks, axis=1).mean(axis=0)
    if target_rate is not None:
        waveform, rate = resample(waveform, rate, target_rate), target_rate
    return waveform, int(rate)
