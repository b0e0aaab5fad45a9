"""Training validation of both families: the model on the val clips, scored as ``eval`` scores them (the
scoring is ``metrics``'), in eval mode and without autograd, the model's mode restored afterwards.

* OV-AVSS on AVSBench-semantic (:func:`evaluate_clips`): the ``eval`` metrics of its label maps, plus the
  class-agnostic IoU of its sounding-object masks (no CLIP involved);
* AVSC on S4 / MS3 (:func:`evaluate_object_clips`): official (batch 4) and clean mJ / mF of its sounding
  probabilities (``evaluate.model_probabilities``, as ``eval --weights``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..console import make_progress
from ..data.avsbench import AVSSDataset, ClipMeta
from ..data.avsobject import AVSObjectDataset, ObjectClip
from ..data.classes import CLASS_NAMES
from ..data.labelmap import keep_sounding_classes
from ..data.split import OvSplit
from ..metrics.evaluate import EvalSplit, FramePrediction, score_predictions
from ..metrics.foreground import ForegroundIoU
from ..metrics.object_eval import score_clips
from ..models.ovavss.config import OVAVSSConfig
from ..models.ovavss.model import OVAVSS
from ..models.ovavss.postprocess import masks_at_frame_size
from ..models.ovavss.predict import ClipPrediction
from ..models.preprocess import shortest_edge_size
from .evaluate import model_probabilities

#: A query belongs to the class-agnostic prediction when its "sounding object" probability exceeds this.
SOUNDING_THRESHOLD = 0.5


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd inside; the model's training mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def sounding_masks(prediction: ClipPrediction, config: OVAVSSConfig, frame_size: tuple[int, int]) -> Tensor:
    """(T, H, W) bool: the union of the masks of the queries whose "sounding object" probability is above
    :data:`SOUNDING_THRESHOLD`, at the original frame size (the class-agnostic prediction, no CLIP involved)."""
    image_size = shortest_edge_size(*frame_size, config.min_size_test, config.max_size_test)
    divisor = config.size_divisibility
    padded_size = tuple(-(-side // divisor) * divisor for side in image_size)
    union = []
    for logits, masks, window in zip(prediction.pred_logits, prediction.pred_masks, prediction.windows, strict=True):
        keep = logits.float().softmax(-1)[:, 0] > SOUNDING_THRESHOLD  # (Q,)
        kept = masks[keep, : window.num_frames]  # (K, real, h, w)
        if kept.shape[0] == 0:
            union.append(torch.zeros(window.num_frames, *frame_size, dtype=torch.bool))
        else:
            union.append(masks_at_frame_size(kept, padded_size, image_size, frame_size).any(0).cpu())
    return torch.cat(union)


def evaluate_clips(model: OVAVSS, dataset: AVSSDataset, clips: Sequence[ClipMeta], split: OvSplit) -> dict[str, float]:
    """The ``eval`` metrics (GZSL mIoU all / base / novel / harmonic, AVSS F) and the class-agnostic IoU
    (:mod:`~ovavss_cli.metrics.foreground`) of ``model`` on ``clips``, naming with the 70 AVSS classes."""
    frame_predictions: list[FramePrediction] = []
    foreground = ForegroundIoU()
    with evaluating(model), make_progress(transient=True) as progress:
        task = progress.add_task("validating", total=len(clips))
        for clip in clips:
            prediction = model.predict_clip(dataset.read_frames(clip), *dataset.read_audio(clip), CLASS_NAMES)
            frames = dataset.label_frames(clip)
            masks = sounding_masks(prediction, model.config, tuple(prediction.label_maps.shape[1:]))
            gt = [keep_sounding_classes(dataset.read_labels(clip, f).ids, clip.sounding_ids) > 0 for f in frames]
            foreground.update(masks[frames], np.stack(gt))
            frame_predictions += [FramePrediction(clip, f, prediction.label_maps[f].numpy()) for f in frames]
            progress.advance(task)
    eval_split = EvalSplit(clips=list(clips), base_ids=split.base_ids, novel_ids=split.novel_ids)
    scores = score_predictions(dataset, frame_predictions, split=eval_split, total=len(frame_predictions)).scores
    return {
        "fg_iou": foreground.iou,
        "fg_mean_frame_iou": foreground.mean_frame_iou,
        "miou": scores.gzsl.miou,
        "miou_base": scores.gzsl.miou_base,
        "miou_novel": scores.gzsl.miou_novel,
        "miou_harmonic": scores.gzsl.miou_harmonic,
        "fscore": scores.avss.fscore,
    }


def evaluate_object_clips(model: nn.Module, dataset: AVSObjectDataset, clips: Sequence[ObjectClip]) -> dict[str, float]:
    """Official (batch 4) and clean mJ / mF of an AVSC ``model`` on ``clips``."""
    with evaluating(model):
        scores, _, _ = score_clips(dataset, model_probabilities(model, dataset, clips), total=len(clips))
    return {
        "mJ": scores.official_miou,
        "mF": scores.official_fscore,
        "mJ_clean": scores.miou,
        "mF_clean": scores.fscore,
    }
