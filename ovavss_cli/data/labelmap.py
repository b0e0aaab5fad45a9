"""Label-map PNGs: AVSS index maps, AVSBench palette RGB maps and binary object masks.

Ids are 0 (background) .. 70. An RGB PNG is decoded by **exact** colour match against the VOC
palette in RGB order (a BGR read would silently map guitar to pipa); colours not in the palette
are reported, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..atomic import atomic_path
from ..errors import OvavssError
from .classes import AVSS_PALETTE, NUM_LABELS

_PALETTE_KEYS = (
    AVSS_PALETTE[:, 0].astype(np.int64) << 16 | AVSS_PALETTE[:, 1].astype(np.int64) << 8 | AVSS_PALETTE[:, 2]
)
_KEY_ORDER = np.argsort(_PALETTE_KEYS)
_SORTED_KEYS = _PALETTE_KEYS[_KEY_ORDER]


def decode_palette(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB -> (ids (H, W) int64, unknown (H, W) bool); unknown colours get id 0."""
    rgb = rgb.astype(np.int64)
    keys = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
    pos = np.clip(np.searchsorted(_SORTED_KEYS, keys), 0, len(_SORTED_KEYS) - 1)
    known = _SORTED_KEYS[pos] == keys
    ids = np.where(known, _KEY_ORDER[pos], 0)
    return ids.astype(np.int64), ~known


def encode_palette(ids: np.ndarray) -> np.ndarray:
    """(H, W) ids 0..70 -> (H, W, 3) uint8 RGB in the AVSBench palette."""
    return AVSS_PALETTE[np.asarray(ids, dtype=np.int64)]


def open_png(path: str | Path) -> Image.Image:
    """Open and fully decode an image, turning any decoding failure into a one-line OvavssError."""
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except FileNotFoundError:
        raise OvavssError("file not found", path=path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise OvavssError(f"cannot decode image ({error.__class__.__name__}: {error})", path=path) from None


def label_array(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Decode a label image: RGB(A) by palette colour, single-channel (L, P, I) by value.

    Returns ``(ids, unknown)`` where ``unknown`` marks colours outside the palette or values
    above 70; those pixels get id 0.
    """
    if image.mode in ("RGB", "RGBA"):
        return decode_palette(np.asarray(image.convert("RGB")))
    if image.mode in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1"):
        values = np.asarray(image).astype(np.int64)
        unknown = (values < 0) | (values >= NUM_LABELS)
        return np.where(unknown, 0, values), unknown
    raise ValueError(f"unsupported PNG mode {image.mode!r}")


def read_label_png(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a label PNG as ``(ids int64 (H, W), unknown bool (H, W))``; see :func:`label_array`."""
    image = open_png(path)
    try:
        return label_array(image)
    except ValueError as error:
        raise OvavssError(str(error), path=path) from None


def read_binary_mask(path: str | Path) -> np.ndarray:
    """An AVSBench-object mask as bool (H, W): any non-zero pixel is foreground, whatever the mode."""
    image = open_png(path)
    array = np.asarray(image.convert("L") if image.mode not in ("L", "1", "P") else image)
    return array > 0


def label_image(ids: np.ndarray) -> Image.Image:
    """A palette ('P') image whose pixel values are the ids and whose colours are the AVSS palette."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.min(initial=0) < 0 or ids.max(initial=0) >= NUM_LABELS:
        raise ValueError("label map must be 2-D with values in 0..70")
    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:NUM_LABELS] = AVSS_PALETTE
    image.putpalette(palette.reshape(-1).tolist())
    return image


def write_label_png(path: str | Path, ids: np.ndarray) -> None:
    """Write ids as a palette PNG (reads back as indices, displays in AVSBench colours), atomically."""
    image = label_image(ids)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def keep_sounding_classes(gt: np.ndarray, sounding_ids: Iterable[int]) -> np.ndarray:
    """Zero every GT id that is not background or one of the clip's sounding classes (``a_obj``)."""
    allowed = np.array([0, *sounding_ids], dtype=np.int64)
    return np.where(np.isin(gt, allowed), gt, 0)
