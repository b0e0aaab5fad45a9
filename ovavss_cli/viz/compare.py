"""Ground truth | prediction, side by side, for AVSBench-semantic clips.

Predictions are read from ``PRED_DIR/<uid>/<frame>.png`` (label-map PNGs with AVSS ids, the layout
``ovavss eval`` scores); ground truth through ``data.avsbench`` (``labels_semantic`` if present,
else ``labels_rgb``). One image per clip: a title line, then one row per annotated frame with the
ground truth and the prediction drawn over the frame in the AVSBench palette, each with a legend of
the classes it contains. A prediction at another size than the frame (e.g. saved at 224x224) is
resized with nearest neighbour for display; a missing prediction file is drawn as a grey panel
saying so, so a partial predictions folder still gives a picture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..atomic import output_folder, output_or_sibling
from ..console import make_progress
from ..data.avsbench import AVSSDataset, ClipMeta, load_avss
from ..data.classes import AVSS_PALETTE, CLASS_NAMES
from ..data.labelmap import open_png, read_label_png
from ..errors import OvavssError
from .overlay import font_for, overlay, write_image

PANEL_WIDTH = 480


def clips_with_predictions(dataset: AVSSDataset, pred_dir: Path, uids: Sequence[str] = ()) -> list[ClipMeta]:
    """The requested clips (all must exist), or every dataset clip that has a folder in ``pred_dir``."""
    if not pred_dir.is_dir():
        raise OvavssError("predictions folder not found", path=pred_dir)
    if uids:
        return [dataset.clip(uid) for uid in uids]
    clips = [clip for clip in dataset.clips if (pred_dir / clip.uid).is_dir()]
    if not clips:
        raise OvavssError(f"no folder named after a clip of {dataset.root} (expected <uid>/<frame>.png)", pred_dir)
    return clips


def _fit(ids: np.ndarray, height: int, width: int) -> np.ndarray:
    if ids.shape == (height, width):
        return ids
    return np.asarray(Image.fromarray(ids.astype(np.uint8)).resize((width, height), Image.Resampling.NEAREST))


def _panel(image: np.ndarray, ids: np.ndarray | None, missing: str, panel_width: int) -> Image.Image:
    """The frame with labels drawn over it (or a grey panel naming the missing file), ``panel_width`` wide."""
    height, width = image.shape[:2]
    if ids is not None:
        panel = Image.fromarray(overlay(image, _fit(ids, height, width), CLASS_NAMES, AVSS_PALETTE))
    else:
        panel = Image.new("RGB", (width, height), (90, 90, 90))
        ImageDraw.Draw(panel).text((8, 8), f"no prediction:\n{missing}", font=font_for(height, width), fill="white")
    size = (panel_width, max(1, round(height * panel_width / width)))
    return panel.resize(size, Image.Resampling.BILINEAR)


def comparison_image(
    dataset: AVSSDataset, clip: ClipMeta, pred_dir: Path, panel_width: int = PANEL_WIDTH
) -> Image.Image:
    """Title + one row per annotated frame: [ground truth | prediction]."""
    frames = dataset.frame_paths(clip)
    rows = []
    for frame in dataset.label_frames(clip):
        image = np.asarray(open_png(frames[frame]).convert("RGB"))
        truth = dataset.read_labels(clip, frame).ids
        pred_path = pred_dir / clip.uid / f"{frame}.png"
        predicted = read_label_png(pred_path)[0] if pred_path.is_file() else None
        rows.append((_panel(image, truth, "", panel_width), _panel(image, predicted, str(pred_path), panel_width)))
    font = font_for(240, 2 * panel_width)
    title_height = round(font.size * 1.6) * 2
    sheet = Image.new("RGB", (2 * panel_width, title_height + sum(t.height for t, _ in rows)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    sounding = ", ".join(clip.a_obj) or "-"
    draw.text((6, 4), f"{clip.uid}  ({clip.subset}, {clip.split})  sounding: {sounding}", font=font, fill=(0, 0, 0))
    draw.text((6, title_height // 2 + 2), "ground truth", font=font, fill=(0, 0, 0))
    draw.text((panel_width + 6, title_height // 2 + 2), "prediction", font=font, fill=(0, 0, 0))
    top = title_height
    for truth_panel, predicted_panel in rows:
        sheet.paste(truth_panel, (0, top))
        sheet.paste(predicted_panel, (panel_width, top))
        top += truth_panel.height
    return sheet


def render_comparisons(
    dataset: AVSSDataset,
    pred_dir: Path,
    out: Path,
    uids: Sequence[str] = (),
    on_clip: Callable[[], None] | None = None,
) -> list[Path]:
    """Write ``<out>/<uid>.jpg`` for each selected clip; returns the files written."""
    written = []
    for clip in clips_with_predictions(dataset, pred_dir, uids):
        path = out / f"{clip.uid}.jpg"
        write_image(path, np.asarray(comparison_image(dataset, clip, pred_dir)))
        written.append(path)
        if on_clip is not None:
            on_clip()
    return written


def visualize_dataset(
    root: str | Path, pred_dir: str | Path, out: Path | None = None, uids: Sequence[str] = (), force: bool = False
) -> Path:
    """``ovavss visualize PRED_DIR --data ROOT``: comparison sheets in ``out`` (default ``<PRED_DIR>_viz``)."""
    dataset, pred_dir = load_avss(root), Path(pred_dir)
    clips = clips_with_predictions(dataset, pred_dir, uids)
    target = output_or_sibling(out, pred_dir.resolve(), "_viz")
    with make_progress() as progress, output_folder(target, force) as folder:
        task = progress.add_task("GT | prediction", total=len(clips))
        render_comparisons(dataset, pred_dir, folder, [clip.uid for clip in clips], lambda: progress.advance(task))
    return target
