"""AVSC checkpoints (export, ``load_model`` dispatch, strict loading) and ``ovavss predict`` / ``visualize`` with an
AVSC model through the real pipeline, on a generated video."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from media_testkit import make_video

import ovavss_cli
from ovavss_cli.data.labelmap import read_label_png
from ovavss_cli.errors import OvavssError
from ovavss_cli.models.api import create_model, load_model, model_checkpoint_config, save_model
from ovavss_cli.models.avsc.config import AVSBENCH_OBJECT_CATEGORIES, preset_config
from ovavss_cli.models.avsc.correlation import CorrelationConfig
from ovavss_cli.models.avsc.model import AVSC
from ovavss_cli.models.avsc.predict import category_vocabulary_labels
from ovavss_cli.models.checkpoint import save_checkpoint


def dog_everywhere_model() -> AVSC:
    """A tiny AVSC whose audio always says "dog" and whose every instance mask covers the whole frame."""
    torch.manual_seed(0)
    config = dataclasses.replace(preset_config("avsc-tiny"), correlation=CorrelationConfig(confidence_weighting=False))
    model = AVSC(config)
    with torch.no_grad():
        model.pixel_decoder.mask_features.weight.zero_()
        model.pixel_decoder.mask_features.bias.fill_(1.0)  # constant mask features ...
        last = model.transformer_decoder.mask_embed.layers[-1]
        last.weight.zero_()
        last.bias.fill_(10.0 / last.bias.numel())  # ... and mask embeddings: every mask logit is 10
        head = model.audio_head.mlp.layers[-1]
        head.weight.zero_()
        head.bias.fill_(-10.0)
        head.bias[AVSBENCH_OBJECT_CATEGORIES.index("dog")] = 10.0
    return model.eval()


@pytest.fixture(scope="module")
def dog_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "dog.safetensors"
    save_model(dog_everywhere_model(), path)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", seconds=3.0, fps=10)


def test_checkpoint_round_trip_through_load_model(tmp_path):
    torch.manual_seed(3)
    model = AVSC(preset_config("avsc-tiny")).eval()
    path = tmp_path / "avsc.safetensors"
    save_model(model, path)
    loaded = ovavss_cli.load_model(str(path))
    assert isinstance(loaded, AVSC) and loaded.weights_sha256 and not loaded.training
    images, log_mel = torch.randn(2, 3, 64, 64), torch.randn(5, 1, 96, 64)
    with torch.no_grad():
        a, b = model(images, log_mel, torch.tensor([0, 4])), loaded(images, log_mel, torch.tensor([0, 4]))
    assert torch.equal(a["attended_masks"], b["attended_masks"]) and torch.equal(a["audio_logits"], b["audio_logits"])
    assert load_model(str(path), architecture="avsc").config == model.config


def test_loading_refuses_what_is_not_a_whole_avsc_model(tmp_path):
    torch.manual_seed(0)
    ovavss_path = tmp_path / "ovavss.safetensors"
    save_model(create_model("ovavss-tiny"), ovavss_path)
    with pytest.raises(OvavssError, match="not an AVSC model"):
        load_model(str(ovavss_path), architecture="avsc")
    model = AVSC(preset_config("avsc-tiny"))
    state = model.state_dict()
    del state["audio_head.norm.weight"]
    save_checkpoint(tmp_path / "partial.safetensors", state, kind="model", config=model_checkpoint_config(model.config))
    with pytest.raises(OvavssError, match="1 missing"):
        ovavss_cli.load_model(str(tmp_path / "partial.safetensors"))


def test_vocabulary_names_categories_by_avss_or_s4_name():
    labels = category_vocabulary_labels(AVSBENCH_OBJECT_CATEGORIES, ["Playing Violin", "dog", "emergency car", "x"])
    named = {AVSBENCH_OBJECT_CATEGORIES[i]: int(v) for i, v in enumerate(labels) if v}
    assert named == {"violin": 1, "dog": 2, "emergency-car": 3}


def test_predict_clip_paints_names_or_one_agnostic_label():
    model = dog_everywhere_model()
    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 56, 3), dtype=np.uint8)
    named = model.predict_clip(frames, None, 16000, ["violin", "dog"])
    assert named.label_maps.shape == (3, 40, 56) and (named.label_maps == 2).all()
    assert [(d.label, round(d.score, 3)) for d in named.detections] == [(2, 1.0)]
    agnostic = model.predict_clip(frames, None, 16000, ["sounding"])
    assert (agnostic.label_maps == 1).all() and agnostic.detections[0].label == 1
    unnamed = model.predict_clip(frames, None, 16000, ["violin", "cat"])  # names categories, but not the dog
    assert (unnamed.label_maps == 0).all() and unnamed.detections == []
    assert (model.predict_clip(frames, None, 16000, ["dog"], threshold=1.0).label_maps == 0).all()


def test_predict_and_visualize_an_avsc_model_on_a_video(cli, tmp_path, dog_weights, video):
    out = tmp_path / "out"
    result = cli("predict", video, "--weights", dog_weights, "--vocab", "violin, dog", "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    data = json.loads((out / "predictions.json").read_text())
    assert data["weights"]["id"] == str(dog_weights) and data["window_size"] == 5
    assert len(data["frames"]) == 3
    assert all([s["label"] for s in frame["segments"]] == ["dog"] for frame in data["frames"])
    ids, _ = read_label_png(out / "masks" / "00000.png")
    assert ids.shape == (48, 64) and (ids == 2).all()
    assert (out / "overlay.mp4").is_file()
    shown = cli("visualize", out, "--out", tmp_path / "viz")
    assert shown.exit_code == 0, shown.output
    assert any((tmp_path / "viz").iterdir())


def test_predict_refuses_the_fast_mode_for_avsc_before_loading(cli, tmp_path, dog_weights, video, monkeypatch):
    loads = []
    monkeypatch.setattr("ovavss_cli.models.api.load_model", lambda *args, **kwargs: loads.append(args))
    out = tmp_path / "out"
    result = cli("predict", video, "--weights", dog_weights, "--vocab", "dog", "--out", out, "--clip-queries", "5")
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "--clip-queries: AVSC has no CLIP stage" in result.stderr
    assert loads == [] and not out.exists()
    with pytest.raises(OvavssError, match="AVSC has no CLIP stage"):  # the Python API refuses it too
        dog_everywhere_model().predict_clip(np.zeros((1, 8, 8, 3), np.uint8), None, 16000, ["dog"], clip_queries=5)


def test_the_family_of_weights_is_known_without_loading_them(dog_weights):
    from ovavss_cli.models.api import family_of_weights

    assert family_of_weights(str(dog_weights)).architecture == "avsc"  # from the file's header
    assert family_of_weights("tiny-demo").architecture == "ovavss"  # from the registry's preset
    assert family_of_weights("hf://org/repo") is None  # only a download would tell
