"""``ovavss eval --benchmark s4|ms3`` on hand-made prediction folders (numbers computed by hand from the GT), the
two file namings, missing files, soft masks, the JSON record, and scoring an AVSC checkpoint."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ovavss_cli.data.avsobject import load_avsobject
from ovavss_cli.data.synthetic import generate_ms3, generate_s4
from ovavss_cli.metrics.object_eval import evaluate_object, prediction_probabilities
from ovavss_cli.models.api import save_model
from ovavss_cli.models.avsc.config import preset_config
from ovavss_cli.models.avsc.model import AVSC


@pytest.fixture(scope="module")
def s4(tmp_path_factory):
    root = tmp_path_factory.mktemp("s4")
    generate_s4(root, 6, seed=4)  # test clips: the 3rd and the 6th
    return root


def write_predictions(pred_dir, dataset, masks_of, first=1, by_category=False):
    """Write ``masks_of(clip, frame)`` (bool) as 0/255 PNGs in the chosen naming / layout."""
    for clip in dataset.split("test"):
        folder = pred_dir / clip.category / clip.name if by_category else pred_dir / clip.name
        folder.mkdir(parents=True, exist_ok=True)
        for frame in range(5):
            mask = masks_of(clip, frame).astype(np.uint8) * 255
            Image.fromarray(mask).save(folder / f"{clip.name}_{frame + first}.png")


def perfect_then_empty(dataset):
    first = dataset.split("test")[0].name
    return lambda clip, frame: dataset.read_mask(clip, frame) if clip.name == first else np.zeros((64, 64), bool)


def f_at_threshold_zero(gt: np.ndarray) -> float:
    """Official F of a frame when every pixel is predicted (threshold 0 keeps probability 0 pixels)."""
    precision = gt.sum() / gt.size
    return 1.3 * precision / (0.3 * precision + 1)


def test_hand_computed_official_and_clean_numbers(s4, tmp_path):
    dataset = load_avsobject(s4, "s4")
    write_predictions(tmp_path / "pred", dataset, perfect_then_empty(dataset))
    empty_clip = dataset.split("test")[1]
    f0 = np.mean([f_at_threshold_zero(dataset.read_mask(empty_clip, frame)) for frame in range(5)])

    one = evaluate_object(s4, "s4", pred=tmp_path / "pred", batch_size=1).scores
    assert one.official_miou == pytest.approx(0.5)  # J 1 on the perfect clip, 0 on the empty one
    assert one.official_fscore == pytest.approx((1.0 + f0) / 2, rel=1e-5)  # the empty batch's max is at t = 0
    assert one.miou == pytest.approx(0.5) and one.fscore == pytest.approx(0.5)
    assert (one.frames, one.batches) == (10, 2)

    two = evaluate_object(s4, "s4", pred=tmp_path / "pred", batch_size=2).scores
    assert two.official_miou == pytest.approx(0.5)
    assert two.official_fscore == pytest.approx(0.5, rel=1e-5)  # one batch: the best threshold is shared
    assert (two.miou, two.fscore) == (one.miou, one.fscore)  # the clean variant does not depend on batching


def test_official_save_mask_layout_is_read_the_same(s4, tmp_path):
    dataset = load_avsobject(s4, "s4")
    write_predictions(tmp_path / "ours", dataset, perfect_then_empty(dataset))
    write_predictions(tmp_path / "official", dataset, perfect_then_empty(dataset), first=0, by_category=True)
    ours = evaluate_object(s4, "s4", pred=tmp_path / "ours")
    official = evaluate_object(s4, "s4", pred=tmp_path / "official")
    assert ours.scores == official.scores
    assert ours.source["naming"].startswith("1-based") and official.source["naming"].startswith("0-based")


def test_mixed_naming_and_missing_files(s4, tmp_path):
    dataset = load_avsobject(s4, "s4")
    write_predictions(tmp_path / "pred", dataset, perfect_then_empty(dataset))
    clip = dataset.split("test")[0]
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "pred" / clip.name / f"{clip.name}_0.png")
    with pytest.raises(Exception, match="mixes 0-based"):
        evaluate_object(s4, "s4", pred=tmp_path / "pred")
    (tmp_path / "pred" / clip.name / f"{clip.name}_0.png").unlink()
    (tmp_path / "pred" / clip.name / f"{clip.name}_3.png").unlink()
    with pytest.raises(Exception, match="1 prediction files missing"):
        evaluate_object(s4, "s4", pred=tmp_path / "pred")
    result = evaluate_object(s4, "s4", pred=tmp_path / "pred", allow_missing=True, batch_size=1)
    assert result.missing_predictions == 1
    assert result.scores.official_miou == pytest.approx(0.4)  # the missing frame scores as an empty mask: 4/5, 0


def test_pixel_rules(tmp_path):
    grey = np.array([[0, 128], [255, 64]], dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "soft.png")
    assert prediction_probabilities(tmp_path / "soft.png").ravel().tolist() == pytest.approx(
        [0, 128 / 255, 1, 64 / 255]
    )
    Image.fromarray(np.array([[0, 1]], dtype=np.uint8)).save(tmp_path / "ones.png")
    assert prediction_probabilities(tmp_path / "ones.png").tolist() == [[0.0, 1.0]]
    Image.fromarray(np.array([[0, 255]], dtype=np.uint8)).convert("P").save(tmp_path / "official.png")
    assert prediction_probabilities(tmp_path / "official.png").tolist() == [[0.0, 1.0]]


def test_cli_json_records_protocol_resolution_and_batch_size(s4, tmp_path, cli):
    dataset = load_avsobject(s4, "s4")
    write_predictions(tmp_path / "pred", dataset, perfect_then_empty(dataset))
    out = tmp_path / "s4.json"
    result = cli("eval", "--benchmark", "s4", "--data", s4, "--pred", tmp_path / "pred", "--json", out)
    assert result.exit_code == 0, result.output
    assert "S4 test: mJ 50.00" in result.output and "batch 4" in result.output
    payload = json.loads(out.read_text())
    assert payload["protocol"] == "avsbench-object" and payload["benchmark"] == "s4"
    assert payload["resolution"] == [64, 64] and payload["batch_size"] == 4 and payload["batches"] == 1
    assert payload["official"]["miou"] == pytest.approx(0.5) and payload["clean"]["fscore"] == pytest.approx(0.5)
    again = cli("eval", "--benchmark", "s4", "--data", s4, "--pred", tmp_path / "pred", "--json", out)
    assert again.exit_code == 1 and "already exists" in again.output
    wrong = cli("eval", "--benchmark", "s4", "--data", s4, "--pred", tmp_path / "pred", "--split-file", "x.json")
    assert wrong.exit_code == 1 and "--split-file: only for --benchmark avsbench-ov" in wrong.output
    threshold = cli("eval", "--benchmark", "s4", "--data", s4, "--pred", tmp_path / "pred", "--threshold", "0.5")
    assert threshold.exit_code == 1 and "--threshold: only for --benchmark avsbench-ov" in threshold.output
    nothing = cli("eval", "--benchmark", "ms3", "--data", s4, "--pred", tmp_path / "pred")
    assert nothing.exit_code == 1 and "MS3" in nothing.output


def test_ms3_layout(tmp_path):
    root = generate_ms3(tmp_path / "data", 6, seed=1).root

    dataset = load_avsobject(root, "ms3")
    write_predictions(tmp_path / "pred", dataset, lambda clip, frame: dataset.read_mask(clip, frame))
    scores = evaluate_object(tmp_path / "data", "ms3", pred=tmp_path / "pred").scores
    assert scores.official_miou == pytest.approx(1.0) and scores.miou == pytest.approx(1.0)


@pytest.fixture(scope="module")
def avsc_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = AVSC(preset_config("avsc-tiny"))
    path = tmp_path_factory.mktemp("weights") / "avsc.safetensors"
    save_model(model, path)
    return path


def test_scoring_an_avsc_checkpoint_and_its_saved_masks(s4, tmp_path, cli, avsc_checkpoint):
    out = tmp_path / "model.json"
    result = cli("eval", "--benchmark", "s4", "--data", s4, "--weights", avsc_checkpoint, "--pred", tmp_path / "masks",
                 "--device", "cpu", "--json", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["source"]["weights"] == str(avsc_checkpoint) and payload["frames"] == 10
    saved = sorted((tmp_path / "masks").glob("*/*.png"))
    assert len(saved) == 10 and saved[0].name.endswith("_1.png")
    # The saved binary masks give the same J (the official J thresholds the probabilities at 0.5 too).
    rescored = evaluate_object(s4, "s4", pred=tmp_path / "masks").scores
    assert rescored.official_miou == pytest.approx(payload["official"]["miou"], abs=1e-6)
    assert rescored.miou == pytest.approx(payload["clean"]["miou"], abs=1e-6)
