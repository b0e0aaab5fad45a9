"""Score AVSS predictions on the AVSBench-OV test split exactly as the OV-AVSS evaluation does.

Protocol (spec §9.1, reference ``demo_video/avsbench_dataloader.py`` / ``avsbench_utils.py``):

* **Which frames.** Every GT-annotated frame of every test clip (test split of ``metadata.csv``,
  or ``splits.test`` of a ``make-split`` JSON). A prediction for a frame without GT is ignored.
* **GT.** ``labels_rgb`` (the reference's source; ``labels_semantic`` when the RGB file is
  missing, or as chosen by ``gt_source``), resized to 224x224 with **PIL nearest** (pixel-centre
  sampling), palette-decoded (unknown colour -> 0, counted), then every id that is not a sounding
  object of the clip (``a_obj``) is set to 0 (the reference's "filter error annotations" step;
  switchable).
* **Prediction.** An index map at any resolution, resized to 224x224 with **torch legacy
  nearest** (``F.interpolate(mode="nearest")``, src = floor(dst * in / out)): the reference's
  ``nn.Upsample``. The two nearest rules pick different pixels; both are kept as the reference has
  them.
* Both metrics (:mod:`ovavss_cli.metrics.avss`) accumulate over all frames of the split.

Where predictions come from is kept apart from scoring: :func:`score_predictions` consumes any
iterable of :class:`FramePrediction` (read from PNGs by :func:`folder_predictions`, or produced by a
model run in ``inference.evaluate``), so every source is scored by the same code. Nothing here runs a model.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..console import make_progress
from ..data.avsbench import AVSSDataset, ClipMeta, load_avss
from ..data.classes import BASE_IDS, NOVEL_IDS
from ..data.labelmap import decode_palette, keep_sounding_classes, label_array, open_png
from ..data.split import load_split
from ..errors import OvavssError
from .avss import SegmentationMetrics, SegmentationScores

#: Name recorded in results, so numbers from different protocols are never mixed up.
PROTOCOL = "ovavss-avsbench-ov"
#: Side of the square both maps are brought to before scoring (the reference's 224x224).
EVAL_SIZE = 224
GT_SOURCES = ("auto", "rgb", "semantic")
#: How many missing prediction files the error message names.
_MISSING_SHOWN = 3


# --------------------------------------------------------------------------------------------
# Preparation of the two maps (spec §9.1); each nearest rule lives here and nowhere else
# --------------------------------------------------------------------------------------------


def resize_gt_nearest(image: Image.Image, size: int = EVAL_SIZE) -> Image.Image:
    """PIL's nearest to (size, size), as the reference resizes ``labels_rgb`` before decoding colours.

    PIL samples the source pixel under each output pixel's centre: src = floor((dst + 0.5) * in / out).
    """
    return image.resize((size, size), Image.Resampling.NEAREST)


def read_gt_labels(path: Path, source: str, size: int = EVAL_SIZE) -> tuple[np.ndarray, int]:
    """A GT label PNG as (size, size) int64 ids and the number of those pixels that are not labels.

    The reference's order: convert ``labels_rgb`` to RGB, resize with PIL nearest, then match
    colours exactly (unknown -> 0). Resizing before decoding also keeps this fast on full-HD masks.
    """
    image = open_png(path)
    if source == "rgb":
        image = image.convert("RGB")
    try:
        ids, unknown = label_array(resize_gt_nearest(image, size))
    except ValueError as error:
        raise OvavssError(str(error), path=path) from None
    return ids, int(unknown.sum())


@functools.lru_cache(maxsize=256)
def _legacy_nearest_index(in_size: int, out_size: int) -> np.ndarray:
    """Source index of each output position under torch's legacy nearest, taken from torch itself
    by resizing an index ramp (nearest only copies values, and rows and columns are independent)."""
    ramp = torch.arange(in_size, dtype=torch.float32).reshape(1, 1, in_size, 1)
    return F.interpolate(ramp, size=(out_size, 1), mode="nearest")[0, 0, :, 0].to(torch.int64).numpy()


def resize_prediction_nearest(ids: np.ndarray, size: int = EVAL_SIZE) -> np.ndarray:
    """(H, W) ids -> (size, size) int64 with torch's legacy nearest (src = floor(dst * in / out)),
    as the reference's ``nn.Upsample(size=(224, 224), mode="nearest")`` resizes predictions."""
    ids = np.asarray(ids)
    rows = _legacy_nearest_index(ids.shape[0], size)
    cols = _legacy_nearest_index(ids.shape[1], size)
    return ids[np.ix_(rows, cols)].astype(np.int64)


# --------------------------------------------------------------------------------------------
# Which frames, and where predictions come from
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalConfig:
    """How GT is prepared. The defaults are the OV-AVSS protocol."""

    gt_source: str = "auto"  # auto: labels_rgb (what the reference reads), labels_semantic if missing
    filter_gt_to_sounding: bool = True  # zero GT classes not in the clip's a_obj, as the reference
    allow_missing: bool = False  # score a frame without prediction as all background
    size: int = EVAL_SIZE

    def __post_init__(self) -> None:
        if self.gt_source not in GT_SOURCES:
            raise OvavssError(f"--gt-source must be one of {', '.join(GT_SOURCES)}, got {self.gt_source!r}")


@dataclass(frozen=True)
class EvalSplit:
    """The clips to score, the class sets behind "base" / "novel", and where they came from."""

    clips: list[ClipMeta]
    base_ids: tuple[int, ...] = BASE_IDS
    novel_ids: tuple[int, ...] = NOVEL_IDS
    split_file: Path | None = None
    split_sha256: str | None = None


@dataclass(frozen=True)
class FramePrediction:
    """One GT frame to score and its predicted ids (any resolution); ``None`` = no prediction."""

    clip: ClipMeta
    frame: int
    ids: np.ndarray | None


def load_test_split(dataset: AVSSDataset, split_file: str | Path | None = None) -> EvalSplit:
    """The test clips: ``splits.test`` of a ``make-split`` JSON, else the metadata's test rows."""
    if split_file is None:
        clips = dataset.split("test")
        if not clips:
            raise OvavssError("no clip has split 'test'", path=dataset.root / "metadata.csv")
        return EvalSplit(clips=clips)
    split_file = Path(split_file)
    ov_split = load_split(split_file)
    uids = ov_split.uids("test")
    known = {clip.uid: clip for clip in dataset.clips}
    unknown = [uid for uid in uids if uid not in known]
    if unknown:
        raise OvavssError(
            f"{len(unknown)} test clips are not in {dataset.root / 'metadata.csv'}, e.g. {unknown[0]!r}",
            path=split_file,
        )
    if not uids:
        raise OvavssError("the test split is empty", path=split_file)
    sha256 = hashlib.sha256(split_file.read_bytes()).hexdigest()
    return EvalSplit(
        clips=[known[uid] for uid in uids],
        base_ids=ov_split.base_ids,
        novel_ids=ov_split.novel_ids,
        split_file=split_file,
        split_sha256=sha256,
    )


def gt_frames(dataset: AVSSDataset, clips: Sequence[ClipMeta]) -> list[tuple[ClipMeta, int]]:
    """Every (clip, frame index) that has GT, in clip order then frame order."""
    return [(clip, frame) for clip in clips for frame in dataset.label_frames(clip)]


def prediction_path(pred_dir: Path, clip: ClipMeta, frame: int) -> Path:
    """Where the ``--pred`` layout keeps one frame's prediction: ``PRED_DIR/<uid>/<frame>.png``."""
    return pred_dir / clip.uid / f"{frame}.png"


def _palette_entry_ids(image: Image.Image) -> np.ndarray | None:
    """Ids of the 256 entries of a palette ('P') image whose used entries all have AVSBench colours.

    Such an image is read by colour, as a viewer shows it (our own label PNGs, or an RGB prediction
    quantised to 'P', both qualify); ``None`` means "read the indices as ids" (e.g. a grey palette).
    """
    palette = np.asarray(image.getpalette() or [], dtype=np.uint8).reshape(-1, 3)[:256]
    used = np.flatnonzero(np.bincount(np.asarray(image).ravel(), minlength=256))
    if used.max(initial=0) >= len(palette):
        return None
    entry_ids, unknown = decode_palette(palette[None])
    return None if unknown[0, used].any() else entry_ids[0]


def read_prediction(path: Path) -> np.ndarray:
    """A prediction PNG as (H, W) int64 ids; every pixel must be a valid AVSS label.

    Single-channel images hold ids; RGB(A) images AVSBench palette colours; palette images are read
    by colour when all their colours are AVSBench colours, else by index.
    """
    image = open_png(path)
    entry_ids = _palette_entry_ids(image) if image.mode == "P" else None
    if entry_ids is not None:
        return entry_ids[np.asarray(image)]
    try:
        ids, unknown = label_array(image)
    except ValueError as error:
        raise OvavssError(str(error), path=path) from None
    if unknown.any():
        raise OvavssError(
            f"{int(unknown.sum())} pixels are not AVSS labels (colour outside the AVSBench palette or value above 70)",
            path=path,
        )
    return ids


def folder_predictions(
    pred_dir: str | Path, frames: Sequence[tuple[ClipMeta, int]], allow_missing: bool = False
) -> Iterator[FramePrediction]:
    """Predictions read lazily from ``PRED_DIR/<uid>/<frame>.png`` for the given GT frames.

    Missing files are checked before anything is read, so a bad folder fails at once: an error
    naming the first few, unless ``allow_missing`` (then they come as ``ids=None``).
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise OvavssError("prediction folder not found", path=pred_dir)
    paths = [prediction_path(pred_dir, clip, frame) for clip, frame in frames]
    missing = [path for path in paths if not path.is_file()]
    if missing and not allow_missing:
        examples = ", ".join(path.relative_to(pred_dir).as_posix() for path in missing[:_MISSING_SHOWN])
        raise OvavssError(
            f"no prediction for {len(missing)} of {len(paths)} GT frames, e.g. {examples} "
            "(--allow-missing scores them as background)",
            path=pred_dir,
        )
    return _read_predictions(frames, paths)


def _read_predictions(frames: Sequence[tuple[ClipMeta, int]], paths: list[Path]) -> Iterator[FramePrediction]:
    for (clip, frame), path in zip(frames, paths, strict=True):
        yield FramePrediction(clip, frame, read_prediction(path) if path.is_file() else None)


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


class FrameMetric(Protocol):
    """An extra accumulator fed one frame at a time (``metrics.foreground`` has two)."""

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None: ...


@dataclass(frozen=True)
class EvalResult:
    """Scores plus everything needed to reproduce or question them."""

    scores: SegmentationScores
    config: EvalConfig
    clips: int
    frames: int
    missing_predictions: int
    gt_sources: dict[str, int]  # frames read from each GT tree
    gt_unknown_pixels: int  # GT pixels (at eval size) with a colour outside the palette: scored as background
    gt_unknown_files: list[str]  # the GT files that had them
    gt_filtered_pixels: int  # GT pixels set to background because their class is not in a_obj
    split: EvalSplit = field(repr=False)


@dataclass
class EvalTally:
    """What scoring accumulates over frames, before the scores are computed from it.

    Tallies of consecutive runs of frames (the shards of a ``torchrun`` job, in rank order) :meth:`merged`
    give exactly the tally, and so the numbers, of one pass over all the frames.
    """

    metrics: SegmentationMetrics = field(default_factory=SegmentationMetrics)
    clips: set[str] = field(default_factory=set)
    missing_predictions: int = 0
    gt_sources: Counter[str] = field(default_factory=Counter)
    gt_unknown_pixels: int = 0
    gt_unknown_files: list[str] = field(default_factory=list)
    gt_filtered_pixels: int = 0

    @classmethod
    def merged(cls, parts: Sequence[EvalTally]) -> EvalTally:
        """One tally of the frames of ``parts`` (non-empty), which follow each other in this order."""
        return cls(
            SegmentationMetrics.merged([part.metrics for part in parts]),
            set().union(*(part.clips for part in parts)),
            sum(part.missing_predictions for part in parts),
            sum((part.gt_sources for part in parts), Counter()),
            sum(part.gt_unknown_pixels for part in parts),
            [name for part in parts for name in part.gt_unknown_files],
            sum(part.gt_filtered_pixels for part in parts),
        )

    def result(self, split: EvalSplit, config: EvalConfig) -> EvalResult:
        return EvalResult(
            scores=self.metrics.compute(split.base_ids, split.novel_ids),
            config=config,
            clips=len(self.clips),
            frames=self.metrics.frames,
            missing_predictions=self.missing_predictions,
            gt_sources=dict(sorted(self.gt_sources.items())),
            gt_unknown_pixels=self.gt_unknown_pixels,
            gt_unknown_files=self.gt_unknown_files,
            gt_filtered_pixels=self.gt_filtered_pixels,
            split=split,
        )


class _GTReader:
    """Reads, resizes and filters GT frames, and tallies what it saw along the way."""

    def __init__(self, dataset: AVSSDataset, config: EvalConfig, tally: EvalTally):
        self.dataset = dataset
        self.config = config
        self.tally = tally

    def _source(self, clip: ClipMeta, frame: int) -> str:
        if self.config.gt_source != "auto":
            return self.config.gt_source
        # Unlike the reader's own "auto", prefer labels_rgb: it is what the reference scores against.
        for source in ("rgb", "semantic"):
            if self.dataset.label_path(clip, frame, source).is_file():
                return source
        raise OvavssError(
            f"no ground truth for frame {frame}: neither labels_rgb/{frame}.png nor labels_semantic/{frame}.png",
            path=self.dataset.clip_dir(clip),
        )

    def read(self, clip: ClipMeta, frame: int) -> np.ndarray:
        """(size, size) int64 GT ids of one frame, prepared as the reference does."""
        source = self._source(clip, frame)
        path = self.dataset.label_path(clip, frame, source)
        gt, unknown_pixels = read_gt_labels(path, source, self.config.size)
        self.tally.gt_sources[source] += 1
        if unknown_pixels:
            self.tally.gt_unknown_pixels += unknown_pixels
            self.tally.gt_unknown_files.append(str(path))
        if self.config.filter_gt_to_sounding:
            filtered = keep_sounding_classes(gt, clip.sounding_ids)
            self.tally.gt_filtered_pixels += int(np.count_nonzero(filtered != gt))
            gt = filtered
        return gt


def tally_predictions(
    dataset: AVSSDataset,
    predictions: Iterable[FramePrediction],
    config: EvalConfig = EvalConfig(),
    frame_metrics: Sequence[FrameMetric] = (),
    on_frame: Callable[[], None] | None = None,
) -> EvalTally:
    """Read each predicted frame's GT and add the pair to a new tally; ``on_frame()`` after each frame.

    ``frame_metrics`` (e.g. :class:`~.foreground.ForegroundIoU`) also get every frame's prepared
    ``(pred, gt)`` id maps, at the evaluation size.
    """
    tally = EvalTally()
    gt_reader = _GTReader(dataset, config, tally)
    for item in predictions:
        gt = gt_reader.read(item.clip, item.frame)
        if item.ids is None:
            tally.missing_predictions += 1
            pred = np.zeros_like(gt)
        else:
            pred = resize_prediction_nearest(item.ids, config.size)
        tally.metrics.update(gt, pred)
        for frame_metric in frame_metrics:
            frame_metric.update(pred, gt)
        tally.clips.add(item.clip.uid)
        if on_frame is not None:
            on_frame()
    return tally


def score_predictions(
    dataset: AVSSDataset,
    predictions: Iterable[FramePrediction],
    *,
    split: EvalSplit,
    total: int,
    config: EvalConfig = EvalConfig(),
) -> EvalResult:
    """Score predicted maps against the dataset's GT (both metrics), with a progress bar.

    ``predictions`` must cover the GT frames of ``split`` (``total`` of them, for the progress bar).
    """
    with make_progress(transient=True) as progress:
        task = progress.add_task("scoring", total=total)
        tally = tally_predictions(dataset, predictions, config, on_frame=lambda: progress.advance(task))
    return tally.result(split, config)


def load_test_frames(
    root: str | Path, split_file: str | Path | None
) -> tuple[AVSSDataset, EvalSplit, list[tuple[ClipMeta, int]]]:
    """The dataset, its test split and every GT frame to score (an error when there are none)."""
    dataset = load_avss(root)
    split = load_test_split(dataset, split_file)
    frames = gt_frames(dataset, split.clips)
    if not frames:
        raise OvavssError(f"the {len(split.clips)} test clips have no GT frames", path=dataset.root)
    return dataset, split, frames


def evaluate_prediction_folder(
    root: str | Path,
    pred_dir: str | Path,
    *,
    split_file: str | Path | None = None,
    config: EvalConfig = EvalConfig(),
) -> EvalResult:
    """``ovavss eval --pred``: score ``PRED_DIR/<uid>/<frame>.png`` on the test split of ``root``."""
    dataset, split, frames = load_test_frames(root, split_file)
    predictions = folder_predictions(pred_dir, frames, allow_missing=config.allow_missing)
    return score_predictions(dataset, predictions, total=len(frames), config=config, split=split)
