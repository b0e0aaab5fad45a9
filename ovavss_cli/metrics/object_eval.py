"""``ovavss eval --benchmark s4|ms3``: AVSBench-object J and F of prediction PNGs or of a model's probabilities.

What is scored: every annotated frame of every clip of the split (``test``, as the official ``test.py``), in
metadata order, cut into batches of ``batch_size`` clips (default 4, as the shipped ``test.sh``): the
official per-batch J and max-F (:mod:`.object`, whose empty-GT and threshold rules are AVSBench's) and the
clean batch-independent variant. The GT masks are read as released (binarised with > 0); predictions are
brought to the GT's size (the release's masks are 224x224, where the official code asserts equal shapes).

Prediction folders (``--pred``): one PNG per frame, ``PRED/<name>/<name>_<k>.png``, or under the S4 category
as the official ``save_mask`` writes (``PRED/<category>/<name>/...``). ``k`` is 1-based like the GT files, or
0-based like ``save_mask``'s: the naming is detected over the whole folder (``_0`` files mean 0-based, ``_5``
files 1-based; both is an error) and recorded. Pixel values: palette ('P') and 1-bit images are binary
(index > 0); grey images are binary when they hold only 0 and 1, else probabilities value / 255 (so
0/255 masks are binary too, and soft masks get the official threshold sweep).

Model scores (``--weights``, AVSC models) come from ``inference.evaluate``, which runs the model and hands
its probabilities to :func:`score_clips`; nothing here runs a model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..console import make_progress
from ..data.avsobject import AVSObjectDataset, ObjectClip, load_avsobject
from ..data.labelmap import open_png
from ..errors import OvavssError
from ..version import __version__
from .evaluate import FrameMetric
from .object import ObjectMetrics, ObjectScores

BENCHMARKS: tuple[str, ...] = ("s4", "ms3")
PROTOCOL = "avsbench-object"
DEFAULT_BATCH_SIZE = 4  # the shipped test.sh
NAMINGS = {1: "1-based (<name>_1.png.., as the GT)", 0: "0-based (<name>_0.png.., as the official save_mask)"}
_MISSING_SHOWN = 3


@dataclass
class ObjectEvalResult:
    benchmark: str
    split: str
    scores: ObjectScores
    clips: int
    batch_size: int
    resolution: tuple[int, int] | None  # the GT size, None when it varies
    source: dict = field(default_factory=dict)  # {"pred": folder, "naming": ...} or {"weights": id, "sha256": ...}
    missing_predictions: int = 0
    resized_predictions: int = 0


# --------------------------------------------------------------------------------------------
# Reading predictions


def prediction_probabilities(path: Path) -> np.ndarray:
    """A prediction PNG as (H, W) float32 probabilities (see the module docstring for the pixel rules)."""
    image = open_png(path)
    if image.mode in ("P", "1"):
        return (np.asarray(image) > 0).astype(np.float32)
    values = np.asarray(image if image.mode == "L" else image.convert("L")).astype(np.float32)
    if values.max(initial=0) <= 1:
        return values
    return np.clip(values / 255.0, 0.0, 1.0)


def _clip_folder(pred_dir: Path, clip: ObjectClip) -> Path:
    """``PRED/<name>``, or ``PRED/<category>/<name>`` (official S4 layout) when only that exists."""
    flat = pred_dir / clip.name
    nested = pred_dir / clip.category / clip.name
    return nested if clip.category and not flat.is_dir() and nested.is_dir() else flat


def detect_naming(pred_dir: Path, clips: Sequence[ObjectClip], frames_per_clip: Sequence[int]) -> int:
    """The first frame index of the folder's file names: 1 (GT naming) or 0 (official ``save_mask``)."""
    zero_based = one_based = False
    for clip, count in zip(clips, frames_per_clip, strict=True):
        folder = _clip_folder(pred_dir, clip)
        zero_based |= (folder / f"{clip.name}_0.png").is_file()
        one_based |= (folder / f"{clip.name}_{count}.png").is_file()
    if zero_based and one_based:
        raise OvavssError(
            "mixes 0-based (<name>_0.png) and 1-based (<name>_5.png) frame numbers; use one naming", path=pred_dir
        )
    return 0 if zero_based else 1


def folder_probabilities(
    pred_dir: str | Path, dataset: AVSObjectDataset, clips: Sequence[ObjectClip], allow_missing: bool = False
) -> tuple[Iterator[tuple[ObjectClip, list[np.ndarray | None]]], int, int]:
    """Per clip, the probabilities of its annotated frames read from ``pred_dir`` (None = missing file).

    Missing files are looked for before anything is read, so a bad folder fails at once (unless
    ``allow_missing``: then they are scored as empty masks). Returns (iterator, first index, missing count).
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise OvavssError("prediction folder not found", path=pred_dir)
    frames = [dataset.label_frames(clip) for clip in clips]
    first = detect_naming(pred_dir, clips, [dataset.num_frames(clip) for clip in clips])
    paths = [
        [_clip_folder(pred_dir, clip) / f"{clip.name}_{frame + first}.png" for frame in clip_frames]
        for clip, clip_frames in zip(clips, frames, strict=True)
    ]
    missing = [path for clip_paths in paths for path in clip_paths if not path.is_file()]
    if missing and not allow_missing:
        shown = ", ".join(str(path.relative_to(pred_dir)) for path in missing[:_MISSING_SHOWN])
        raise OvavssError(
            f"{len(missing)} prediction files missing ({NAMINGS[first]} naming), e.g. {shown}; "
            "pass --allow-missing to score them as empty masks",
            path=pred_dir,
        )

    def read() -> Iterator[tuple[ObjectClip, list[np.ndarray | None]]]:
        for clip, clip_paths in zip(clips, paths, strict=True):
            yield clip, [prediction_probabilities(path) if path.is_file() else None for path in clip_paths]

    return read(), first, len(missing)


# --------------------------------------------------------------------------------------------
# Scoring


def _at_size(prob: np.ndarray | torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, bool]:
    """A (H, W) probability map at ``size``: unchanged, or bilinearly resized (binary maps stay binary: nearest)."""
    prob = torch.as_tensor(prob, dtype=torch.float32)
    if tuple(prob.shape) == size:
        return prob, False
    binary = bool(((prob == 0) | (prob == 1)).all())
    mode = "nearest" if binary else "bilinear"
    options = {} if binary else {"align_corners": False}
    return F.interpolate(prob[None, None], size=size, mode=mode, **options)[0, 0], True


@dataclass
class ObjectTally:
    """What S4 / MS3 scoring accumulates; the tallies of consecutive runs of whole official batches (the
    shards of a ``torchrun`` job, in rank order) :meth:`merged` give exactly the tally of one pass."""

    metrics: ObjectMetrics = field(default_factory=lambda: ObjectMetrics(inputs="probs"))
    sizes: set[tuple[int, int]] = field(default_factory=set)  # GT sizes seen
    resized: int = 0  # predictions that had to be brought to the GT's size

    @classmethod
    def merged(cls, parts: Sequence[ObjectTally]) -> ObjectTally:
        return cls(
            ObjectMetrics.merged([part.metrics for part in parts]),
            set().union(*(part.sizes for part in parts)),
            sum(part.resized for part in parts),
        )

    def result(self, dataset: AVSObjectDataset) -> tuple[ObjectScores, tuple[int, int] | None, int]:
        """(scores, the GT size or None when it varies, how many predictions had to be resized)."""
        if self.metrics.frames == 0:
            raise OvavssError("no annotated frame to score", path=dataset.metadata_path)
        return self.metrics.compute(), (next(iter(self.sizes)) if len(self.sizes) == 1 else None), self.resized


def check_batch_size(batch_size: int) -> int:
    if batch_size < 1:
        raise OvavssError(f"--batch-size must be >= 1, got {batch_size}")
    return batch_size


def tally_clips(
    dataset: AVSObjectDataset,
    predictions: Iterable[tuple[ObjectClip, Sequence[np.ndarray | torch.Tensor | None]]],
    batch_size: int = DEFAULT_BATCH_SIZE,
    frame_metrics: Sequence[FrameMetric] = (),
    on_clip: Callable[[], None] | None = None,
) -> ObjectTally:
    """Add the clips' annotated frames to a new tally, ``batch_size`` clips per official batch (the first
    clip starts a batch); ``on_clip()`` after each clip.

    ``frame_metrics`` (e.g. :class:`~.foreground.ForegroundIoU`) also get every frame's ``(p > 0.5, GT)``
    masks at the GT size.
    """
    check_batch_size(batch_size)
    tally = ObjectTally()
    batch_pred: list[torch.Tensor] = []
    batch_gt: list[np.ndarray] = []
    clips_in_batch = 0
    for clip, probs in predictions:
        for frame, prob in zip(dataset.label_frames(clip), probs, strict=True):
            gt = dataset.read_mask(clip, frame)
            tally.sizes.add(gt.shape)
            prob, was_resized = _at_size(np.zeros(gt.shape, np.float32) if prob is None else prob, gt.shape)
            tally.resized += was_resized
            for frame_metric in frame_metrics:
                frame_metric.update(prob > 0.5, gt)
            batch_pred.append(prob)
            batch_gt.append(gt)
        clips_in_batch += 1
        if clips_in_batch == batch_size:
            tally.metrics.update(torch.stack(batch_pred), torch.from_numpy(np.stack(batch_gt)))
            batch_pred, batch_gt, clips_in_batch = [], [], 0
        if on_clip is not None:
            on_clip()
    if batch_pred:  # the official loader's smaller last batch
        tally.metrics.update(torch.stack(batch_pred), torch.from_numpy(np.stack(batch_gt)))
    return tally


def score_clips(
    dataset: AVSObjectDataset,
    predictions: Iterable[tuple[ObjectClip, Sequence[np.ndarray | torch.Tensor | None]]],
    batch_size: int = DEFAULT_BATCH_SIZE,
    total: int | None = None,
) -> tuple[ObjectScores, tuple[int, int] | None, int]:
    """Both metric variants over the clips' annotated frames (:func:`tally_clips`), with a progress bar of
    ``total`` clips. Returns (scores, the GT size or None when it varies, how many predictions had to be
    resized)."""
    check_batch_size(batch_size)
    with make_progress(transient=True) as progress:
        task = progress.add_task("scoring", total=total)
        tally = tally_clips(dataset, predictions, batch_size, on_clip=lambda: progress.advance(task))
    return tally.result(dataset)


def evaluation_clips(dataset: AVSObjectDataset, split: str = "test") -> list[ObjectClip]:
    clips = dataset.split(split)
    if not clips:
        raise OvavssError(f"no clip has split '{split}'", path=dataset.metadata_path)
    return clips


def evaluate_object(
    data: str | Path,
    benchmark: str,
    *,
    pred: str | Path,
    batch_size: int = DEFAULT_BATCH_SIZE,
    allow_missing: bool = False,
) -> ObjectEvalResult:
    """``ovavss eval --benchmark s4|ms3 --pred``: score the PNG folder ``pred`` on the test clips of the
    S4 / MS3 tree at ``data`` (a model's probabilities are scored by ``inference.evaluate``)."""
    dataset = load_avsobject(data, check_benchmark(benchmark))
    clips = evaluation_clips(dataset)
    predictions, first, missing = folder_probabilities(pred, dataset, clips, allow_missing)
    scores, resolution, resized = score_clips(dataset, predictions, batch_size, len(clips))
    source = {"pred": str(pred), "naming": NAMINGS[first]}
    return ObjectEvalResult(benchmark, "test", scores, len(clips), batch_size, resolution, source, missing, resized)


def check_benchmark(benchmark: str) -> str:
    if benchmark not in BENCHMARKS:
        raise OvavssError(f"--benchmark must be avsbench-ov, s4 or ms3, got {benchmark!r}")
    return benchmark


# --------------------------------------------------------------------------------------------
# Results


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def results_payload(result: ObjectEvalResult) -> dict:
    """The JSON document of ``ovavss eval --benchmark s4|ms3 --json``: fractions in [0, 1]."""
    scores = result.scores
    official = {"miou": _number(scores.official_miou), "fscore": _number(scores.official_fscore)}
    return {
        "format": "ovavss-object-eval/1",
        "protocol": PROTOCOL,
        "ovavss_version": __version__,
        "benchmark": result.benchmark,
        "split": result.split,
        "resolution": list(result.resolution) if result.resolution else None,
        "batch_size": result.batch_size,
        "batches": scores.batches,
        "official": {**official, "j_and_f": _number((scores.official_miou + scores.official_fscore) / 2)},
        "clean": {"miou": _number(scores.miou), "fscore": _number(scores.fscore)},
        "clips": result.clips,
        "frames": scores.frames,
        "source": result.source,
        "missing_predictions": result.missing_predictions,
        "resized_predictions": result.resized_predictions,
        "notes": {
            "official": "TPAVI utility.py: per-frame J (empty GT: share of pixels left empty) and max-F over 255 "
            "thresholds, both averaged per batch of batch_size clips, then over batches",
            "clean": "J averaged over frames; F (beta^2 = 0.3) on the p > 0.5 mask, averaged over frames with GT",
        },
    }


def summary_line(payload: dict) -> str:
    """One line: official and clean mJ / mF in percent, with what they were computed on."""

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    official, clean = payload["official"], payload["clean"]
    size = "x".join(map(str, payload["resolution"][::-1])) if payload["resolution"] else "mixed sizes"
    return (
        f"{payload['benchmark'].upper()} {payload['split']}: mJ {percent(official['miou'])} mF "
        f"{percent(official['fscore'])} (official, batch {payload['batch_size']}) | clean mJ "
        f"{percent(clean['miou'])} mF {percent(clean['fscore'])}  ({payload['clips']} clips, {payload['frames']} "
        f"frames, {size})"
    )
