"""``ovavss eval --weights``: a model's predictions are saved in the --pred layout and scored identically."""

from __future__ import annotations

import json

from ovavss_cli.data.labelmap import read_label_png
from ovavss_cli.data.synthetic import generate_avss


def test_eval_with_weights_saves_and_scores_predictions(cli, tmp_path, tiny_weights):
    root = generate_avss(tmp_path / "avss", clips=6, seed=3).root
    preds = tmp_path / "preds"
    out = tmp_path / "model.json"
    result = cli("eval", "--data", root, "--weights", tiny_weights, "--pred", preds, "--threshold", "0.0",
                 "--json", out, "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["weights"]["id"] == str(tiny_weights)
    assert payload["frames"] > 0 and payload["missing_predictions"] == 0
    # every frame of every test clip was written, as an AVSS id map (vocabulary = the 70 classes)
    written = sorted(preds.glob("*/*.png"))
    assert len(written) >= payload["frames"]
    ids, unknown = read_label_png(written[0])
    assert not unknown.any() and ids.max() <= 70
    # scoring the saved folder with --pred gives the same numbers
    again = tmp_path / "folder.json"
    assert cli("eval", "--data", root, "--pred", preds, "--json", again).exit_code == 0
    rescored = json.loads(again.read_text())
    for key in ("miou", "miou_base", "miou_novel", "avss_miou", "avss_fscore"):
        assert rescored[key] == payload[key] or (rescored[key] is None and payload[key] is None)


def test_eval_with_weights_refuses_an_existing_prediction_folder(cli, tmp_path, tiny_weights):
    root = generate_avss(tmp_path / "avss", clips=6, seed=1).root
    preds = tmp_path / "preds"
    preds.mkdir()
    (preds / "keep.txt").write_text("mine")
    result = cli("eval", "--data", root, "--weights", tiny_weights, "--pred", preds)
    assert result.exit_code == 1
    assert "already exists" in result.output and str(preds) in result.output
    assert (preds / "keep.txt").read_text() == "mine"


def test_eval_default_weights_unavailable_is_one_line(cli, tmp_path):
    root = generate_avss(tmp_path / "avss", clips=6, seed=1).root
    result = cli("eval", "--data", root)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "ovavss weights import" in lines[0]
    assert not list(tmp_path.glob("ovavss-eval-preds*"))
