"""``ovavss check``: audit an AVSBench root (AVSBench-semantic, or AVSBench-object S4 / MS3).

The report has per-(subset or task, split) counts and findings (:data:`KINDS`). **Problems** make
the check fail (exit 1): missing or unreadable files (a clip short of its 5 / 10 frames, or of a
label its frames call for, counts as missing), unknown palette colours or index values,
``labels_rgb`` / ``labels_semantic`` disagreement. **Warnings** are expected on the real data and
do not fail it: the quirky metadata rows, ground-truth classes not in ``a_obj`` (label noise),
more frames than nominal, clip folders not in the metadata, a label tree absent from every clip,
files of other tools.

Every expected file is looked for; label PNGs and masks are decoded, frames and audio are not.
Decoding all 73k annotated frame pairs of the release takes many minutes (progress is shown);
``fast`` decodes only the first annotated frame of each clip.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ..atomic import atomic_write_text, refuse_force_without_output, refuse_overwrite
from ..console import make_progress
from ..errors import OvavssError
from .avsbench import (
    LABEL_DIRS,
    METADATA_FILE,
    NOMINAL_FRAMES,
    SPLITS,
    SUBSETS,
    AVSSDataset,
    ClipMeta,
    load_avss,
    require_dataset_dir,
)
from .avsobject import FRAMES_PER_CLIP, TASK_LAYOUT, AVSObjectDataset, ObjectClip, find_object_roots, load_avsobject
from .classes import AVSS_PALETTE, LABEL_NAMES
from .labelmap import decode_palette, open_png, read_label_png

CHECK_FORMAT = "ovavss-check/1"
#: finding kind -> what it means; kinds in PROBLEM_KINDS fail the check.
KINDS: dict[str, str] = {
    "missing": "expected file or folder not found",
    "unreadable": "file cannot be decoded",
    "unknown-colour": "labels_rgb pixels whose colour is no palette entry (read as background)",
    "unknown-value": "labels_semantic pixels above 70 (read as background)",
    "rgb-semantic-mismatch": "labels_rgb and labels_semantic disagree",
    "gt-not-in-a_obj": "ground-truth classes the clip's a_obj does not list (label noise)",
    "frame-count": "more frames than the nominal 5 (v1, S4, MS3) / 10 (v2)",
    "extra-folder": "clip folder not listed in the metadata",
    "label-tree-absent": "a label tree is absent from every clip (the other one is used)",
    "quirk": "quirky metadata row, resolved",
    "tool-files": "files of other tools (COMBO caches, ...), ignored",
}
PROBLEM_KINDS = frozenset({"missing", "unreadable", "unknown-colour", "unknown-value", "rgb-semantic-mismatch"})
#: Files and folders other tools write into an AVSS clip folder (avsbench-format.md §1.1).
TOOL_ENTRIES = ("audio.pkl", "processed_frames", "processed_labels_semantic")


@dataclass(frozen=True)
class Finding:
    kind: str  # a key of KINDS
    path: str  # relative to the checked root
    detail: str = ""


@dataclass
class GroupCounts:
    group: str  # subset (v1s / v1m / v2) or task (s4 / ms3)
    split: str
    clips: int = 0
    frames: int = 0  # frame files found
    annotated: int = 0  # ground-truth frames found


@dataclass
class CheckReport:
    root: Path
    layout: str  # "avss" | "avsbench-object"
    fast: bool
    counts: list[GroupCounts] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    labels_decoded: int = 0

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.kind in PROBLEM_KINDS]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.kind not in PROBLEM_KINDS]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        by_kind = {
            kind: [{"path": f.path, "detail": f.detail} for f in items] for kind, items in _group(self.findings).items()
        }
        return {
            "format": CHECK_FORMAT,
            "root": str(self.root),
            "layout": self.layout,
            "fast": self.fast,
            "ok": self.ok,
            "labels_decoded": self.labels_decoded,
            "counts": [vars(row) for row in self.counts],
            "problems": {kind: items for kind, items in by_kind.items() if kind in PROBLEM_KINDS},
            "warnings": {kind: items for kind, items in by_kind.items() if kind not in PROBLEM_KINDS},
        }


class _Collector:
    """Accumulates findings and counts with paths relative to the root."""

    def __init__(self, report: CheckReport):
        self.report = report
        self._counts: dict[tuple[str, str], GroupCounts] = {}

    def add(self, kind: str, path: Path | str, detail: str = "") -> None:
        """Record a finding; a ``path`` under the root is shown relative to it, "" means no file."""
        if isinstance(path, Path):
            path = (path.relative_to(self.report.root) if path.is_relative_to(self.report.root) else path).as_posix()
        self.report.findings.append(Finding(kind, path, detail))

    def counts(self, group: str, split: str) -> GroupCounts:
        key = (group, split)
        if key not in self._counts:
            self._counts[key] = GroupCounts(group, split)
        return self._counts[key]

    def finish(self, groups: tuple[str, ...]) -> None:
        order = {(g, s): (groups.index(g), SPLITS.index(s)) for g, s in self._counts}
        self.report.counts = [self._counts[key] for key in sorted(self._counts, key=order.__getitem__)]


def _check_numbered(
    out: _Collector, folder: Path, files: dict[int, Path], numbers: list[int], describe: Callable[[int], str]
) -> None:
    """Report each expected file ``describe(n)``, n in ``numbers``, absent from ``files`` (one line if all are)."""
    missing = [n for n in numbers if n not in files]
    if missing and len(missing) == len(numbers):
        out.add("missing", folder, f"none of the {len(numbers)} expected files ({describe(numbers[0])}, ...)")
        return
    for n in missing:
        out.add("missing", folder / describe(n))


def _error_text(error: OvavssError, path: Path) -> str:
    """An OvavssError's message without its leading ``<path>: `` (the finding names the path)."""
    message, prefix = str(error), f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _check_audio(out: _Collector, path: Path) -> None:
    if not path.is_file():
        out.add("missing", path)
    elif path.stat().st_size == 0:
        out.add("unreadable", path, "empty file")


# ----------------------------------------------------------------------------------------------
# AVSBench-semantic


# Colours as 0xRRGGBB: comparing a labels_rgb image with the palette colours of its labels_semantic
# twin is several times faster than palette-decoding every pixel (73k frame pairs in the release).
_PALETTE_KEYS = (
    (AVSS_PALETTE[:, 0].astype(np.int32) << 16) | (AVSS_PALETTE[:, 1].astype(np.int32) << 8) | AVSS_PALETTE[:, 2]
)


def _colour_keys(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]


def _read_rgb(path: Path) -> np.ndarray:
    return np.asarray(open_png(path).convert("RGB"))


def _try_read(out: _Collector, path: Path, read: Callable[[Path], object]) -> object | None:
    """``read(path)``, or None after recording an unreadable file."""
    try:
        result = read(path)
    except OvavssError as error:
        out.add("unreadable", path, _error_text(error, path))
        return None
    out.report.labels_decoded += 1
    return result


def _check_avss_labels(out: _Collector, dataset: AVSSDataset, clip: ClipMeta, frame: int, trees: set[str]) -> None:
    """Decode one annotated frame's label PNGs: unknown colours / values, rgb vs semantic, a_obj."""
    paths = {source: dataset.label_path(clip, frame, source) for source in trees}
    rgb = _try_read(out, paths["rgb"], _read_rgb) if "rgb" in paths else None
    semantic = _try_read(out, paths["semantic"], read_label_png) if "semantic" in paths else None
    ids = None
    if semantic is not None:
        ids, unknown = semantic
        if unknown.any():
            out.add("unknown-value", paths["semantic"], f"{int(unknown.sum())} pixels")
    if rgb is not None:
        if ids is not None and rgb.shape[:2] == ids.shape:
            differ = _colour_keys(rgb) != _PALETTE_KEYS[ids]
            rgb_ids, unknown = decode_palette(rgb[differ][None])  # only where the colours differ
            mismatch = int(np.count_nonzero(rgb_ids[0] != ids[differ]))
        else:
            rgb_ids, unknown = decode_palette(rgb)
            mismatch = 0
            if ids is None:
                ids = rgb_ids
            else:
                out.add("rgb-semantic-mismatch", paths["semantic"], f"size {ids.shape} vs rgb {rgb.shape[:2]}")
        if unknown.any():
            out.add("unknown-colour", paths["rgb"], f"{int(unknown.sum())} pixels")
        if mismatch:
            out.add("rgb-semantic-mismatch", paths["semantic"], f"{mismatch} pixels differ from labels_rgb")
    if ids is not None:
        pixels = np.bincount(ids.ravel(), minlength=len(LABEL_NAMES))
        extra = [i for i in np.flatnonzero(pixels[1:]) + 1 if i not in clip.sounding_ids]
        if extra:
            names = ", ".join(f"{LABEL_NAMES[i]} ({pixels[i]} px)" for i in extra)
            path = paths["semantic" if semantic is not None else "rgb"]
            out.add("gt-not-in-a_obj", path, f"{names}; a_obj = {'_'.join(clip.a_obj)}")


def _check_avss_clip(
    out: _Collector, dataset: AVSSDataset, clip: ClipMeta, fast: bool, absent_trees: dict[str, list[Path]]
) -> bool:
    """Check one clip; returns whether its folder exists. Clips lacking a label folder go to ``absent_trees``."""
    counts = out.counts(clip.subset, clip.split)
    counts.clips += 1
    clip_dir = dataset.clip_dir(clip)
    if not clip_dir.is_dir():
        out.add("missing", clip_dir, "clip folder")
        return False
    frames, count = dataset.frame_files(clip), dataset.num_frames(clip)
    counts.frames += len(frames)
    _check_numbered(out, clip_dir / "frames", frames, list(range(count)), lambda n: f"{n}.jpg")
    if count > NOMINAL_FRAMES[clip.subset]:
        out.add("frame-count", clip_dir / "frames", f"{count} frames, nominal {NOMINAL_FRAMES[clip.subset]}")
    _check_audio(out, dataset.audio_path(clip))
    trees = {source for source, folder in LABEL_DIRS.items() if (clip_dir / folder).is_dir()}
    for source in set(LABEL_DIRS) - trees:
        absent_trees[source].append(clip_dir / LABEL_DIRS[source])
    annotated = dataset.label_frames(clip)
    present = {source: dataset.label_files(clip, source) for source in trees}
    for source in sorted(trees):
        _check_numbered(out, clip_dir / LABEL_DIRS[source], present[source], annotated, lambda n: f"{n}.png")
    counts.annotated += sum(any(frame in files for files in present.values()) for frame in annotated)
    for frame in annotated[:1] if fast else annotated:
        available = {source for source in trees if frame in present[source]}
        if available:
            _check_avss_labels(out, dataset, clip, frame, available)
    tools = [name for name in TOOL_ENTRIES if (clip_dir / name).exists()]
    if tools:
        out.add("tool-files", clip_dir, ", ".join(tools))
    return True


def _check_avss(root: Path, fast: bool) -> CheckReport:
    dataset = load_avss(root)
    report = CheckReport(root, "avss", fast)
    out = _Collector(report)
    for quirk in dataset.quirks:
        out.add("quirk", "", quirk)
    absent_trees: dict[str, list[Path]] = {source: [] for source in LABEL_DIRS}
    existing = 0
    with make_progress(transient=True) as progress:
        task = progress.add_task("checking clips", total=len(dataset.clips))
        for clip in dataset.clips:
            existing += _check_avss_clip(out, dataset, clip, fast, absent_trees)
            progress.advance(task)
    # A tree absent from every clip while the other is there is a partial copy, not a fault.
    everywhere = [source for source, folders in absent_trees.items() if existing and len(folders) == existing]
    for source, folders in absent_trees.items():
        if everywhere == [source]:
            out.add("label-tree-absent", LABEL_DIRS[source], f"no clip has {LABEL_DIRS[source]}/")
            continue
        for folder in folders:
            out.add("missing", folder, "label folder")
    listed = {(clip.subset, clip.uid) for clip in dataset.clips}
    for subset in SUBSETS:
        folder = root / subset
        names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir()) if folder.is_dir() else []
        for name in names:
            if (subset, name) not in listed:
                out.add("extra-folder", folder / name)
    out.finish(SUBSETS)
    return report


# ----------------------------------------------------------------------------------------------
# AVSBench-object


def _check_object_clip(out: _Collector, dataset: AVSObjectDataset, clip: ObjectClip, fast: bool) -> None:
    counts = out.counts(dataset.task, clip.split)
    counts.clips += 1
    frames, count = dataset.frame_files(clip), dataset.num_frames(clip)
    counts.frames += len(frames)
    prefix = dataset.frame_prefix(clip)
    _check_numbered(out, dataset.frame_dir(clip), frames, list(range(1, count + 1)), lambda k: f"{prefix}{k}.png")
    if count > FRAMES_PER_CLIP:
        out.add("frame-count", dataset.frame_dir(clip), f"{count} frames, nominal {FRAMES_PER_CLIP}")
    _check_audio(out, dataset.audio_path(clip))
    masks = dataset.mask_files(clip)
    annotated = [k + 1 for k in dataset.label_frames(clip)]  # 1-based on disk
    _check_numbered(out, dataset.mask_dir(clip), masks, annotated, lambda k: f"{clip.name}_{k}.png")
    counts.annotated += sum(k in masks for k in annotated)
    for k in [k for k in annotated if k in masks][: 1 if fast else None]:
        try:
            dataset.read_mask(clip, k - 1)
            out.report.labels_decoded += 1
        except OvavssError as error:
            out.add("unreadable", masks[k], _error_text(error, masks[k]))


def _check_object(root: Path, tasks: dict[str, Path], fast: bool) -> CheckReport:
    report = CheckReport(root, "avsbench-object", fast)
    out = _Collector(report)
    datasets = [load_avsobject(root, task) for task in tasks]
    for dataset in datasets:
        for quirk in dataset.quirks:
            out.add("quirk", "", quirk)
    with make_progress(transient=True) as progress:
        task = progress.add_task("checking clips", total=sum(len(d.clips) for d in datasets))
        for dataset in datasets:
            for clip in dataset.clips:
                _check_object_clip(out, dataset, clip, fast)
                progress.advance(task)
    out.finish(tuple(TASK_LAYOUT))
    return report


def check_dataset(root: str | Path, fast: bool = False) -> CheckReport:
    """Audit ``root``: an AVSBench-semantic root (``metadata.csv``) or an AVSBench-object root."""
    root = require_dataset_dir(root)
    if (root / METADATA_FILE).is_file():
        return _check_avss(root, fast)
    tasks = find_object_roots(root)
    if tasks:
        return _check_object(root, tasks, fast)
    raise OvavssError(
        f"not an AVSBench root: no {METADATA_FILE} (AVSBench-semantic) and no Single-source/ or Multi-sources/ "
        "metadata (AVSBench-object)",
        path=root,
    )


def run_check(
    root: str | Path, fast: bool = False, json_out: str | Path | None = None, force: bool = False
) -> CheckReport:
    """``ovavss check``: check ``root`` and, with ``json_out``, write the full report there."""
    refuse_force_without_output(force, {"--json": json_out})
    if json_out is not None:
        refuse_overwrite(Path(json_out), force)  # before a long check, not after
    report = check_dataset(root, fast)
    if json_out is not None:
        write_report_json(report, json_out, force)
    return report


# ----------------------------------------------------------------------------------------------
# Output


def write_report_json(report: CheckReport, path: str | Path, force: bool = False) -> None:
    """The full report (every finding, no truncation) as JSON, written atomically."""
    path = Path(path)
    refuse_overwrite(path, force)
    atomic_write_text(path, json.dumps(report.to_dict(), indent=2) + "\n")


#: Findings of each kind that the printed report lists (the JSON report keeps them all).
FINDINGS_SHOWN = 8


def print_report(report: CheckReport) -> None:
    """Counts table, then one table per severity listing each kind with its first findings."""
    console = Console()
    counts = Table(title=f"{report.root} ({report.layout})")
    for column in ("subset" if report.layout == "avss" else "task", "split", "clips", "frames", "annotated frames"):
        counts.add_column(column, justify="right" if column in ("clips", "frames", "annotated frames") else "left")
    for row in report.counts:
        counts.add_row(row.group, row.split, str(row.clips), str(row.frames), str(row.annotated))
    console.print(counts)
    for title, findings in (("Problems", report.problems), ("Warnings", report.warnings)):
        if not findings:
            continue
        table = Table(title=title, show_lines=True)
        table.add_column("kind")
        table.add_column("count", justify="right")
        table.add_column(f"first {FINDINGS_SHOWN}", overflow="fold")
        for kind, items in _group(findings).items():
            shown = "\n".join(": ".join(part for part in (f.path, f.detail) if part) for f in items[:FINDINGS_SHOWN])
            more = f"\n... and {len(items) - FINDINGS_SHOWN} more" if len(items) > FINDINGS_SHOWN else ""
            table.add_row(f"{kind}\n[dim]{KINDS[kind]}[/dim]", str(len(items)), shown + more)
        console.print(table)
    decoded = f"{report.labels_decoded} label files decoded" + (
        " (fast: first annotated frame per clip)" if report.fast else ""
    )
    verdict = "[green]OK[/green]" if report.ok else f"[red]{len(report.problems)} problems[/red]"
    console.print(f"{verdict}, {len(report.warnings)} warnings; {decoded}")


def _group(findings: list[Finding]) -> dict[str, list[Finding]]:
    grouped: dict[str, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(finding.kind, []).append(finding)
    return grouped
