"""Presenting evaluation results: the rich per-class table, a one-line summary, and the JSON file.

``class_set`` ("all", "base" or "novel", from ``--base`` / ``--novel``) only chooses what the
terminal shows: the headline numbers and the table rows. The JSON always carries every metric and
all 71 classes, and records which set was shown.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.table import Table

from ..atomic import atomic_write_text
from ..console import console
from ..data.classes import BASE_IDS, LABEL_NAMES, NOVEL_IDS, NUM_LABELS
from ..errors import OvavssError
from ..version import __version__
from .evaluate import PROTOCOL, EvalResult

#: How many GT files with unknown colours the JSON lists by name (the count is always complete).
_UNKNOWN_FILES_LISTED = 20

#: Headline metrics per class set: (JSON key, short label).
_HEADLINES: dict[str, tuple[tuple[str, str], ...]] = {
    "all": (
        ("miou", "mIoU"),
        ("miou_base", "base"),
        ("miou_novel", "novel"),
        ("miou_harmonic", "harmonic"),
        ("avss_miou", "AVSS mIoU"),
        ("avss_fscore", "AVSS F"),
    ),
    "base": (("miou_base", "mIoU base"), ("fscore_base", "F base")),
    "novel": (("miou_novel", "mIoU novel"), ("fscore_novel", "F novel")),
}


def class_set_from_flags(base: bool, novel: bool) -> str:
    """``--base`` / ``--novel`` -> "base" / "novel" / "all"."""
    if base and novel:
        raise OvavssError("--base and --novel are mutually exclusive (give neither to see all classes)")
    return "base" if base else "novel" if novel else "all"


def class_split(label: int, base_ids: tuple[int, ...] = BASE_IDS, novel_ids: tuple[int, ...] = NOVEL_IDS) -> str:
    """The set a label id belongs to: "background", "base", "novel" or "unused" (in neither set)."""
    if label == 0:
        return "background"
    return "base" if label in base_ids else "novel" if label in novel_ids else "unused"


def _fraction(value: float) -> float | None:
    """A metric for JSON: NaN (undefined, e.g. no novel class in the split) becomes null."""
    return None if math.isnan(value) else float(value)


def results_payload(result: EvalResult, class_set: str = "all") -> dict:
    """The JSON document of ``ovavss eval --json``: fractions in [0, 1], null where undefined."""
    gzsl, avss = result.scores.gzsl, result.scores.avss
    confusion = result.scores.confusion
    split = result.split
    per_class = [
        {
            "id": label,
            "name": LABEL_NAMES[label],
            "set": class_split(label, split.base_ids, split.novel_ids),
            "iou": _fraction(gzsl.iou[label]),
            "gt_pixels": int(confusion[label].sum()),
            "pred_pixels": int(confusion[:, label].sum()),
            "avss_iou": _fraction(avss.class_iou[label]),
            "avss_fscore": _fraction(avss.class_fscore[label]),
            "avss_frames": int(avss.class_frames[label]),
        }
        for label in range(NUM_LABELS)
    ]
    return {
        "format": "ovavss-eval/1",
        "protocol": PROTOCOL,
        "ovavss_version": __version__,
        "resolution": result.config.size,
        "class_set": class_set,
        "miou": _fraction(gzsl.miou),
        "miou_base": _fraction(gzsl.miou_base),
        "miou_novel": _fraction(gzsl.miou_novel),
        "miou_harmonic": _fraction(gzsl.miou_harmonic),
        "avss_miou": _fraction(avss.miou),
        "avss_fscore": _fraction(avss.fscore),
        "fscore_base": _fraction(avss.fscore_base),
        "fscore_novel": _fraction(avss.fscore_novel),
        "clips": result.clips,
        "frames": result.frames,
        "missing_predictions": result.missing_predictions,
        "gt_filter_to_a_obj": result.config.filter_gt_to_sounding,
        "gt_filtered_pixels": result.gt_filtered_pixels,
        "gt_source": result.config.gt_source,
        "gt_sources_used": result.gt_sources,
        "gt_unknown_pixels": result.gt_unknown_pixels,
        "gt_unknown_files": len(result.gt_unknown_files),
        "gt_unknown_files_first": result.gt_unknown_files[:_UNKNOWN_FILES_LISTED],
        "split_file": split.split_file.name if split.split_file else None,
        "split_sha256": split.split_sha256,
        "base_ids": list(split.base_ids),
        "novel_ids": list(split.novel_ids),
        "per_class": per_class,
    }


def write_results_json(path: str | Path, payload: dict) -> None:
    """Write the results JSON atomically (temp file + rename)."""
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def per_class_table(payload: dict) -> Table:
    """Per-class rows of the shown class set: classes neither in GT nor predicted are left out."""
    class_set = payload["class_set"]
    rows = [row for row in payload["per_class"] if class_set == "all" or row["set"] == class_set]
    shown = [row for row in rows if row["iou"] is not None]
    table = Table(
        title=f"OV-AVSS evaluation, {class_set} classes ({payload['clips']} clips, {payload['frames']} frames)",
        caption=f"{len(rows) - len(shown)} classes neither in GT nor predicted are not shown; values in %",
    )
    for header in ("id", "class", "set", "IoU", "AVSS IoU", "AVSS F", "frames", "GT px", "pred px"):
        table.add_column(header, justify="left" if header in ("class", "set") else "right")
    style = {"base": "green", "novel": "red", "background": "dim"}
    for row in shown:
        table.add_row(
            str(row["id"]),
            row["name"],
            f"[{style.get(row['set'], '')}]{row['set']}[/]",
            _percent(row["iou"]),
            _percent(row["avss_iou"]),
            _percent(row["avss_fscore"]),
            str(row["avss_frames"]),
            f"{row['gt_pixels']:,}",
            f"{row['pred_pixels']:,}",
        )
    return table


def summary_line(payload: dict) -> str:
    """One line with the headline numbers of the shown class set, in percent."""
    parts = [f"{label} {_percent(payload[key])}" for key, label in _HEADLINES[payload["class_set"]]]
    return " | ".join(parts) + f"  (%, {payload['clips']} clips, {payload['frames']} frames)"


def show_results(payload: dict) -> None:
    """Print the per-class table and any data warnings to the (stderr) console."""
    console.print(per_class_table(payload))
    if payload["missing_predictions"]:
        console.print(f"[yellow]{payload['missing_predictions']} GT frames had no prediction (scored as background)")
    if payload["gt_unknown_pixels"]:
        console.print(
            f"[yellow]{payload['gt_unknown_pixels']} GT pixels (at {payload['resolution']}x{payload['resolution']}) "
            f"in {payload['gt_unknown_files']} files have colours outside the palette (scored as background, as "
            "the reference does)"
        )
