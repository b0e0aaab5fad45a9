"""AVSBench-semantic reader on generated trees: quirks, numeric frame order, label decoding, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ovavss_cli.data.avsbench import load_avss, parse_a_obj
from ovavss_cli.data.classes import LABEL_NAMES, class_id
from ovavss_cli.data.synthetic import ClipSpec, class_tone, generate_avss
from ovavss_cli.errors import OvavssError

SPECS = [
    ClipSpec("aaaaaaaaaaa_0_5000", "v1s", "train", ("guitar",), silent=("dog",)),
    ClipSpec("bbbbbbbbbbb_0_5000", "v1s", "test", ("violin",)),
    ClipSpec("ccccccccccc_1", "v1m", "val", ("piano", "man")),
    ClipSpec("ddddddddddd_10000_20000", "v2", "test", ("cello", "woman", "drum"), silent=("car",)),
    ClipSpec("eeeeeeeeeee_0_10000", "v2", "train", ("tabla",), frames=12),
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("avss") / "AVSBench-semantic"
    generate_avss(root, SPECS, quirks=["typo", "background-row", "off-the-screen", "unknown-colour", "stray-files"])
    return root


def test_metadata_rows_and_class_order(tree):
    dataset = load_avss(tree)
    assert dataset.class_names == LABEL_NAMES
    assert [clip.uid for clip in dataset.clips[: len(SPECS)]] == [spec.uid for spec in SPECS]
    mixed = dataset.clip("ddddddddddd_10000_20000")
    assert (mixed.subset, mixed.split, mixed.vid) == ("v2", "test", "ddddddddddd")
    assert mixed.a_obj == ("cello", "woman", "drum")
    assert mixed.sounding_ids == tuple(sorted(class_id(n) for n in ("cello", "woman", "drum")))
    assert [clip.uid for clip in dataset.split("test")] == ["bbbbbbbbbbb_0_5000", "ddddddddddd_10000_20000"]
    with pytest.raises(OvavssError, match="not in the metadata"):
        dataset.clip("nope")
    with pytest.raises(OvavssError, match="unknown split"):
        dataset.split("training")


def test_quirky_rows_are_resolved_and_reported(tree):
    dataset = load_avss(tree)
    by_first_token = {clip.a_obj[0]: clip for clip in dataset.clips}
    typo = by_first_token["horse"]
    assert typo.sounding_ids == (class_id("horse"),)
    assert (tree / "metadata.csv").read_text().count("h orse") == 1  # the file really has the typo
    assert by_first_token["background"].sounding_ids == ()
    assert by_first_token["background"].subset == "v1m"
    assert by_first_token["off-the-screen"].sounding_ids == ()
    assert by_first_token["off-the-screen"].subset == "v2"
    notes = "\n".join(dataset.quirks)
    assert "'h orse' read as 'horse'" in notes and typo.uid in notes
    assert "'background': no sounding object" in notes
    assert "'off-the-screen': no sounding object" in notes


def test_frames_sort_numerically(tree):
    dataset = load_avss(tree)
    clip = dataset.clip("eeeeeeeeeee_0_10000")
    names = [path.name for path in dataset.frame_paths(clip)]
    assert names == [f"{i}.jpg" for i in range(12)]  # lexicographic order would put 10.jpg after 1.jpg
    assert dataset.label_frames(clip) == list(range(12))
    frames = dataset.read_frames(clip)
    assert frames.shape == (12, 64, 96, 3) and frames.dtype == np.uint8
    # Frame order on disk matches render order: objects drift, so consecutive frames differ.
    assert not np.array_equal(frames[0], frames[11])


def test_v1s_train_has_only_the_first_label(tree):
    dataset = load_avss(tree)
    clip = dataset.clip("aaaaaaaaaaa_0_5000")
    assert dataset.label_frames(clip) == [0]
    assert len(dataset.frame_paths(clip)) == 5
    assert sorted(p.name for p in (dataset.clip_dir(clip) / "labels_rgb").iterdir()) == ["0.png"]
    assert dataset.label_frames(dataset.clip("bbbbbbbbbbb_0_5000")) == [0, 1, 2, 3, 4]


def test_labels_rgb_and_semantic_agree_and_hold_only_sounding_classes(tree):
    dataset = load_avss(tree)
    clip = dataset.clip("ddddddddddd_10000_20000")
    for frame in dataset.label_frames(clip):
        rgb = dataset.read_labels(clip, frame, "rgb")
        semantic = dataset.read_labels(clip, frame, "semantic")
        assert rgb.path.parent.name == "labels_rgb" and semantic.path.parent.name == "labels_semantic"
        np.testing.assert_array_equal(rgb.ids, semantic.ids)
        assert rgb.unknown_pixels == semantic.unknown_pixels == 0
        assert set(np.unique(semantic.ids)) <= {0, *clip.sounding_ids}  # the silent car is not labelled
    assert dataset.read_labels(clip, 0).path.parent.name == "labels_semantic"  # auto prefers semantic


def test_auto_falls_back_to_rgb(tmp_path):
    generate_avss(tmp_path / "t", [SPECS[1]])
    dataset = load_avss(tmp_path / "t")
    clip = dataset.clips[0]
    expected = dataset.read_labels(clip, 2, "semantic").ids
    (dataset.clip_dir(clip) / "labels_semantic" / "2.png").unlink()
    read = dataset.read_labels(clip, 2)
    assert read.path.parent.name == "labels_rgb"
    np.testing.assert_array_equal(read.ids, expected)


def test_unknown_colour_is_counted_and_read_as_background(tree):
    dataset = load_avss(tree)
    hits = []
    for clip in dataset.clips:
        for frame in dataset.label_frames(clip):
            read = dataset.read_labels(clip, frame, "rgb")
            if read.unknown_pixels:
                hits.append((read, dataset.read_labels(clip, frame, "semantic")))
    assert len(hits) == 1
    rgb, semantic = hits[0]
    assert rgb.unknown_pixels == 9
    np.testing.assert_array_equal(rgb.ids, semantic.ids)  # the patch sits on background and decodes to 0


def test_stray_tool_files_are_ignored(tree):
    dataset = load_avss(tree)
    with_tools = [c for c in dataset.clips if (dataset.clip_dir(c) / "audio.pkl").exists()]
    assert len(with_tools) == 1
    clip = with_tools[0]
    assert (dataset.clip_dir(clip) / "processed_frames").is_dir()
    assert len(dataset.frame_paths(clip)) == 5


def test_audio_is_resampled_and_down_mixed(tmp_path):
    spec = ClipSpec("fffffffffff_0_5000", "v1s", "val", ("violin",))
    generate_avss(tmp_path / "t", [spec], sample_rate=22_050, channels=2)
    dataset = load_avss(tmp_path / "t")
    waveform, rate = dataset.read_audio(dataset.clips[0])
    assert rate == 16_000 and waveform.ndim == 1
    assert abs(len(waveform) - 5 * 16_000) <= 2
    spectrum = np.abs(np.fft.rfft(waveform))
    peak_hz = np.argmax(spectrum) * rate / len(waveform)
    assert abs(peak_hz - class_tone(class_id("violin"))[0]) < 2.0


def test_metadata_format_variants_read_the_same(tmp_path):
    generate_avss(tmp_path / "plain", SPECS)
    generate_avss(tmp_path / "odd", SPECS, quirks="bom,crlf,extra-column,label2idx-one-based")
    raw = (tmp_path / "odd" / "metadata.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw and raw.split(b"\r\n")[0].endswith(b",note")
    plain, odd = load_avss(tmp_path / "plain"), load_avss(tmp_path / "odd")
    assert odd.clips == plain.clips
    assert odd.class_names == plain.class_names == LABEL_NAMES
    assert any("values are not 0..70" in note for note in odd.quirks)


@pytest.mark.parametrize(
    ("text", "tokens", "ids", "note"),
    [
        ("cello_saxophone_drum", ("cello", "saxophone", "drum"), (13, 19, 51), None),
        ("h orse", ("horse",), (37,), "read as 'horse'"),
        ("Guitar", ("guitar",), (28,), "read as 'guitar'"),
        ("off-the-screen", ("off-the-screen",), (), "no sounding object"),
        ("guitar_kazoo", ("guitar", "kazoo"), (28,), "unknown a_obj token 'kazoo'"),
        ("", (), (), "empty a_obj"),
    ],
)
def test_parse_a_obj(text, tokens, ids, note):
    got_tokens, got_ids, notes = parse_a_obj(text)
    assert (got_tokens, got_ids) == (tokens, ids)
    if note is None:
        assert notes == []
    else:
        assert any(note in n for n in notes)


# ----------------------------------------------------------------------------------------------
# Bad input: one line naming the file and the problem

GOOD_HEADER = "vid,uid,s_min,s_sec,a_obj,split,label\n"
GOOD_ROW = "abc,abc_0_5000,0,0,guitar,train,v1s\n"


def _root_with(tmp_path: Path, metadata: str | bytes | None, label2idx: object = None) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    if metadata is not None:
        data = metadata.encode() if isinstance(metadata, str) else metadata
        (root / "metadata.csv").write_bytes(data)
    if label2idx is not None:
        text = label2idx if isinstance(label2idx, str) else json.dumps(label2idx)
        (root / "label2idx.json").write_text(text)
    return root


@pytest.mark.parametrize(
    ("metadata", "label2idx", "file", "message"),
    [
        (None, dict.fromkeys(LABEL_NAMES, 0), "root", "no metadata.csv"),
        ("", None, "metadata.csv", "empty file"),
        (GOOD_HEADER, None, "metadata.csv", "no clips"),
        ("vid,uid,a_obj,label\n" + "abc,abc_0,guitar,v1s\n", None, "metadata.csv", "missing column(s) 'split'"),
        (GOOD_HEADER + "abc,abc_0_5000,0,0,guitar,train\n", None, "metadata.csv", "line 2: 6 fields"),
        (GOOD_HEADER + GOOD_ROW.replace("train", "training"), None, "metadata.csv", "line 2: split 'training'"),
        (GOOD_HEADER + GOOD_ROW.replace("v1s", "v3"), None, "metadata.csv", "line 2: label 'v3'"),
        (GOOD_HEADER + GOOD_ROW + GOOD_ROW, None, "metadata.csv", "line 3: duplicate uid 'abc_0_5000'"),
        (GOOD_HEADER.encode() + b"\xff\xfe,\n", None, "metadata.csv", "not UTF-8"),
        (GOOD_HEADER + GOOD_ROW, "{not json", "label2idx.json", "not valid JSON"),
        (GOOD_HEADER + GOOD_ROW, {"background": 0}, "label2idx.json", "1 labels, expected 71"),
        (
            GOOD_HEADER + GOOD_ROW,
            {name: i for i, name in enumerate(reversed(LABEL_NAMES))},
            "label2idx.json",
            "key 0 is 'woman', expected 'background'",
        ),
    ],
)
def test_bad_metadata_raises_one_line_naming_the_file(tmp_path, metadata, label2idx, file, message):
    root = _root_with(tmp_path, metadata, label2idx)
    with pytest.raises(OvavssError) as caught:
        load_avss(root)
    text = str(caught.value)
    assert "\n" not in text
    expected_path = root if file == "root" else root / file
    assert text.startswith(f"{expected_path}: ")
    assert message in text


def test_missing_and_empty_root(tmp_path):
    with pytest.raises(OvavssError, match="dataset root not found"):
        load_avss(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OvavssError, match="dataset root is empty"):
        load_avss(tmp_path / "empty")


def test_corrupt_png_and_missing_frame_name_the_file(tmp_path):
    generate_avss(tmp_path / "t", [SPECS[1]])
    dataset = load_avss(tmp_path / "t")
    clip = dataset.clips[0]
    broken = dataset.label_path(clip, 1, "rgb")
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(OvavssError, match="cannot decode image") as caught:
        dataset.read_labels(clip, 1, "rgb")
    assert str(caught.value).startswith(str(broken))
    (dataset.clip_dir(clip) / "frames" / "3.jpg").unlink()
    with pytest.raises(OvavssError, match=r"1 of 5 frames missing, e\.g\. 3\.jpg"):
        dataset.frame_paths(clip)
