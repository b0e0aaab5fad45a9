"""Test helpers for the predict pipeline: tiny generated videos and a test double of the model API.

``make_video`` writes small real media files with PyAV (no files live in the repo). Each frame
encodes its own index in two flat halves (left = index % 16, right = index // 16, in steps of 16
grey levels) so a test can tell which decoded frame it was given; the audio is a 440 Hz tone whose
loudness marks each second (odd seconds loud, even seconds quiet), so a test can check which part
of the track a frame was paired with.

``BoxModel`` is NOT the OV-AVSS model: it implements the documented ``predict_clip`` API (see the
lead's ``ovavss_cli/models/api.py``) by painting a centred box with label 1 (and label 2 in the
top-left corner when the frame's paired audio is loud), so the plumbing — windows, timestamps,
audio pairing, writers — can be tested without weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch


def frame_code(index: int, height: int, width: int) -> np.ndarray:
    """The (H, W, 3) image of frame ``index``."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, : width // 2] = (index % 16) * 16
    image[:, width // 2 :] = (index // 16) * 16
    return image


def read_frame_code(image: np.ndarray) -> int:
    """Invert :func:`frame_code` on a decoded (possibly rotated back) image, tolerating codec noise."""
    height, width = image.shape[:2]
    low = round(float(image[height // 4 : 3 * height // 4, width // 8 : 3 * width // 8].mean()) / 16)
    high = round(float(image[height // 4 : 3 * height // 4, 5 * width // 8 : 7 * width // 8].mean()) / 16)
    return low + 16 * high


def loud_second(time: float) -> bool:
    return int(np.floor(time)) % 2 == 1


def tone(times: np.ndarray) -> np.ndarray:
    """The test audio at ``times`` seconds: 440 Hz, amplitude 0.5 in odd seconds and 0.02 in even ones."""
    amplitude = np.where(np.floor(times).astype(np.int64) % 2 == 1, 0.5, 0.02)
    return (amplitude * np.sin(2 * np.pi * 440.0 * times)).astype(np.float32)


def make_video(
    path: Path,
    seconds: float = 3.0,
    fps: float = 10,
    size: tuple[int, int] = (64, 48),
    audio_rate: int | None = 44100,
    channels: int = 2,
    codec: str = "libx264",
    audio_codec: str = "aac",
    frame_times: list[float] | None = None,
    rotation: int | None = None,
    pix_fmt: str = "yuv420p",
    audio_delay: float = 0.0,
) -> Path:
    """Write a test video; ``frame_times`` (seconds) gives variable frame timing instead of ``fps``;
    the audio track starts ``audio_delay`` seconds after the first video frame."""
    width, height = size
    times = frame_times if frame_times is not None else [i / fps for i in range(round(seconds * fps))]
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            video.set_display_rotation(rotation)
        audio = None
        if audio_rate:  # every stream must exist before the first packet is written
            audio = container.add_stream(audio_codec, rate=audio_rate)
            audio.layout = "mono" if channels == 1 else "stereo"
        for index, time in enumerate(times):
            frame = av.VideoFrame.from_ndarray(frame_code(index, height, width), format="rgb24")
            frame.pts, frame.time_base = round(time * 1000), Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            _write_audio(container, audio, channels, seconds, audio_delay)
    return path


def _write_audio(container, stream, channels: int, seconds: float, delay: float) -> None:
    rate = stream.codec_context.sample_rate
    first = round(delay * rate)
    total, position, chunk = round(seconds * rate), 0, 1024
    while position < total:
        count = min(chunk, total - position)
        mono = tone(np.arange(position, position + count) / rate)
        frame = av.AudioFrame.from_ndarray(np.tile(mono, (channels, 1)), format="fltp", layout=stream.layout.name)
        frame.sample_rate, frame.pts, frame.time_base = rate, first + position, Fraction(1, rate)
        container.mux(stream.encode(frame))
        position += count
    container.mux(stream.encode(None))


def make_audio_with_cover(path: Path, seconds: float = 1.0) -> Path:
    """An audio file (mp3 / m4a by suffix) with embedded cover art: a JPEG in an attached-picture stream."""
    import io

    from PIL import Image

    cover = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(cover, "JPEG")
    codec = "libmp3lame" if path.suffix == ".mp3" else "aac"
    with av.open(str(path), "w", format="mp3" if path.suffix == ".mp3" else "mp4") as container:
        audio = container.add_stream(codec, rate=44100)
        audio.layout = "mono"
        picture = container.add_stream("mjpeg")
        picture.width = picture.height = 32
        picture.pix_fmt = "yuvj420p"
        picture.disposition = av.stream.Disposition.attached_pic
        packet = av.Packet(cover.getvalue())
        packet.stream, packet.pts, packet.dts = picture, 0, 0
        container.mux(packet)
        _write_audio(container, audio, 1, seconds, 0.0)
    return path


def make_still_image(path: Path) -> Path:
    from PIL import Image

    Image.fromarray(frame_code(3, 48, 64)).save(path)
    return path


@dataclass
class BoxDetection:
    frame_window: int
    query: int
    label: int
    score: float


@dataclass
class BoxPrediction:
    label_maps: torch.Tensor
    detections: list[BoxDetection]


@dataclass
class BoxModel:
    """Test double of a loaded model (see the module docstring); records every call it gets."""

    window_size: int = 5
    weights_id: str = "box-double"
    weights_sha256: str = "0" * 64
    device: torch.device = torch.device("cpu")
    calls: list[dict] = field(default_factory=list)

    def predict_clip(
        self, frames, audio, sample_rate, vocab, threshold=0.3, frame_times=None, precision="fp32", clip_queries=None
    ):
        frames = np.asarray(frames)
        count, height, width = frames.shape[:3]
        assert frames.dtype == np.uint8 and frames.shape[3] == 3 and 1 <= count <= self.window_size
        self.calls.append(
            dict(
                frames=count, audio=None if audio is None else len(audio), rate=sample_rate, times=frame_times,
                precision=precision, clip_queries=clip_queries,
            )  # fmt: skip
        )
        maps = torch.zeros((count, height, width), dtype=torch.int64)
        maps[:, height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 1
        detections = [BoxDetection(0, 7, 1, 0.9)]
        if audio is not None and len(vocab) > 1:
            for index, time in enumerate(frame_times):
                centre = round(time * sample_rate)
                window = np.asarray(audio[max(0, centre - sample_rate // 4) : centre + sample_rate // 4])
                if window.size and np.sqrt(np.mean(window.astype(np.float64) ** 2)) > 0.1:
                    maps[index, : height // 4, : width // 4] = 2
            if bool((maps == 2).any()):
                detections.insert(0, BoxDetection(0, 3, 2, 0.95))
        return BoxPrediction(label_maps=maps, detections=detections)
