"""A timeline image of which names sound when: one row per vocabulary name, time on x, colour = score.

Each sampled frame covers its 1/fps interval (sample k at ``(k + 0.5) / fps`` covers
``[k / fps, (k + 1) / fps)``); a cell is grey where the name was not painted in that frame and
coloured by the segment's score otherwise (viridis, with a colour bar under the plot).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_path

#: Viridis at 0, 1/4, 1/2, 3/4, 1 (perceptually ordered, readable in grey and by colour-blind readers).
_VIRIDIS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], dtype=np.float64)
_EMPTY = (232, 232, 232)
_ROW_HEIGHT = 22  # pixels per name row
_NICE_STEPS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def score_colour(score: float) -> tuple[int, int, int]:
    """Viridis colour of a score in [0, 1]."""
    position = float(np.clip(score, 0.0, 1.0)) * (len(_VIRIDIS) - 1)
    low = min(int(position), len(_VIRIDIS) - 2)
    mixed = _VIRIDIS[low] + (position - low) * (_VIRIDIS[low + 1] - _VIRIDIS[low])
    return tuple(int(round(c)) for c in mixed)


def _time_label(seconds: float) -> str:
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{seconds:g}s"


def timeline_image(names: Sequence[str], sample_times: Sequence[float], scores: np.ndarray, fps: float) -> Image.Image:
    """Draw the timeline; ``scores`` is (frames, names) with 0 where a name is absent."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(sample_times), len(names)):
        raise ValueError(f"scores {scores.shape} must be (frames={len(sample_times)}, names={len(names)})")
    font = ImageFont.load_default(size=13)
    pad = 10
    label_width = max((font.getbbox(name)[2] for name in names), default=0) + 2 * pad
    total = max(len(sample_times) / fps, 1e-6)  # sample k covers [k / fps, (k + 1) / fps)
    plot_width = int(np.clip(len(sample_times) * 24, 480, 1600))
    plot_top, plot_height = pad, len(names) * _ROW_HEIGHT
    axis_top = plot_top + plot_height + 4
    bar_top = axis_top + 26
    image = Image.new("RGB", (label_width + plot_width + pad, bar_top + 14 + 2 * pad), (255, 255, 255))
    draw = ImageDraw.Draw(image)

    def x_of(seconds: float) -> float:
        return label_width + plot_width * seconds / total

    for row, name in enumerate(names):
        top = plot_top + row * _ROW_HEIGHT
        draw.text((label_width - pad, top + _ROW_HEIGHT / 2), name, font=font, fill=(0, 0, 0), anchor="rm")
        draw.rectangle((label_width, top + 1, label_width + plot_width - 1, top + _ROW_HEIGHT - 2), fill=_EMPTY)
        for frame, sample_time in enumerate(sample_times):
            if scores[frame, row] > 0:
                start = sample_time - 0.5 / fps
                box = (x_of(start), top + 1, max(x_of(start + 1 / fps) - 1, x_of(start)), top + _ROW_HEIGHT - 2)
                draw.rectangle(box, fill=score_colour(scores[frame, row]))

    step = next((s for s in _NICE_STEPS if total / s <= 10), _NICE_STEPS[-1])
    for tick in np.arange(0.0, total + 1e-9, step):
        x = x_of(float(tick))
        draw.line((x, axis_top - 3, x, axis_top + 2), fill=(0, 0, 0))
        draw.text((x, axis_top + 4), _time_label(float(tick)), font=font, fill=(0, 0, 0), anchor="mt")

    bar_left, bar_width = label_width + plot_width - 160, 120
    draw.text((bar_left - 6, bar_top + 6), "score 0", font=font, fill=(0, 0, 0), anchor="rm")
    for offset in range(bar_width):
        draw.line((bar_left + offset, bar_top, bar_left + offset, bar_top + 12), fill=score_colour(offset / bar_width))
    draw.text((bar_left + bar_width + 6, bar_top + 6), "1", font=font, fill=(0, 0, 0), anchor="lm")
    return image


def write_timeline(
    path: str | Path, names: Sequence[str], sample_times: Sequence[float], scores: np.ndarray, fps: float
) -> None:
    """Draw the timeline and save it as a PNG, atomically."""
    image = timeline_image(names, sample_times, scores, fps)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
