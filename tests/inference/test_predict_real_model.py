"""``ovavss predict`` end to end with a real (tiny, random) OV-AVSS checkpoint, and the --model check."""

from __future__ import annotations

import json

from media_testkit import make_video

from ovavss_cli.data.labelmap import read_label_png


def test_predict_with_a_real_model_writes_masks_json_and_video(cli, tmp_path, tiny_weights):
    video = make_video(tmp_path / "clip.mp4", seconds=7.0, fps=10, size=(96, 64))
    out = tmp_path / "out"
    result = cli("predict", video, "--vocab", "dog, siren", "--weights", tiny_weights, "--out", out,
                 "--threshold", "0.0", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "predictions.json").read_text())
    assert payload["vocabulary"] == ["dog", "siren"] and len(payload["frames"]) == 7  # 7 s at 1 fps: windows of 5 + 2
    masks = sorted((out / "masks").glob("*.png"))
    assert len(masks) == 7
    ids, unknown = read_label_png(masks[0])
    assert ids.shape == (64, 96) and not unknown.any() and ids.max() <= 2
    assert (out / "overlay.mp4").stat().st_size > 0


def test_predict_model_flag_must_match_the_weights(cli, tmp_path, tiny_weights):
    video = make_video(tmp_path / "clip.mp4", seconds=2.0, fps=10, size=(96, 64))
    result = cli("predict", video, "--vocab", "dog", "--weights", tiny_weights, "--model", "avsc", "--out",
                 tmp_path / "out")  # fmt: skip
    assert result.exit_code == 1
    assert "--model avsc" in result.output and "ovavss model" in result.output
    assert not (tmp_path / "out").exists()


def test_window_batching_gives_the_same_prediction():
    """``predict_clip(batch_windows=B)`` (what bench/gpu_check.py sweeps) runs B windows per forward and
    gives the one-window-at-a-time result, padded last window included."""
    import numpy as np
    import torch

    from ovavss_cli.models.api import load_model

    model = load_model("tiny-demo", device="cpu")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(12, 64, 96, 3), dtype=np.uint8)  # windows of 5 + 5 + 2
    audio = rng.normal(0, 0.1, size=12 * 16000).astype(np.float32)
    single = model.predict_clip(frames, audio, 16000, ["dog", "violin"], threshold=0.0)
    for batch in (2, 3):
        batched = model.predict_clip(frames, audio, 16000, ["dog", "violin"], threshold=0.0, batch_windows=batch)
        assert torch.allclose(batched.pred_logits, single.pred_logits, atol=1e-5)
        assert torch.allclose(batched.pred_masks, single.pred_masks, atol=1e-4)
        assert torch.equal(batched.window_ids, single.window_ids)
