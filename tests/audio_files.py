"""Write small audio (and audio-less) files with PyAV for the audio tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def tone(frequency_hz: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    """(samples,) float64 sine."""
    return amplitude * np.sin(2 * np.pi * frequency_hz * np.arange(round(seconds * rate)) / rate)


def write_audio(path: Path, channels: np.ndarray, rate: int, codec: str, sample_format: str) -> Path:
    """Encode ``channels`` (channels, samples), already in the dtype/range of ``sample_format``.

    Packed formats are interleaved here; planar ones ("...p") are passed as (channels, samples).
    """
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels.shape[0]]
    data = channels if sample_format.endswith("p") else channels.T.reshape(1, -1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        stream.format = sample_format
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=sample_format, layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_pcm16_wav(path: Path, waveform: np.ndarray, rate: int = 16_000) -> Path:
    """Mono 16-bit WAV of a float waveform in [-1, 1]."""
    samples = np.round(np.clip(waveform, -1, 1) * 32767).astype(np.int16)
    return write_audio(path, samples[None], rate, "pcm_s16le", "s16")


def write_silent_video(path: Path, frames: int = 3, size: int = 32) -> Path:
    """A tiny MPEG-4 video with no audio stream."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            image = np.full((size, size, 3), 40 * index, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
