"""AVSBench-object (S4 / MS3) reader: 1-based files, the ``.mp4_`` infix, the S4 train rule, categories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovavss_cli.data.avsobject import find_object_roots, load_avsobject
from ovavss_cli.data.classes import class_id
from ovavss_cli.data.synthetic import ClipSpec, generate_avss, generate_ms3, generate_s4
from ovavss_cli.errors import OvavssError

S4_SPECS = [
    ClipSpec("s4aaaaaaaaa_0", "v1s", "train", ("violin",), silent=("dog",)),
    ClipSpec("s4bbbbbbbbb_0", "v1s", "test", ("lion",)),
    ClipSpec("s4ccccccccc_0", "v1s", "val", ("emergency-car",), frames=12),
]
MS3_SPECS = [
    ClipSpec("ms3aaaaaaaa_1", "v1m", "train", ("guitar", "man")),
    ClipSpec("ms3bbbbbbbb_2", "v1m", "test", ("piano",), silent=("cat",)),
]


@pytest.fixture(scope="module")
def object_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("obj") / "avsbench_data"
    generate_s4(root, S4_SPECS)
    generate_ms3(root, MS3_SPECS)
    return root


def test_s4_categories_paths_and_one_based_files(object_root):
    dataset = load_avsobject(object_root, "s4")
    assert dataset.root == object_root / "Single-source"
    clip = dataset.clip("s4aaaaaaaaa_0")
    assert (clip.split, clip.category, clip.class_ids) == ("train", "playing_violin", (class_id("violin"),))
    assert dataset.clip("s4ccccccccc_0").category == "ambulance_siren"
    frames = dataset.frame_paths(clip)
    expected_dir = object_root / "Single-source/s4_data/visual_frames/train/playing_violin/s4aaaaaaaaa_0"
    assert frames == [expected_dir / f"s4aaaaaaaaa_0_{k}.png" for k in range(1, 6)]
    assert dataset.mask_path(clip, 0).name == "s4aaaaaaaaa_0_1.png"  # frame 0 is the file "_1"
    assert (
        dataset.audio_path(clip)
        == object_root / "Single-source/s4_data/audio_wav/train/playing_violin/s4aaaaaaaaa_0.wav"
    )
    assert dataset.audio_path(clip).is_file()


def test_s4_train_has_only_the_first_mask(object_root):
    dataset = load_avsobject(object_root, "s4")
    train, test = dataset.clip("s4aaaaaaaaa_0"), dataset.clip("s4bbbbbbbbb_0")
    assert dataset.label_frames(train) == [0]
    assert sorted(p.name for p in dataset.mask_dir(train).iterdir()) == ["s4aaaaaaaaa_0_1.png"]
    assert dataset.label_frames(test) == [0, 1, 2, 3, 4]
    mask = dataset.read_mask(test, 4)
    assert mask.dtype == bool and mask.shape == (64, 64) and 0 < mask.sum() < mask.size


def test_object_frames_sort_numerically(object_root):
    dataset = load_avsobject(object_root, "s4")
    clip = dataset.clip("s4ccccccccc_0")
    assert [p.name for p in dataset.frame_paths(clip)] == [f"s4ccccccccc_0_{k}.png" for k in range(1, 13)]
    assert dataset.label_frames(clip) == list(range(12))
    assert dataset.read_frames(clip).shape == (12, 64, 64, 3)


def test_ms3_mp4_infix_and_no_split_level_for_frames(object_root):
    dataset = load_avsobject(object_root, "ms3")
    clip = dataset.clip("ms3aaaaaaaa_1")
    assert clip.class_ids == ()  # MS3 has no categories of its own
    frames = dataset.frame_paths(clip)
    assert frames[0] == object_root / "Multi-sources/ms3_data/visual_frames/ms3aaaaaaaa_1/ms3aaaaaaaa_1.mp4_1.png"
    assert [p.name for p in frames][-1] == "ms3aaaaaaaa_1.mp4_5.png"
    assert dataset.label_frames(clip) == [0, 1, 2, 3, 4]  # MS3 train is fully annotated
    assert (
        dataset.mask_path(clip, 4)
        == object_root / "Multi-sources/ms3_data/gt_masks/train/ms3aaaaaaaa_1/ms3aaaaaaaa_1_5.png"
    )
    assert dataset.audio_path(clip) == object_root / "Multi-sources/ms3_data/audio_wav/train/ms3aaaaaaaa_1.wav"
    assert dataset.read_frames(clip).shape == (5, 64, 64, 3)


def test_ms3_classes_from_avss_v1m_rows(object_root, tmp_path):
    generate_avss(tmp_path / "avss", MS3_SPECS)  # same uids as v1m rows
    dataset = load_avsobject(object_root / "Multi-sources", "ms3", avss_root=tmp_path / "avss")
    assert dataset.clip("ms3aaaaaaaa_1").class_ids == tuple(sorted((class_id("guitar"), class_id("man"))))
    assert dataset.clip("ms3bbbbbbbb_2").class_ids == (class_id("piano"),)
    assert dataset.quirks == []


def test_masks_are_binarised_with_greater_than_zero(object_root, tmp_path):
    dataset = load_avsobject(object_root, "s4")
    clip = dataset.clip("s4bbbbbbbbb_0")
    expected = dataset.read_mask(clip, 2)
    values = np.where(expected, 1, 0).astype(np.uint8)  # 0/1 instead of 0/255, palette mode
    image = Image.fromarray(values, mode="P")
    image.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    image.save(dataset.mask_path(clip, 2))
    np.testing.assert_array_equal(dataset.read_mask(clip, 2), expected)


def test_silent_distractor_is_drawn_but_not_masked(object_root):
    dataset = load_avsobject(object_root, "s4")
    clip = dataset.clip("s4aaaaaaaaa_0")
    frame = dataset.read_frames(clip)[0].astype(int)
    mask = dataset.read_mask(clip, 0)
    vivid = (frame.max(axis=-1) - frame.min(axis=-1)) > 100  # object colours are saturated, the background is not
    assert vivid[mask].mean() > 0.9
    assert vivid[~mask].sum() > 50  # the silent dog


def test_roots_and_positional_columns(tmp_path):
    root = tmp_path / "data"
    generate_s4(root, S4_SPECS[:2])
    assert find_object_roots(root) == {"s4": root / "Single-source"}
    metadata = root / "Single-source" / "s4_meta_data.csv"
    # A header without names: the official loaders' positions (0 = name, 2 = category, 3 = split) apply.
    lines = metadata.read_text().splitlines()
    metadata.write_text("\n".join(["c0,c1,c2,c3", *lines[1:]]) + "\n")
    dataset = load_avsobject(root / "Single-source", "s4")
    assert [(c.name, c.category, c.split) for c in dataset.clips] == [
        ("s4aaaaaaaaa_0", "playing_violin", "train"),
        ("s4bbbbbbbbb_0", "lions_roaring", "test"),
    ]


def test_bad_object_roots(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "readme.txt").write_text("hi")
    with pytest.raises(OvavssError, match="no s4_meta_data.csv here or in Single-source/"):
        load_avsobject(tmp_path / "x", "s4")
    generate_ms3(tmp_path / "m", MS3_SPECS)
    metadata = tmp_path / "m" / "Multi-sources" / "ms3_meta_data.csv"
    metadata.write_text("name,split\nms3aaaaaaaa_1,trian\n")
    with pytest.raises(OvavssError, match="line 2: split 'trian'") as caught:
        load_avsobject(tmp_path / "m", "ms3")
    assert str(caught.value).startswith(str(metadata))
