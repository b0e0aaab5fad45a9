"""Open-vocabulary audio-visual segmentation of arbitrary videos: the user-level predict API.

``VideoPredictor`` wraps a loaded model (``ovavss_cli.load_model``) the way Segment Anything's
``SamPredictor`` wraps SAM: give it a video path and it yields per-sampled-frame label maps and
scores, streaming window by window so memory does not grow with the video's length::

    model = ovavss_cli.load_model("ovavss-r50", device=torch.device("cpu"))
    predictor = VideoPredictor(model, vocab=("dog", "siren"))
    for frame in predictor.predict_frames("walk.mp4"):
        frame.label_map  # (H, W) uint8, 0 = background, i = vocab[i - 1]

``predict_to_folder`` adds the writers (mask PNGs, predictions.json, overlay.mp4), and
``predict_jobs.run_predict`` is ``ovavss predict``: several inputs, one bad file reported and the rest still
processed, resumable, sharded over the processes of a ``torchrun`` job (``predict_jobs``).
While the model runs on one window, the next ones are decoded in a thread (``decode_ahead``).

The model is used only through ``models.interface.SegmentationModel``: ``window_size``, ``device``,
``weights_id``, ``weights_sha256`` and ``predict_clip(frames, audio, sample_rate, vocab, threshold,
frame_times, precision, clip_queries)`` returning ``label_maps`` (T, H, W) and ``detections`` (``label``,
``score``). It is called with one
window of at most ``window_size`` real frames at a time (the model pads a short last window
itself), which bounds memory and makes every detection of a call belong to all its frames.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.progress import Progress

from ..atomic import output_folder
from ..console import make_progress
from ..data.audio_conditions import AudioReplacement
from ..data.labelmap import read_label_png
from ..data.media import (
    MediaWindow,
    VideoInfo,
    expected_samples,
    iter_windows,
    probe,
    write_painted_video,
)
from ..data.predictions import OVERLAY_FILE, OVERLAY_MAX_SIDE, PredictionWriter, VideoFramePrediction, mask_file
from ..data.prefetch import decode_ahead
from ..errors import OvavssError
from ..models.interface import SegmentationModel
from ..models.run_options import resolve_precision
from ..version import __version__
from ..viz.overlay import OverlayPainter, vocab_colours

SAMPLING_NOTE = (
    "sample k is the decoded frame nearest to (k + 0.5) / sample_fps seconds after the first frame; "
    "its audio is the window centred on that frame's own time"
)


class VideoPredictor:
    """Runs a loaded model over videos, window by window."""

    def __init__(
        self,
        model: SegmentationModel,
        vocab: Sequence[str],
        fps: float = 1.0,
        threshold: float = 0.3,
        allow_silent: bool = False,
        device: torch.device | str | None = None,
        audio: AudioReplacement | None = None,
        precision: str = "auto",
        clip_queries: int | None = None,
        decode_ahead: int = 2,
    ):
        if not fps > 0:
            raise OvavssError(f"--fps must be positive, got {fps}")
        if not 0.0 <= threshold <= 1.0:
            raise OvavssError(f"--threshold must be in [0, 1], got {threshold}")
        self.model = model
        self.vocab = tuple(vocab)
        self.fps = float(fps)
        self.threshold = float(threshold)
        self.allow_silent = allow_silent
        self.device = str(device) if device is not None else None
        self.audio = audio  # None: the video's own sound
        self.precision = resolve_precision(precision, model.device)
        self.clip_queries = clip_queries
        self.decode_ahead = decode_ahead  # windows decoded and prepared while the model runs (0: none)

    def replacement_track(self, path: str | Path, info: VideoInfo) -> np.ndarray | None:
        """The 16-kHz track the model hears instead of the video's own (None: its own)."""
        if self.audio is None:
            return None
        if not info.duration > 0:
            raise OvavssError("the container does not give the video's duration, so --audio cannot be fitted", path)
        return self.audio.track(info.duration, Path(path).name)

    def predict_frames(
        self, path: str | Path, info: VideoInfo | None = None, track: np.ndarray | None = None
    ) -> Iterator[VideoFramePrediction]:
        """Yield the prediction of every sampled frame, in order (padding never reaches the output).

        ``track``: :meth:`replacement_track`, when the caller already has it.
        """
        info = info or probe(path)
        track = track if track is not None else self.replacement_track(path, info)
        windows = iter_windows(path, self.fps, self.model.window_size, self.allow_silent, info, replacement_audio=track)
        for window in decode_ahead(windows, self.decode_ahead):
            yield from self._predict_window(window)

    def _predict_window(self, window: MediaWindow) -> Iterator[VideoFramePrediction]:
        count = len(window.frames)
        prediction = self.model.predict_clip(
            window.images,
            window.audio,
            window.sample_rate,
            list(self.vocab),
            threshold=self.threshold,
            frame_times=window.audio_times if window.audio is not None else None,
            precision=self.precision,
            clip_queries=self.clip_queries,
        )
        label_maps = prediction.label_maps.detach().to("cpu").numpy()
        if label_maps.shape[0] < count or label_maps.max(initial=0) > len(self.vocab):
            raise RuntimeError(
                f"model returned label maps {label_maps.shape} with ids up to {label_maps.max(initial=0)} "
                f"for {count} frames and {len(self.vocab)} names"
            )
        # One call is one model window, so every detection belongs to all of its frames.
        scores: dict[int, float] = {}
        for detection in prediction.detections:
            scores[detection.label] = max(scores.get(detection.label, 0.0), float(detection.score))
        for position, frame in enumerate(window.frames):  # maps past ``count`` are the model's padding
            yield VideoFramePrediction(
                index=frame.index,
                sample_time=frame.sample_time,
                time=frame.time,
                image=frame.image,
                label_map=label_maps[position].astype(np.uint8),
                scores=dict(scores),
            )

    def header(self, path: Path, info: VideoInfo) -> dict:
        """The run's facts for predictions.json."""
        video = info.to_json()
        del video["path"]
        return {
            "ovavss_version": __version__,
            "input": str(Path(path).resolve()),
            "video": video,
            "vocabulary": list(self.vocab),
            "sample_fps": self.fps,
            "sampling": SAMPLING_NOTE,
            "window_size": self.model.window_size,
            "threshold": self.threshold,
            "precision": self.precision,
            "clip_queries": self.clip_queries,
            "weights": {"id": self.model.weights_id, "sha256": self.model.weights_sha256},
            "device": self.device,
            "audio": self.audio.describe(info.duration) if self.audio else {"source": "original"},
            "silent_audio": self.audio.source == "silence" if self.audio else not info.has_audio,
        }

    def predict_to_folder(
        self,
        path: str | Path,
        out: Path,
        write_video: bool = True,
        force: bool = False,
        progress: Progress | None = None,
        on_frame: Callable[[], None] | None = None,
    ) -> Path:
        """Predict one video into the output folder ``out`` (built aside, published when complete).

        ``progress``: the (running) bar to add this video's tasks to (default: a new one);
        ``on_frame`` is called after each sampled frame is written.
        """
        path = Path(path)
        info = probe(path)
        track = self.replacement_track(path, info)
        with contextlib.ExitStack() as stack:
            progress = progress or stack.enter_context(make_progress())
            folder = stack.enter_context(output_folder(out, force))
            task = progress.add_task(f"{path.name}: frames", total=expected_samples(info.duration, self.fps))
            with PredictionWriter(folder, self.header(path, info), self.vocab) as writer:
                for frame in self.predict_frames(path, info, track):
                    writer.add(frame)
                    progress.advance(task)
                    if on_frame is not None:
                        on_frame()
                writer.finish({"overlay": OVERLAY_FILE if write_video else None})
            progress.update(task, total=writer.frame_count, completed=writer.frame_count, visible=False)
            if write_video:
                task = progress.add_task(f"{path.name}: overlay.mp4", total=max(1, round(info.duration * info.fps)))
                painter = _MaskOverlay(folder, self.vocab, self.fps, writer.frame_count)
                written = write_painted_video(
                    path, folder / OVERLAY_FILE, painter, info, lambda: progress.advance(task), OVERLAY_MAX_SIDE,
                    audio=track,
                )
                progress.update(task, total=written, completed=written, visible=False)
        return out


class _MaskOverlay:
    """overlay.mp4's paint callback: each original frame gets the masks of its sampled frame."""

    def __init__(self, folder: Path, vocab: Sequence[str], fps: float, count: int):
        self.folder, self.fps, self.count = folder, fps, count
        self.painter = OverlayPainter(vocab, vocab_colours(len(vocab)))
        self._index = -1
        self._label_map: np.ndarray | None = None

    def __call__(self, image: np.ndarray, time: float) -> np.ndarray:
        # Sample k covers [k / fps, (k + 1) / fps): the frames of that interval show its masks.
        index = min(max(int(time * self.fps), 0), self.count - 1)
        if index != self._index:
            self._index = index
            label_map, _ = read_label_png(self.folder / mask_file(index))
            if label_map.shape != image.shape[:2]:  # overlay.mp4 is painted at a bounded working size
                small = Image.fromarray(label_map.astype(np.uint8)).resize(image.shape[1::-1], Image.Resampling.NEAREST)
                label_map = np.asarray(small)  # ids are vocabulary indices (uint8 in the mask PNGs)
            self._label_map = label_map
        return self.painter.paint(image, self._label_map, key=index)
