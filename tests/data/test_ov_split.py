"""AVSBench-OV split: both rules on hand-checkable clips, determinism, the JSON file, load_split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ovavss_cli.data.avsbench import load_avss
from ovavss_cli.data.classes import BASE_IDS, LABEL_NAMES, NOVEL_IDS, class_id
from ovavss_cli.data.split import (
    RULES,
    load_split,
    make_ov_split,
    make_split_file,
    split_to_json,
    write_split,
)
from ovavss_cli.data.synthetic import ClipSpec, generate_avss
from ovavss_cli.errors import OvavssError

# base: guitar, piano, man, horse; novel: violin, cello, tabla, accordion
SPECS = [
    ClipSpec("t_base_only_0_5000", "v1s", "train", ("guitar",)),
    ClipSpec("t_novel_only_0_5000", "v1s", "train", ("violin",)),
    ClipSpec("t_mixed_0_10000", "v2", "train", ("piano", "violin")),
    ClipSpec("t_mixed3_1", "v1m", "train", ("man", "cello", "tabla")),
    ClipSpec("t_two_novel_0_10000", "v2", "train", ("cello", "tabla")),
    ClipSpec("v_novel_0_10000", "v2", "val", ("violin",)),
    ClipSpec("x_mixed_0_5000", "v1s", "test", ("piano", "accordion")),
    ClipSpec("a_base_test_0_10000", "v2", "test", ("guitar",)),
]
QUIRKS = ["typo", "background-row", "off-the-screen"]  # a horse clip with a_obj "h orse" + two no-object rows


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("split") / "avss"
    generate_avss(root, SPECS, size=(16, 16), quirks=QUIRKS)
    return root


def _quirk_uids(tree: Path) -> dict[str, str]:
    return {clip.a_obj[0]: clip.uid for clip in load_avss(tree).clips}


def test_exclude_novel_keeps_only_clips_without_novel_sounds(tree):
    quirk = _quirk_uids(tree)
    split = make_ov_split(load_avss(tree), "exclude-novel")
    expected_train = sorted(["t_base_only_0_5000", quirk["horse"], quirk["background"], quirk["off-the-screen"]])
    assert list(split.uids("train")) == expected_train
    assert split.dropped_train == ("t_mixed3_1", "t_mixed_0_10000", "t_novel_only_0_5000", "t_two_novel_0_10000")
    assert split.ignore_ids == {}
    assert split.uids("val") == ("v_novel_0_10000",)
    assert split.uids("test") == ("a_base_test_0_10000", "x_mixed_0_5000")  # every test clip, sorted
    assert split.base_ids == BASE_IDS and split.novel_ids == NOVEL_IDS


def test_ignore_novel_keeps_clips_with_a_base_object_and_lists_their_novel_ids(tree):
    quirk = _quirk_uids(tree)
    split = make_ov_split(load_avss(tree), "ignore-novel")
    kept = ["t_base_only_0_5000", "t_mixed_0_10000", "t_mixed3_1", quirk["horse"], quirk["background"]]
    assert list(split.uids("train")) == sorted([*kept, quirk["off-the-screen"]])
    assert split.dropped_train == ("t_novel_only_0_5000", "t_two_novel_0_10000")
    assert split.ignore_ids == {
        "t_mixed3_1": (class_id("cello"), class_id("tabla")),
        "t_mixed_0_10000": (class_id("violin"),),
    }
    assert split.ignored("t_base_only_0_5000") == ()
    assert split.uids("val") == ("v_novel_0_10000",)
    assert split.counts == {"train": 6, "val": 1, "test": 2, "train_dropped": 2, "train_with_ignored_novel": 2}


def test_json_content(tree, tmp_path):
    split = make_split_file(tree, tmp_path / "split.json", rule="ignore-novel")
    document = json.loads((tmp_path / "split.json").read_text())
    assert document["format"] == "ovavss-split/1"
    assert document["rule"] == "ignore-novel" and document["rule_description"] == RULES["ignore-novel"]
    assert len(document["base_classes"]) == 40 and len(document["novel_classes"]) == 30
    assert document["base_classes"][0] == {"id": 2, "name": "airplane"}
    assert {"id": 68, "name": "violin"} in document["novel_classes"]
    assert all(entry["name"] == LABEL_NAMES[entry["id"]] for entry in document["novel_classes"])
    assert document["splits"]["train"] == list(split.uids("train"))
    assert document["ignored_novel"]["ignore_ids"] == {"t_mixed3_1": [13, 56], "t_mixed_0_10000": [68]}
    assert document["counts"]["train"] == 6
    text = (tmp_path / "split.json").read_text()
    assert text.endswith("}\n") and str(tmp_path) not in text and str(tree) not in text


def test_same_input_gives_byte_identical_files(tree, tmp_path):
    make_split_file(tree, tmp_path / "a.json")
    make_split_file(tree, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    # Row order in metadata.csv does not matter either: uids are sorted.
    copy = tmp_path / "shuffled"
    shutil.copytree(tree, copy)
    header, *rows = (copy / "metadata.csv").read_text().splitlines()
    (copy / "metadata.csv").write_text("\n".join([header, *reversed(rows)]) + "\n")
    make_split_file(copy, tmp_path / "c.json")
    assert (tmp_path / "c.json").read_bytes() == (tmp_path / "a.json").read_bytes()


def test_load_split_round_trip(tree, tmp_path):
    for rule in RULES:
        split = make_ov_split(load_avss(tree), rule)
        write_split(split, tmp_path / f"{rule}.json")
        assert load_split(tmp_path / f"{rule}.json") == split


def test_existing_file_needs_force(tree, tmp_path):
    out = tmp_path / "split.json"
    out.write_text("keep me")
    with pytest.raises(OvavssError, match="already exists; pass --force"):
        make_split_file(tree, out)
    assert out.read_text() == "keep me"
    make_split_file(tree, out, force=True)
    assert load_split(out).rule == "exclude-novel"


def test_failed_write_leaves_old_file_and_no_temp(tree, tmp_path, monkeypatch):
    out = tmp_path / "split.json"
    out.write_text("old")

    def half_write(self, data):  # write part of the data, then fail like a full disk
        with open(self, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_write)
    with pytest.raises(OSError, match="No space left"):
        make_split_file(tree, out, force=True)
    monkeypatch.undo()
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split.json"]


def test_unknown_rule(tree, tmp_path):
    with pytest.raises(OvavssError, match="unknown split rule 'paper'"):
        make_split_file(tree, tmp_path / "s.json", rule="paper")
    assert not (tmp_path / "s.json").exists()


def _valid_document(tree: Path) -> dict:
    return json.loads(split_to_json(make_ov_split(load_avss(tree), "ignore-novel")))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format="other/1"), "format is 'other/1'"),
        (lambda d: d.update(rule="paper"), "unknown rule 'paper'"),
        (lambda d: d["base_classes"].append({"id": 68, "name": "violin"}), "overlap"),
        (lambda d: d["novel_classes"].__setitem__(0, {"id": 1, "name": "axe"}), "id 1 is 'accordion', not 'axe'"),
        (lambda d: d["base_classes"].__setitem__(0, {"id": 99, "name": "x"}), "id 99 is not a class id"),
        (lambda d: d["splits"].pop("val"), "splits must have exactly train, val and test"),
        (lambda d: d["splits"]["test"].append(3), "splits.test must be a list of uids"),
        (lambda d: d["ignored_novel"]["ignore_ids"].update(v_novel_0_10000=[68]), "not a train clip"),
        (lambda d: d["ignored_novel"]["ignore_ids"].update(t_mixed_0_10000=[28]), "novel class ids"),
    ],
)
def test_load_split_rejects_bad_files(tree, tmp_path, edit, message):
    document = _valid_document(tree)
    edit(document)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(OvavssError, match=message) as caught:
        load_split(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_load_split_not_json(tmp_path):
    (tmp_path / "x.json").write_text("[1, 2")
    with pytest.raises(OvavssError, match="not a valid JSON split file"):
        load_split(tmp_path / "x.json")
    with pytest.raises(OvavssError, match="split file not found"):
        load_split(tmp_path / "none.json")
