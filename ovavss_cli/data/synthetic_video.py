"""A generated clip as an ordinary video file (H.264 + AAC MP4): the demo input of ``ovavss predict``.

The objects, their looks and their sounds are the generator's (:mod:`ovavss_cli.data.synthetic`), so a
model trained on generated AVSBench trees sees the same world in a "phone video" form: any frame rate,
any size, stereo audio at 44.1 kHz (what predict must resample and down-mix).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..atomic import atomic_path
from .synthetic import ClipSpec, clip_audio, clip_rng, render_clip

FPS = 10
SIZE = (240, 320)  # (H, W)
SAMPLE_RATE = 44100  # stereo, as a phone records it: predict must resample and down-mix


def write_synthetic_video(path: str | Path, spec: ClipSpec, *, seed: int = 0) -> Path:
    """Render ``spec`` (one frame and schedule entry per second, ``spec.num_frames`` seconds) to an MP4.

    The generator draws one frame per second (its objects drift by under a pixel a second), each
    repeated for a second of ``FPS`` frames; the audio is the generator's mix of the sounding classes'
    tones, in stereo. Written atomically.
    """
    frames, _ = render_clip(spec, SIZE, clip_rng(seed, spec))
    frames = np.repeat(frames, FPS, axis=0)  # (seconds * FPS, H, W, 3)
    audio = clip_audio(spec, SAMPLE_RATE, 2, clip_rng(seed, spec)).astype(np.float32) / 32767.0
    height, width = SIZE
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        video = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=SAMPLE_RATE)
        sound.layout = "stereo"
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for start in range(0, len(audio), 1024):
            chunk = np.ascontiguousarray(audio[start : start + 1024].T)  # (2, n) planar
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    return Path(path)
