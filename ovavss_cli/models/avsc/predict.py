"""AVSC inference: frames + waveform -> sounding-object probabilities, binary masks and (optionally) names.

:func:`sounding_maps` is what evaluation scores: the combined sounding probability of every pixel at the
original frame size (the attended map at stride 4 is upsampled to the padded input, cropped, and resized,
as Mask2Former's semantic inference does with its masks). :func:`predict_clip` is the ``ovavss predict`` API
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
from ..ovavss.predict import Detection, as_frames, frame_audio_embeddings
from ..ovavss.preprocess import normalize_and_pad, resize_shortest_edge
from ..run_options import precision_context


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


def _to_frame_size(maps: Tensor, image_size: tuple[int, int], out_size: tuple[int, int], mode: str) -> Tensor:
    """(N, h4, w4) maps at stride 4 of the padded input -> (N, H, W): upsample x4, crop the padding, resize."""
    options = {} if mode == "nearest" else {"align_corners": False}
    padded = F.interpolate(maps[:, None].float(), scale_factor=4, mode=mode, **options)
    cropped = padded[..., : image_size[0], : image_size[1]]
    return F.interpolate(cropped, size=out_size, mode=mode, **options)[:, 0]


#: What the inference functions take: uint8 (T, H, W, 3) RGB frames, and a waveform (samples,) or (channels, samples).
Frames = np.ndarray | Tensor
Waveform = np.ndarray | Tensor


@torch.no_grad()
def sounding_maps(
    model,
    frames: Frames,
    audio: Waveform | None,
    sample_rate: int,
    *,
    frame_times: Sequence[float] | None = None,
    batch_frames: int = 5,
    precision: str = "fp32",
) -> SoundingMaps:
    """Sounding probabilities of a clip. frames (T, H, W, 3) uint8 RGB; audio: waveform in [-1, 1] (any rate,
    channels averaged) or None for silence; frame k <-> the k-th 0.96-s example unless ``frame_times``;
    ``precision``: the segmenter's autocast, as OV-AVSS's (``run_options.resolve_precision``)."""
    frames = as_frames(frames)
    num_frames, height, width = frames.shape[:3]
    config = model.config
    audio_probs = model.audio_head(frame_audio_embeddings(model, audio, sample_rate, num_frames, frame_times))
    audio_probs = audio_probs.float().sigmoid()  # (T, K)
    resized = resize_shortest_edge(frames, config.min_size_test, config.max_size_test)
    images, image_size = normalize_and_pad(resized, config.size_divisibility)  # (T, 3, Hp, Wp)
    autocast = precision_context(precision, model.device)
    parts: list[tuple[Tensor, ...]] = []
    for start in range(0, num_frames, max(1, batch_frames)):
        stop = start + max(1, batch_frames)
        with autocast:
            instances = model.segment(images[start:stop].to(model.device))
        attended = model.attend(instances, audio_probs[start:stop])
        parts.append(
            (
                _to_frame_size(attended.masks, image_size, (height, width), "bilinear").clamp(0, 1).cpu(),
                _to_frame_size(attended.categories, image_size, (height, width), "nearest").long().cpu(),
                attended.weights.cpu(),
                attended.kept_queries.cpu(),
            )
        )
    probs, categories, weights, kept = (torch.cat(column) for column in zip(*parts, strict=True))
    return SoundingMaps(probs, categories, weights, kept, audio_probs.cpu())


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


def predict_clip(
    model,
    frames: Frames,
    audio: Waveform | None,
    sample_rate: int,
    vocab: Sequence[str],
    threshold: float = 0.3,
    *,
    frame_times: Sequence[float] | None = None,
    batch_frames: int = 5,
    precision: str = "fp32",
    clip_queries: int | None = None,
) -> AVSCPrediction:
    """Segment the sounding objects of a clip and paint them (see the module docstring).

    Same run options as OV-AVSS's ``predict_clip``; AVSC names its objects without CLIP, so there is
    no fast mode and ``clip_queries`` must be None.
    """
    if clip_queries is not None:
        raise OvavssError("--clip-queries: AVSC has no CLIP stage (the fast mode is OV-AVSS only)")
    vocab = tuple(vocab)
    if not vocab or len({_name_key(name) for name in vocab}) != len(vocab):
        raise OvavssError("vocabulary: give at least one name, each once")
    maps = sounding_maps(
        model, frames, audio, sample_rate, frame_times=frame_times, batch_frames=batch_frames, precision=precision
    )
    category_labels = category_vocabulary_labels(model.config.categories, vocab)
    if not bool(category_labels.any()):  # no name is an AVSBench category: one class-agnostic label
        category_labels = torch.ones_like(category_labels)
    painted = (maps.probs > model.config.correlation.threshold) & (maps.weights >= threshold).gather(
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
