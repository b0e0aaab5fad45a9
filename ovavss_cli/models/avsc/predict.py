"""AVSC inference results and helpers: frames + waveform -> sounding-object probabilities, binary masks and
(optionally) names.

``AVSC.sounding_maps`` is what evaluation scores: the combined sounding probability of every pixel at the
original frame size (the attended map at stride 4 is upsampled to the padded input, cropped, and resized,
as Mask2Former's semantic inference does with its masks). ``AVSC.predict_clip`` is the ``ovavss predict`` API
(same signature and result fields as OV-AVSS's): pixels with probability > ``correlation.threshold`` (0.5)
are sounding; they are painted with

* **the user's names** when some vocabulary entries name AVSBench categories (an AVSS class name such as
  ``violin`` / ``emergency car``, or an S4 category such as ``playing_violin``; case, ``-``, ``_`` and spaces
  do not matter): a pixel gets the name of the category whose weighted instance is strongest there, and
  pixels of categories not in the vocabulary stay unpainted;
* **label 1** (the first vocabulary entry, e.g. ``--vocab sounding``) otherwise: the class-agnostic mask.

``threshold`` is the minimum weight (audio score x class confidence) of a category to be painted, the
counterpart of OV-AVSS's minimum (query, name) score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...data.classes import S4_CATEGORY_TO_CLASS
from ...errors import OvavssError
from ..interface import Detection


@dataclass
class SoundingMaps:
    """Per-frame results at the original frame size (H, W)."""

    probs: Tensor  # (T, H, W) float32: sounding probability
    categories: Tensor  # (T, H, W) int64: index into model.config.categories of the strongest weighted instance
    weights: Tensor  # (T, K): the weight (audio x confidence) of each category's kept instance
    kept_queries: Tensor  # (T, K) int64
    audio_probs: Tensor  # (T, K): audio head probabilities


@dataclass
class AVSCPrediction:
    vocab: tuple[str, ...]
    label_maps: Tensor  # (T, H, W) int64: 0 = background, i = vocab[i - 1]
    sounding: SoundingMaps
    category_labels: Tensor  # (K,) int64: the vocabulary label each category is painted with (0 = not named)
    detections: list[Detection]  # one per painted name: its best weight and that frame's kept query


def to_frame_size(maps: Tensor, image_size: tuple[int, int], out_size: tuple[int, int], mode: str) -> Tensor:
    """(N, h4, w4) maps at stride 4 of the padded input -> (N, H, W): upsample x4, crop the padding, resize."""
    options = {} if mode == "nearest" else {"align_corners": False}
    padded = F.interpolate(maps[:, None].float(), scale_factor=4, mode=mode, **options)
    cropped = padded[..., : image_size[0], : image_size[1]]
    return F.interpolate(cropped, size=out_size, mode=mode, **options)[:, 0]


#: Frames segmented at once (bounds memory; each frame is segmented on its own).
FRAMES_PER_BATCH = 5
#: What the inference functions take: uint8 (T, H, W, 3) RGB frames, and a waveform (samples,) or (channels, samples).
Frames = np.ndarray | Tensor
Waveform = np.ndarray | Tensor


def _name_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name).strip().casefold()


def category_vocabulary_labels(categories: Sequence[str], vocab: Sequence[str]) -> Tensor:
    """(K,) int64: for each model category, the 1-based index of the vocabulary entry naming it, else 0."""
    s4_names = {avss: s4 for s4, avss in S4_CATEGORY_TO_CLASS.items()}
    by_key = {_name_key(name): index + 1 for index, name in enumerate(vocab)}
    labels = []
    for category in categories:
        keys = {_name_key(category), _name_key(s4_names.get(category, category))}
        labels.append(next((by_key[key] for key in keys if key in by_key), 0))
    return torch.tensor(labels, dtype=torch.int64)


def check_names(vocab: Sequence[str]) -> tuple[str, ...]:
    """The vocabulary as a tuple: at least one name, each once (case, ``-``, ``_`` and spaces aside)."""
    vocab = tuple(vocab)
    if not vocab or len({_name_key(name) for name in vocab}) != len(vocab):
        raise OvavssError("vocabulary: give at least one name, each once")
    return vocab


def paint_vocabulary(
    maps: SoundingMaps, categories: Sequence[str], sounding_threshold: float, vocab: tuple[str, ...], threshold: float
) -> AVSCPrediction:
    """Label maps from a clip's sounding maps (see the module docstring): pixels above ``sounding_threshold``
    whose category weighs at least ``threshold``, painted with the vocabulary label of their category."""
    category_labels = category_vocabulary_labels(categories, vocab)
    if not bool(category_labels.any()):  # no name is an AVSBench category: one class-agnostic label
        category_labels = torch.ones_like(category_labels)
    painted = (maps.probs > sounding_threshold) & (maps.weights >= threshold).gather(
        1, maps.categories.flatten(1)
    ).view_as(maps.categories)
    label_maps = torch.where(painted, category_labels[maps.categories], 0)
    detections = []
    for label in label_maps.unique().tolist():
        if label == 0:
            continue
        # The strongest (frame, category) among the categories painted with this name.
        named = (category_labels == label)[None].expand_as(maps.weights)
        frame, category = divmod(int(torch.where(named, maps.weights, -1.0).argmax()), maps.weights.shape[1])
        score = float(maps.weights[frame, category])
        detections.append(Detection(0, int(maps.kept_queries[frame, category]), int(label), score))
    detections.sort(key=lambda detection: -detection.score)
    return AVSCPrediction(vocab, label_maps, maps, category_labels, detections)
