"""The test-data generator: determinism, real formats, class-dependent looks and sounds, atomic writes."""

from __future__ import annotations

import hashlib
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovavss_cli.data import synthetic
from ovavss_cli.data.avsbench import METADATA_HEADER, load_avss
from ovavss_cli.data.classes import LABEL_NAMES, class_id
from ovavss_cli.data.synthetic import (
    GRADED_DISTRACTOR_GAP,
    ClipSpec,
    class_appearance,
    class_grade,
    class_tone,
    default_avss_clips,
    generate_avss,
    generate_s4,
)
from ovavss_cli.errors import OvavssError


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    generate_avss(tmp_path / "a", 6, size=(24, 32), seed=3, silent_distractors=1)
    generate_avss(tmp_path / "b", 6, size=(24, 32), seed=3, silent_distractors=1)
    generate_avss(tmp_path / "c", 6, size=(24, 32), seed=4, silent_distractors=1)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert a != c


def test_default_clips_cover_every_subset_and_split():
    specs = default_avss_clips(9)
    assert {(s.subset, s.split) for s in specs} == {
        (a, b) for a in ("v1s", "v1m", "v2") for b in ("train", "val", "test")
    }
    assert all(len(s.sounding) == 1 for s in specs if s.subset == "v1s")
    assert all(1 <= len(s.sounding) <= 3 for s in specs)
    base_only = default_avss_clips(5, classes=["guitar", "piano"])
    assert {name for s in base_only for name in s.sounding} <= {"guitar", "piano"}


def test_real_formats(tmp_path):
    specs = [
        ClipSpec("aaaaaaaaaaa_20000_25000", "v1s", "train", ("dog",)),
        ClipSpec("bbbbbbbbbbb_1", "v1m", "test", ("cat", "man")),
    ]
    generate_avss(tmp_path / "t", specs, size=(20, 30), sample_rate=22_050, channels=2)
    lines = (tmp_path / "t/metadata.csv").read_text().splitlines()
    assert lines[0] == ",".join(METADATA_HEADER)
    assert lines[1] == "aaaaaaaaaaa,aaaaaaaaaaa_20000_25000,0,20,dog,train,v1s"
    assert lines[2] == "bbbbbbbbbbb_1,bbbbbbbbbbb_1,0,0,cat_man,test,v1m"
    label2idx = (tmp_path / "t/label2idx.json").read_text()
    assert list(__import__("json").loads(label2idx).items()) == [(n, i) for i, n in enumerate(LABEL_NAMES)]
    clip = tmp_path / "t/v1m/bbbbbbbbbbb_1"
    with Image.open(clip / "frames/0.jpg") as frame:
        assert (frame.format, frame.mode, frame.size) == ("JPEG", "RGB", (30, 20))
    with Image.open(clip / "labels_rgb/4.png") as rgb, Image.open(clip / "labels_semantic/4.png") as semantic:
        assert (rgb.format, rgb.mode) == ("PNG", "RGB")
        assert semantic.format == "PNG" and len(semantic.getbands()) == 1
        assert set(np.unique(np.asarray(semantic)).tolist()) <= {0, class_id("cat"), class_id("man")}
    with wave.open(str(clip / "audio.wav")) as audio:
        assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (22_050, 2, 2)
        assert audio.getnframes() == 5 * 22_050
    assert sorted(p.name for p in (tmp_path / "t/v1s/aaaaaaaaaaa_20000_25000/labels_semantic").iterdir()) == ["0.png"]


def test_each_class_has_its_own_look_and_tone():
    looks = {class_appearance(i) for i in range(1, 71)}
    assert len(looks) == 70
    tones = [class_tone(i)[0] for i in range(1, 71)]
    assert all(b / a > 1.04 for a, b in zip(tones, tones[1:], strict=False)) and tones[-1] < 4000


def test_graded_world_ties_hue_and_pitch_to_one_grade():
    """In the graded world sorting the classes by hue sorts them by pitch too, and looks stay distinct."""
    import colorsys

    ids = range(1, 71)
    assert sorted(class_grade(i) for i in ids) == list(range(70))
    by_grade = sorted(ids, key=class_grade)
    hues = [colorsys.rgb_to_hsv(*(c / 255 for c in class_appearance(i, "graded").colour))[0] for i in by_grade]
    tones = [class_tone(i, "graded")[0] for i in by_grade]
    assert all(b > a for a, b in zip(hues, hues[1:], strict=False)) and hues[-1] < 0.9  # no wrap back to red
    assert all(b > a for a, b in zip(tones, tones[1:], strict=False)) and 140 < tones[0] and tones[-1] < 6100
    assert len({class_appearance(i, "graded") for i in ids}) == 70
    assert class_tone(5) != class_tone(5, "graded")  # the classic world is unchanged by it


def test_graded_distractors_are_audibly_apart(tmp_path):
    info = generate_avss(tmp_path / "t", 30, size=(16, 16), seed=2, silent_distractors=1, world="graded")
    assert all(spec.world == "graded" for spec in info.clips)
    for spec in info.clips:
        for silent in spec.silent:
            gaps = [abs(class_grade(class_id(silent)) - class_grade(class_id(n))) for n in spec.sounding_classes]
            assert min(gaps) >= GRADED_DISTRACTOR_GAP, (spec.uid, silent, spec.sounding)
    with pytest.raises(ValueError, match="unknown world"):
        generate_avss(tmp_path / "bad", [ClipSpec("x_0_10000", "v2", "test", ("dog",), world="flat")])


def _band_energy(waveform: np.ndarray, rate: int, frequency: float) -> float:
    spectrum = np.abs(np.fft.rfft(waveform))
    bins = np.fft.rfftfreq(len(waveform), 1 / rate)
    return float(spectrum[np.abs(bins - frequency) < 3].sum())


def test_audio_holds_the_sounding_classes_only(tmp_path):
    spec = ClipSpec("ccccccccccc_0_10000", "v2", "val", ("trumpet", "lion"), silent=("bus",))
    generate_avss(tmp_path / "t", [spec], size=(16, 16))
    with wave.open(str(tmp_path / "t/v2/ccccccccccc_0_10000/audio.wav")) as audio:
        waveform = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2") / 32768.0
    sounding = [_band_energy(waveform, 16_000, class_tone(class_id(n))[0]) for n in ("trumpet", "lion")]
    silent = _band_energy(waveform, 16_000, class_tone(class_id("bus"))[0])
    assert min(sounding) > 20 * silent


def test_silent_distractor_is_visible_but_not_labelled(tmp_path):
    spec = ClipSpec("ddddddddddd_0_5000", "v1s", "val", ("guitar",), silent=("tiger",))
    generate_avss(tmp_path / "t", [spec])
    dataset = load_avss(tmp_path / "t")
    clip = dataset.clips[0]
    frame = dataset.read_frames(clip)[0].astype(int)
    ids = dataset.read_labels(clip, 0).ids
    assert set(np.unique(ids).tolist()) == {0, class_id("guitar")}
    tiger = np.asarray(class_appearance(class_id("tiger")).colour)
    assert class_appearance(class_id("tiger")).texture == "checker"  # squares at full and 0.55 brightness
    distance = np.minimum(np.abs(frame - tiger).sum(axis=-1), np.abs(frame - 0.55 * tiger).sum(axis=-1))
    near_tiger = distance < 40
    assert near_tiger[ids == 0].sum() > 30 and near_tiger[ids > 0].sum() == 0


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def failing_render(spec, size, rng):
        calls.append(spec.uid)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return original(spec, size, rng)

    original = synthetic.render_clip
    monkeypatch.setattr(synthetic, "render_clip", failing_render)
    with pytest.raises(RuntimeError, match="boom"):
        generate_avss(tmp_path / "t", 5)
    assert list(tmp_path.iterdir()) == []


def test_refuses_a_non_empty_target_and_bad_specs(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "keep.txt").write_text("x")
    with pytest.raises(OvavssError, match="already exists and is not an empty folder"):
        generate_avss(tmp_path / "t", 2)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    generate_avss(tmp_path / "empty", 1)  # an empty folder is fine
    with pytest.raises(ValueError, match="file quirks need a clip"):  # never silently skipped
        generate_avss(tmp_path / "q", [ClipSpec("x_0_5000", "v1s", "train", ("dog",))], quirks="missing-audio")
    with pytest.raises(ValueError, match="unknown class names"):
        generate_avss(tmp_path / "u", [ClipSpec("x_0_5000", "v1s", "val", ("unicorn",))])
    with pytest.raises(ValueError, match="exactly one sounding class"):
        generate_s4(tmp_path / "s", [ClipSpec("x_0", "v1s", "val", ("guitar", "man"))])
    with pytest.raises(ValueError, match="exactly one sounding class"):
        generate_s4(tmp_path / "s", [ClipSpec("x_0", "v1s", "val", ("accordion",))])  # not an S4 category


def test_schedule_makes_sound_and_masks_change_over_time(tmp_path):
    schedule = (("guitar",),) * 5 + (("dog",),) * 4 + (("guitar", "dog"),)
    spec = ClipSpec("eeeeeeeeeee_0_10000", "v2", "test", ("guitar", "dog"), schedule=schedule)
    generate_avss(tmp_path / "t", [spec], size=(24, 32))
    dataset = load_avss(tmp_path / "t")
    clip = dataset.clips[0]
    assert clip.sounding_ids == (class_id("dog"), class_id("guitar"))  # a_obj lists both
    present = [set(np.unique(dataset.read_labels(clip, t).ids).tolist()) - {0} for t in range(10)]
    assert present[0] == {class_id("guitar")} and present[6] == {class_id("dog")}
    assert present[9] == {class_id("guitar"), class_id("dog")}
    with wave.open(str(dataset.audio_path(clip))) as audio:
        waveform = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2") / 32768.0
    guitar, dog = (class_tone(class_id(n))[0] for n in ("guitar", "dog"))
    first, second = waveform[: 5 * 16_000], waveform[5 * 16_000 : 9 * 16_000]
    assert _band_energy(first, 16_000, guitar) > 20 * _band_energy(first, 16_000, dog)
    assert _band_energy(second, 16_000, dog) > 20 * _band_energy(second, 16_000, guitar)
    with pytest.raises(ValueError, match="schedule"):
        generate_avss(tmp_path / "bad", [ClipSpec("x_0_10000", "v2", "test", ("dog",), schedule=(("cat",),) * 10)])


def test_clips_of_one_scene_look_the_same_whatever_sounds(tmp_path):
    """Counterfactual twins: one scene, the guitar sounding in one clip and the dog in the other."""
    twins = [
        ClipSpec("twin_a_0_10000", "v2", "train", ("guitar", "dog"), schedule=(("guitar",),) * 10, scene="s1"),
        ClipSpec("twin_b_0_10000", "v2", "train", ("guitar", "dog"), schedule=(("dog",),) * 10, scene="s1"),
        ClipSpec("other_0_10000", "v2", "train", ("guitar", "dog"), schedule=(("dog",),) * 10, scene="s2"),
    ]
    generate_avss(tmp_path / "t", twins, size=(24, 32))
    dataset = load_avss(tmp_path / "t")
    first, second, other = (dataset.clip(spec.uid) for spec in twins)
    assert np.array_equal(dataset.read_frames(first), dataset.read_frames(second))
    assert not np.array_equal(dataset.read_frames(first), dataset.read_frames(other))
    labels = [dataset.read_labels(clip, 0).ids for clip in (first, second)]
    assert set(np.unique(labels[0]).tolist()) == {0, class_id("guitar")}
    assert set(np.unique(labels[1]).tolist()) == {0, class_id("dog")}
    # the dog's label pixels in one twin are exactly the pixels of the (silent) dog in the other
    assert labels[0][labels[1] > 0].max() == 0


def test_offscreen_classes_are_heard_not_drawn(tmp_path):
    spec = ClipSpec(
        "fffffffffff_0_5000", "v1m", "val", ("guitar",), schedule=((),) * 5, offscreen=("lion",), scene="s"
    )
    quiet = ClipSpec("ggggggggggg_0_5000", "v1m", "val", ("guitar",), schedule=((),) * 5, scene="s")
    generate_avss(tmp_path / "t", [spec, quiet], size=(24, 32))
    dataset = load_avss(tmp_path / "t")
    clip, quiet_clip = dataset.clip(spec.uid), dataset.clip(quiet.uid)
    assert np.array_equal(dataset.read_frames(clip), dataset.read_frames(quiet_clip))  # the lion is not drawn
    assert all(not dataset.read_labels(clip, t).ids.any() for t in range(5))  # nothing on screen sounds
    with wave.open(str(dataset.audio_path(clip))) as audio:
        waveform = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2") / 32768.0
    lion, guitar = (class_tone(class_id(n))[0] for n in ("lion", "guitar"))
    assert _band_energy(waveform, 16_000, lion) > 20 * _band_energy(waveform, 16_000, guitar)
    with pytest.raises(ValueError, match="off-screen class is not drawn"):
        generate_avss(tmp_path / "bad", [replace(spec, offscreen=("guitar",))])
    with pytest.raises(ValueError, match="unknown class names"):
        generate_avss(tmp_path / "bad2", [replace(spec, offscreen=("unicorn",))])


def test_counterfactual_scenes_render_one_scene_six_ways(tmp_path):
    base = [LABEL_NAMES[i] for i in range(1, 41)]
    specs = synthetic.counterfactual_scenes(3, seed=4, classes=base)
    assert specs == synthetic.counterfactual_scenes(3, seed=4, classes=base)  # seeded
    assert len(specs) == 3 * len(synthetic.COUNTERFACTUAL_VARIANTS)
    for scene in range(3):
        a, b, both, every, turns, offscreen = specs[6 * scene : 6 * scene + 6]
        assert len({spec.scene for spec in (a, b, both, every, turns, offscreen)}) == 1 and a.sounding == b.sounding
        grades = sorted(class_grade(class_id(name)) for name in a.sounding)
        assert set(a.sounding) <= set(base) and np.diff(grades).min() >= GRADED_DISTRACTOR_GAP
        heard = class_grade(class_id(offscreen.offscreen[0]))
        assert min(abs(heard - grade) for grade in grades) >= synthetic.OFFSCREEN_GAP
        first, second = a.sounding[:2]
        assert set(a.schedule) == {(first,)} and set(b.schedule) == {(second,)}
        assert set(both.schedule) == {(first, second)} and set(every.schedule) == {a.sounding}
        assert turns.schedule[0] == (first,) and turns.schedule[-1] == (second,) and () in turns.schedule
        assert offscreen.schedule == ((),) * 5 + ((first,),) * 5 and offscreen.offscreen
    generate_avss(tmp_path / "t", specs[:6], size=(24, 32))
    dataset = load_avss(tmp_path / "t")
    frames = [dataset.read_frames(dataset.clip(spec.uid)) for spec in specs[:6]]
    assert all(np.array_equal(frames[0], other) for other in frames[1:])  # only the sound differs
