"""``ovavss eval --pred`` end to end on a generated AVSBench-semantic tree.

Expected numbers come from the oracle in ``avss_oracle.py``, which follows the reference's own
path (RGB GT resized by PIL, colour argmax, nn.Upsample, torch.histc), not ours.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from avss_oracle import reference_filter, reference_gt, reference_prediction, reference_scores
from PIL import Image

from ovavss_cli.data.avsbench import load_avss
from ovavss_cli.data.labelmap import encode_palette, write_label_png
from ovavss_cli.data.split import make_ov_split, split_to_json
from ovavss_cli.data.synthetic import ClipSpec, generate_avss

CLIPS = (
    ClipSpec("tst_v2_a", "v2", "test", ("guitar", "violin")),  # 10 frames; base 28 + novel 68
    ClipSpec("tst_v1s_a", "v1s", "test", ("dog",)),  # base 17
    ClipSpec("tst_v1m_a", "v1m", "test", ("accordion", "piano")),  # novel 1 + base 47
    ClipSpec("trn_v2_a", "v2", "train", ("cat",)),  # not scored
    ClipSpec("val_v1s_a", "v1s", "val", ("horse",)),  # not scored
)
TEST_UIDS = ("tst_v2_a", "tst_v1s_a", "tst_v1m_a")
METRIC_KEYS = ("miou", "miou_base", "miou_novel", "miou_harmonic", "avss_miou", "avss_fscore")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    # label-noise: 8 px of a class outside a_obj in tst_v2_a frame 1; unknown-colour: a 3x3 patch
    # of a non-palette colour in tst_v2_a labels_rgb/0.png.
    root = tmp_path_factory.mktemp("avss") / "root"
    generate_avss(root, CLIPS, size=(40, 56), quirks=("label-noise", "unknown-colour"))
    return root


def gt_frames(root: Path):
    """(uid, frame, labels_rgb path, sounding ids) of every scored frame."""
    dataset = load_avss(root)
    for uid in TEST_UIDS:
        clip = dataset.clip(uid)
        for frame in dataset.label_frames(clip):
            yield uid, frame, dataset.label_path(clip, frame, "rgb"), clip.sounding_ids


def write_predictions(folder: Path, maps: dict[tuple[str, int], np.ndarray], rgb: bool = False) -> Path:
    for (uid, frame), ids in maps.items():
        path = folder / uid / f"{frame}.png"
        if rgb:
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(encode_palette(ids)).save(path)
        else:
            write_label_png(path, ids)
    return folder


@pytest.fixture(scope="module")
def reference_gts(tree) -> dict[bool, dict[tuple[str, int], np.ndarray]]:
    """The reference's 224x224 GT of every scored frame, with (True) and without (False) the a_obj filter."""
    raw = {(uid, frame): (reference_gt(path), ids) for uid, frame, path, ids in gt_frames(tree)}
    return {
        True: {key: reference_filter(gt, ids) for key, (gt, ids) in raw.items()},
        False: {key: gt for key, (gt, _) in raw.items()},
    }


@pytest.fixture(scope="module")
def perfect(reference_gts) -> dict[tuple[str, int], np.ndarray]:
    """The reference's own filtered GT, as predictions."""
    return reference_gts[True]


@pytest.fixture(scope="module")
def imperfect(tree) -> dict[tuple[str, int], np.ndarray]:
    """Full-resolution maps: GT shifted right by 3 px, one class swapped in some frames, noise on background."""
    rng = np.random.default_rng(0)
    maps = {}
    dataset = load_avss(tree)
    for uid, frame, _, _ in gt_frames(tree):
        ids = dataset.read_labels(dataset.clip(uid), frame, source="semantic").ids
        pred = np.roll(ids, 3, axis=1)
        if frame % 3 == 1:
            pred[pred == 28] = 47  # guitar predicted as piano
        pred[rng.random(pred.shape) < 0.02] = 7  # scattered false positives (bird)
        maps[(uid, frame)] = pred
    return maps


def run_eval(cli, root: Path, pred: Path, out: Path, *extra: str):
    return cli("eval", "--data", root, "--pred", pred, "--json", out, *extra)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_perfect_predictions_score_one_and_the_json_records_the_protocol(cli, tree, tmp_path, perfect):
    pred = write_predictions(tmp_path / "pred", perfect)
    result = run_eval(cli, tree, pred, tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    data = read_json(tmp_path / "out.json")
    for key in ("miou", "miou_base", "miou_novel", "miou_harmonic", "fscore_base", "fscore_novel"):
        assert data[key] == pytest.approx(1.0), key
    present = {int(i) for maps in perfect.values() for i in np.unique(maps) if i}
    assert present == {28, 68, 17, 1, 47}
    assert data["avss_miou"] == pytest.approx(len(present) / 71)  # the 71-bin mean, bug-for-bug
    assert data["avss_fscore"] == pytest.approx(len(present) / 71)
    assert (data["protocol"], data["resolution"], data["clips"], data["frames"]) == ("ovavss-avsbench-ov", 224, 3, 20)
    assert data["gt_filter_to_a_obj"] is True and data["gt_filtered_pixels"] > 0
    # The 3x3 unknown patch of a 40x56 frame covers 17x12 pixels at 224x224 (PIL nearest).
    assert data["gt_sources_used"] == {"rgb": 20} and data["gt_unknown_pixels"] == 17 * 12
    assert data["class_set"] == "all" and data["split_file"] is None
    assert len(data["per_class"]) == 71 and data["per_class"][28]["set"] == "base"
    assert data["per_class"][68] | {"iou": 1.0} == data["per_class"][68] and data["per_class"][68]["set"] == "novel"
    assert "miou 100.00" in result.stdout.lower()
    assert "guitar" in result.stderr and "violin" in result.stderr  # the per-class table


def test_numbers_match_the_published_formulas_on_imperfect_predictions(cli, tree, tmp_path, imperfect, perfect):
    pred = write_predictions(tmp_path / "pred", imperfect)
    assert run_eval(cli, tree, pred, tmp_path / "out.json").exit_code == 0
    data = read_json(tmp_path / "out.json")
    keys = list(perfect)
    expected = reference_scores([perfect[key] for key in keys], [reference_prediction(imperfect[key]) for key in keys])
    for key in METRIC_KEYS:
        assert data[key] == pytest.approx(expected[key], abs=1e-6), key
    assert 0.2 < data["miou"] < 0.95  # a real, non-trivial case
    for key in (*METRIC_KEYS, "fscore_base", "fscore_novel"):
        assert 0.0 <= data[key] <= 1.0


def test_rgb_palette_predictions_score_like_index_maps(cli, tree, tmp_path, imperfect):
    index = write_predictions(tmp_path / "index", imperfect)
    rgb = write_predictions(tmp_path / "rgb", imperfect, rgb=True)
    assert run_eval(cli, tree, index, tmp_path / "a.json").exit_code == 0
    assert run_eval(cli, tree, rgb, tmp_path / "b.json").exit_code == 0
    a, b = read_json(tmp_path / "a.json"), read_json(tmp_path / "b.json")
    assert all(a[key] == b[key] for key in METRIC_KEYS)


def test_gt_filter_can_be_switched_off(cli, tree, tmp_path, perfect, reference_gts):
    pred = write_predictions(tmp_path / "pred", perfect)
    result = run_eval(cli, tree, pred, tmp_path / "out.json", "--no-filter-gt")
    assert result.exit_code == 0
    data = read_json(tmp_path / "out.json")
    keys = list(perfect)
    expected = reference_scores([reference_gts[False][key] for key in keys], [perfect[key] for key in keys])
    assert data["gt_filter_to_a_obj"] is False and data["gt_filtered_pixels"] == 0
    assert data["miou"] == pytest.approx(expected["miou"]) and data["miou"] < 1.0  # the noise class is missed


def test_gt_source_semantic_reads_labels_semantic(cli, tree, tmp_path, perfect):
    pred = write_predictions(tmp_path / "pred", perfect)
    assert run_eval(cli, tree, pred, tmp_path / "out.json", "--gt-source", "semantic").exit_code == 0
    data = read_json(tmp_path / "out.json")
    assert data["gt_sources_used"] == {"semantic": 20} and data["gt_unknown_pixels"] == 0
    assert data["gt_source"] == "semantic"


def test_missing_prediction_is_an_error_unless_allowed(cli, tree, tmp_path, perfect):
    pred = write_predictions(tmp_path / "pred", perfect)
    (pred / "tst_v2_a" / "9.png").unlink()
    out = tmp_path / "out.json"
    result = run_eval(cli, tree, pred, out)
    assert_one_line_error(result, str(pred), "no prediction for 1 of 20 GT frames", "tst_v2_a/9.png")
    assert not out.exists()
    result = run_eval(cli, tree, pred, out, "--allow-missing")
    assert result.exit_code == 0
    data = read_json(out)
    assert data["missing_predictions"] == 1 and data["frames"] == 20 and data["miou"] < 1.0


def test_predictions_for_frames_without_gt_are_ignored(cli, tree, tmp_path, perfect):
    pred = write_predictions(tmp_path / "pred", perfect)
    (pred / "tst_v1s_a" / "7.png").write_bytes(b"not a png")  # v1s clips have frames 0..4
    (pred / "trn_v2_a").mkdir()
    (pred / "trn_v2_a" / "0.png").write_bytes(b"not a png")  # a train clip
    assert run_eval(cli, tree, pred, tmp_path / "out.json").exit_code == 0


@pytest.mark.parametrize("problem", ["corrupt", "unknown-colour", "value-above-70"])
def test_bad_prediction_file_names_the_file_and_writes_nothing(cli, tree, tmp_path, problem, perfect):
    pred = write_predictions(tmp_path / "pred", perfect)
    bad = pred / "tst_v1m_a" / "2.png"
    if problem == "corrupt":
        bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    elif problem == "unknown-colour":
        Image.fromarray(np.full((8, 8, 3), (255, 0, 255), dtype=np.uint8)).save(bad)
    else:
        Image.fromarray(np.full((8, 8), 200, dtype=np.uint8), mode="L").save(bad)
    out = tmp_path / "out.json"
    assert_one_line_error(run_eval(cli, tree, pred, out), str(bad))
    assert not out.exists()


def test_existing_json_needs_force(cli, tree, tmp_path, perfect):
    pred = write_predictions(tmp_path / "pred", perfect)
    out = tmp_path / "out.json"
    out.write_text("keep me")
    assert_one_line_error(run_eval(cli, tree, pred, out), str(out), "--force")
    assert out.read_text() == "keep me"
    assert run_eval(cli, tree, pred, out, "--force").exit_code == 0
    assert read_json(out)["miou"] == pytest.approx(1.0)


def test_base_novel_choose_what_is_shown(cli, tree, tmp_path, imperfect):
    pred = write_predictions(tmp_path / "pred", imperfect)
    assert_one_line_error(run_eval(cli, tree, pred, tmp_path / "x.json", "--base", "--novel"), "mutually exclusive")
    result = run_eval(cli, tree, pred, tmp_path / "novel.json", "--novel")
    assert result.exit_code == 0
    data = read_json(tmp_path / "novel.json")
    assert data["class_set"] == "novel" and set(METRIC_KEYS) <= set(data)
    assert result.stdout.startswith(f"mIoU novel {100 * data['miou_novel']:.2f} | F novel")
    assert "violin" in result.stderr and "guitar" not in result.stderr  # only novel rows in the table


def write_split_file(tree: Path, path: Path, test_uids: tuple[str, ...]) -> Path:
    """A make-split file for ``tree`` whose test list is replaced by ``test_uids``."""
    split = make_ov_split(load_avss(tree))
    path.write_text(split_to_json(replace(split, splits={**split.splits, "test": test_uids})))
    return path


def test_split_file_selects_the_test_clips_and_is_fingerprinted(cli, tree, tmp_path, imperfect):
    split_file = write_split_file(tree, tmp_path / "split.json", ("tst_v1m_a",))
    pred = write_predictions(tmp_path / "pred", imperfect)
    shutil.rmtree(pred / "tst_v2_a")  # not in this split's test list, so not needed
    result = run_eval(cli, tree, pred, tmp_path / "out.json", "--split-file", split_file)
    assert result.exit_code == 0, result.output
    data = read_json(tmp_path / "out.json")
    assert (data["clips"], data["frames"]) == (1, 5)
    assert data["split_file"] == "split.json"
    assert data["split_sha256"] == hashlib.sha256(split_file.read_bytes()).hexdigest()


def test_split_file_with_unknown_test_clip_is_an_error(cli, tree, tmp_path, perfect):
    split_file = write_split_file(tree, tmp_path / "split.json", ("nope",))
    pred = write_predictions(tmp_path / "pred", perfect)
    result = run_eval(cli, tree, pred, tmp_path / "out.json", "--split-file", split_file)
    assert_one_line_error(result, str(split_file), "'nope'")


def test_bad_roots_and_options(cli, tree, tmp_path):
    assert_one_line_error(run_eval(cli, tmp_path / "nowhere", tmp_path, tmp_path / "o.json"), "nowhere")
    assert_one_line_error(run_eval(cli, tree, tmp_path / "no-pred", tmp_path / "o.json"), "prediction folder not found")
    assert_one_line_error(run_eval(cli, tree, tmp_path, tmp_path / "o.json", "--gt-source", "png"), "--gt-source")
    assert not (tmp_path / "o.json").exists()


def test_options_that_would_do_nothing_are_refused(cli, tree, tmp_path, perfect):
    pred = write_predictions(tmp_path / "pred", perfect)
    batch = run_eval(cli, tree, pred, tmp_path / "o.json", "--batch-size", "2")
    assert_one_line_error(batch, "--batch-size: only for --benchmark s4 / ms3")
    threshold = run_eval(cli, tree, pred, tmp_path / "o.json", "--threshold", "0.5")
    assert_one_line_error(threshold, "--threshold: only with --weights")
    model_options = run_eval(cli, tree, pred, tmp_path / "o.json", "--device", "cpu", "--precision", "fp16")
    assert_one_line_error(model_options, "--device, --precision: only with --weights")
    missing = cli("eval", "--data", tree, "--weights", "tiny-demo", "--allow-missing", "--json", tmp_path / "o.json")
    assert_one_line_error(missing, "--allow-missing: only with --pred")
    force = cli("eval", "--data", tree, "--pred", pred, "--force")  # --force only ever overwrites --json
    assert_one_line_error(force, "--force: only with --json")
    assert not (tmp_path / "o.json").exists()


def test_missing_ground_truth_names_the_clip_folder(cli, tree, tmp_path, perfect):
    broken = tmp_path / "root"
    shutil.copytree(tree, broken)
    clip_dir = broken / "v1s" / "tst_v1s_a"
    (clip_dir / "labels_rgb" / "2.png").unlink()
    (clip_dir / "labels_semantic" / "2.png").unlink()
    pred = write_predictions(tmp_path / "pred", perfect)
    result = run_eval(cli, broken, pred, tmp_path / "out.json")
    assert_one_line_error(result, str(clip_dir), "no ground truth for frame 2")
    assert not (tmp_path / "out.json").exists()
