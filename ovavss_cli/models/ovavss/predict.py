"""``OVAVSS.predict_clip``: raw frames + waveform + vocabulary -> per-frame label maps.

The clip is cut into windows of ``model.window_size`` (5) frames, as the reference runs AVSBench's
10-frame clips; a short last window is padded by repeating its last frame (and audio), and padded
frames never reach CLIP or the outputs. Windows go through the segmenter ``batch_windows`` at a time
(the reference can only run one), then each is named by the open-vocabulary classifier and painted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from rich.progress import Progress
from torch import Tensor

from ...data.audio import REFERENCE_NUM_EXAMPLES, TARGET_RATE, log_mel_examples, log_mel_examples_at
from ...errors import OvavssError
from ..run_options import precision_context
from .open_vocab import OpenVocabOutput, check_vocabulary
from .postprocess import KeptMask, PostprocessConfig, postprocess
from .preprocess import normalize_and_pad, resize_shortest_edge


@dataclass(frozen=True)
class Detection:
    """One painted (window, query, name) triple."""

    window: int
    query: int
    label: int  # 1-based vocabulary index (the value painted in the label maps)
    score: float  # CLIP class probability


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


def as_frames(frames: np.ndarray | Tensor) -> Tensor:
    frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8 or frames.dim() != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        got = f"{frames.dtype} {tuple(frames.shape)}"
        raise OvavssError(f"frames must be uint8 (T, H, W, 3) RGB with T >= 1, got {got}")
    return frames


def _as_mono(audio: np.ndarray | Tensor) -> np.ndarray:
    """(N,) or (C, N) / (N, C) float waveform -> (N,) float64, channels averaged (the reference's down-mix)."""
    wave = torch.as_tensor(audio).detach().to("cpu", torch.float64).numpy()
    if wave.ndim == 2:
        wave = wave.mean(axis=0 if wave.shape[0] <= wave.shape[1] else 1)
    if wave.ndim != 1:
        raise OvavssError(f"audio must be a 1-D waveform (or channels x samples), got shape {wave.shape}")
    return wave


def frame_audio_embeddings(
    model,
    audio: np.ndarray | Tensor | None,
    sample_rate: int,
    num_frames: int,
    frame_times: Sequence[float] | None = None,
) -> Tensor:
    """(T, A) audio embeddings, one per frame.

    Without ``frame_times``: the AVSBench convention (frame k <-> the k-th 0.96-s VGGish example of the
    clip's audio, examples past the end zero-padded in the log-mel domain as the reference does). With
    ``frame_times`` (seconds from the first sample): the 0.96-s window centred on each frame.
    ``audio=None`` is digital silence.
    """
    if frame_times is not None and len(frame_times) != num_frames:
        raise OvavssError(f"frame_times has {len(frame_times)} entries for {num_frames} frames")
    if audio is None:
        wave, sample_rate = np.zeros(num_frames * TARGET_RATE), TARGET_RATE
    else:
        wave = _as_mono(audio)
    if frame_times is None:
        examples = log_mel_examples(wave, sample_rate, pad_to=max(REFERENCE_NUM_EXAMPLES, num_frames))[:num_frames]
    else:
        examples = log_mel_examples_at(wave, sample_rate, frame_times)
    return model.embed_audio(examples)  # (T, A)


def _window_starts(num_frames: int, window: int) -> list[int]:
    return list(range(0, num_frames, window))


def _pad_window(x: Tensor, window: int) -> Tensor:
    """Repeat the last entry along dim 0 up to ``window`` entries."""
    missing = window - x.shape[0]
    return torch.cat([x, x[-1:].expand(missing, *x.shape[1:])]) if missing > 0 else x


@torch.no_grad()
def predict_clip(
    model,
    frames: np.ndarray | Tensor,
    audio: np.ndarray | Tensor | None,
    sample_rate: int,
    vocab: Sequence[str],
    threshold: float = 0.3,
    *,
    frame_times: Sequence[float] | None = None,
    batch_windows: int = 1,
    progress: Progress | None = None,
    precision: str = "fp32",
    clip_queries: int | None = None,
) -> ClipPrediction:
    """Segment the sounding objects of a clip and name them with ``vocab``.

    frames: (T, H, W, 3) uint8 RGB at the original size; audio: waveform in [-1, 1] covering the clip
    (any rate: resampled to 16 kHz; several channels: averaged), or None for silence.
    precision: "fp32" (parity), "fp16", "bf16" or "auto" (``run_options.resolve_precision``): the autocast of
    the segmenter and the CLIP towers. clip_queries: the fast mode (only the K queries most likely to
    be sounding go to CLIP; None = all, the reference).
    """
    vocab = tuple(vocab)
    check_vocabulary(vocab)
    frames = as_frames(frames)
    num_frames, height, width = frames.shape[:3]
    config = model.config
    window = config.window_size
    device = model.device

    audio_embeddings = frame_audio_embeddings(model, audio, sample_rate, num_frames, frame_times)
    resized = resize_shortest_edge(frames, config.min_size_test, config.max_size_test)  # (T, h, w, 3) uint8
    images, image_size = normalize_and_pad(resized, config.size_divisibility)  # (T, 3, Hp, Wp)
    padded_size = tuple(images.shape[-2:])
    frames_chw = resized.permute(0, 3, 1, 2)  # (T, 3, h, w) uint8: what CLIP crops

    starts = _window_starts(num_frames, window)
    autocast = precision_context(precision, device)
    logits_out, masks_out, windows, label_maps, detections = [], [], [], [], []
    postprocess_config = PostprocessConfig(score_threshold=threshold)
    for first in range(0, len(starts), max(1, batch_windows)):
        group = starts[first : first + max(1, batch_windows)]
        batch_images = torch.stack([_pad_window(images[s : s + window], window) for s in group]).to(device)
        batch_audio = torch.stack([_pad_window(audio_embeddings[s : s + window], window) for s in group])
        with autocast:
            outputs = model(batch_images, batch_audio.to(device))
        logits_out.append(outputs["pred_logits"])
        masks_out.append(outputs["pred_masks"])
        for offset, start in enumerate(group):
            real = min(window, num_frames - start)
            masks = outputs["pred_masks"][offset, :, :real]  # (Q, real, Hp/4, Wp/4)
            window_frames, window_logits = frames_chw[start : start + real], outputs["pred_logits"][offset]
            with autocast:
                named = model.open_vocab(
                    window_frames, masks, padded_size, vocab, window_logits, progress, clip_queries=clip_queries
                )
            painted = postprocess(
                named.class_probs, named.query_ids, masks, padded_size, image_size, (height, width), postprocess_config
            )
            index = len(windows)
            windows.append(WindowPrediction(start, real, named, painted.kept))
            label_maps.append(painted.label_maps.cpu())
            detections += [Detection(index, k.query, k.label, k.score) for k in painted.kept]

    return ClipPrediction(
        vocab=vocab,
        label_maps=torch.cat(label_maps),
        pred_logits=torch.cat(logits_out),
        pred_masks=torch.cat(masks_out),
        query_ids=torch.cat([w.open_vocab.query_ids.cpu() for w in windows]),
        window_ids=torch.cat([torch.full((len(w.open_vocab.query_ids),), i) for i, w in enumerate(windows)]),
        class_probs=torch.cat([w.open_vocab.class_probs.cpu() for w in windows]),
        detections=detections,
        windows=windows,
        audio_embeddings=audio_embeddings,
    )
