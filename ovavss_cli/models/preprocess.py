"""Clip preprocessing shared by both model families, exactly as the reference feeds its model.

The reference (detectron2 ``DefaultPredictor``) resizes each RGB uint8 frame with
``ResizeShortestEdge(360, max 1333)`` through Pillow ``BILINEAR``, then the model normalises with the
ImageNet mean/std on 0..255 values and pads bottom/right with zeros *after* normalisation to a
multiple of 32 (``ImageList.from_tensors``). Both steps accept one clip ``(T, H, W, 3)`` or a batch of
equal-size clips ``(B, T, H, W, 3)``. The audio of a clip becomes one VGGish embedding per frame
(:func:`frame_audio_embeddings`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..data.audio import REFERENCE_NUM_EXAMPLES, TARGET_RATE, log_mel_examples, log_mel_examples_at
from ..errors import OvavssError

PIXEL_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
PIXEL_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)


def shortest_edge_size(height: int, width: int, short: int = 360, max_size: int = 1333) -> tuple[int, int]:
    """detectron2 ``ResizeShortestEdge.get_output_shape``: (new_h, new_w), rounded with ``int(x + 0.5)``."""
    scale = short / min(height, width)
    new_h, new_w = (float(short), scale * width) if height < width else (scale * height, float(short))
    if max(new_h, new_w) > max_size:
        cap = max_size / max(new_h, new_w)
        new_h, new_w = new_h * cap, new_w * cap
    return int(new_h + 0.5), int(new_w + 0.5)


def _as_uint8_frames(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8 or frames.dim() not in (4, 5) or frames.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 frames (T, H, W, 3) or (B, T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}"
        )
    return frames


def resize_shortest_edge(frames: torch.Tensor | np.ndarray, short: int = 360, max_size: int = 1333) -> torch.Tensor:
    """Resize uint8 RGB frames so the short side is ``short`` (long side at most ``max_size``).

    frames: (T, H, W, 3) or (B, T, H, W, 3) uint8 -> same layout at the new size, uint8, same device.
    Pillow BILINEAR on uint8, as detectron2 does, so the result matches the reference bit for bit.
    """
    frames = _as_uint8_frames(frames)
    height, width = frames.shape[-3:-1]
    new_h, new_w = shortest_edge_size(height, width, short, max_size)
    if (new_h, new_w) == (height, width):
        return frames
    flat = frames.reshape(-1, height, width, 3).cpu().numpy()
    resized = np.stack([np.asarray(Image.fromarray(f).resize((new_w, new_h), Image.Resampling.BILINEAR)) for f in flat])
    return torch.from_numpy(resized).reshape(*frames.shape[:-3], new_h, new_w, 3).to(frames.device)


def normalize_and_pad(
    frames: torch.Tensor | np.ndarray, size_divisibility: int = 32
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Normalise uint8 RGB frames and zero-pad them (after normalisation) to a multiple of ``size_divisibility``.

    frames: (T, H, W, 3) or (B, T, H, W, 3) uint8 -> images (T, 3, Hp, Wp) or (B, T, 3, Hp, Wp) float32
    on the frames' device, plus the unpadded size (H, W).
    """
    frames = _as_uint8_frames(frames)
    height, width = frames.shape[-3:-1]
    mean = torch.tensor(PIXEL_MEAN, dtype=torch.float32, device=frames.device).view(3, 1, 1)
    std = torch.tensor(PIXEL_STD, dtype=torch.float32, device=frames.device).view(3, 1, 1)
    # (x - mean) / std in float32, the reference's exact arithmetic (no multiply by 1/std).
    images = (frames.movedim(-1, -3).float() - mean) / std
    pad_h = -height % size_divisibility
    pad_w = -width % size_divisibility
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h), value=0.0)
    return images.contiguous(), (height, width)


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
