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
processed.

The model is used only through its documented API: ``window_size``, ``device``, ``weights_id``,
``weights_sha256`` and ``predict_clip(frames, audio, sample_rate, vocab, threshold, frame_times,
precision, clip_queries)`` returning ``label_maps`` (T, H, W) and ``detections`` (``label``,
``score``). It is called with one
window of at most ``window_size`` real frames at a time (the model pads a short last window
itself), which bounds memory and makes every detection of a call belong to all its frames.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.text import Text

from .. import __version__
from ..console import console, make_progress
from ..data.audio_conditions import AudioReplacement, load_replacement
from ..data.labelmap import read_label_png
from ..data.media import (
    VIDEO_EXTENSIONS,
    MediaWindow,
    VideoInfo,
    expected_samples,
    iter_windows,
    probe,
    write_painted_video,
)
from ..data.vocab import parse_vocab
from ..device import resolve_device
from ..errors import OvavssError
from ..hub import DEFAULT_WEIGHTS
from ..models.run_options import check_clip_queries, resolve_precision
from ..viz.overlay import OverlayPainter, vocab_colours
from .outputs import OVERLAY_FILE, PredictionWriter, mask_file, output_folder, unique_folder

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
        for window in windows:
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

    def predict_to_folder(self, path: str | Path, out: Path, write_video: bool = True, force: bool = False) -> Path:
        """Predict one video into the output folder ``out`` (built aside, published when complete)."""
        path = Path(path)
        info = probe(path)
        track = self.replacement_track(path, info)
        with make_progress() as progress, output_folder(out, force) as folder:
            task = progress.add_task(f"{path.name}: frames", total=expected_samples(info.duration, self.fps))
            with PredictionWriter(folder, self.header(path, info), self.vocab) as writer:
                for frame in self.predict_frames(path, info, track):
                    writer.add(frame)
                    progress.advance(task)
                writer.finish({"overlay": OVERLAY_FILE if write_video else None})
            progress.update(task, total=writer.frame_count, completed=writer.frame_count)
            if write_video:
                task = progress.add_task(f"{path.name}: overlay.mp4", total=max(1, round(info.duration * info.fps)))
                painter = _MaskOverlay(folder, self.vocab, self.fps, writer.frame_count)
                written = write_painted_video(
                    path, folder / OVERLAY_FILE, painter, info, lambda: progress.advance(task), audio=track
                )
                progress.update(task, total=written, completed=written)
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
            self._label_map, _ = read_label_png(self.folder / mask_file(index))
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


@dataclass
class PredictReport:
    outputs: list[tuple[Path, Path]] = field(default_factory=list)  # (input, output folder)
    failures: list[str] = field(default_factory=list)  # one line each

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


def expand_inputs(inputs: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """Files stay as given; a folder contributes its video files (by extension, sorted, not recursive).

    Returns (videos, one-line problems for inputs that give nothing).
    """
    videos, problems = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                problems.append(str(OvavssError("folder has no video files", path=item)))
            videos.extend(found)
        elif item.exists():
            videos.append(item)
        else:
            problems.append(str(OvavssError("file not found", path=item)))
    return videos, problems


def plan_outputs(videos: Sequence[Path], out: Path | None, single_file: bool) -> list[Path]:
    """Where each video's results go.

    * no ``--out``: ``./<stem>_ovavss``, or ``_ovavss-1``, ... (a new folder, never an existing one);
    * ``--out`` with one input file: that folder;
    * ``--out`` with several inputs (or a folder): ``<out>/<stem>``, numbered when stems repeat
      (an existing one needs ``--force``, as for a single ``--out``).
    """
    if out is not None and single_file:
        return [out]
    planned: list[Path] = []
    for video in videos:
        if out is None:
            planned.append(unique_folder(Path.cwd(), f"{video.stem}_ovavss", taken=planned))
        else:
            planned.append(unique_folder(out, video.stem, taken=planned, skip_existing=False))
    return planned


def run_predict(inputs: Sequence[Path], options: PredictOptions) -> PredictReport:
    """``ovavss predict``: load the model once, then predict every input; failures are collected, not fatal."""
    vocab = parse_vocab(options.vocab)
    device = resolve_device(options.device)
    resolve_precision(options.precision, device)  # a bad value fails before any work
    check_clip_queries(options.clip_queries)
    report = PredictReport()
    videos, report.failures = expand_inputs(inputs)
    for problem in report.failures:
        _print_failure(problem)
    if not videos:
        return report
    single_file = len(inputs) == 1 and not Path(inputs[0]).is_dir()
    targets = plan_outputs(videos, options.out, single_file)
    audio = load_replacement(options.audio) if options.audio is not None else None  # a bad file fails first
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
    for video, target in zip(videos, targets, strict=True):
        try:
            predictor.predict_to_folder(video, target, options.write_video, options.force)
        except OvavssError as error:
            report.failures.append(str(error))
            _print_failure(str(error))
            continue
        report.outputs.append((video, target))
    return report


def _print_failure(message: str) -> None:
    console.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)  # one line, never wrapped
