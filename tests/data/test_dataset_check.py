"""The check mode: counts, each kind of finding, fast mode, AVSBench-object trees, JSON output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovavss_cli.data.check import PROBLEM_KINDS, check_dataset, run_check
from ovavss_cli.data.synthetic import ClipSpec, generate_avss, generate_ms3, generate_s4
from ovavss_cli.errors import OvavssError

SPECS = [
    ClipSpec("aaaaaaaaaaa_0_5000", "v1s", "train", ("guitar",)),
    ClipSpec("bbbbbbbbbbb_0_5000", "v1s", "test", ("violin",)),
    ClipSpec("ccccccccccc_1", "v1m", "val", ("piano", "man")),
    ClipSpec("ddddddddddd_0_10000", "v2", "test", ("cello", "woman")),
    ClipSpec("eeeeeeeeeee_0_10000", "v2", "train", ("tabla",), frames=12),
]


def _by_kind(report) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for finding in report.findings:
        grouped.setdefault(finding.kind, []).append(finding)
    return grouped


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clean") / "avss"
    generate_avss(root, SPECS, size=(24, 32))
    return root


@pytest.fixture(scope="module")
def quirky(tmp_path_factory):
    root = tmp_path_factory.mktemp("quirky") / "avss"
    return generate_avss(root, SPECS, size=(24, 32), quirks="all")


def test_clean_tree_counts(clean):
    report = check_dataset(clean)
    assert report.ok
    counts = {(row.group, row.split): (row.clips, row.frames, row.annotated) for row in report.counts}
    assert counts == {
        ("v1s", "train"): (1, 5, 1),
        ("v1s", "test"): (1, 5, 5),
        ("v1m", "val"): (1, 5, 5),
        ("v2", "train"): (1, 12, 12),
        ("v2", "test"): (1, 10, 10),
    }
    assert [(row.group, row.split) for row in report.counts][:2] == [("v1s", "train"), ("v1s", "test")]
    # Every annotated frame decoded in both trees: 1 + 5 + 5 + 12 + 10 frames, x2.
    assert report.labels_decoded == 2 * 33
    # The only finding: 12 frames where v2 has 10 (a warning).
    assert [(f.kind, f.path) for f in report.findings] == [("frame-count", "v2/eeeeeeeeeee_0_10000/frames")]


def test_every_quirk_is_reported(quirky):
    report = check_dataset(quirky.root)
    kinds = _by_kind(report)
    assert not report.ok
    assert {f.kind for f in report.problems} == {"missing", "unknown-colour"}
    rel = {quirk: path.relative_to(quirky.root).as_posix() for quirk, path in quirky.quirk_paths.items()}
    assert sorted(f.path for f in kinds["missing"]) == sorted(
        [rel["missing-frame"], rel["missing-label"], rel["missing-audio"]]
    )
    assert [(f.path, f.detail) for f in kinds["unknown-colour"]] == [(rel["unknown-colour"], "9 pixels")]
    assert [f.path for f in kinds["gt-not-in-a_obj"]] == [rel["label-noise"]]
    assert "(8 px)" in kinds["gt-not-in-a_obj"][0].detail
    assert [f.path for f in kinds["tool-files"]] == [rel["stray-files"]]
    assert "audio.pkl" in kinds["tool-files"][0].detail
    notes = " | ".join(f.detail for f in kinds["quirk"])
    for expected in ("'h orse' read as 'horse'", "'background'", "'off-the-screen'", "values are not 0..70"):
        assert expected in notes


def test_fast_mode_decodes_one_frame_per_clip(quirky):
    full, fast = check_dataset(quirky.root), check_dataset(quirky.root, fast=True)
    assert fast.fast and fast.labels_decoded < full.labels_decoded
    assert fast.counts == full.counts
    missing = sorted(f.path for f in fast.findings if f.kind == "missing")
    assert missing == sorted(f.path for f in full.findings if f.kind == "missing")  # existence is still checked


def test_corrupt_png_mismatch_extra_folder(clean, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(clean, root)
    (root / "v1s/bbbbbbbbbbb_0_5000/labels_rgb/2.png").write_bytes(b"garbage")
    semantic = root / "v1m/ccccccccccc_1/labels_semantic/0.png"
    shutil.copy(root / "v1m/ccccccccccc_1/labels_semantic/4.png", semantic)  # objects drift: frame 4 differs
    (root / "v2" / "not_in_metadata").mkdir()
    index_map = root / "v2/ddddddddddd_0_10000/labels_semantic/1.png"
    values = np.array(Image.open(index_map))
    values[0, :5] = 200  # not a label id
    Image.fromarray(values, mode="L").save(index_map)
    kinds = _by_kind(check_dataset(root))
    assert [(f.path, f.detail) for f in kinds["unknown-value"]] == [
        (index_map.relative_to(root).as_posix(), "5 pixels")
    ]
    assert [f.path for f in kinds["unreadable"]] == ["v1s/bbbbbbbbbbb_0_5000/labels_rgb/2.png"]
    assert "cannot decode image" in kinds["unreadable"][0].detail
    assert [f.path for f in kinds["rgb-semantic-mismatch"]] == ["v1m/ccccccccccc_1/labels_semantic/0.png"]
    assert [f.path for f in kinds["extra-folder"]] == ["v2/not_in_metadata"]


def test_label_tree_absent_everywhere_is_only_a_warning(clean, tmp_path):
    root = tmp_path / "rgb_only"
    shutil.copytree(clean, root)
    for folder in root.glob("*/*/labels_semantic"):
        shutil.rmtree(folder)
    report = check_dataset(root)
    assert report.ok
    assert [(f.kind, f.path) for f in report.warnings if f.kind == "label-tree-absent"] == [
        ("label-tree-absent", "labels_semantic")
    ]
    shutil.rmtree(root / "v2/ddddddddddd_0_10000/labels_rgb")  # now a clip has no labels at all
    missing = [f.path for f in check_dataset(root).problems]
    assert "v2/ddddddddddd_0_10000/labels_rgb" in missing


def test_missing_clip_folder(clean, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(clean, root)
    shutil.rmtree(root / "v1m/ccccccccccc_1")
    problems = check_dataset(root).problems
    assert [(f.kind, f.path, f.detail) for f in problems] == [("missing", "v1m/ccccccccccc_1", "clip folder")]


def test_object_trees(tmp_path):
    root = tmp_path / "avsbench_data"
    s4 = generate_s4(root, 4, size=(16, 16))
    generate_ms3(root, 3, size=(16, 16))
    report = check_dataset(root)
    assert report.ok and report.layout == "avsbench-object"
    counts = {(row.group, row.split): (row.clips, row.frames, row.annotated) for row in report.counts}
    assert counts[("s4", "train")] == (2, 10, 2)  # S4 train: first mask only
    assert counts[("ms3", "val")] == (1, 5, 5)
    clip = s4.clips[1]
    mask = next((s4.root / "s4_data/gt_masks").glob(f"*/*/{clip.uid}/{clip.uid}_3.png"))
    mask.unlink()
    frame = next((s4.root / "s4_data/visual_frames").glob(f"*/*/{clip.uid}/{clip.uid}_2.png"))
    frame.write_bytes(b"not a png")
    problems = check_dataset(root).problems
    assert sorted((f.kind, Path(f.path).name) for f in problems) == [("missing", mask.name)]
    # Frames are only looked for, not decoded (decoding 87k frames would dominate the check).
    assert check_dataset(root / "Single-source").layout == "avsbench-object"


def test_json_report(quirky, tmp_path):
    out = tmp_path / "report.json"
    report = run_check(quirky.root, json_out=out)
    document = json.loads(out.read_text())
    assert document["format"] == "ovavss-check/1" and document["ok"] is False
    assert set(document["problems"]) == {"missing", "unknown-colour"} <= PROBLEM_KINDS
    assert len(document["problems"]["missing"]) == 3
    assert sum(len(v) for v in document["warnings"].values()) == len(report.warnings)
    with pytest.raises(OvavssError, match="already exists"):
        run_check(quirky.root, json_out=out)
    run_check(quirky.root, json_out=out, force=True, fast=True)
    assert json.loads(out.read_text())["fast"] is True


def test_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(OvavssError, match="not an AVSBench root"):
        check_dataset(tmp_path)
