"""Replacement sound tracks: what a model hears when its audio is muted, drowned in noise or swapped.

Used by ``ovavss probe-audio`` (per dataset clip) and ``ovavss predict --audio`` (per video). Every
function works on 16-kHz mono float waveforms in [-1, 1] (what :func:`~.audio.load_audio` returns),
before the model's own front end (log-mel, then the audio encoder), so a model sees exactly what it
would see if the file itself carried that sound.

* ``silence``: digital silence (zeros).
* ``noise``: Gaussian white noise of RMS :data:`NOISE_RMS` (-20 dBFS), clipped to [-1, 1], from a seeded
  generator keyed by ``(seed, key)``; a clip's noise depends on its own key only, never on which
  other clips are run or in which order.
* ``misaligned``: another clip's audio whose sounding classes are disjoint from this clip's
  (:func:`misaligned_assignment`), cut or zero-padded to this clip's length (:func:`fit_length`).
* ``ovavss predict --audio silence|noise|PATH``: :class:`AudioReplacement`, a whole video's track (a
  file's audio: any media file PyAV decodes, down-mixed and resampled to 16 kHz, cut or zero-padded
  to the video's duration; the track is held in memory, 230 MB per hour).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import OvavssError
from .audio import TARGET_RATE, load_audio

AUDIO_CONDITIONS: tuple[str, ...] = ("original", "silence", "noise", "misaligned")
#: Conditions whose ground truth is empty: the sound that was there is gone or belongs to other objects.
NEGATIVE_CONDITIONS: tuple[str, ...] = ("silence", "noise", "misaligned")
#: Root-mean-square level of the white noise (0.1 = -20 dBFS, a loud but unclipped track).
NOISE_RMS = 0.1


def parse_conditions(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"original,silence"`` (or a list) -> the conditions in the given order; unknown or repeated ones are errors."""
    names = [name.strip() for name in (text.split(",") if isinstance(text, str) else text) if name.strip()]
    unknown = [name for name in names if name not in AUDIO_CONDITIONS]
    if unknown:
        raise OvavssError(
            f"--audio-conditions: unknown condition {unknown[0]!r}; choose from {', '.join(AUDIO_CONDITIONS)}"
        )
    if not names:
        raise OvavssError(f"--audio-conditions: give at least one of {', '.join(AUDIO_CONDITIONS)}")
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise OvavssError(f"--audio-conditions: {repeated[0]!r} is given twice")
    return tuple(names)


def fit_length(waveform: np.ndarray, samples: int) -> np.ndarray:
    """``waveform`` cut to ``samples`` samples, or zero-padded (silence) at the end up to them."""
    waveform = np.asarray(waveform)
    if len(waveform) >= samples:
        return waveform[:samples].copy()
    return np.concatenate([waveform, np.zeros(samples - len(waveform), dtype=waveform.dtype)])


def noise_rng(seed: int, key: str) -> np.random.Generator:
    """The generator of the noise for ``key`` (a clip uid or a file name) under ``seed``."""
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def white_noise(samples: int, seed: int, key: str) -> np.ndarray:
    """``samples`` of Gaussian white noise at RMS :data:`NOISE_RMS`, clipped to [-1, 1] (float64)."""
    return np.clip(noise_rng(seed, key).normal(0.0, NOISE_RMS, samples), -1.0, 1.0)


def misaligned_assignment(
    class_sets: Mapping[str, Sequence[int] | None], seed: int, *, where: str | Path | None = None
) -> dict[str, str]:
    """For every clip (key), a donor clip whose sounding classes share none with its own.

    ``class_sets``: clip key -> its sounding class ids; ``None`` = unknown (such a clip cannot be
    placed, an error), an empty set = nothing sounds (it may receive any donor, but gives none: its
    audio is not known to be free of the recipient's classes). Deterministic for a given ``seed`` and
    set of clips (whatever their order): recipients are taken in sorted key order and each picks,
    among the candidates used least so far, one at random, so donors are spread evenly.
    """
    unknown = [key for key, ids in class_sets.items() if ids is None]
    if unknown:
        raise OvavssError(
            f"misaligned audio needs each clip's sounding classes, unknown for {len(unknown)} clips "
            f"(e.g. {unknown[0]!r}); leave 'misaligned' out of --audio-conditions",
            path=where,
        )
    sets = {key: frozenset(ids) for key, ids in sorted(class_sets.items())}
    rng = np.random.default_rng(seed)
    used: Counter[str] = Counter()
    donors: dict[str, str] = {}
    for key, classes in sets.items():
        candidates = [other for other, theirs in sets.items() if other != key and theirs and not theirs & classes]
        if not candidates:
            raise OvavssError(
                f"misaligned audio: no other of the {len(sets)} clips has sounding classes disjoint from those of "
                f"{key!r}, so it cannot get another clip's sound; use a larger split or leave 'misaligned' out of "
                "--audio-conditions",
                path=where,
            )
        fewest = min(used[other] for other in candidates)
        least_used = [other for other in candidates if used[other] == fewest]
        donors[key] = least_used[int(rng.integers(len(least_used)))]
        used[donors[key]] += 1
    return donors


#: ``ovavss predict --audio`` values that are not a file.
GENERATED_TRACKS: tuple[str, ...] = ("silence", "noise")


@dataclass(frozen=True)
class AudioReplacement:
    """The sound ``ovavss predict --audio`` runs a video on instead of its own."""

    source: str  # "silence" | "noise" | "file"
    path: Path | None = None  # source "file": the media file whose audio is used
    waveform: np.ndarray | None = field(default=None, repr=False)  # source "file": its audio, 16 kHz mono
    seed: int = 0  # source "noise"

    def track(self, seconds: float, key: str) -> np.ndarray:
        """The 16-kHz float32 track for ``seconds`` of video (``key``, e.g. the video's name, seeds the noise)."""
        samples = max(1, round(seconds * TARGET_RATE))
        if self.source == "silence":
            return np.zeros(samples, dtype=np.float32)
        if self.source == "noise":
            return white_noise(samples, self.seed, key).astype(np.float32)
        return fit_length(self.waveform, samples).astype(np.float32)

    def describe(self, seconds: float) -> dict:
        """What predictions.json records about the audio used."""
        if self.source == "silence":
            return {"source": "silence"}
        if self.source == "noise":
            return {"source": "noise", "noise": "gaussian white", "rms": NOISE_RMS, "seed": self.seed}
        file_seconds = len(self.waveform) / TARGET_RATE
        return {
            "source": "file",
            "path": str(self.path.resolve()),
            "file_seconds": round(file_seconds, 4),
            "fitted": "cut" if file_seconds > seconds else "zero-padded" if file_seconds < seconds else "as is",
        }


def load_replacement(choice: str) -> AudioReplacement:
    """``--audio silence``, ``noise`` (seed 0) or a media file's path (decoded now: a bad file fails before any
    work)."""
    if choice in GENERATED_TRACKS:
        return AudioReplacement(choice)
    path = Path(choice)
    waveform, _ = load_audio(path)  # one-line errors: not found, not a file, no audio stream, cannot decode
    return AudioReplacement("file", path=path, waveform=waveform)
