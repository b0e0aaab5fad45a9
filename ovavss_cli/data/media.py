"""Arbitrary video files in and out through PyAV, streamed so that memory does not grow with length.

Reading (``ovavss predict``)
* **Time origin.** Times are seconds from the first decoded video frame. Frames are timed by their
  PTS, so variable-frame-rate video (phones) is sampled correctly; a frame whose PTS does not
  increase (broken muxing) is dropped.
* **Sampling.** At ``fps`` samples per second, sample k is taken at ``(k + 0.5) / fps``, the centre
  of its 1/fps interval, and gets the decoded frame **nearest** to that time (ties go to the
  earlier frame). Samples continue while their time is before the end of the video (the end of its
  last frame: that frame's own duration, else the last inter-frame gap), with at least one sample,
  so a clip shorter than one interval still gives one frame. (AVSBench's own v1
  extraction takes the frame near ``k + 15/16`` s; for arbitrary video the centre is the natural,
  symmetric choice, and the AVSBench dataset path does not go through this module.)
* **Rotation.** Phone videos carry a display matrix; frames are rotated to how a player shows
  them (multiples of 90 degrees; flips in the matrix are ignored).
* **Audio.** Decoded lazily alongside the video, down-mixed by averaging the channels and
  resampled to 16 kHz with ``audio.resample`` applied piecewise (:class:`StreamingResampler`,
  same samples as one call on the whole track). Only the samples the current window still needs
  are kept. Audio is placed on the video timeline by its own PTS; where the track does not
  cover a window the window is filled with silence.
* **Windows.** Sampled frames are grouped into windows of ``window_size`` (5, as the model
  expects). The last window simply holds fewer frames: it is never padded here, so a padded
  frame cannot reach the outputs; the model pads internally.

Writing (``overlay.mp4``): the original video re-encoded at its own timestamps (H.264 via the
``libx264`` in PyAV's bundled FFmpeg, else MPEG-4 Part 2) with a per-frame paint callback, and the
original audio re-encoded to AAC. ``yuv420p`` needs even sizes, so an odd width or height is
padded by one replicated pixel column/row (nothing of the picture is cropped).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av
import numpy as np

from ..atomic import atomic_path
from ..errors import OvavssError
from .audio import TARGET_RATE, audio_frame_to_float, resample

#: File name endings ``ovavss predict`` picks up when given a folder.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".wmv", ".flv",
     ".3gp", ".ogv"}
)  # fmt: skip
#: Audio files and still images: a folder run lists them to say why they are skipped (see ``probe``).
AUDIO_EXTENSIONS = frozenset({".mp3", ".m4a", ".aac", ".wav", ".flac", ".ogg", ".oga", ".opus", ".wma"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})

#: Seconds of audio kept on each side of a window's first/last frame time: the model's 0.96-s
#: example centred on a frame reaches 0.4875 s to each side; the rest is slack for its framing.
AUDIO_MARGIN_S = 1.0

#: Sample rates the AAC encoder accepts; other rates are re-encoded at 48 kHz.
_AAC_CHUNK = 1024  # samples per frame handed to the AAC encoder (its own frame size)
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)

Payload = TypeVar("Payload")


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns about a video file (sizes are as displayed, i.e. after rotation)."""

    path: Path
    width: int
    height: int
    fps: float  # average frame rate declared by the container (0.0 when unknown)
    duration: float  # seconds (0.0 when the container does not say)
    start_time: float  # container time of the first video frame; every other time is relative to it
    rotation: int  # degrees counter-clockwise applied to decoded frames (0, 90, 180, 270)
    codec: str
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None

    @property
    def frame_duration(self) -> float:
        """Seconds per frame at the declared rate (25 fps assumed when the container does not say)."""
        return 1.0 / self.fps if self.fps > 0 else 0.04

    def to_json(self) -> dict:
        info = asdict(self)
        info["path"] = str(self.path)
        return info


@dataclass(frozen=True)
class SampledFrame:
    """One sampled frame: its sample index, the nominal sample time and the chosen frame's own time."""

    index: int
    sample_time: float
    time: float
    image: np.ndarray  # (H, W, 3) uint8 RGB, upright


@dataclass(frozen=True)
class MediaWindow:
    """Up to ``window_size`` consecutive sampled frames with the audio around them."""

    index: int
    frames: tuple[SampledFrame, ...]
    audio: np.ndarray | None  # (N,) float32 mono at ``sample_rate``; None = run with silence
    audio_start: float  # video time of audio[0] (seconds)
    sample_rate: int = TARGET_RATE

    @property
    def images(self) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB, T = number of real frames (never padded)."""
        return np.stack([frame.image for frame in self.frames])

    @property
    def audio_times(self) -> list[float]:
        """Each frame's time relative to ``audio[0]``: the centres of their audio windows."""
        return [frame.time - self.audio_start for frame in self.frames]


# ---------------------------------------------------------------------------------------------
# opening and probing


@contextlib.contextmanager
def open_media(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open a media file; any FFmpeg failure, now or while decoding inside the block, becomes an OvavssError."""
    path = Path(path)
    if path.is_dir():
        raise OvavssError("is a folder, not a video file", path=path)
    if not path.is_file():
        raise OvavssError("file not found", path=path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as error:
        raise OvavssError(f"not a readable media file ({_reason(error)})", path=path) from None
    try:
        yield container
    except av.FFmpegError as error:
        raise OvavssError(f"cannot decode ({_reason(error)})", path=path) from None
    finally:
        container.close()


class NotAVideoError(OvavssError):
    """The file is media, but not a video: an audio file (perhaps with cover art) or a still image.

    Folder runs skip such files with this message instead of counting them as failures.
    """


#: FFmpeg demuxers that read single pictures (``image2`` for files by extension, ``*_pipe`` by content).
_IMAGE_DEMUXERS = ("image2", "image2pipe")


def video_stream(container: av.container.InputContainer) -> av.VideoStream | None:
    """The first real video stream: attached pictures (an audio file's cover art) are not video."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _is_still_image(container: av.container.InputContainer, stream: av.VideoStream) -> bool:
    name = container.format.name
    if name in _IMAGE_DEMUXERS or name.endswith("_pipe"):
        return True
    return bool(stream.disposition & av.stream.Disposition.still_image)


def probe(path: str | Path) -> VideoInfo:
    """Read a video's size, rate, duration, rotation and audio layout; decodes only the first frame.

    An audio file (cover art included) and a still image raise :class:`NotAVideoError`.
    """
    path = Path(path)
    with open_media(path) as container:
        stream = video_stream(container)
        if stream is None:
            if container.streams.audio:
                raise NotAVideoError("is an audio file (no video stream to segment)", path=path)
            raise OvavssError("has no video stream", path=path)
        if _is_still_image(container, stream):
            raise NotAVideoError("is a still image, not a video", path=path)
        first = next(container.decode(stream), None)
        if first is None:
            raise OvavssError("the video stream has no decodable frames", path=path)
        rotation = _rotation(first)
        width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            fps=float(stream.average_rate or stream.guessed_rate or 0.0),
            duration=_duration(container, stream),
            start_time=float(first.time or 0.0),
            rotation=rotation,
            codec=stream.codec_context.name,
            has_audio=audio is not None,
            audio_rate=(audio.codec_context.sample_rate or audio.rate) if audio is not None else None,
            audio_channels=audio.codec_context.channels if audio is not None else None,
        )


def expected_samples(duration: float, fps: float) -> int:
    """How many samples :func:`sample_nearest` gives for a video of ``duration`` seconds (>= 1)."""
    return max(1, math.ceil(duration * fps - 0.5))


# ---------------------------------------------------------------------------------------------
# sampling frames


def sample_nearest(
    frames: Iterable[tuple[float, float | None, Payload]], fps: float, default_duration: float
) -> Iterator[tuple[int, float, float, Payload]]:
    """Pick, for each sample time ``(k + 0.5) / fps``, the frame nearest to it.

    ``frames`` are ``(time, duration or None, payload)`` in increasing time, consumed lazily; yields
    ``(k, sample_time, frame_time, payload)``. The video ends when its last frame does: after that
    frame's own duration, else the last inter-frame gap, else ``default_duration``.
    """
    if fps <= 0:
        raise ValueError("fps must be positive")
    k = 0
    previous: tuple[float, float | None, Payload] | None = None
    gap = default_duration
    for time, duration, payload in frames:
        while (sample_time := (k + 0.5) / fps) <= time:
            if previous is not None and sample_time - previous[0] <= time - sample_time:
                yield k, sample_time, previous[0], previous[2]
            else:
                yield k, sample_time, time, payload
            k += 1
        if previous is not None:
            gap = time - previous[0]
        previous = (time, duration, payload)
    if previous is None:
        return
    last_time, last_duration, last_payload = previous
    end = last_time + (last_duration or gap)
    while k == 0 or (k + 0.5) / fps < end:
        yield k, (k + 0.5) / fps, last_time, last_payload
        k += 1


def iter_sampled_frames(path: str | Path, fps: float, info: VideoInfo | None = None) -> Iterator[SampledFrame]:
    """Stream the sampled frames of a video (decoding as it goes; nothing is read ahead)."""
    info = info or probe(path)
    with open_media(path) as container:
        stream = video_stream(container)
        stream.thread_type = "AUTO"
        decoded = _timed_frames(container.decode(stream), info.start_time, info.frame_duration)
        for k, sample_time, time, frame in sample_nearest(decoded, fps, info.frame_duration):
            yield SampledFrame(k, sample_time, time, _upright_rgb(frame, info.rotation))


def _timed_frames(
    frames: Iterable[av.VideoFrame], start_time: float, default_duration: float
) -> Iterator[tuple[float, float | None, av.VideoFrame]]:
    """(seconds since the first frame, the frame's own duration if known, frame), in increasing time."""
    clock = _FrameClock(start_time, default_duration)
    for frame in frames:
        time = clock.time_of(frame)
        if time is not None:
            duration = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else None
            yield time, duration, frame


class _FrameClock:
    """Video times from PTS (seconds since the first frame); None for a frame that does not move time forward."""

    def __init__(self, start_time: float, default_duration: float):
        self.start_time, self.default_duration = start_time, default_duration
        self.last = -math.inf

    def time_of(self, frame: av.VideoFrame) -> float | None:
        if frame.pts is not None:
            time = float(frame.time) - self.start_time
        else:  # raw streams without timestamps: assume the declared rate
            time = max(self.last, -self.default_duration) + self.default_duration
        if time <= self.last:
            return None
        self.last = time
        return time


# ---------------------------------------------------------------------------------------------
# audio


class StreamingResampler:
    """``audio.resample`` applied to a stream in pieces, giving the samples of one call on the whole signal.

    Pieces start on multiples of the rate ratio's input step (so each output sample keeps its
    filter phase) and carry enough context on both sides to cover the sinc kernel.
    """

    #: Upper bound on the zero crossings each side of the resampling filter (audio.py's resampy
    #: kaiser_best uses 50, widened by 1/rolloff); the context is sized from it, with room to spare.
    KERNEL_ZERO_CROSSINGS = 128

    def __init__(self, rate: int, chunk_seconds: float = 5.0):
        common = math.gcd(rate, TARGET_RATE)
        self.rate = rate
        self._step_in, self._step_out = rate // common, TARGET_RATE // common
        width = math.ceil(self.KERNEL_ZERO_CROSSINGS * self._step_in / min(self._step_in, self._step_out))
        self._context = self._align(width + self._step_in)
        self._chunk = max(self._step_in, self._align(int(chunk_seconds * rate)))
        self._pending = np.zeros(0, dtype=np.float64)
        self._pending_start = 0  # input index of _pending[0]
        self._done = 0  # input index up to which output has been produced
        self._received = 0

    def _align(self, count: int) -> int:
        return -(-count // self._step_in) * self._step_in

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed mono samples at ``rate``; returns the output samples that are now final (float32)."""
        self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float64)])
        self._received += len(samples)
        pieces = []
        while self._received - self._done >= self._chunk + self._context:
            pieces.append(self._emit(self._done + self._chunk))
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def flush(self) -> np.ndarray:
        """The remaining output at the end of the stream."""
        return self._emit(self._received) if self._received > self._done else np.zeros(0, dtype=np.float32)

    def _emit(self, upto: int) -> np.ndarray:
        seg_start = max(self._pending_start, self._done - self._context)
        seg_end = min(self._received, upto + self._context)
        segment = self._pending[seg_start - self._pending_start : seg_end - self._pending_start]
        output = resample(segment, self.rate, TARGET_RATE)
        first = (self._done - seg_start) // self._step_in * self._step_out
        last = len(output) if upto == self._received else (upto - seg_start) // self._step_in * self._step_out
        self._done = upto
        keep_from = max(self._pending_start, upto - self._context)
        self._pending = self._pending[keep_from - self._pending_start :]
        self._pending_start = keep_from
        return output[first:last].astype(np.float32)


class AudioCursor:
    """The audio track at 16 kHz mono, decoded lazily; windows must be requested in time order.

    Samples before the start of the last requested window are released, so memory stays bounded
    by a window's span whatever the video's length.
    """

    @classmethod
    def of_waveform(cls, waveform: np.ndarray, path: Path) -> AudioCursor:
        """A cursor over a 16-kHz track held in memory whose sample 0 is at the first video frame."""
        cursor = cls(iter(()), 0.0, path)
        cursor._track_start, cursor._exhausted = 0.0, True
        cursor._buffer = np.asarray(waveform, dtype=np.float32)
        return cursor

    def __init__(self, frames: Iterator[av.AudioFrame], video_start_time: float, path: Path):
        self._frames = frames
        self._video_start = video_start_time
        self._path = path
        self._resampler: StreamingResampler | None = None
        self._track_start: float | None = None  # video time of track sample 0
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # track sample index of _buffer[0]
        self._exhausted = False

    def window(self, start: float, end: float) -> tuple[np.ndarray, float]:
        """Samples for video times ``[start, end)`` (silence where the track has none), and the time of the first."""
        self._decode_until(end)
        rate = TARGET_RATE
        track_start = self._track_start if self._track_start is not None else 0.0
        first = math.floor((start - track_start) * rate)
        count = max(1, math.ceil((end - start) * rate))
        window = np.zeros(count, dtype=np.float32)
        lo, hi = max(first, self._buffer_start), min(first + count, self._buffer_start + len(self._buffer))
        if hi > lo:
            window[lo - first : hi - first] = self._buffer[lo - self._buffer_start : hi - self._buffer_start]
        drop = max(0, min(first, self._buffer_start + len(self._buffer)) - self._buffer_start)
        self._buffer, self._buffer_start = self._buffer[drop:], self._buffer_start + drop
        return window, track_start + first / rate

    @property
    def buffered_seconds(self) -> float:
        """Seconds of 16-kHz audio currently held."""
        return len(self._buffer) / TARGET_RATE

    def _decode_until(self, end: float) -> None:
        while not self._exhausted and (self._track_start is None or self._decoded_until() < end):
            frame = next(self._frames, None)
            if frame is None:
                self._exhausted = True
                if self._resampler is not None:
                    self._append(self._resampler.flush())
                return
            if self._resampler is None:
                self._resampler = StreamingResampler(frame.sample_rate)
                self._track_start = (float(frame.time) if frame.pts is not None else 0.0) - self._video_start
            elif frame.sample_rate != self._resampler.rate:
                raise OvavssError("the audio sample rate changes mid-stream", path=self._path)
            self._append(self._resampler.push(audio_frame_to_float(frame).mean(axis=0)))

    def _decoded_until(self) -> float:
        return self._track_start + (self._buffer_start + len(self._buffer)) / TARGET_RATE

    def _append(self, samples: np.ndarray) -> None:
        if len(samples):
            self._buffer = np.concatenate([self._buffer, samples])


# ---------------------------------------------------------------------------------------------
# windows


def iter_windows(
    path: str | Path,
    fps: float = 1.0,
    window_size: int = 5,
    allow_silent: bool = False,
    info: VideoInfo | None = None,
    replacement_audio: np.ndarray | None = None,
) -> Iterator[MediaWindow]:
    """Stream a video as windows of ``window_size`` sampled frames with the audio around them.

    A video without an audio track is an error unless ``allow_silent`` (then ``audio`` is None).
    ``replacement_audio`` (16 kHz mono, sample 0 at the first video frame) is used instead of the
    video's own track, which is then not read.
    """
    path = Path(path)
    info = info or probe(path)
    if not info.has_audio and not allow_silent and replacement_audio is None:
        raise OvavssError("has no audio track (pass --allow-silent to run with silence)", path=path)
    with contextlib.ExitStack() as stack:
        cursor = None
        if replacement_audio is not None:
            cursor = AudioCursor.of_waveform(replacement_audio, path)
        elif info.has_audio:
            container = stack.enter_context(open_media(path))
            cursor = AudioCursor(container.decode(container.streams.audio[0]), info.start_time, path)
        batch: list[SampledFrame] = []
        index = 0
        for frame in iter_sampled_frames(path, fps, info):
            batch.append(frame)
            if len(batch) == window_size:
                yield _make_window(index, batch, cursor)
                batch, index = [], index + 1
        if batch:
            yield _make_window(index, batch, cursor)


def _make_window(index: int, frames: Sequence[SampledFrame], cursor: AudioCursor | None) -> MediaWindow:
    if cursor is None:
        return MediaWindow(index, tuple(frames), None, frames[0].time)
    audio, audio_start = cursor.window(frames[0].time - AUDIO_MARGIN_S, frames[-1].time + AUDIO_MARGIN_S)
    return MediaWindow(index, tuple(frames), audio, audio_start)


# ---------------------------------------------------------------------------------------------
# writing


def working_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled down so that the longer side is at most ``max_side`` (even sizes), else as is."""
    longest = max(width, height)
    if max_side is None or longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def write_painted_video(
    src: str | Path,
    dst: str | Path,
    paint: Callable[[np.ndarray, float], np.ndarray],
    info: VideoInfo | None = None,
    on_frame: Callable[[], None] | None = None,
    max_side: int | None = None,
    audio: np.ndarray | None = None,
) -> int:
    """Re-encode ``src`` into the MP4 ``dst`` with ``paint(frame (H, W, 3) uint8, time) -> frame`` applied.

    Frames keep their own timestamps (variable frame rate survives); the audio, if any, is
    re-encoded to AAC (mono stays mono, anything else becomes stereo), or replaced by ``audio``
    (16 kHz mono from the first video frame, as given to :func:`iter_windows`). Written atomically.
    With ``max_side``, frames larger than that are scaled down (by FFmpeg, while converting to RGB)
    before ``paint`` sees them and the video is written at that size: painting and encoding a 4K
    picture per frame would cost seconds. Returns the number of video frames written.
    """
    src = Path(src)
    info = info or probe(src)
    scaled = working_size(info.width, info.height, max_side)
    width, height = scaled[0] + scaled[0] % 2, scaled[1] + scaled[1] % 2
    # Decoded frames are not yet upright: a quarter turn swaps the size to ask FFmpeg for.
    decoded_size = scaled[::-1] if info.rotation in (90, 270) else scaled
    size = None if scaled == (info.width, info.height) else decoded_size
    with open_media(src) as source, atomic_path(dst) as tmp, av.open(str(tmp), "w", format="mp4") as sink:
        video_in = video_stream(source)
        video_in.thread_type = "AUTO"
        video_out = _add_video_stream(sink, video_in, width, height)
        audio_in = source.streams.audio[0] if source.streams.audio and audio is None else None
        audio_out = _add_audio_stream(sink, audio_in) if audio_in is not None else None
        replacement_out = _mux_waveform(sink, audio) if audio is not None else None
        origin = _origin(info, audio_in)
        out_base = video_out.codec_context.time_base
        streams = [video_in] if audio_in is None else [video_in, audio_in]
        clock = _FrameClock(info.start_time, info.frame_duration)
        last_pts, written = -1, 0
        for packet in source.demux(*streams):
            for frame in packet.decode():
                if packet.stream is audio_in:
                    if frame.pts is not None:
                        frame.pts = round((float(frame.time) - origin) * frame.sample_rate)
                        frame.time_base = Fraction(1, frame.sample_rate)
                        if frame.pts < 0:
                            continue
                    sink.mux(audio_out.encode(frame))
                    continue
                time = clock.time_of(frame)
                if time is None:
                    continue
                pts = round((time + info.start_time - origin) / out_base)
                if pts <= last_pts:  # two frames closer than the output clock resolves
                    continue
                last_pts = pts
                image = paint(_upright_rgb(frame, info.rotation, size), time)
                out_frame = av.VideoFrame.from_ndarray(_pad_to_even(image), format="rgb24")
                out_frame.pts, out_frame.time_base = pts, out_base
                sink.mux(video_out.encode(out_frame))
                written += 1
                if on_frame is not None:
                    on_frame()
        sink.mux(video_out.encode(None))
        if audio_out is not None:
            sink.mux(audio_out.encode(None))
        if replacement_out is not None:
            replacement_out()
    return written


def _mux_waveform(sink: av.container.OutputContainer, waveform: np.ndarray) -> Callable[[], None]:
    """Add a mono AAC stream for a 16-kHz waveform (every stream must exist before the first packet);
    the returned function encodes and muxes the samples, starting at output time zero."""
    stream = sink.add_stream("aac", rate=TARGET_RATE)
    stream.layout = "mono"

    def write() -> None:
        samples = np.clip(np.asarray(waveform, dtype=np.float32), -1.0, 1.0)
        for start in range(0, len(samples), _AAC_CHUNK):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + _AAC_CHUNK], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = TARGET_RATE, start, Fraction(1, TARGET_RATE)
            sink.mux(stream.encode(frame))
        sink.mux(stream.encode(None))

    return write


def _add_video_stream(sink: av.container.OutputContainer, video_in: av.VideoStream, width: int, height: int):
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    rate = video_in.average_rate or video_in.guessed_rate or Fraction(25)
    stream = sink.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    # Keep the source's clock so that variable frame timing survives; a coarse base gets a finer one.
    fine = video_in.time_base is not None and video_in.time_base.denominator >= 1000
    stream.codec_context.time_base = video_in.time_base if fine else Fraction(1, 90000)
    if codec == "libx264":
        stream.options = {"crf": "20", "preset": "veryfast"}
    else:
        stream.bit_rate = 4_000_000
    return stream


def _add_audio_stream(sink: av.container.OutputContainer, audio_in: av.AudioStream):
    rate = audio_in.codec_context.sample_rate or audio_in.rate or 48000
    stream = sink.add_stream("aac", rate=rate if rate in _AAC_RATES else 48000)
    stream.layout = "mono" if audio_in.codec_context.channels == 1 else "stereo"
    return stream


def _origin(info: VideoInfo, audio_in: av.AudioStream | None) -> float:
    """Output time zero: the earlier of the video and audio starts, so neither stream gets negative times."""
    if audio_in is None or audio_in.start_time is None:
        return info.start_time
    return min(info.start_time, float(audio_in.start_time * audio_in.time_base))


# ---------------------------------------------------------------------------------------------
# small helpers


def _reason(error: av.FFmpegError) -> str:
    return getattr(error, "strerror", None) or error.__class__.__name__


def _duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    # The container's duration first: MP4 stream durations of variable-rate video can be far off.
    if container.duration is not None:
        return container.duration / av.time_base
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return 0.0


def _rotation(frame: av.VideoFrame) -> int:
    """The display rotation snapped to a multiple of 90 degrees, in 0..270."""
    return int(round((frame.rotation or 0) / 90.0)) % 4 * 90


def _upright_rgb(frame: av.VideoFrame, rotation: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """The frame as (H, W, 3) uint8 RGB as displayed; ``size`` (width, height, before rotation) rescales it."""
    if size is None:
        image = frame.to_ndarray(format="rgb24")
    else:
        image = frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()
    if rotation:
        image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
    return image


def _pad_to_even(image: np.ndarray) -> np.ndarray:
    pad_h, pad_w = image.shape[0] % 2, image.shape[1] % 2
    if not (pad_h or pad_w):
        return image
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
