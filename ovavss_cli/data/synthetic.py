"""Small, deterministic AVSBench trees in the real on-disk formats, for tests, demos and smoke runs.

Every class has a fixed look (colour, shape, texture: :func:`class_appearance`) and a fixed sound
(tone and amplitude-modulation rate: :func:`class_tone`), so a model can learn both. A clip draws
its sounding classes (these are in ``a_obj`` and in the masks) and optional **silent distractors**
(drawn in the frames, absent from ``a_obj``, the masks and the audio), so telling which visible
object sounds needs the audio. In the ``graded`` world (:data:`WORLDS`) a class's hue and its tone's
pitch both grow with its grade, so a model can learn the sound-to-look correspondence as a rule that holds
for classes it never heard (novel grades sit between base ones), and distractors are kept audibly
apart. A clip's ``schedule`` can make objects sound in some seconds only
(masked in those frames, audible in those seconds). Objects sit in separate vertical bands and drift
a little from frame to frame; a clip's randomness comes from ``(seed, uid)`` alone.

* :func:`generate_avss`: AVSBench-semantic (``metadata.csv``, ``label2idx.json``, JPEG frames,
  ``labels_rgb`` palette PNGs, ``labels_semantic`` index PNGs, ``audio.wav``; v1s train clips get
  only ``0.png`` labels), with switchable real-data quirks (:data:`AVSS_QUIRKS`).
* :func:`generate_s4` / :func:`generate_ms3`: AVSBench-object trees (1-based PNG frames, 0/255
  masks, MS3's ``<name>.mp4_<k>.png`` frames, S4 train with only the first mask).

A tree is built in a temporary folder and renamed into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import colorsys
import csv
import io
import json
import wave
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_dir
from ..errors import OvavssError
from .avsbench import (
    AUDIO_FILE,
    LABEL2IDX_FILE,
    LABEL_DIRS,
    METADATA_FILE,
    METADATA_HEADER,
    NO_OBJECT_TOKENS,
    NOMINAL_FRAMES,
    SPLITS,
    SUBSETS,
)
from .avsobject import TASK_LAYOUT, AVSObjectDataset, ObjectClip
from .classes import CLASS_NAMES, LABEL_NAMES, S4_CATEGORY_TO_CLASS, class_id
from .labelmap import encode_palette, label_image

#: Real-data quirks :func:`generate_avss` can add (each adds or edits one clip; see the docstring).
AVSS_QUIRKS: tuple[str, ...] = (
    "typo",  # a v1s train clip of a horse whose a_obj is written "h orse"
    "background-row",  # a v1m train clip with a_obj "background": nothing sounds, masks all 0
    "off-the-screen",  # a v2 train clip with a_obj "off-the-screen": a tone plays, masks all 0
    "unknown-colour",  # a 3x3 patch of (255, 0, 255) in one labels_rgb PNG (semantic stays right)
    "label-noise",  # 8 pixels of a class not in a_obj in one frame's masks (AVSBench#24)
    "missing-frame",  # one frames/<i>.jpg deleted
    "missing-label",  # one labels_semantic/<i>.png deleted
    "missing-audio",  # one audio.wav deleted
    "stray-files",  # COMBO's audio.pkl, processed_frames/, processed_labels_semantic/, pre_SAM_mask/
    "bom",  # metadata.csv starts with a UTF-8 byte-order mark
    "crlf",  # metadata.csv has CRLF line endings
    "extra-column",  # metadata.csv has an extra trailing column
    "label2idx-one-based",  # label2idx.json values 1..71 (as in a public copy)
)
#: The quirks that edit or delete files of generated clips (the others add rows or change metadata).
_FILE_QUIRKS = ("unknown-colour", "label-noise", "missing-frame", "missing-label", "missing-audio", "stray-files")
UNKNOWN_COLOUR = (255, 0, 255)  # no palette entry has a 255 channel
S4_CLASSES: tuple[str, ...] = tuple(sorted(set(S4_CATEGORY_TO_CLASS.values())))
_S4_CATEGORY = {name: category for category, name in S4_CATEGORY_TO_CLASS.items()}
_SHAPES = ("rectangle", "ellipse", "triangle", "diamond")
#: How class looks and sounds are assigned. ``classic``: golden-ratio hues and 1/16-octave tones from
#: 120 Hz, unrelated to each other. ``graded``: each class has a grade (:func:`class_grade`, 0..69);
#: hue 0..0.85 and tone 150..6000 Hz evenly spaced on the mel scale both increase with it (the bundled
#: demo's world).
WORLDS = ("classic", "graded")
#: In the graded world a silent distractor's grade is at least this far from every sounding class's
#: (about 8 VGGish mel bands), so its tone would be clearly different.
GRADED_DISTRACTOR_GAP = 10
_GRADED_HUE_SPAN, _GRADED_TONE_HZ = 0.85, (150.0, 6000.0)
_TEXTURES = ("solid", "stripes", "checker")


@dataclass(frozen=True)
class ClipSpec:
    """What one generated clip contains. S4 trees take v1s clips, MS3 trees v1m clips."""

    uid: str
    subset: str = "v2"  # v1s | v1m | v2
    split: str = "train"
    sounding: tuple[str, ...] = ()  # a_obj class names (or "background" / "off-the-screen")
    silent: tuple[str, ...] = ()  # visible, silent distractors: never in a_obj or the masks
    frames: int | None = None  # default 5 (v1s, v1m) or 10 (v2)
    # Optional per-frame subsets of `sounding` that sound during that second (masked in that
    # frame, audible in that second); empty = every sounding object sounds all the time.
    schedule: tuple[tuple[str, ...], ...] = ()
    world: str = "classic"  # one of WORLDS: how looks and sounds follow the class id
    # Classes heard for the whole clip but never drawn (off-screen sources: in the audio, not the frames).
    offscreen: tuple[str, ...] = ()
    # The key of the clip's randomness (default: its uid). Clips of one scene are drawn identically whatever
    # sounds in them: counterfactual twins, for training a model that must listen to tell them apart.
    scene: str = ""

    @property
    def num_frames(self) -> int:
        return self.frames if self.frames is not None else NOMINAL_FRAMES[self.subset]

    @property
    def sounding_classes(self) -> tuple[str, ...]:
        """Sounding classes that are visible (no-object tokens removed)."""
        return tuple(name for name in self.sounding if name not in NO_OBJECT_TOKENS)

    def sounds_at(self, name: str, frame: int) -> bool:
        """Whether sounding class ``name`` sounds during frame (second) ``frame``."""
        return name in self.sounding and (not self.schedule or name in self.schedule[frame])


@dataclass(frozen=True)
class GeneratedInfo:
    root: Path  # the tree's root (for S4 / MS3: the Single-source / Multi-sources folder)
    clips: tuple[ClipSpec, ...]  # metadata order
    quirk_paths: dict[str, Path] = field(default_factory=dict)  # quirk -> the file or clip folder it touched


@dataclass(frozen=True)
class Appearance:
    colour: tuple[int, int, int]
    shape: str
    texture: str


def class_grade(class_index: int) -> int:
    """The graded world's rank of class ``class_index`` (1..70): a fixed permutation (3·(id-1) mod 70) that
    scatters neighbouring ids (and so base and novel classes) over the whole hue and pitch range."""
    return 3 * (class_index - 1) % len(CLASS_NAMES)


def class_appearance(class_index: int, world: str = "classic") -> Appearance:
    """The fixed look of AVSS class ``class_index`` (1..70) in ``world``: a hue, a shape, a texture."""
    if world == "graded":
        hue = _GRADED_HUE_SPAN * class_grade(class_index) / (len(CLASS_NAMES) - 1)
    else:
        hue = (class_index * 0.6180339887) % 1.0  # golden-ratio steps
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    colour = (round(red * 255), round(green * 255), round(blue * 255))
    return Appearance(colour, _SHAPES[class_index % 4], _TEXTURES[(class_index // 4) % 3])


def _mel(hz: float) -> float:
    return 1127.0 * np.log1p(hz / 700.0)  # HTK, as the VGGish front end


def class_tone(class_index: int, world: str = "classic") -> tuple[float, float]:
    """``(frequency Hz, modulation Hz)`` of class ``class_index`` in ``world``: classic 1/16-octave steps from
    120 Hz (< 2.4 kHz); graded even mel steps over 150..6000 Hz."""
    if world == "graded":
        low, high = (_mel(hz) for hz in _GRADED_TONE_HZ)
        mel = low + (high - low) * class_grade(class_index) / (len(CLASS_NAMES) - 1)
        frequency = 700.0 * float(np.expm1(mel / 1127.0))
    else:
        frequency = 120.0 * 2.0 ** ((class_index - 1) / 16.0)
    return frequency, 1.5 + 0.75 * (class_index % 5)


def _clip_rng(seed: int, uid: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(uid.encode())])


def clip_rng(seed: int, spec: ClipSpec) -> np.random.Generator:
    """The generator a clip is drawn and voiced from: keyed by its scene (its uid when it has none)."""
    return _clip_rng(seed, spec.scene or spec.uid)


def _shape_mask(shape: str, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Pixels inside ``shape`` for coordinates normalised to [-1, 1] over the object's box."""
    inside_box = (np.abs(yy) <= 1) & (np.abs(xx) <= 1)
    if shape == "ellipse":
        return yy**2 + xx**2 <= 1
    if shape == "triangle":  # apex up
        return inside_box & (np.abs(xx) <= (yy + 1) / 2)
    if shape == "diamond":
        return np.abs(yy) + np.abs(xx) <= 1
    return inside_box


def _texture(texture: str, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Brightness factor of a texture at pixel coordinates (stripes and checks 3 px wide)."""
    if texture == "stripes":
        return np.where((x // 3) % 2 == 0, 1.0, 0.55)
    if texture == "checker":
        return np.where(((x // 3) + (y // 3)) % 2 == 0, 1.0, 0.55)
    return np.ones(np.broadcast(y, x).shape)


def render_clip(spec: ClipSpec, size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, H, W, 3) uint8 and GT ids (T, H, W) int64 of a clip (objects not sounding have GT 0)."""
    height, width = size
    objects = [*spec.sounding_classes, *spec.silent]
    order = rng.permutation(len(objects))  # which band each object gets
    band = width / max(len(objects), 1)
    y, x = np.mgrid[0:height, 0:width]
    base = rng.uniform(60, 110, size=3)
    background = base + 25 * (y / height)[..., None] + rng.normal(0, 4, size=(height, width, 3))
    placements = []
    for slot, name in zip(order, objects, strict=True):
        half_h, half_w = rng.uniform(0.22, 0.34) * height, min(rng.uniform(0.3, 0.42) * band, 0.3 * width)
        centre = (rng.uniform(half_h, height - half_h), (slot + 0.5) * band)
        drift = rng.uniform(-0.6, 0.6, size=2)  # pixels per frame
        placements.append((name, class_appearance(class_id(name), spec.world), half_h, half_w, centre, drift))
    frames = np.empty((spec.num_frames, height, width, 3), dtype=np.uint8)
    labels = np.zeros((spec.num_frames, height, width), dtype=np.int64)
    for t in range(spec.num_frames):
        image = background.copy()
        for name, look, half_h, half_w, centre, drift in placements:
            cy, cx = centre[0] + drift[0] * t, centre[1] + drift[1] * t
            inside = _shape_mask(look.shape, (y - cy) / half_h, (x - cx) / half_w)
            shade = _texture(look.texture, y, x)[..., None] * np.asarray(look.colour, dtype=np.float64)
            image[inside] = shade[inside]
            labels[t][inside] = class_id(name) if spec.sounds_at(name, t) else 0
        frames[t] = np.clip(image, 0, 255).astype(np.uint8)
    return frames, labels


def clip_audio(spec: ClipSpec, sample_rate: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """(samples, channels) int16 PCM, one second per frame: the mixed tones of the sounding classes.

    With a ``schedule`` a tone plays only in the seconds its class sounds; ``offscreen`` classes play all
    the time. ``off-the-screen`` plays a tone of a class that is not drawn; ``background`` only noise.
    """
    t = np.arange(spec.num_frames * sample_rate) / sample_rate
    second = (t.astype(np.int64)).clip(max=spec.num_frames - 1)
    # (class id, on/off per second) of every source
    sources = [
        (class_id(n), np.array([spec.sounds_at(n, f) for f in range(spec.num_frames)])) for n in spec.sounding_classes
    ]
    sources += [(class_id(name), np.ones(spec.num_frames, dtype=bool)) for name in spec.offscreen]
    if "off-the-screen" in spec.sounding:
        drawn = {class_id(name) for name in (*spec.sounding_classes, *spec.silent)}
        hidden = int(rng.choice([i for i in range(1, len(LABEL_NAMES)) if i not in drawn]))
        sources.append((hidden, np.ones(spec.num_frames, dtype=bool)))
    signal = rng.normal(0.0, 0.01, size=t.shape)
    for index, active in sources:
        frequency, modulation = class_tone(index, spec.world)
        phase = rng.uniform(0, 2 * np.pi)
        tone = np.sin(2 * np.pi * frequency * t + phase) * (0.6 + 0.4 * np.sin(2 * np.pi * modulation * t))
        signal += 0.5 / len(sources) * tone * active[second]
    # Channels differ in gain only, so the reader's down-mix (mean) keeps the same sound.
    gains = 1.0 - 0.2 * np.arange(channels) / max(channels - 1, 1)
    return np.round(np.clip(signal[:, None] * gains, -1, 1) * 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write (samples, channels) int16 as PCM WAV (stdlib ``wave``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(samples.shape[1])
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(samples.astype("<i2").tobytes())


def _save_image(path: Path, array: np.ndarray, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **options)


def _save_label_maps(clip_dir: Path, frame: int, ids: np.ndarray) -> None:
    """``labels_rgb/<frame>.png`` (RGB palette colours) and ``labels_semantic/<frame>.png`` (index)."""
    _save_image(clip_dir / LABEL_DIRS["rgb"] / f"{frame}.png", encode_palette(ids))
    path = clip_dir / LABEL_DIRS["semantic"] / f"{frame}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    label_image(ids).save(path)


def _grade_gap(name: str, grades: Sequence[int]) -> int:
    """Grade distance from class ``name`` to the nearest of ``grades`` (graded world)."""
    return min((abs(class_grade(class_id(name)) - grade) for grade in grades), default=len(CLASS_NAMES))


def with_silent_distractors(specs: Sequence[ClipSpec], count: int, pool: Sequence[str], seed: int) -> list[ClipSpec]:
    """Give clips without explicit distractors ``count`` silent classes from ``pool`` (never sounding ones)."""
    out = []
    for spec in specs:
        if count and not spec.silent:
            choices = [name for name in pool if name not in spec.sounding]
            if spec.world == "graded":
                grades = [class_grade(class_id(name)) for name in spec.sounding_classes]
                choices = [n for n in choices if _grade_gap(n, grades) >= GRADED_DISTRACTOR_GAP]
            picked = _clip_rng(seed + 1, spec.uid).choice(choices, size=min(count, len(choices)), replace=False)
            spec = replace(spec, silent=tuple(str(name) for name in picked))
        out.append(spec)
    return out


def _check_specs(specs: Sequence[ClipSpec]) -> None:
    uids = [spec.uid for spec in specs]
    if len(set(uids)) != len(uids):
        raise ValueError("clip uids must be unique")
    known = set(CLASS_NAMES) | set(NO_OBJECT_TOKENS)
    for spec in specs:
        if spec.world not in WORLDS:
            raise ValueError(f"{spec.uid}: unknown world {spec.world!r} (choose from {', '.join(WORLDS)})")
        if spec.subset not in SUBSETS or spec.split not in SPLITS:
            raise ValueError(f"{spec.uid}: bad subset/split {spec.subset!r}/{spec.split!r}")
        unknown = set(spec.sounding) - known | (set(spec.silent) | set(spec.offscreen)) - set(CLASS_NAMES)
        if unknown:
            raise ValueError(f"{spec.uid}: unknown class names {sorted(unknown)}")
        if set(spec.offscreen) & {*spec.sounding, *spec.silent}:
            raise ValueError(f"{spec.uid}: an off-screen class is not drawn, so it cannot be sounding or silent too")
        if spec.schedule and (
            len(spec.schedule) != spec.num_frames or not set().union(*spec.schedule) <= set(spec.sounding_classes)
        ):
            raise ValueError(f"{spec.uid}: schedule needs one subset of the sounding classes per frame")


# ----------------------------------------------------------------------------------------------
# Default clip lists

#: (subset, split) cycle of the default AVSS clip list: every subset in every split within 9 clips.
_AVSS_CYCLE = (
    ("v1s", "train"), ("v1m", "train"), ("v2", "train"), ("v2", "val"), ("v2", "test"),
    ("v1s", "val"), ("v1s", "test"), ("v1m", "val"), ("v1m", "test"),
)  # fmt: skip
_MAX_SOUNDING = {"v1s": 1, "v1m": 2, "v2": 3}


def _uid(subset: str, index: int, prefix: str) -> str:
    """A uid in the real formats: ``<vid>_<start_ms>_<end_ms>`` (v1s, v2) or ``<name>_<k>`` (v1m)."""
    vid = f"{prefix}{index:08d}"  # 11 characters, like a YouTube id
    if subset == "v1m":
        return f"{vid}_{index % 10}"
    start = 10 * (index % 7)
    return f"{vid}_{start * 1000}_{(start + NOMINAL_FRAMES[subset]) * 1000}"


def default_avss_clips(count: int, seed: int = 0, classes: Sequence[str] = CLASS_NAMES) -> list[ClipSpec]:
    """``count`` clips cycling through every (subset, split), with 1 (v1s), 1-2 (v1m) or 1-3 (v2) classes."""
    rng = np.random.default_rng(seed)
    specs = []
    for index in range(count):
        subset, split = _AVSS_CYCLE[index % len(_AVSS_CYCLE)]
        k = int(rng.integers(1, min(_MAX_SOUNDING[subset], len(classes)) + 1))
        sounding = tuple(str(name) for name in rng.choice(classes, size=k, replace=False))
        specs.append(ClipSpec(_uid(subset, index, "syn"), subset, split, sounding))
    return specs


def graded_apart(
    rng: np.random.Generator,
    pool: Sequence[str],
    count: int,
    avoid: Sequence[str] = (),
    gap: int = GRADED_DISTRACTOR_GAP,
) -> tuple[str, ...]:
    """Up to ``count`` classes of ``pool`` (in a random order) whose graded-world grades are at least ``gap``
    from each other and from every class of ``avoid``."""
    chosen: list[str] = []
    for name in rng.permutation(list(pool)):
        grades = [class_grade(class_id(other)) for other in (*avoid, *chosen)]
        if len(chosen) < count and _grade_gap(str(name), grades) >= gap:
            chosen.append(str(name))
    return tuple(chosen)


#: The renderings of one :func:`counterfactual_scenes` scene (its objects A, B, ... in a fixed layout).
COUNTERFACTUAL_VARIANTS = ("a", "b", "both", "all", "turns", "offscreen")
#: How close (in grades) an ``offscreen`` sound may be to an object on screen: much closer than a silent
#: distractor may be to a sounding object, so the segmenter learns that a sound *like* an object's (another
#: clip's, say) is not that object's sound.
OFFSCREEN_GAP = 3


def counterfactual_scenes(count: int, seed: int, classes: Sequence[str], world: str = "graded") -> list[ClipSpec]:
    """``count`` 10-frame v2 train scenes of 2 or 3 objects of ``classes`` (grades apart), each rendered 6 times
    with the same look and layout (:attr:`ClipSpec.scene`): ``a``: A sounds, the rest is silent; ``b``: B sounds;
    ``both``: A and B sound together, C (if any) stays silent; ``all``: every object sounds (in a two-object scene
    the same sound as ``both``); ``turns``: A, one silent second, then B;
    ``offscreen``: 5 s of the sound alone of an off-screen class (at least :data:`OFFSCREEN_GAP` grades
    from every object on screen; nothing on screen sounds), then A joins it. Only the sound tells these clips
    apart, so they teach a segmenter to listen."""
    rng = np.random.default_rng(seed)
    specs = []
    for index in range(count):
        drawn = graded_apart(rng, classes, int(rng.integers(2, 4)))
        first, second = drawn[:2]
        cut = int(rng.integers(2, 9))
        offscreen = graded_apart(rng, classes, 1, avoid=drawn, gap=OFFSCREEN_GAP)
        schedules = {
            "a": ((first,),) * 10,
            "b": ((second,),) * 10,
            "both": ((first, second),) * 10,
            "all": (drawn,) * 10,
            "turns": ((first,),) * cut + ((),) + ((second,),) * (9 - cut),
            "offscreen": ((),) * 5 + ((first,),) * 5,
        }
        for variant in COUNTERFACTUAL_VARIANTS:
            specs.append(ClipSpec(
                f"cf{index:05d}{variant}_0_10000", "v2", "train", drawn, schedule=schedules[variant], world=world,
                scene=f"scene{index}", offscreen=offscreen if variant == "offscreen" else (),
            ))  # fmt: skip
    return specs


def _default_object_clips(count: int, subset: str, seed: int, classes: Sequence[str]) -> list[ClipSpec]:
    rng = np.random.default_rng(seed)
    specs = []
    for index in range(count):
        k = 1 if subset == "v1s" else int(rng.integers(1, min(2, len(classes)) + 1))
        sounding = tuple(str(name) for name in rng.choice(classes, size=k, replace=False))
        specs.append(ClipSpec(_uid(subset, index, "obj"), subset, SPLITS[index % 3], sounding))
    return specs


# ----------------------------------------------------------------------------------------------
# AVSBench-semantic


_TYPO_UID = _uid("v1s", 900, "typ")


def _quirk_clips(quirks: set[str]) -> list[ClipSpec]:
    """The extra clips the row quirks need."""
    extra = []
    if "typo" in quirks:
        extra.append(ClipSpec(_TYPO_UID, "v1s", "train", ("horse",)))
    if "background-row" in quirks:
        extra.append(ClipSpec(_uid("v1m", 901, "bgr"), "v1m", "train", ("background",)))
    if "off-the-screen" in quirks:
        extra.append(ClipSpec(_uid("v2", 902, "off"), "v2", "train", ("off-the-screen",)))
    return extra


def _vid_and_start(spec: ClipSpec) -> tuple[str, int]:
    """``vid`` and start second of a clip: from a ``<vid>_<start_ms>_<end_ms>`` uid, else (uid, 0)."""
    parts = spec.uid.rsplit("_", 2)
    if spec.subset != "v1m" and len(parts) == 3 and parts[1].isdigit():
        return parts[0], int(parts[1]) // 1000
    return spec.uid, 0


def _metadata_text(specs: Sequence[ClipSpec], quirks: set[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if "crlf" in quirks else "\n")
    extra = ["note"] if "extra-column" in quirks else []
    writer.writerow([*METADATA_HEADER, *extra])
    for spec in specs:
        vid, start = _vid_and_start(spec)
        a_obj = "h orse" if spec.uid == _TYPO_UID and "typo" in quirks else "_".join(spec.sounding)
        writer.writerow(
            [vid, spec.uid, start // 60, start % 60, a_obj, spec.split, spec.subset, *(["x"] if extra else [])]
        )
    return ("\ufeff" if "bom" in quirks else "") + buffer.getvalue()


def _write_avss_clip(
    clip_dir: Path, spec: ClipSpec, seed: int, size: tuple[int, int], sample_rate: int, channels: int
) -> np.ndarray:
    rng = clip_rng(seed, spec)
    frames, labels = render_clip(spec, size, rng)
    for t, frame in enumerate(frames):
        _save_image(clip_dir / "frames" / f"{t}.jpg", frame, quality=92)
    annotated = [0] if spec.subset == "v1s" and spec.split == "train" else range(spec.num_frames)
    for t in annotated:
        _save_label_maps(clip_dir, t, labels[t])
    write_wav(clip_dir / AUDIO_FILE, clip_audio(spec, sample_rate, channels, rng), sample_rate)
    return labels


def _apply_file_quirks(
    root: Path, specs: Sequence[ClipSpec], quirks: set[str], labels: dict[str, np.ndarray]
) -> dict[str, Path]:
    """Edit or delete files of the first / last fully annotated clip; returns quirk -> touched path."""
    touched: dict[str, Path] = {}
    annotated = [s for s in specs if s.sounding_classes and not (s.subset == "v1s" and s.split == "train")]
    if not quirks & set(_FILE_QUIRKS):
        return touched
    if not annotated:
        raise ValueError("file quirks need a clip with a sounding object outside v1s train")
    first, last = annotated[0], annotated[-1]
    first_dir, last_dir = root / first.subset / first.uid, root / last.subset / last.uid
    if "unknown-colour" in quirks:
        path = first_dir / LABEL_DIRS["rgb"] / "0.png"
        ids = labels[first.uid][0]
        # On background pixels, so labels_rgb decodes to the same ids as labels_semantic.
        y, x = np.argwhere(np.lib.stride_tricks.sliding_window_view(ids == 0, (3, 3)).all(axis=(2, 3)))[0]
        rgb = encode_palette(ids)
        rgb[y : y + 3, x : x + 3] = UNKNOWN_COLOUR
        _save_image(path, rgb)
        touched["unknown-colour"] = path
    if "label-noise" in quirks:
        ids = labels[first.uid][1].copy()
        ids[-2:, -4:] = next(class_id(n) for n in CLASS_NAMES if n not in first.sounding and n not in first.silent)
        _save_label_maps(first_dir, 1, ids)
        touched["label-noise"] = first_dir / LABEL_DIRS["semantic"] / "1.png"
    deletions = {
        "missing-frame": last_dir / "frames" / f"{last.num_frames - 1}.jpg",
        "missing-label": last_dir / LABEL_DIRS["semantic"] / f"{last.num_frames - 1}.png",
        "missing-audio": last_dir / AUDIO_FILE,
    }
    for quirk, path in deletions.items():
        if quirk in quirks:
            path.unlink()
            touched[quirk] = path
    if "stray-files" in quirks:
        (first_dir / "audio.pkl").write_bytes(b"\x80\x04N.")  # a pickled None, like a stale cache
        _save_image(first_dir / "processed_frames" / "0.jpg", np.zeros((4, 4), np.uint8))
        _save_image(first_dir / "processed_labels_semantic" / "0.png", np.zeros((4, 4), np.uint8))
        (root / "pre_SAM_mask").mkdir()
        touched["stray-files"] = first_dir
    return touched


def _quirk_set(quirks: Iterable[str] | str) -> set[str]:
    """Quirk names from an iterable or a comma-separated string; ``"all"`` selects every quirk."""
    if isinstance(quirks, str):
        quirks = AVSS_QUIRKS if quirks.strip() == "all" else [q.strip() for q in quirks.split(",") if q.strip()]
    chosen = set(quirks)
    unknown = chosen - set(AVSS_QUIRKS)
    if unknown:
        raise OvavssError(f"unknown quirk(s) {', '.join(sorted(unknown))}; choose from {', '.join(AVSS_QUIRKS)}")
    return chosen


def _new_tree(root: Path) -> None:
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise OvavssError("already exists and is not an empty folder; choose a new output folder", path=root)


def generate_avss(
    root: str | Path,
    clips: int | Sequence[ClipSpec] = 9,
    *,
    seed: int = 0,
    size: tuple[int, int] = (64, 96),
    sample_rate: int = 16_000,
    channels: int = 1,
    silent_distractors: int = 0,
    frames_per_clip: int | None = None,
    classes: Sequence[str] = CLASS_NAMES,
    quirks: Iterable[str] | str = (),
    world: str | None = None,
) -> GeneratedInfo:
    """Write an AVSBench-semantic tree at ``root`` (which must not exist or be empty).

    ``clips`` is a count (see :func:`default_avss_clips`, drawing from ``classes``) or explicit
    specs. ``frames_per_clip`` overrides the frame count of clips without one (e.g. 12 to exercise
    numeric sorting). ``size`` is (H, W). ``quirks``: names from :data:`AVSS_QUIRKS` (a list or a
    comma-separated string), or ``"all"``. ``world`` (one of :data:`WORLDS`), when given, is set on
    every clip.
    """
    root = Path(root)
    chosen = _quirk_set(quirks)
    _new_tree(root)
    specs = default_avss_clips(clips, seed, classes) if isinstance(clips, int) else list(clips)
    specs = specs + _quirk_clips(chosen)
    if world is not None:
        specs = [replace(spec, world=world) for spec in specs]
    if frames_per_clip is not None:
        specs = [spec if spec.frames is not None else replace(spec, frames=frames_per_clip) for spec in specs]
    specs = with_silent_distractors(specs, silent_distractors, classes, seed)
    _check_specs(specs)
    with atomic_dir(root) as tmp:
        (tmp / METADATA_FILE).write_bytes(_metadata_text(specs, chosen).encode("utf-8"))
        offset = 1 if "label2idx-one-based" in chosen else 0
        label2idx = {name: index + offset for index, name in enumerate(LABEL_NAMES)}
        (tmp / LABEL2IDX_FILE).write_text(json.dumps(label2idx, indent=2) + "\n")
        labels = {
            spec.uid: _write_avss_clip(tmp / spec.subset / spec.uid, spec, seed, size, sample_rate, channels)
            for spec in specs
        }
        touched = _apply_file_quirks(tmp, specs, chosen, labels)
    return GeneratedInfo(root, tuple(specs), {quirk: root / path.relative_to(tmp) for quirk, path in touched.items()})


# ----------------------------------------------------------------------------------------------
# AVSBench-object


def _write_object_clip(
    layout: AVSObjectDataset,
    clip: ObjectClip,
    spec: ClipSpec,
    seed: int,
    size: tuple[int, int],
    rate: int,
    channels: int,
) -> None:
    """Frames (1-based PNGs), 0/255 masks and the WAV of one clip, at the paths the reader expects."""
    rng = clip_rng(seed, spec)
    frames, labels = render_clip(spec, size, rng)
    prefix = layout.frame_prefix(clip)
    for t, frame in enumerate(frames):
        _save_image(layout.frame_dir(clip) / f"{prefix}{t + 1}.png", frame)
    for t in layout.label_frames(clip):  # S4 train: the first mask only
        _save_image(layout.mask_path(clip, t), np.where(labels[t] > 0, 255, 0).astype(np.uint8))
    write_wav(layout.audio_path(clip), clip_audio(spec, rate, channels, rng), rate)


def generate_avsobject(
    root: str | Path,
    task: str,
    clips: int | Sequence[ClipSpec] = 6,
    *,
    seed: int = 0,
    size: tuple[int, int] = (64, 64),
    sample_rate: int = 16_000,
    channels: int = 1,
    silent_distractors: int = 0,
    world: str | None = None,
) -> GeneratedInfo:
    """Write ``<root>/Single-source`` (``task="s4"``) or ``<root>/Multi-sources`` (``"ms3"``).

    S4 clips have exactly one sounding class from :data:`S4_CLASSES` (its category folder); default
    MS3 clips have 1-2. The real frames and masks are 224x224; ``size`` (H, W) is smaller by default.
    ``world`` as :func:`generate_avss`.
    """
    subset = "v1s" if task == "s4" else "v1m"
    specs = _default_object_clips(clips, subset, seed, S4_CLASSES) if isinstance(clips, int) else list(clips)
    if world is not None:
        specs = [replace(spec, world=world) for spec in specs]
    if task == "s4" and any(len(spec.sounding) != 1 or spec.sounding[0] not in _S4_CATEGORY for spec in specs):
        raise ValueError("an S4 clip has exactly one sounding class from S4_CLASSES")
    specs = with_silent_distractors(specs, silent_distractors, S4_CLASSES, seed)
    _check_specs(specs)
    folder, metadata_name, _ = TASK_LAYOUT[task]
    target = Path(root) / folder
    _new_tree(target)
    with atomic_dir(target) as tmp:
        categories = [_S4_CATEGORY[spec.sounding[0]] if task == "s4" else "" for spec in specs]
        object_clips = [ObjectClip(s.uid, task, s.split, c, ()) for s, c in zip(specs, categories, strict=True)]
        layout = AVSObjectDataset(tmp, task, object_clips)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["name", "start", "category", "split"] if task == "s4" else ["name", "split"])
        for spec, clip in zip(specs, object_clips, strict=True):
            writer.writerow([clip.name, 0, clip.category, clip.split] if task == "s4" else [clip.name, clip.split])
            _write_object_clip(layout, clip, spec, seed, size, sample_rate, channels)
        (tmp / metadata_name).write_text(buffer.getvalue())
    return GeneratedInfo(target, tuple(specs))


def generate_s4(root: str | Path, clips: int | Sequence[ClipSpec] = 6, **options) -> GeneratedInfo:
    """Write ``<root>/Single-source`` (S4); options as :func:`generate_avsobject`."""
    return generate_avsobject(root, "s4", clips, **options)


def generate_ms3(root: str | Path, clips: int | Sequence[ClipSpec] = 6, **options) -> GeneratedInfo:
    """Write ``<root>/Multi-sources`` (MS3, 5 masks in every split); options as :func:`generate_avsobject`.

    Passing the same specs to :func:`generate_avss` gives the matching v1m rows (uid = MS3 name).
    """
    return generate_avsobject(root, "ms3", clips, **options)


LAYOUTS: tuple[str, ...] = ("avss", "s4", "ms3")


def generate_tree(
    layout: str,
    root: str | Path,
    clips: int,
    *,
    seed: int = 0,
    silent_distractors: int = 0,
    quirks: str = "",
    world: str = "classic",
) -> GeneratedInfo:
    """``ovavss generate-data``: one tree of ``layout`` (avss | s4 | ms3) with default clips."""
    if layout not in LAYOUTS:
        raise OvavssError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if world not in WORLDS:
        raise OvavssError(f"unknown world {world!r}; expected one of {', '.join(WORLDS)}")
    options = {"seed": seed, "silent_distractors": silent_distractors, "world": world}
    if layout == "avss":
        return generate_avss(root, clips, quirks=quirks, **options)
    if quirks.strip():
        raise OvavssError("--quirks applies to the avss layout only")
    generate = generate_s4 if layout == "s4" else generate_ms3
    return generate(root, clips, **options)
