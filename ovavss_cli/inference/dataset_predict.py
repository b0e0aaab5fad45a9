"""Run a model over AVSBench clips and save its label maps in the ``eval --pred`` layout.

``ovavss eval --weights`` (``inference.evaluate``) uses this: every frame of every clip is predicted
(AVSBench's 10-frame v2 clips as two 5-frame windows, frame k paired with the clip audio's k-th VGGish
example, exactly as the reference's test script does), written as ``PRED_DIR/<uid>/<frame>.png`` (ids =
AVSS class ids, since the vocabulary is the 70 AVSS names in id order), and handed to the scorer as it goes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..data.avsbench import AVSSDataset, ClipMeta
from ..data.classes import CLASS_NAMES
from ..data.labelmap import write_label_png
from ..metrics.evaluate import FramePrediction, prediction_path


def clip_label_maps(
    model,
    dataset: AVSSDataset,
    clip: ClipMeta,
    *,
    threshold: float = 0.3,
    audio: tuple[np.ndarray, int] | None = None,
    run: dict | None = None,
) -> np.ndarray:
    """The model's (T, H, W) label maps of every frame of one clip (painted with the 70 AVSS names: label
    i is class id i); ``audio`` = (waveform, rate) replaces
    the clip's own sound (default: ``dataset.read_audio``); ``run``: predict_clip's run options
    (``precision``, ``clip_queries``; see ``models/run_options.py``)."""
    waveform, rate = audio if audio is not None else dataset.read_audio(clip)
    pred = model.predict_clip(dataset.read_frames(clip), waveform, rate, list(CLASS_NAMES), threshold, **(run or {}))
    return pred.label_maps.numpy()


def gt_frame_predictions(
    model,
    dataset: AVSSDataset,
    clips: Sequence[ClipMeta],
    *,
    threshold: float = 0.3,
    audio_of: Callable[[ClipMeta], tuple[np.ndarray, int]] | None = None,
    on_clip: Callable[[ClipMeta, np.ndarray], None] | None = None,
    run: dict | None = None,
) -> Iterator[FramePrediction]:
    """Predict ``clips`` one at a time and yield their GT frames' predictions, for the scorer.

    ``audio_of(clip) -> (waveform, rate)`` replaces each clip's sound; ``on_clip(clip, label_maps)`` sees
    every frame's maps (e.g. to save them).
    """
    for clip in clips:
        label_maps = clip_label_maps(
            model, dataset, clip, threshold=threshold, audio=audio_of(clip) if audio_of else None, run=run
        )
        if on_clip is not None:
            on_clip(clip, label_maps)
        for frame in dataset.label_frames(clip):
            yield FramePrediction(clip, frame, label_maps[frame])


def label_map_saver(folder: Path) -> Callable[[ClipMeta, np.ndarray], None]:
    """``on_clip`` of :func:`gt_frame_predictions` that writes every frame's map as ``folder/<uid>/<frame>.png``
    (the ``eval --pred`` layout; the caller makes ``folder`` appear once complete)."""

    def save(clip: ClipMeta, label_maps: np.ndarray) -> None:
        for frame, label_map in enumerate(label_maps):
            write_label_png(prediction_path(folder, clip, frame), label_map.astype(np.uint8))

    return save
