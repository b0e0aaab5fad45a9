"""Frame preprocessing, exactly as the reference feeds its model.

The reference (detectron2 ``DefaultPredictor``) resizes each RGB uint8 frame with
``ResizeShortestEdge(360, max 1333)`` through Pillow ``BILINEAR``, then the model normalises with the
ImageNet mean/std on 0..255 values and pads bottom/right with zeros *after* normalisation to a
multiple of 32 (``ImageList.from_tensors``). Both steps accept one clip ``(T, H, W, 3)`` or a batch of
equal-size clips ``(B, T, H, W, 3)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

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
