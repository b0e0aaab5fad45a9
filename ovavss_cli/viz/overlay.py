"""Label maps drawn over images: colour tables, alpha blending, legends, and overlays of a predict folder.

Conventions shared by every drawing function: a label map holds ids, 0 = background; ``names[i - 1]``
is the name of id i and ``colours[i]`` its colour (row 0 unused). Dataset labels use the AVSBench
palette (``classes.AVSS_PALETTE`` with ``classes.CLASS_NAMES``) so pictures match the dataset's own
``labels_rgb``; a free vocabulary gets :func:`vocab_colours`, whose first colours are chosen to be
far apart (the VOC palette starts with dark, similar colours that vanish on video).
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_path, output_folder, output_or_sibling
from ..console import make_progress
from ..data.labelmap import read_label_png
from ..data.media import iter_sampled_frames, probe
from ..data.predictions import PredictionFolder, read_prediction_folder
from ..errors import OvavssError
from .timeline import write_timeline

DEFAULT_ALPHA = 0.5

#: High-contrast colours for the first names of a free vocabulary (after Kelly's / Tableau's tables).
_DISTINCT = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
    (0, 0, 128), (128, 128, 128),
)  # fmt: skip


def vocab_colours(count: int) -> np.ndarray:
    """(count + 1, 3) uint8 colours for ids 0..count of a free vocabulary (row 0, background, is black)."""
    colours = np.zeros((count + 1, 3), dtype=np.uint8)
    for index in range(count):
        if index < len(_DISTINCT):
            colours[index + 1] = _DISTINCT[index]
        else:  # golden-ratio hue steps keep later colours apart from their neighbours
            hue = (index * 0.618033988749895) % 1.0
            colours[index + 1] = [round(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.85, 0.95)]
    return colours


def blend(image: np.ndarray, label_map: np.ndarray, colours: np.ndarray, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """(H, W, 3) uint8 with each labelled pixel mixed with its label's colour; background untouched."""
    if label_map.shape != image.shape[:2]:
        raise ValueError(f"label map {label_map.shape} does not match image {image.shape[:2]}")
    out = image.copy()
    labelled = label_map > 0
    mixed = (1.0 - alpha) * image[labelled] + alpha * colours[label_map[labelled]]
    out[labelled] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------------------------
# legends


@dataclass(frozen=True)
class LegendEntry:
    name: str
    colour: tuple[int, int, int]
    active: bool  # present in the frame (inactive names are drawn dimmed)


def legend_entries(
    label_map: np.ndarray, names: Sequence[str], colours: np.ndarray, show_all: bool
) -> list[LegendEntry]:
    """The legend of a frame: every name (present ones active) or only the present ones."""
    present = {int(i) for i in np.unique(label_map) if i > 0}
    ids = range(1, len(names) + 1) if show_all else sorted(present)
    return [LegendEntry(names[i - 1], tuple(int(c) for c in colours[i]), i in present) for i in ids]


def font_for(height: int, width: int) -> ImageFont.ImageFont:
    """Pillow's bundled font at a size readable on this image (about 1/28 of its short side)."""
    return ImageFont.load_default(size=max(11, round(min(height, width) / 28)))


def legend_layer(height: int, width: int, entries: Sequence[LegendEntry]) -> Image.Image:
    """A transparent (H, W) RGBA layer with the legend box (swatch + name per entry) in the top-left corner."""
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    font = font_for(height, width)
    line = round(font.size * 1.35)
    pad, swatch = max(3, font.size // 3), font.size
    # At most the upper half of the image (a larger legend would hide the picture it explains);
    # when names must be left out, the ones present in the frame are kept first.
    rows = max(0, (height // 2 - 2 * pad) // line)
    if len(entries) > rows:
        entries = sorted(entries, key=lambda entry: not entry.active)[:rows]
    if not entries:
        return layer
    text_width = max(font.getbbox(entry.name)[2] for entry in entries)
    draw = ImageDraw.Draw(layer)
    right, bottom = min(width, 4 * pad + swatch + text_width), 2 * pad + len(entries) * line
    draw.rectangle((pad, pad, right - 1, bottom - 1), fill=(0, 0, 0, 150))  # PIL includes both corners
    for row, entry in enumerate(entries):
        top = 2 * pad + row * line
        fill = entry.colour if entry.active else tuple(c // 3 + 60 for c in entry.colour)
        draw.rectangle((2 * pad, top, 2 * pad + swatch, top + swatch), fill=(*fill, 255))
        text = (255, 255, 255, 255) if entry.active else (150, 150, 150, 255)
        draw.text((3 * pad + swatch, top + swatch / 2), entry.name, font=font, fill=text, anchor="lm")
    return layer


def draw_legend(image: np.ndarray, entries: Sequence[LegendEntry]) -> np.ndarray:
    """The image with :func:`legend_layer` composited over it (a new array)."""
    if not entries:
        return image
    layer = legend_layer(image.shape[0], image.shape[1], entries)
    return np.asarray(Image.alpha_composite(Image.fromarray(image).convert("RGBA"), layer).convert("RGB"))


def overlay(
    image: np.ndarray,
    label_map: np.ndarray,
    names: Sequence[str],
    colours: np.ndarray,
    show_all_names: bool = False,
) -> np.ndarray:
    """Blend the label map over the image and add a legend."""
    entries = legend_entries(label_map, names, colours, show_all_names)
    return draw_legend(blend(image, label_map, colours), entries)


class OverlayPainter:
    """Paints video frames for ``overlay.mp4``: consecutive frames share a label map, so its mask and
    legend are prepared once per map (``key``) and only the blend is redone per frame."""

    def __init__(self, names: Sequence[str], colours: np.ndarray):
        self.names, self.colours = tuple(names), colours
        self._key: object = None
        self._legend: tuple[np.ndarray, np.ndarray] | None = None  # (RGB patch, alpha) of the legend corner

    def paint(self, image: np.ndarray, label_map: np.ndarray, key: object) -> np.ndarray:
        if key != self._key:
            self._key = key
            self._legend = self._legend_patch(label_map)
        out = blend(image, label_map, self.colours)
        patch, weight = self._legend
        rows, cols = patch.shape[:2]
        region = out[:rows, :cols].astype(np.float32)
        out[:rows, :cols] = np.rint(region + weight * (patch - region)).astype(np.uint8)
        return out

    def _legend_patch(self, label_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The legend's corner as (colour (h, w, 3), opacity (h, w, 1)) floats."""
        entries = legend_entries(label_map, self.names, self.colours, show_all=True)
        layer = legend_layer(label_map.shape[0], label_map.shape[1], entries)
        _, _, right, bottom = layer.getbbox() or (0, 0, 0, 0)
        rgba = np.asarray(layer, dtype=np.float32)[:bottom, :right]
        return rgba[..., :3], rgba[..., 3:] / 255.0


# ---------------------------------------------------------------------------------------------
# a predict output folder -> overlay images + timeline


def write_image(path: Path, image: np.ndarray) -> None:
    """Save an RGB array atomically; the format follows the suffix (JPEG quality 90)."""
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(
            tmp, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG", quality=90
        )


def render_prediction_folder(
    predictions: PredictionFolder,
    out: Path,
    video: Path | None = None,
    on_frame: Callable[[], None] | None = None,
) -> list[Path]:
    """Write ``overlays/<index>.jpg`` (each sampled frame with its masks and legend) and ``timeline.png``.

    The frames are decoded again from ``video`` (default: the input recorded in predictions.json)
    with the same sampling, so they are the very frames the model saw.
    """
    if video is None:
        video = predictions.input_path
        if not video.exists():
            raise OvavssError("the predicted video is not there any more (pass --video PATH)", path=video)
    info = probe(video)
    vocab = predictions.vocab
    colours = vocab_colours(len(vocab))
    by_index = {frame["index"]: frame for frame in predictions.frames}
    written = []
    for sampled in iter_sampled_frames(video, float(predictions.data["sample_fps"]), info):
        frame = by_index.get(sampled.index)
        if frame is None:
            break
        label_map, _ = read_label_png(predictions.mask_path(frame))
        if label_map.shape != sampled.image.shape[:2]:
            raise OvavssError(
                f"frame size {sampled.image.shape[1]}x{sampled.image.shape[0]} does not match the masks "
                f"({label_map.shape[1]}x{label_map.shape[0]}); is this the video that was predicted?",
                path=video,
            )
        path = out / "overlays" / f"{sampled.index:05d}.jpg"
        write_image(path, overlay(sampled.image, label_map, vocab, colours, show_all_names=True))
        written.append(path)
        if on_frame is not None:
            on_frame()
    if len(written) != len(by_index):
        raise OvavssError(f"gave {len(written)} sampled frames, predictions.json has {len(by_index)}", path=video)
    timeline = out / "timeline.png"
    times = [frame["sample_time"] for frame in predictions.frames]
    write_timeline(timeline, vocab, times, predictions.score_matrix(), float(predictions.data["sample_fps"]))
    return [*written, timeline]


def visualize_prediction_folder(
    folder: str | Path, out: Path | None = None, video: Path | None = None, force: bool = False
) -> Path:
    """``ovavss visualize PREDICT_OUT``: overlay images and a timeline in ``out`` (default ``<folder>_viz``)."""
    predictions = read_prediction_folder(folder)
    target = output_or_sibling(out, predictions.folder.resolve(), "_viz")
    with make_progress() as progress, output_folder(target, force) as staging:
        task = progress.add_task("overlays", total=len(predictions.frames))
        render_prediction_folder(predictions, staging, video, lambda: progress.advance(task))
    return target
