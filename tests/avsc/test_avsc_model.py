"""The AVSC model: presets and config round trip, shapes, an audio-independent segmenter (the plain shared blocks)
and the audio head."""

import dataclasses

import pytest
import torch

from ovavss_cli.config_json import to_dict
from ovavss_cli.errors import OvavssError
from ovavss_cli.models.api import model_config_from_dict
from ovavss_cli.models.avsc.audio_head import AudioCategoryHead, AudioHeadConfig
from ovavss_cli.models.avsc.config import (
    AVSBENCH_OBJECT_CATEGORIES,
    PRESETS,
    AVSCConfig,
    preset_config,
)
from ovavss_cli.models.avsc.model import AVSC
from ovavss_cli.models.layers.decoder import MaskDecoder
from ovavss_cli.models.layers.pixel_decoder import PixelDecoder


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return AVSC(preset_config("avsc-tiny")).eval()


def test_presets_round_trip_through_json():
    for name in PRESETS:
        config = preset_config(name)
        assert config.name == name and config.num_categories == 23
        assert model_config_from_dict("avsc", to_dict(config)) == config
    assert AVSBENCH_OBJECT_CATEGORIES[:3] == ("baby", "bird", "bus") and "emergency-car" in AVSBENCH_OBJECT_CATEGORIES
    with pytest.raises(OvavssError, match="unknown AVSC preset"):
        preset_config("avsc-huge")
    with pytest.raises(OvavssError, match="avsc model config"):
        model_config_from_dict("avsc", {**to_dict(preset_config("avsc-tiny")), "colour": "blue"})
    with pytest.raises(OvavssError, match="categories"):
        AVSCConfig(categories=("dog", "unicorn"))


def test_forward_shapes(tiny):
    images = torch.randn(3, 3, 64, 96)
    log_mel = torch.randn(10, 1, 96, 64)  # two clips of five seconds
    with torch.no_grad():
        out = tiny(images, log_mel, torch.tensor([0, 5, 9]))
    queries = tiny.config.decoder.num_queries
    assert out["pred_logits"].shape == (3, queries, 24)
    assert out["pred_masks"].shape == (3, queries, 1, 16, 24)
    assert len(out["aux_outputs"]) == tiny.config.decoder.num_layers
    assert out["audio_logits"].shape == (10, 23)
    assert out["attended_masks"].shape == (3, 16, 24)
    assert out["kept_queries"].shape == out["kept_weights"].shape == (3, 23)
    assert 0 <= out["attended_masks"].min() and out["attended_masks"].max() <= 1


def test_the_segmenter_never_sees_the_audio_and_each_frame_stands_alone(tiny):
    assert type(tiny.pixel_decoder) is PixelDecoder and type(tiny.transformer_decoder) is MaskDecoder
    torch.manual_seed(1)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a = tiny(images, torch.randn(5, 1, 96, 64), torch.tensor([0, 1]))
        b = tiny(images, torch.randn(5, 1, 96, 64) * 3, torch.tensor([3, 4]))
        alone = tiny.segment(images[1:])
    assert torch.equal(a["pred_logits"], b["pred_logits"]) and torch.equal(a["pred_masks"], b["pred_masks"])
    assert not torch.equal(a["attended_masks"], b["attended_masks"])  # the audio decides what sounds
    assert torch.allclose(alone["pred_masks"][0], a["pred_masks"][1], atol=1e-5)


def test_audio_head_scores_every_second_separately():
    head = AudioCategoryHead(8, 5, AudioHeadConfig(hidden_dim=16))
    audio = torch.randn(4, 8)
    assert head(audio).shape == (4, 5)
    assert torch.allclose(head(audio[2:3]), head(audio)[2:3], atol=1e-6)


def test_frozen_vggish_has_no_gradient_and_no_graph(tiny):
    frozen = AVSC(dataclasses.replace(preset_config("avsc-tiny"), freeze_audio_encoder=True)).train()
    assert not any(p.requires_grad for p in frozen.audio_encoder.parameters())
    assert not frozen.audio_encoder.training  # a frozen VGGish stays in eval mode
    assert not frozen.embed_audio(torch.randn(2, 1, 96, 64)).requires_grad
    assert preset_config("avsc-r50").freeze_audio_encoder
    # The tiny preset has no pretrained VGGish to freeze: it trains its own.
    assert all(p.requires_grad for p in tiny.audio_encoder.parameters())
    assert tiny.embed_audio(torch.randn(2, 1, 96, 64)).requires_grad
