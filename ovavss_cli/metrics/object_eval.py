"""``ovavss eval --benchmark s4|ms3``: AVSBench-object J and F of prediction PNGs or of a model.

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

Model scores (``--weights``, AVSC models): the model's sounding probabilities of the clip's frames and audio
(frame k paired with the k-th 0.96-s audio example), at the frame size, resized to the GT's if it differs; they
are scored as probabilities (as the official code scores sigmoid outputs). With ``--pred`` too, the binary masks
(p > 0.5, 0/255, GT naming) are also saved in that new folder, the official ``save_mask``'s content.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import __version__
from ..atomic import atomic_dir, refuse_existing_folder, refuse_overwrite
from ..console import make_progress
from ..data.avsobject import AVSObjectDataset, ObjectClip, load_avsobject
from ..data.labelmap import open_png
from ..errors import OvavssError
from .evaluate import FrameMetric
from .object import ObjectMetrics, ObjectScores
from .report import write_results_json

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


def model_probabilities(
    model,
    dataset: AVSObjectDataset,
    clips: Sequence[ObjectClip],
    audio_of: Callable[[ObjectClip], tuple[np.ndarray, int]] | None = None,
    precision: str = "fp32",
) -> Iterator[tuple[ObjectClip, list[torch.Tensor]]]:
    """Per clip, an AVSC model's sounding probabilities of its annotated frames (at the frame size).

    ``audio_of(clip) -> (waveform, rate)`` replaces the clip's own audio (default ``dataset.read_audio``).
    """
    for clip in clips:
        waveform, rate = (audio_of or dataset.read_audio)(clip)
        probs = model.sounding_maps(dataset.read_frames(clip), waveform, rate, precision=precision).probs
        yield clip, [probs[frame] for frame in dataset.label_frames(clip)]


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


def score_clips(
    dataset: AVSObjectDataset,
    predictions: Iterable[tuple[ObjectClip, Sequence[np.ndarray | torch.Tensor | None]]],
    batch_size: int = DEFAULT_BATCH_SIZE,
    total: int | None = None,
    frame_metrics: Sequence[FrameMetric] = (),
) -> tuple[ObjectScores, tuple[int, int] | None, int]:
    """Both metric variants over the clips' annotated frames, ``batch_size`` clips per official batch.

    ``frame_metrics`` (e.g. :class:`~.foreground.ForegroundIoU`) also get every frame's ``(p > 0.5, GT)``
    masks at the GT size. Returns (scores, the GT size or None when it varies, how many predictions had to
    be resized).
    """
    if batch_size < 1:
        raise OvavssError(f"--batch-size must be >= 1, got {batch_size}")
    metrics = ObjectMetrics(inputs="probs")
    sizes: set[tuple[int, int]] = set()
    resized = 0
    batch_pred: list[torch.Tensor] = []
    batch_gt: list[np.ndarray] = []
    clips_in_batch = 0
    with make_progress(transient=True) as progress:
        task = progress.add_task("scoring", total=total)
        for clip, probs in predictions:
            for frame, prob in zip(dataset.label_frames(clip), probs, strict=True):
                gt = dataset.read_mask(clip, frame)
                sizes.add(gt.shape)
                prob, was_resized = _at_size(np.zeros(gt.shape, np.float32) if prob is None else prob, gt.shape)
                resized += was_resized
                for frame_metric in frame_metrics:
                    frame_metric.update(prob > 0.5, gt)
                batch_pred.append(prob)
                batch_gt.append(gt)
            clips_in_batch += 1
            if clips_in_batch == batch_size:
                metrics.update(torch.stack(batch_pred), torch.from_numpy(np.stack(batch_gt)))
                batch_pred, batch_gt, clips_in_batch = [], [], 0
            progress.advance(task)
        if batch_pred:  # the official loader's smaller last batch
            metrics.update(torch.stack(batch_pred), torch.from_numpy(np.stack(batch_gt)))
    if metrics.frames == 0:
        raise OvavssError("no annotated frame to score", path=dataset.metadata_path)
    return metrics.compute(), (next(iter(sizes)) if len(sizes) == 1 else None), resized


def evaluation_clips(dataset: AVSObjectDataset, split: str = "test") -> list[ObjectClip]:
    clips = dataset.split(split)
    if not clips:
        raise OvavssError(f"no clip has split '{split}'", path=dataset.metadata_path)
    return clips


def evaluate_model(
    model, dataset: AVSObjectDataset, clips: Sequence[ObjectClip], batch_size: int = DEFAULT_BATCH_SIZE
) -> ObjectScores:
    """An AVSC model's scores on ``clips`` (training validation and ``eval --weights``)."""
    was_training = model.training
    model.eval()
    try:
        scores, _, _ = score_clips(dataset, model_probabilities(model, dataset, clips), batch_size, len(clips))
    finally:
        model.train(was_training)
    return scores


def save_binary_masks(
    predictions: Iterable[tuple[ObjectClip, Sequence[torch.Tensor]]],
    dataset: AVSObjectDataset,
    pred_dir: Path,
) -> Iterator[tuple[ObjectClip, Sequence[torch.Tensor]]]:
    """Pass ``predictions`` through, writing each frame's binary mask (p > 0.5, 0/255) as
    ``pred_dir/<name>/<name>_<k>.png`` (1-based, the GT naming); the folder appears once complete."""
    with atomic_dir(pred_dir) as tmp:
        for clip, probs in predictions:
            for frame, prob in zip(dataset.label_frames(clip), probs, strict=True):
                path = tmp / clip.name / f"{clip.name}_{frame + 1}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray((np.asarray(prob) > 0.5).astype(np.uint8) * 255).save(path)
            yield clip, probs


def evaluate_object(
    data: str | Path,
    benchmark: str,
    *,
    pred: str | Path | None = None,
    model=None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    allow_missing: bool = False,
    split: str = "test",
    precision: str = "fp32",
) -> ObjectEvalResult:
    """Score the ``split`` clips of the S4 / MS3 tree at ``data``: the PNG folder ``pred``, or ``model``'s
    probabilities (then ``pred``, if given, is a new folder its binary masks are saved to)."""
    if benchmark not in BENCHMARKS:
        raise OvavssError(f"--benchmark must be avsbench-ov, s4 or ms3, got {benchmark!r}")
    if pred is None and model is None:
        raise OvavssError(f"--benchmark {benchmark}: give --pred (a PNG folder) or --weights (an AVSC model)")
    if model is not None and pred is not None:
        refuse_existing_folder(pred)
    dataset = load_avsobject(data, benchmark)
    clips = evaluation_clips(dataset, split)
    missing = 0
    if model is None:
        predictions, first, missing = folder_probabilities(pred, dataset, clips, allow_missing)
        source = {"pred": str(pred), "naming": NAMINGS[first]}
    else:
        predictions = model_probabilities(model, dataset, clips, precision=precision)
        if pred is not None:
            predictions = save_binary_masks(predictions, dataset, Path(pred))
        source = {"weights": model.weights_id, "sha256": model.weights_sha256, "saved_masks": pred and str(pred)}
    with torch.no_grad():
        scores, resolution, resized = score_clips(dataset, predictions, batch_size, len(clips))
    return ObjectEvalResult(benchmark, split, scores, len(clips), batch_size, resolution, source, missing, resized)


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


def load_object_model(weights: str, device: str = "auto"):
    """The AVSC model S4 / MS3 scoring runs (an OV-AVSS checkpoint is a one-line error)."""
    from .. import load_model
    from ..device import resolve_device
    from ..models.avsc.model import AVSC

    model = load_model(weights, device=resolve_device(device))
    if not isinstance(model, AVSC):
        raise OvavssError(
            "holds an OV-AVSS model; --weights scoring on S4 / MS3 needs an AVSC model (write the model's "
            "masks as PNGs and pass --pred instead)",
            path=weights,
        )
    return model


def run_object_eval(
    benchmark: str,
    data: str | Path,
    *,
    pred: str | Path | None = None,
    weights: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str = "auto",
    allow_missing: bool = False,
    json_out: str | Path | None = None,
    force: bool = False,
    avsbench_ov_options: dict[str, Any] | None = None,
    precision: str = "auto",
) -> dict:
    """``ovavss eval --benchmark s4|ms3``: refuse an existing ``json_out`` first, score, write the JSON.

    ``avsbench_ov_options`` ({"--split-file": value, ...}): options of the default benchmark the command line
    set, refused here rather than silently ignored.
    """
    avsbench_ov_options = avsbench_ov_options or {}
    unused = [flag for flag, value in avsbench_ov_options.items() if value]
    if unused:
        raise OvavssError(f"{', '.join(unused)}: only for --benchmark avsbench-ov")
    if json_out is not None:
        refuse_overwrite(json_out, force)
    model = None
    if weights is not None:
        from ..device import resolve_device
        from ..models.run_options import resolve_precision

        device = resolve_device(device)
        precision = resolve_precision(precision, device)
        model = load_object_model(weights, device)
    payload = results_payload(
        evaluate_object(
            data, benchmark, pred=pred, model=model, batch_size=batch_size, allow_missing=allow_missing,
            precision=precision,
        )  # fmt: skip
    )
    if json_out is not None:
        write_results_json(json_out, payload)
    return payload
