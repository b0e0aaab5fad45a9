"""Open-vocabulary audio-visual segmentation of arbitrary videos: the user-level predict API.

``VideoPredictor`` wraps a loaded model (``ovavss_cli.load_model``) the way Segment Anything's
``SamPredictor`` wraps SAM: give it a video path and it yields per-sampled-frame label maps and
scores, streaming window by window so memory does not grow with the video's length::

    model = ovavss_cli.load_model("ovavss-r50", device=torch.device("cpu"))
    predictor = VideoPredictor(model, vocab=("dog", "siren"))
    for frame in predictor.predict_frames("walk.mp4"):
        frame.label_map  # (H, W) uint8, 0 = background, i = vocab[i - 1]

``predict_to_folder`` adds the writers (mask PNGs, predictions.json, overlay.mp4), and
``run_predict`` is ``ovavss predict``: several inputs, one bad file reported and the rest still
processed, resumable, sharded over the processes of a ``torchrun`` job (``predict_jobs``).
While the model runs on one window, the next ones are decoded in a thread (``decode_ahead``).

The model is used only through its documented API: ``window_size``, ``device``, ``weights_id``,
``weights_sha256`` and ``predict_clip(frames, audio, sample_rate, vocab, threshold, frame_times,
precision, clip_queries)`` returning ``label_maps`` (T, H, W) and ``detections`` (``label``,
``score``). It is called with one
window of at most ``window_size`` real frames at a time (the model pads a short last window
itself), which bounds memory and makes every detection of a call belong to all its frames.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.progress import Progress

from .. import __version__
from ..console import make_progress
from ..data.audio_conditions import AudioReplacement, load_replacement
from ..data.labelmap import read_label_png
from ..data.media import (
    MediaWindow,
    VideoInfo,
    expected_samples,
    iter_windows,
    probe,
    write_painted_video,
)
from ..data.prefetch import decode_ahead
from ..data.vocab import parse_vocab
from ..device import resolve_device
from ..engine.distributed import broadcast_object
from ..errors import OvavssError
from ..hub import DEFAULT_WEIGHTS
from ..models.run_options import check_clip_queries, resolve_precision
from ..viz.overlay import OverlayPainter, vocab_colours
from .outputs import OVERLAY_FILE, OVERLAY_MAX_SIDE, PredictionWriter, mask_file, output_folder
from .predict_jobs import (
    InputRecord,
    PredictReport,
    finish_report,
    plan_job,
    print_failure,
    refuse_existing_report,
    run_job,
)
from .sharding import sharded_processes

SAMPLING_NOTE = (
    "sample k is the decoded frame nearest to (k + 0.5) / sample_fps seconds after the first frame; "
    "its audio is the window centred on that frame's own time"
)


@dataclass(frozen=True)
class FramePrediction:
    """The model's answer for one sampled frame."""

    index: int  # sample index k
    sample_time: float  # nominal sample time (k + 0.5) / fps, seconds from the first frame
    time: float  # the chosen frame's own time (its audio window is centred here)
    image: np.ndarray  # (H, W, 3) uint8 RGB: the frame the model saw (upright)
    label_map: np.ndarray  # (H, W) uint8: 0 = background, i = vocab[i - 1]
    scores: dict[int, float]  # label id -> best score among the detections painted in this frame's window


class VideoPredictor:
    """Runs a loaded model over videos, window by window."""

    def __init__(
        self,
        model,
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
    ) -> Iterator[FramePrediction]:
        """Yield the prediction of every sampled frame, in order (padding never reaches the output).

        ``track``: :meth:`replacement_track`, when the caller already has it.
        """
        info = info or probe(path)
        track = track if track is not None else self.replacement_track(path, info)
        windows = iter_windows(path, self.fps, self.model.window_size, self.allow_silent, info, replacement_audio=track)
        for window in decode_ahead(windows, self.decode_ahead):
            yield from self._predict_window(window)

    def _predict_window(self, window: MediaWindow) -> Iterator[FramePrediction]:
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
            yield FramePrediction(
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


# ---------------------------------------------------------------------------------------------
# ovavss predict


@dataclass(frozen=True)
class PredictOptions:
    """``ovavss predict``'s options (see cli.py for their help)."""

    vocab: str
    weights: str | None = None
    out: Path | None = None
    fps: float = 1.0
    threshold: float = 0.3
    device: str = "auto"
    allow_silent: bool = False
    write_video: bool = True
    force: bool = False
    model: str | None = None  # "ovavss" | "avsc": must match the weights' own architecture when given
    audio: str | None = None  # "silence" | "noise" | a media file whose audio replaces the videos' own
    precision: str = "auto"  # fp32 | fp16 | bf16 | auto (fp32 on CPU, fp16 on CUDA)
    clip_queries: int | None = None  # the fast mode: queries sent to CLIP per window (None = all)
    resume: bool = False  # skip inputs whose complete output, made the same way, exists (predict_jobs)
    report: Path | None = None  # the job report (default for several inputs: predict_jobs.report_path)


def run_predict(inputs: Sequence[Path], options: PredictOptions) -> PredictReport:
    """``ovavss predict``: load the model once, then predict every input (this rank's share under torchrun);
    failures are collected, not fatal, and listed in the job report."""
    vocab = parse_vocab(options.vocab)
    resolve_precision(options.precision, resolve_device(options.device))  # a bad value fails before any work
    check_clip_queries(options.clip_queries)
    audio = load_replacement(options.audio) if options.audio is not None else None  # a bad file fails first
    multi_input = len(inputs) > 1 or any(Path(item).is_dir() for item in inputs)
    refuse_existing_report(options, multi_input)
    with sharded_processes(options.device) as process:
        device = process.device
        planned, problems = broadcast_object(plan_job(inputs, options.out, options.resume) if process.is_main else None)
        report = PredictReport([InputRecord(problem.split(": ")[0], None, "failed", problem) for problem in problems])
        if process.is_main:
            for problem in problems:
                print_failure(problem)
        if planned:
            from .. import load_model  # heavy (torch models); only once the inputs make sense

            model = load_model(options.weights or DEFAULT_WEIGHTS, device=device)
            if options.model is not None and options.model != model.architecture:
                raise OvavssError(
                    f"--model {options.model}: the weights '{model.weights_id}' hold a {model.architecture} model"
                )
            predictor = VideoPredictor(
                model, vocab, options.fps, options.threshold, options.allow_silent, device, audio, options.precision,
                options.clip_queries,
            )  # fmt: skip
            records = run_job(predictor, planned, options, process)
            report.records += records or []
        return finish_report(report, options, multi_input, process)
