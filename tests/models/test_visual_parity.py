"""Parity of the visual path (preprocess, R50 backbone, pixel decoder, mask decoder) with the golden fixture.

The chain runs once per module on the fixture's frames and VGGish rows (``pixdec_audio_in``), with the
fixture's deterministic weights renamed by ``keymap.map_reference_key``; each stage feeds the next, as
in the model. Run with ``-s`` to see the CPU timings of the three stages.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference_weights import reference_entries, reference_state_dict

from ovavss_cli.models.keymap import map_reference_key
from ovavss_cli.models.layers.backbone import ResNetBackbone
from ovavss_cli.models.layers.decoder import AudioConditionedMaskDecoder, attention_mask_from_masks
from ovavss_cli.models.layers.pixel_decoder import AudioVisualPixelDecoder
from ovavss_cli.models.preprocess import normalize_and_pad, resize_shortest_edge

# (reference prefix, our prefix, builder)
PARTS = {
    "backbone": ("backbone.", "backbone.", ResNetBackbone),
    "pixel_decoder": ("sem_seg_head.pixel_decoder.", "pixel_decoder.", AudioVisualPixelDecoder),
    "transformer_decoder": ("sem_seg_head.predictor.", "transformer_decoder.", AudioConditionedMaskDecoder),
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-4) -> None:
    """|a − e| <= tol + tol·|e|: absolute for small values, relative where values are large."""
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol)


def load_part(fixture_dir, part: str) -> torch.nn.Module:
    reference_prefix, our_prefix, build = PARTS[part]
    state = {
        map_reference_key(key)[len(our_prefix) :]: value
        for key, value in reference_state_dict(fixture_dir, [reference_prefix]).items()
    }
    module = build()
    module.load_state_dict(state, strict=True)
    return module.eval()


@pytest.fixture(scope="module")
def fixture_data(reference_fixture):
    load = lambda name: torch.load(reference_fixture / name, weights_only=True)  # noqa: E731
    return {"inputs": load("inputs.pt"), "intermediates": load("intermediates.pt"), "outputs": load("outputs.pt")}


@pytest.fixture(scope="module")
def visual_run(reference_fixture, fixture_data):
    """Our chain on the fixture input: every stage's outputs and its CPU time."""
    inputs, intermediates = fixture_data["inputs"], fixture_data["intermediates"]
    backbone = load_part(reference_fixture, "backbone")
    pixel_decoder = load_part(reference_fixture, "pixel_decoder")
    decoder = load_part(reference_fixture, "transformer_decoder")
    run, seconds = {}, {}
    with torch.inference_mode():
        run["resized"] = resize_shortest_edge(inputs["frames_rgb_uint8"].permute(0, 2, 3, 1))
        images, _ = normalize_and_pad(inputs["frames_resized_rgb_uint8"].permute(0, 2, 3, 1))
        run["images"] = images
        start = time.process_time()
        run["features"] = backbone(images)
        seconds["backbone"] = time.process_time() - start
        start = time.process_time()
        mask_features, multi_scale, audio = pixel_decoder(run["features"], intermediates["pixdec_audio_in"])
        seconds["pixel decoder"] = time.process_time() - start
        start = time.process_time()
        run["decoder"] = decoder(multi_scale, mask_features, audio, batch_size=1)
        seconds["decoder"] = time.process_time() - start
    run.update(mask_features=mask_features, multi_scale=multi_scale, audio=audio)
    print("\nCPU seconds (all threads): " + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items()))
    return run


@pytest.mark.parametrize("part", sorted(PARTS))
def test_state_dict_keys_match_reference(reference_fixture, part):
    reference_prefix, our_prefix, build = PARTS[part]
    expected = {
        map_reference_key(e["key"])[len(our_prefix) :]: tuple(e["shape"])
        for e in reference_entries(reference_fixture)
        if e["key"].startswith(reference_prefix)
    }
    with torch.device("meta"):
        ours = {key: tuple(value.shape) for key, value in build().state_dict().items()}
    assert ours == expected


def test_resize_is_bit_exact(visual_run, fixture_data):
    expected = fixture_data["inputs"]["frames_resized_rgb_uint8"].permute(0, 2, 3, 1)
    assert torch.equal(visual_run["resized"], expected)


def _check_stats(tensor: torch.Tensor, stats: dict) -> None:
    values = tensor.double()
    assert list(tensor.shape) == stats["shape"]
    for name, ours in (("mean", values.mean()), ("std", values.std()), ("sum", values.sum())):
        assert ours.item() == pytest.approx(stats[name], rel=1e-5, abs=1e-6), name
    assert values.min().item() == pytest.approx(stats["min"], abs=1e-5)
    assert values.max().item() == pytest.approx(stats["max"], abs=1e-5)


def test_backbone_input(visual_run, fixture_data):
    _check_stats(visual_run["images"], fixture_data["intermediates"]["backbone_input_stats"])


def test_backbone_features(visual_run, fixture_data):
    intermediates = fixture_data["intermediates"]
    for name, stats in intermediates["backbone_stats"].items():
        _check_stats(visual_run["features"][name], stats)
    assert_close(visual_run["features"]["res5"][0, :16], intermediates["backbone_res5_frame0_ch0-15"])


def test_pixel_decoder_outputs(visual_run, fixture_data):
    intermediates = fixture_data["intermediates"]
    coarse, middle, fine = visual_run["multi_scale"]
    assert_close(coarse, intermediates["pixdec_ms0_full"])
    assert_close(middle, intermediates["pixdec_ms1_full"])
    assert_close(fine[0], intermediates["pixdec_ms2_frame0"])
    assert_close(fine.mean((2, 3)), intermediates["pixdec_ms2_perchan_mean"])
    assert_close(fine.std((2, 3)), intermediates["pixdec_ms2_perchan_std"])
    mask_features = visual_run["mask_features"]
    assert_close(mask_features[0, :32], intermediates["pixdec_mask_features_frame0_ch0-31"])
    assert_close(mask_features.mean((2, 3)), intermediates["pixdec_mask_features_perchan_mean"])
    assert_close(mask_features.std((2, 3)), intermediates["pixdec_mask_features_perchan_std"])
    _check_stats(mask_features, intermediates["pixdec_mask_features_stats"])
    assert_close(visual_run["audio"], intermediates["pixdec_audio_out"])


def test_decoder_outputs(visual_run, fixture_data):
    outputs = fixture_data["outputs"]
    predictions = visual_run["decoder"]
    assert_close(predictions["pred_logits"], outputs["pred_logits"])
    assert_close(predictions["pred_masks"], outputs["pred_masks"])
    aux_logits = torch.stack([aux["pred_logits"] for aux in predictions["aux_outputs"]])
    assert_close(aux_logits, outputs["aux_pred_logits"])


def test_decoder_attention_masks(visual_run, fixture_data):
    """Each head's attention mask equals the reference's, up to entries whose logit is within 1e-4 of 0."""
    predictions = visual_run["decoder"]
    mask_logits = [aux["pred_masks"] for aux in predictions["aux_outputs"]] + [predictions["pred_masks"]]
    for head, (logits, recorded) in enumerate(
        zip(mask_logits, fixture_data["intermediates"]["decoder_attn_masks"], strict=True)
    ):
        columns = recorded["t"] * recorded["target_size"][0] * recorded["target_size"][1]
        expected = torch.from_numpy(
            np.unpackbits(recorded["masked_packed"].numpy(), axis=-1, count=columns).astype(bool)
        )
        assert int(expected.all(-1).sum()) == recorded["rows_fully_masked"]
        expected[expected.all(-1)] = False  # the reference unmasks fully blocked rows before use
        ours = attention_mask_from_masks(logits, tuple(recorded["target_size"]))
        assert ours.shape == (1, 100, columns)
        assert int((ours[0] != expected).sum()) <= recorded["n_abs_lt_1em4"], f"head {head}"


def test_decoder_masks_upsampled_sign_agreement(visual_run, fixture_data):
    """The > 0 decision on upsampled masks (what post-processing uses) agrees on >= 99.99% of pixels."""
    ours = F.interpolate(visual_run["decoder"]["pred_masks"][0], size=(384, 544), mode="bilinear") > 0
    expected = F.interpolate(fixture_data["outputs"]["pred_masks"][0], size=(384, 544), mode="bilinear") > 0
    assert (ours == expected).float().mean().item() >= 0.9999
