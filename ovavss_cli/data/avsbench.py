"""AVSBench-semantic (AVSS) reader: ``metadata.csv``, ``label2idx.json`` and the per-clip folders.

Layout (avsbench-format.md §1.1)::

    <root>/metadata.csv                       vid,uid,s_min,s_sec,a_obj,split,label
    <root>/label2idx.json                     71 keys, background first; only the key order matters
    <root>/<label>/<uid>/frames/<i>.jpg       label = subset (v1s | v1m | v2), i = 0, 1, ... (no padding)
    <root>/<label>/<uid>/labels_rgb/<i>.png   palette colours (v1s train: only 0.png)
    <root>/<label>/<uid>/labels_semantic/<i>.png   class index per pixel
    <root>/<label>/<uid>/audio.wav            any sample rate and channel count

Frame files are sorted by their number, never by name, so ``10.jpg`` comes after ``9.jpg``.

Quirks of the released files are resolved here and noted in ``AVSSDataset.quirks``, never crashed on:

* ``a_obj`` token ``h orse`` (one v1s row) is read as ``horse``: any token that equals a class name
  once whitespace is removed and case is folded is fixed the same way;
* ``background`` (v1m train) and ``off-the-screen`` (v2) rows have no sounding object: the tokens
  stay in ``a_obj`` and ``sounding_ids`` is empty;
* an unknown token stays in ``a_obj`` and is left out of ``sounding_ids``;
* ``metadata.csv`` with a byte-order mark, CRLF line endings, extra columns or padded cells;
* ``label2idx.json`` values (1-based in some public copies) are ignored: ids come from the key order;
  without the file the built-in order (identical to the released one) is used.

Files other tools leave in the tree (COMBO's ``audio.pkl``, ``processed_frames/``, ...) are ignored.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..errors import OvavssError
from .classes import CLASS_NAMES, LABEL_NAMES, class_id
from .labelmap import decode_palette, open_png, read_label_png

SUBSETS: tuple[str, ...] = ("v1s", "v1m", "v2")
SPLITS: tuple[str, ...] = ("train", "val", "test")
METADATA_FILE = "metadata.csv"
LABEL2IDX_FILE = "label2idx.json"
METADATA_HEADER: tuple[str, ...] = ("vid", "uid", "s_min", "s_sec", "a_obj", "split", "label")
REQUIRED_COLUMNS: tuple[str, ...] = ("vid", "uid", "a_obj", "split", "label")
#: ``a_obj`` values that name no sounding object.
NO_OBJECT_TOKENS: tuple[str, ...] = ("background", "off-the-screen")
#: Frames per clip in the release (1 fps): 5-s v1 clips, 10-s v2 clips.
NOMINAL_FRAMES: dict[str, int] = {"v1s": 5, "v1m": 5, "v2": 10}
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")
#: ``read_labels`` source -> label folder inside a clip.
LABEL_DIRS: dict[str, str] = {"rgb": "labels_rgb", "semantic": "labels_semantic"}
AUDIO_FILE = "audio.wav"

ClipT = TypeVar("ClipT")  # ClipMeta or avsobject.ObjectClip
_CLASS_KEYS = {name.lower(): name for name in (*CLASS_NAMES, *NO_OBJECT_TOKENS)}


@dataclass(frozen=True)
class ClipMeta:
    """One ``metadata.csv`` row with its quirks resolved."""

    uid: str
    vid: str
    subset: str  # "v1s" | "v1m" | "v2" (metadata column `label`)
    split: str  # "train" | "val" | "test"
    a_obj: tuple[str, ...]  # tokens after quirk fixes; "background" / "off-the-screen" kept
    sounding_ids: tuple[int, ...]  # sorted class ids 1..70 of the sounding objects


@dataclass(frozen=True)
class LabelRead:
    ids: np.ndarray  # (H, W) int64 ids 0..70; unknown colours / values -> 0
    unknown_pixels: int  # pixels whose colour or value is not a label
    path: Path


@dataclass(frozen=True)
class CsvRow:
    line: int  # 1-based line number in the file (for error messages)
    cells: tuple[str, ...]  # stripped cells, in file order
    values: dict[str, str]  # lower-cased header name -> cell


# ----------------------------------------------------------------------------------------------
# Shared file helpers (also used by the AVSBench-object reader and the check mode)


def require_dataset_dir(root: str | Path) -> Path:
    """``root`` as a Path; OvavssError when it is missing, not a folder or empty."""
    root = Path(root)
    if not root.exists():
        raise OvavssError("dataset root not found", path=root)
    if not root.is_dir():
        raise OvavssError("dataset root is not a directory", path=root)
    if not any(root.iterdir()):
        raise OvavssError("dataset root is empty", path=root)
    return root


def read_csv_table(path: Path, required: Sequence[str] = ()) -> tuple[tuple[str, ...], list[CsvRow]]:
    """Read a CSV with a header row, tolerating a BOM, CRLF, padded cells and blank lines.

    Returns the lower-cased header and the data rows. A missing required column, a row with fewer
    cells than the header (or extra non-empty ones) or undecodable text raise OvavssError naming
    the file and line.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise OvavssError("file not found", path=path) from None
    except UnicodeDecodeError as error:
        raise OvavssError(f"not UTF-8 text (bad byte at offset {error.start})", path=path) from None
    except OSError as error:
        raise OvavssError(f"cannot read ({error.strerror})", path=path) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header: tuple[str, ...] | None = None
    rows: list[CsvRow] = []
    try:
        for raw in reader:
            cells = tuple(cell.strip() for cell in raw)
            if not any(cells):
                continue
            if header is None:
                header = tuple(cell.lower() for cell in cells)
                missing = [name for name in required if name not in header]
                if missing:
                    found = ",".join(header)
                    raise OvavssError(f"missing column(s) {', '.join(map(repr, missing))} (header: {found})", path=path)
                continue
            if len(cells) > len(header) and not any(cells[len(header) :]):
                cells = cells[: len(header)]  # trailing commas
            if len(cells) != len(header):
                raise OvavssError(
                    f"line {reader.line_num}: {len(cells)} fields, the header has {len(header)}", path=path
                )
            rows.append(CsvRow(reader.line_num, cells, dict(zip(header, cells, strict=True))))
    except csv.Error as error:
        raise OvavssError(f"line {reader.line_num}: malformed CSV ({error})", path=path) from None
    if header is None:
        raise OvavssError("empty file (no header row)", path=path)
    return header, rows


def numbered_files(folder: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES, prefix: str = "") -> dict[int, Path]:
    """Files named ``<prefix><number><suffix>`` in ``folder``, keyed by number; ``{}`` if no folder.

    Other files (tool leftovers, hidden files) are ignored. Suffixes match case-insensitively.
    """
    try:
        names = sorted(entry.name for entry in os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return {}
    found: dict[int, Path] = {}
    for name in names:
        stem, dot, ext = name.rpartition(".")
        number = stem[len(prefix) :]
        if dot and f".{ext.lower()}" in suffixes and stem.startswith(prefix) and number.isascii() and number.isdigit():
            found.setdefault(int(number), folder / name)
    return found


def frame_count(nominal: int, first: int, *numbered: dict[int, Path]) -> int:
    """Frames a clip should have: ``nominal``, or more when frame / label files with higher numbers exist.

    Counting the labels too means a deleted last frame (or a deleted last label) shows up as missing
    instead of silently shortening the clip.
    """
    highest = max((max(files) for files in numbered if files), default=first - 1)
    return max(nominal, highest - first + 1)


def ordered_frame_files(
    folder: Path, files: dict[int, Path], first: int, count: int, describe: Callable[[int], str]
) -> list[Path]:
    """``files[first], ..., files[first + count - 1]``; OvavssError naming the first missing one."""
    missing = [n for n in range(first, first + count) if n not in files]
    if len(missing) == count:
        raise OvavssError(f"no frames (expected {describe(first)} ... {describe(first + count - 1)})", path=folder)
    if missing:
        raise OvavssError(f"{len(missing)} of {count} frames missing, e.g. {describe(missing[0])}", path=folder)
    return [files[n] for n in range(first, first + count)]


def clips_in_split(clips: Sequence[ClipT], name: str) -> list[ClipT]:
    """The clips whose ``split`` is ``name`` (train | val | test), in their order."""
    if name not in SPLITS:
        raise OvavssError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
    return [clip for clip in clips if clip.split == name]


def stack_frames(paths: Sequence[Path]) -> np.ndarray:
    """Decode images to one (T, H, W, 3) uint8 RGB array; all frames must share one size."""
    frames: list[np.ndarray] = []
    for path in paths:
        frame = np.asarray(open_png(path).convert("RGB"))
        if frames and frame.shape != frames[0].shape:
            first = f"{frames[0].shape[1]}x{frames[0].shape[0]}"
            raise OvavssError(f"frame size {frame.shape[1]}x{frame.shape[0]} differs from {first}", path=path)
        frames.append(frame)
    return np.stack(frames)


# ----------------------------------------------------------------------------------------------
# metadata.csv / label2idx.json


def parse_a_obj(text: str) -> tuple[tuple[str, ...], tuple[int, ...], list[str]]:
    """Split an ``a_obj`` cell on ``_``: ``(tokens, sounding class ids, notes about quirks)``."""
    if not text.strip():
        return (), (), ["empty a_obj: no sounding object"]
    tokens: list[str] = []
    ids: set[int] = set()
    notes: list[str] = []
    for raw in text.split("_"):
        token = raw.strip()
        if not token:
            notes.append(f"empty token in a_obj {text!r} skipped")
            continue
        fixed = _CLASS_KEYS.get("".join(token.split()).lower())
        if fixed is None:
            notes.append(f"unknown a_obj token {token!r}: not a class, ignored as a sounding object")
            tokens.append(token)
            continue
        if fixed != token:
            notes.append(f"a_obj token {token!r} read as {fixed!r}")
        if fixed in NO_OBJECT_TOKENS:
            notes.append(f"a_obj {fixed!r}: no sounding object")
        else:
            ids.add(class_id(fixed))
        tokens.append(fixed)
    return tuple(tokens), tuple(sorted(ids)), notes


def _choice(row: CsvRow, column: str, allowed: Sequence[str], path: Path) -> str:
    value = row.values[column].lower()
    if value not in allowed:
        raise OvavssError(
            f"line {row.line}: {column} {row.values[column]!r} is not one of {', '.join(allowed)}", path=path
        )
    return value


def read_metadata(path: Path, quirks: list[str]) -> list[ClipMeta]:
    """Parse ``metadata.csv`` into clips (file order); quirky rows are appended to ``quirks``."""
    _, rows = read_csv_table(path, REQUIRED_COLUMNS)
    clips: list[ClipMeta] = []
    first_line: dict[str, int] = {}
    for row in rows:
        uid = row.values["uid"]
        if not uid:
            raise OvavssError(f"line {row.line}: empty uid", path=path)
        if uid in first_line:
            raise OvavssError(f"line {row.line}: duplicate uid {uid!r} (first on line {first_line[uid]})", path=path)
        first_line[uid] = row.line
        subset = _choice(row, "label", SUBSETS, path)
        split = _choice(row, "split", SPLITS, path)
        tokens, ids, notes = parse_a_obj(row.values["a_obj"])
        quirks.extend(f"{path.name} line {row.line} ({uid}): {note}" for note in notes)
        clips.append(ClipMeta(uid, row.values["vid"], subset, split, tokens, ids))
    if not clips:
        raise OvavssError("no clips (only a header row)", path=path)
    return clips


def read_class_names(path: Path, quirks: list[str]) -> tuple[str, ...]:
    """The 71 label names from ``label2idx.json`` key order; OvavssError if they are not AVSS's."""
    if not path.is_file():
        quirks.append(f"{path.name} not found: using the built-in AVSS class order")
        return LABEL_NAMES
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OvavssError(f"not valid JSON ({error})", path=path) from None
    if not isinstance(data, dict):
        raise OvavssError("expected a JSON object mapping the 71 label names to indices", path=path)
    names = tuple(data)
    if len(names) != len(LABEL_NAMES):
        raise OvavssError(f"{len(names)} labels, expected {len(LABEL_NAMES)} (background + 70 classes)", path=path)
    for index, (name, expected) in enumerate(zip(names, LABEL_NAMES, strict=True)):
        if name != expected:
            raise OvavssError(
                f"key {index} is {name!r}, expected {expected!r} (ids come from key order: "
                "background first, then the 70 classes alphabetically)",
                path=path,
            )
    if list(data.values()) != list(range(len(LABEL_NAMES))):
        quirks.append(f"{path.name}: values are not 0..70 (ignored: ids come from the key order)")
    return names


# ----------------------------------------------------------------------------------------------
# The dataset


@dataclass(eq=False)
class AVSSDataset:
    """An AVSBench-semantic tree: clips from ``metadata.csv`` plus readers for their files."""

    root: Path
    clips: list[ClipMeta]  # metadata order
    class_names: tuple[str, ...]  # 71 names, label2idx.json key order
    quirks: list[str] = field(default_factory=list)  # notes about quirky rows found while loading

    def __post_init__(self) -> None:
        self._by_uid = {clip.uid: clip for clip in self.clips}

    def split(self, name: str) -> list[ClipMeta]:
        return clips_in_split(self.clips, name)

    def clip(self, uid: str) -> ClipMeta:
        try:
            return self._by_uid[uid]
        except KeyError:
            raise OvavssError(f"clip {uid!r} is not in the metadata", path=self.root / METADATA_FILE) from None

    def clip_dir(self, clip: ClipMeta) -> Path:
        return self.root / clip.subset / clip.uid

    def audio_path(self, clip: ClipMeta) -> Path:
        return self.clip_dir(clip) / AUDIO_FILE

    def label_path(self, clip: ClipMeta, frame: int, source: str) -> Path:
        """``labels_rgb/<frame>.png`` (source "rgb") or ``labels_semantic/<frame>.png`` ("semantic")."""
        if source not in LABEL_DIRS:
            raise OvavssError(f"unknown label source {source!r}; expected auto, rgb or semantic")
        return self.clip_dir(clip) / LABEL_DIRS[source] / f"{frame}.png"

    def frame_files(self, clip: ClipMeta) -> dict[int, Path]:
        """Frame files on disk by frame number (possibly with gaps; empty when the folder is missing)."""
        return numbered_files(self.clip_dir(clip) / "frames")

    def label_files(self, clip: ClipMeta, source: str) -> dict[int, Path]:
        """Label PNGs on disk by frame number for source "rgb" or "semantic"."""
        return numbered_files(self.clip_dir(clip) / LABEL_DIRS[source], (".png",))

    def num_frames(self, clip: ClipMeta) -> int:
        """Frames the clip should have: 5 (v1s, v1m) or 10 (v2), or more if more are on disk."""
        on_disk = (self.frame_files(clip), *(self.label_files(clip, source) for source in LABEL_DIRS))
        return frame_count(NOMINAL_FRAMES[clip.subset], 0, *on_disk)

    def frame_paths(self, clip: ClipMeta) -> list[Path]:
        """``frames/0.jpg, 1.jpg, ...`` in numeric order; OvavssError if any of them is missing."""
        folder = self.clip_dir(clip) / "frames"
        return ordered_frame_files(folder, self.frame_files(clip), 0, self.num_frames(clip), lambda n: f"{n}.jpg")

    def label_frames(self, clip: ClipMeta) -> list[int]:
        """Frame numbers that have ground truth: every frame, except v1s train (only frame 0)."""
        if clip.subset == "v1s" and clip.split == "train":
            return [0]
        return list(range(self.num_frames(clip)))

    def read_labels(self, clip: ClipMeta, frame: int, source: str = "auto") -> LabelRead:
        """Ground-truth ids of one frame.

        ``"rgb"`` decodes ``labels_rgb`` by exact palette colour (as the OV-AVSS evaluation does),
        ``"semantic"`` reads the ``labels_semantic`` index map, ``"auto"`` prefers ``labels_semantic``.
        """
        if source == "auto":
            semantic = self.label_path(clip, frame, "semantic")
            source = "semantic" if semantic.is_file() else "rgb"
        path = self.label_path(clip, frame, source)
        if source == "rgb":
            ids, unknown = decode_palette(np.asarray(open_png(path).convert("RGB")))
        else:
            ids, unknown = read_label_png(path)
        return LabelRead(ids, int(unknown.sum()), path)

    def read_frames(self, clip: ClipMeta) -> np.ndarray:
        """All frames of a clip, (T, H, W, 3) uint8 RGB."""
        return stack_frames(self.frame_paths(clip))

    def read_audio(self, clip: ClipMeta) -> tuple[np.ndarray, int]:
        """The clip's ``audio.wav`` as 16 kHz mono float64 (resampled and down-mixed)."""
        from .audio import load_audio  # imports torch: only when audio is read, so check stays light

        return load_audio(self.audio_path(clip))


def load_avss(root: str | Path) -> AVSSDataset:
    """Open an AVSBench-semantic root: validates ``metadata.csv`` and ``label2idx.json`` (files are read lazily)."""
    root = require_dataset_dir(root)
    metadata = root / METADATA_FILE
    if not metadata.is_file():
        raise OvavssError(
            f"no {METADATA_FILE}: not an AVSBench-semantic root (expected {METADATA_FILE}, "
            f"{LABEL2IDX_FILE} and v1s/, v1m/, v2/)",
            path=root,
        )
    quirks: list[str] = []
    class_names = read_class_names(root / LABEL2IDX_FILE, quirks)
    clips = read_metadata(metadata, quirks)
    return AVSSDataset(root, clips, class_names, quirks)
