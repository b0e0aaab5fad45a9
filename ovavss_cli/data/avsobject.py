"""AVSBench-object reader: S4 (single source) and MS3 (multi-source) trees (avsbench-format.md §2.1).

::

    <root>/Single-source/s4_meta_data.csv                          name, start, category, split
    <root>/Single-source/s4_data/visual_frames/<split>/<category>/<name>/<name>_<k>.png
    <root>/Single-source/s4_data/audio_wav/<split>/<category>/<name>.wav
    <root>/Single-source/s4_data/gt_masks/<split>/<category>/<name>/<name>_<k>.png   train: k = 1 only
    <root>/Multi-sources/ms3_meta_data.csv                         name, split
    <root>/Multi-sources/ms3_data/visual_frames/<name>/<name>.mp4_<k>.png          no split level
    <root>/Multi-sources/ms3_data/audio_wav/<split>/<name>.wav
    <root>/Multi-sources/ms3_data/gt_masks/<split>/<name>/<name>_<k>.png            k = 1..5 everywhere

Indices ``k`` on disk are **1-based**; this API uses 0-based frame positions like the AVSS reader
(``frame`` 0 is ``<name>_1.png``), so models and metrics never see the off-by-one. The metadata
files are read by column name where the header has one (``name``, ``category``, ``split``) and by
the official loaders' positions otherwise. Masks are binarised with ``> 0`` whatever the PNG mode.

S4 categories are folder names mapped to AVSS classes (``classes.S4_CATEGORY_TO_CLASS``). MS3 has
no categories; they can be taken from an AVSS root's v1m rows (``a_obj``), whose uids are the MS3
video names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import OvavssError
from .avsbench import (
    SPLITS,
    CsvRow,
    clips_in_split,
    frame_count,
    load_avss,
    numbered_files,
    ordered_frame_files,
    read_csv_table,
    require_dataset_dir,
    stack_frames,
)
from .classes import S4_CATEGORY_TO_CLASS, class_id
from .labelmap import read_binary_mask

TASKS: tuple[str, ...] = ("s4", "ms3")
#: task -> (folder under the AVSBench-object root, metadata file, data folder)
TASK_LAYOUT: dict[str, tuple[str, str, str]] = {
    "s4": ("Single-source", "s4_meta_data.csv", "s4_data"),
    "ms3": ("Multi-sources", "ms3_meta_data.csv", "ms3_data"),
}
FRAMES_PER_CLIP = 5
#: Metadata column positions the official loaders use when a header name is absent.
_POSITIONS: dict[str, dict[str, int]] = {"s4": {"name": 0, "category": 2, "split": 3}, "ms3": {"name": 0, "split": 1}}


@dataclass(frozen=True)
class ObjectClip:
    """One video of S4 or MS3."""

    name: str
    task: str  # "s4" | "ms3"
    split: str  # "train" | "val" | "test"
    category: str  # S4 folder category (e.g. "playing_violin"); "" for MS3
    class_ids: tuple[int, ...]  # AVSS ids of the sounding objects (MS3: () unless an AVSS root was given)


@dataclass(eq=False)
class AVSObjectDataset:
    """An S4 or MS3 tree; ``root`` is the ``Single-source`` / ``Multi-sources`` folder."""

    root: Path
    task: str
    clips: list[ObjectClip]
    quirks: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_name = {clip.name: clip for clip in self.clips}
        self.data_dir = self.root / TASK_LAYOUT[self.task][2]

    @property
    def metadata_path(self) -> Path:
        return self.root / TASK_LAYOUT[self.task][1]

    def split(self, name: str) -> list[ObjectClip]:
        return clips_in_split(self.clips, name)

    def clip(self, name: str) -> ObjectClip:
        try:
            return self._by_name[name]
        except KeyError:
            raise OvavssError(f"clip {name!r} is not in the metadata", path=self.metadata_path) from None

    def _split_dir(self, kind: str, clip: ObjectClip) -> Path:
        """``<data>/<kind>/<split>[/<category>]`` (S4 groups by category, MS3 does not)."""
        folder = self.data_dir / kind / clip.split
        return folder / clip.category if self.task == "s4" else folder

    def frame_dir(self, clip: ObjectClip) -> Path:
        if self.task == "ms3":  # MS3 frames have no split level
            return self.data_dir / "visual_frames" / clip.name
        return self._split_dir("visual_frames", clip) / clip.name

    def frame_prefix(self, clip: ObjectClip) -> str:
        """``<name>_`` (S4) or ``<name>.mp4_`` (MS3): the frame file name before the 1-based index."""
        return f"{clip.name}.mp4_" if self.task == "ms3" else f"{clip.name}_"

    def mask_dir(self, clip: ObjectClip) -> Path:
        return self._split_dir("gt_masks", clip) / clip.name

    def audio_path(self, clip: ObjectClip) -> Path:
        return self._split_dir("audio_wav", clip) / f"{clip.name}.wav"

    def frame_files(self, clip: ObjectClip) -> dict[int, Path]:
        """Frame files on disk by 1-based index."""
        return numbered_files(self.frame_dir(clip), (".png", ".jpg", ".jpeg"), self.frame_prefix(clip))

    def mask_files(self, clip: ObjectClip) -> dict[int, Path]:
        """GT masks on disk by 1-based index."""
        return numbered_files(self.mask_dir(clip), (".png",), f"{clip.name}_")

    def num_frames(self, clip: ObjectClip) -> int:
        """5, or more if frames or masks with higher indices are on disk."""
        return frame_count(FRAMES_PER_CLIP, 1, self.frame_files(clip), self.mask_files(clip))

    def frame_paths(self, clip: ObjectClip) -> list[Path]:
        """Frame files in order (``_1``, ``_2``, ...); OvavssError if any is missing."""
        prefix = self.frame_prefix(clip)
        files, count = self.frame_files(clip), self.num_frames(clip)
        return ordered_frame_files(self.frame_dir(clip), files, 1, count, lambda k: f"{prefix}{k}.png")

    def label_frames(self, clip: ObjectClip) -> list[int]:
        """0-based frame positions with a GT mask: S4 train has only the first, else every frame."""
        return [0] if self.task == "s4" and clip.split == "train" else list(range(self.num_frames(clip)))

    def mask_path(self, clip: ObjectClip, frame: int) -> Path:
        """GT mask of 0-based ``frame``: ``<name>_<frame + 1>.png``."""
        return self.mask_dir(clip) / f"{clip.name}_{frame + 1}.png"

    def read_mask(self, clip: ObjectClip, frame: int) -> np.ndarray:
        """(H, W) bool foreground of 0-based ``frame`` (any non-zero pixel)."""
        return read_binary_mask(self.mask_path(clip, frame))

    def read_frames(self, clip: ObjectClip) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB."""
        return stack_frames(self.frame_paths(clip))

    def read_audio(self, clip: ObjectClip) -> tuple[np.ndarray, int]:
        """16 kHz mono float64."""
        from .audio import load_audio  # imports torch: only when audio is read, so check stays light

        return load_audio(self.audio_path(clip))


def find_object_roots(root: str | Path) -> dict[str, Path]:
    """The S4 / MS3 folders at ``root``: ``root`` itself or its ``Single-source`` / ``Multi-sources``."""
    root = Path(root)
    found: dict[str, Path] = {}
    for task, (folder, metadata, _) in TASK_LAYOUT.items():
        for candidate in (root, root / folder):
            if (candidate / metadata).is_file():
                found[task] = candidate
                break
    return found


def _cell(row: CsvRow, task: str, column: str) -> str:
    """A metadata cell by header name, else by the official loaders' position."""
    if column in row.values:
        return row.values[column]
    return row.cells[_POSITIONS[task][column]]


def load_avsobject(root: str | Path, task: str, avss_root: str | Path | None = None) -> AVSObjectDataset:
    """Open the S4 (``task="s4"``) or MS3 (``"ms3"``) part of an AVSBench-object tree.

    ``root`` is the folder holding ``Single-source/`` / ``Multi-sources/`` or that folder itself.
    For MS3, ``avss_root`` (an AVSBench-semantic root) supplies class ids from its v1m ``a_obj``.
    """
    if task not in TASKS:
        raise OvavssError(f"unknown AVSBench-object task {task!r}; expected s4 or ms3")
    if task == "s4" and avss_root is not None:
        raise OvavssError("--task-option avss_root: only for MS3 (S4 clips are named by their own categories)")
    root = require_dataset_dir(root)
    folder, metadata_name, _ = TASK_LAYOUT[task]
    task_root = find_object_roots(root).get(task)
    if task_root is None:
        raise OvavssError(f"no {metadata_name} here or in {folder}/: not an AVSBench-object {task.upper()} root", root)
    metadata = task_root / metadata_name
    _, rows = read_csv_table(metadata)
    width = max(_POSITIONS[task].values()) + 1
    quirks: list[str] = []
    v1m_ids = _v1m_class_ids(avss_root) if avss_root is not None else {}
    clips: list[ObjectClip] = []
    first_line: dict[str, int] = {}
    for row in rows:
        if len(row.cells) < width and not set(_POSITIONS[task]) <= set(row.values):
            raise OvavssError(f"line {row.line}: expected at least {width} columns", path=metadata)
        name, split = _cell(row, task, "name"), _cell(row, task, "split").lower()
        if not name:
            raise OvavssError(f"line {row.line}: empty video name", path=metadata)
        if name in first_line:
            raise OvavssError(f"line {row.line}: duplicate video {name!r} (first on line {first_line[name]})", metadata)
        first_line[name] = row.line
        if split not in SPLITS:
            raise OvavssError(f"line {row.line}: split {split!r} is not one of {', '.join(SPLITS)}", path=metadata)
        category = _cell(row, task, "category") if task == "s4" else ""
        if task == "s4":
            mapped = S4_CATEGORY_TO_CLASS.get(category)
            if mapped is None:
                quirks.append(f"{metadata_name} line {row.line} ({name}): unknown S4 category {category!r}")
            ids = (class_id(mapped),) if mapped else ()
        else:
            ids = v1m_ids.get(name, ())
        clips.append(ObjectClip(name, task, split, category, ids))
    if not clips:
        raise OvavssError("no clips (only a header row)", path=metadata)
    if task == "ms3" and avss_root is not None:
        unmatched = sum(clip.name not in v1m_ids for clip in clips)
        if unmatched:
            quirks.append(f"{unmatched} MS3 videos have no v1m row in {avss_root}: no class ids for them")
    return AVSObjectDataset(task_root, task, clips, quirks)


def _v1m_class_ids(avss_root: str | Path) -> dict[str, tuple[int, ...]]:
    return {clip.uid: clip.sounding_ids for clip in load_avss(avss_root).clips if clip.subset == "v1m"}
