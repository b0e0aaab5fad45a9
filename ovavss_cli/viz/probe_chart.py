"""A grouped bar chart (one group per condition, one bar per metric, values in [0, 1]) drawn with PIL."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_path

#: Okabe-Ito colours: distinguishable by colour-blind readers, in this order.
_COLOURS = ((0, 114, 178), (230, 159, 0), (0, 158, 115), (204, 121, 167), (86, 180, 233), (213, 94, 0), (0, 0, 0))
_GRID = (225, 225, 225)


def grouped_bars_image(
    groups: Sequence[str], series: Sequence[str], values: Sequence[Sequence[float | None]], title: str = ""
) -> Image.Image:
    """``values[g][s]``: the value of series ``s`` in group ``g`` (None: no bar, marked "n/a")."""
    if len(values) != len(groups) or any(len(row) != len(series) for row in values):
        raise ValueError(f"values must be {len(groups)} groups x {len(series)} series")
    font = ImageFont.load_default(size=13)
    small = ImageFont.load_default(size=10)
    pad, bar, gap = 12, 18, 28
    left, top, plot_height = 44, 34, 260
    group_width = len(series) * bar + gap
    plot_width = max(len(groups) * group_width, 240)
    legend_top = top + plot_height + 40
    legend_rows = (len(series) + 2) // 3
    image = Image.new("RGB", (left + plot_width + pad, legend_top + 20 * legend_rows + pad), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.text((pad, pad), title, font=font, fill=(0, 0, 0))

    def y_of(value: float) -> float:
        return top + plot_height * (1.0 - min(max(value, 0.0), 1.0))

    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(tick)
        draw.line((left, y, left + plot_width, y), fill=_GRID)
        draw.text((left - 6, y), f"{tick:g}", font=font, fill=(0, 0, 0), anchor="rm")
    for g, (group, row) in enumerate(zip(groups, values, strict=True)):
        x0 = left + gap / 2 + g * group_width
        for s, value in enumerate(row):
            x = x0 + s * bar
            if value is None:
                draw.text((x + bar / 2, y_of(0.0) - 2), "n/a", font=small, fill=(120, 120, 120), anchor="mb")
                continue
            draw.rectangle((x, y_of(value), x + bar - 3, y_of(0.0)), fill=_COLOURS[s % len(_COLOURS)])
            draw.text((x + bar / 2 - 1, y_of(value) - 2), f"{100 * value:.0f}", font=small, fill=(0, 0, 0), anchor="mb")
        draw.text((x0 + len(series) * bar / 2, y_of(0.0) + 8), group, font=font, fill=(0, 0, 0), anchor="mt")
    draw.line((left, y_of(0.0), left + plot_width, y_of(0.0)), fill=(0, 0, 0))
    column_width = (plot_width + left - pad) // 3
    for s, name in enumerate(series):
        x, y = pad + (s % 3) * column_width, legend_top + 20 * (s // 3)
        draw.rectangle((x, y, x + 12, y + 12), fill=_COLOURS[s % len(_COLOURS)])
        draw.text((x + 18, y + 6), name, font=font, fill=(0, 0, 0), anchor="lm")
    return image


def write_grouped_bars(
    path: str | Path,
    groups: Sequence[str],
    series: Sequence[str],
    values: Sequence[Sequence[float | None]],
    title: str = "",
) -> None:
    """Draw the chart and save it as a PNG, atomically."""
    image = grouped_bars_image(groups, series, values, title)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
