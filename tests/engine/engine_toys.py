"""Small hand-made clips, predictions and a hand-written bilinear read shared by the engine tests."""

from __future__ import annotations

import numpy as np
import torch

from ovavss_cli.engine.matcher import ClipTarget


def bilinear_reference(image: np.ndarray, x: float, y: float) -> float:
    """Read a (H, W) map at normalised (x, y), align_corners False, zeros outside: written out by hand."""
    height, width = image.shape
    u, v = x * width - 0.5, y * height - 0.5
    u0, v0 = int(np.floor(u)), int(np.floor(v))
    total = 0.0
    for dv in (0, 1):
        for du in (0, 1):
            col, row = u0 + du, v0 + dv
            weight = (1 - abs(u - col)) * (1 - abs(v - row))
            if 0 <= row < height and 0 <= col < width:
                total += weight * image[row, col]
    return total


def block_masks(num_objects: int, num_frames: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(N, T, size, size) float {0, 1}: one random axis-aligned rectangle per object and frame."""
    masks = torch.zeros(num_objects, num_frames, size, size)
    for n in range(num_objects):
        for t in range(num_frames):
            top, left = torch.randint(0, size // 2, (2,), generator=generator).tolist()
            height, width = torch.randint(size // 4, size // 2, (2,), generator=generator).tolist()
            masks[n, t, top : top + height, left : left + width] = 1.0
    return masks


def confident_logits(masks: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """Mask logits that say exactly ``masks`` with high confidence."""
    return (masks * 2.0 - 1.0) * scale


def random_clip(
    num_objects: int,
    num_queries: int,
    num_frames: int,
    size: int,
    seed: int,
    frame_valid: list[bool] | None = None,
) -> tuple[dict[str, torch.Tensor], ClipTarget]:
    """A one-clip batch of random predictions with 2 aux outputs, and its target of random blocks."""
    generator = torch.Generator().manual_seed(seed)
    masks = block_masks(num_objects, num_frames, size, generator)
    target = ClipTarget(
        labels=torch.zeros(num_objects, dtype=torch.int64),
        masks=masks,
        frame_valid=None if frame_valid is None else torch.tensor(frame_valid),
    )

    def layer() -> dict[str, torch.Tensor]:
        return {
            "pred_logits": torch.randn(1, num_queries, 2, generator=generator),
            "pred_masks": torch.randn(1, num_queries, num_frames, size // 2, size // 2, generator=generator) * 3,
        }

    outputs = layer()
    outputs["aux_outputs"] = [layer(), layer()]
    return outputs, target


def concat_outputs(first: dict, second: dict) -> dict:
    """Stack two batches' outputs (including the aux outputs) along the batch dimension."""
    merged = {key: torch.cat([first[key], second[key]]) for key in ("pred_logits", "pred_masks")}
    if "aux_outputs" in first:
        pairs = zip(first["aux_outputs"], second["aux_outputs"], strict=True)
        merged["aux_outputs"] = [concat_outputs(a, b) for a, b in pairs]
    return merged
