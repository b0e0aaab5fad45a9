"""What ``ovavss predict`` writes, and reading it back.

An output folder holds:

* ``masks/<index>.png``: one palette PNG per sampled frame (``index`` zero-padded to 5 digits so
  names sort), pixel value 0 = background, i = the i-th vocabulary name;
* ``predictions.json``: format ``ovavss-predictions/1``: the input, its video facts, the
  vocabulary, sampling rate, threshold, weights id + sha256, device, and per sampled frame its
  index, times, mask file and segments. A segment is one vocabulary name in one frame:
  ``label``, ``label_id`` (1-based), ``score`` (the highest-scoring detection painted with that
  name in the frame's window), ``area`` (pixels), ``bbox`` ``[x0, y0, x1, y1]`` in pixels with
  x1/y1 exclusive, and ``rle``: COCO *uncompressed* RLE ``{"size": [h, w], "counts": [...]}``,
  column-major, starting with a background run (``pycocotools.mask.frPyObjects`` reads it).
  Top-level keys are indented; each frame is one line, so the file stays readable and greppable.
  The file is written as frames arrive, so memory does not grow with the video's length;
* ``overlay.mp4`` (unless ``--no-video``), see ``data.media.write_painted_video``; its longer side is
  at most ``OVERLAY_MAX_SIDE`` (larger videos are scaled down; the masks keep the full size).

The whole folder is built in a hidden temporary sibling and renamed into place at the end
(``atomic.output_folder``): a reader never sees a half-written result, and an existing folder is only
replaced (``--force``) once its replacement is complete.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import OvavssError
from .labelmap import write_label_png

FORMAT = "ovavss-predictions/1"
PREDICTIONS_FILE = "predictions.json"
MASKS_DIR = "masks"
OVERLAY_FILE = "overlay.mp4"
#: overlay.mp4's longer side at most (a 4K video is painted and encoded at 1280 px: fast, and plenty to watch).
OVERLAY_MAX_SIDE = 1280


# ---------------------------------------------------------------------------------------------
# masks -> COCO RLE, boxes, segments


def rle_encode(mask: np.ndarray) -> dict:
    """(H, W) bool -> COCO uncompressed RLE: column-major run lengths, the first run is background."""
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    flat = mask.T.reshape(-1)  # column-major, as COCO counts pixels
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts.insert(0, 0)  # COCO always starts with a (possibly empty) background run
    return {"size": [int(height), int(width)], "counts": counts}


def rle_decode(rle: dict) -> np.ndarray:
    """Inverse of :func:`rle_encode`: COCO uncompressed RLE -> (H, W) bool."""
    height, width = rle["size"]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != height * width:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {height * width}")
    values = np.arange(len(counts)) % 2 == 1  # runs alternate background, foreground, ...
    flat = np.repeat(values, counts)
    return flat.reshape(width, height).T


def mask_bbox(mask: np.ndarray) -> list[int]:
    """[x0, y0, x1, y1] of a non-empty (H, W) bool mask, x1/y1 exclusive."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


def frame_segments(label_map: np.ndarray, scores: dict[int, float], vocab: Sequence[str]) -> list[dict]:
    """One segment per vocabulary name present in ``label_map``, highest score first."""
    segments = []
    for label_id in np.unique(label_map):
        if label_id == 0:
            continue
        mask = label_map == label_id
        segments.append(
            {
                "label": vocab[label_id - 1],
                "label_id": int(label_id),
                "score": round(float(scores.get(int(label_id), 0.0)), 6),
                "area": int(mask.sum()),
                "bbox": mask_bbox(mask),
                "rle": rle_encode(mask),
            }
        )
    return sorted(segments, key=lambda segment: -segment["score"])


def mask_file(index: int) -> str:
    """The mask PNG of sampled frame ``index``, relative to the output folder."""
    return f"{MASKS_DIR}/{index:05d}.png"


# ---------------------------------------------------------------------------------------------
# writing


@dataclass(frozen=True)
class VideoFramePrediction:
    """The model's answer for one sampled frame of a video (for a dataset frame: metrics.evaluate.FramePrediction)."""

    index: int  # sample index k
    sample_time: float  # nominal sample time (k + 0.5) / fps, seconds from the first frame
    time: float  # the chosen frame's own time (its audio window is centred here)
    image: np.ndarray  # (H, W, 3) uint8 RGB: the frame the model saw (upright)
    label_map: np.ndarray  # (H, W) uint8: 0 = background, i = vocab[i - 1]
    scores: dict[int, float]  # label id -> best score among the detections painted in this frame's window


class PredictionWriter:
    """Writes mask PNGs and streams ``predictions.json`` into an (unpublished) output folder.

    Use as a context manager; call :meth:`finish` once every frame has been added.
    """

    def __init__(self, folder: Path, header: dict, vocab: Sequence[str]):
        self.folder = folder
        self.vocab = tuple(vocab)
        self.frame_count = 0
        self._label_frames = np.zeros(len(self.vocab) + 1, dtype=np.int64)
        (folder / MASKS_DIR).mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(folder / PREDICTIONS_FILE, "w", encoding="utf-8")
        self._file.write("{\n")
        for key, value in {"format": FORMAT, **header}.items():
            self._file.write(f"  {json.dumps(key)}: {_indented(value)},\n")
        self._file.write('  "frames": [')

    def add(self, frame: VideoFramePrediction) -> None:
        """Write one sampled frame's mask PNG and its JSON entry."""
        name = mask_file(frame.index)
        write_label_png(self.folder / name, frame.label_map)
        entry = {
            "index": frame.index,
            "time": round(frame.time, 6),
            "sample_time": round(frame.sample_time, 6),
            "mask": name,
            "segments": frame_segments(frame.label_map, frame.scores, self.vocab),
        }
        self._label_frames[[segment["label_id"] for segment in entry["segments"]]] += 1
        self._file.write(("\n    " if self.frame_count == 0 else ",\n    ") + json.dumps(entry, separators=(",", ":")))
        self.frame_count += 1

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self._file.close()

    def finish(self, extra: dict | None = None) -> None:
        """Complete the JSON: close the frame list, then ``extra`` keys and a summary."""
        summary = {
            "frames": self.frame_count,
            "frames_with_label": {name: int(self._label_frames[i + 1]) for i, name in enumerate(self.vocab)},
        }
        self._file.write("\n  ],\n")
        for key, value in {**(extra or {}), "summary": summary}.items():
            self._file.write(f"  {json.dumps(key)}: {_indented(value)}" + (",\n" if key != "summary" else "\n"))
        self._file.write("}\n")
        self._file.close()


def _indented(value) -> str:
    return json.dumps(value, indent=2).replace("\n", "\n  ")


# ---------------------------------------------------------------------------------------------
# reading back


@dataclass(frozen=True)
class PredictionFolder:
    """A ``predict`` output folder read back (what ``ovavss visualize`` needs)."""

    folder: Path
    data: dict

    @property
    def vocab(self) -> tuple[str, ...]:
        return tuple(self.data["vocabulary"])

    @property
    def frames(self) -> list[dict]:
        return self.data["frames"]

    @property
    def input_path(self) -> Path:
        return Path(self.data["input"])

    def mask_path(self, frame: dict) -> Path:
        return self.folder / frame["mask"]

    def score_matrix(self) -> np.ndarray:
        """(frames, vocab) float: each name's segment score per sampled frame (0 where absent)."""
        scores = np.zeros((len(self.frames), len(self.vocab)))
        for row, frame in enumerate(self.frames):
            for segment in frame["segments"]:
                scores[row, segment["label_id"] - 1] = segment["score"]
        return scores


def read_prediction_folder(folder: str | Path) -> PredictionFolder:
    """Load ``folder/predictions.json``; OvavssError when it is missing or not this format."""
    folder = Path(folder)
    path = folder / PREDICTIONS_FILE
    if not path.is_file():
        raise OvavssError(f"no {PREDICTIONS_FILE} here (not an 'ovavss predict' output folder)", path=folder)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OvavssError(f"not valid JSON ({error})", path=path) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise OvavssError(f"not an {FORMAT} file", path=path)
    for key in ("input", "vocabulary", "frames", "sample_fps"):
        if key not in data:
            raise OvavssError(f"missing key '{key}'", path=path)
    return PredictionFolder(folder, data)
