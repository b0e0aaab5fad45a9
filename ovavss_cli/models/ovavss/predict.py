"""What ``OVAVSS.predict_clip`` returns, and its window helpers: raw frames + waveform + vocabulary ->
per-frame label maps.

The clip is cut into windows of ``model.window_size`` (5) frames, as the reference runs AVSBench's
10-frame clips; a short last window is padded by repeating its last frame (and audio), and padded
frames never reach CLIP or the outputs. Each window goes through the segmenter, then is named by the
open-vocabulary classifier and painted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..interface import Detection
from .open_vocab import OpenVocabOutput
from .postprocess import KeptMask


@dataclass
class WindowPrediction:
    start: int  # first clip frame of the window
    num_frames: int  # real (unpadded) frames
    open_vocab: OpenVocabOutput  # per-crop logits, per-query probabilities
    kept: list[KeptMask]


@dataclass
class ClipPrediction:
    vocab: tuple[str, ...]
    label_maps: Tensor  # (T, H, W) int64 at the original frame size: 0 = background, i = vocab[i - 1]
    pred_logits: Tensor  # (num_windows, Q, 2): decoder class logits, one row per window
    pred_masks: Tensor  # (num_windows, Q, window, Hp/4, Wp/4): decoder mask logits (padded frames included)
    query_ids: Tensor  # (M,) queries with a non-empty mask, window by window
    window_ids: Tensor  # (M,) the window of each query_ids entry
    class_probs: Tensor  # (M, V) open-vocabulary scores of those queries
    detections: list[Detection]  # what was painted, best first within each window
    windows: list[WindowPrediction]
    audio_embeddings: Tensor  # (T, A) the per-frame audio embeddings used


def pad_window(x: Tensor, window: int) -> Tensor:
    """Repeat the last entry along dim 0 up to ``window`` entries."""
    missing = window - x.shape[0]
    return torch.cat([x, x[-1:].expand(missing, *x.shape[1:])]) if missing > 0 else x
