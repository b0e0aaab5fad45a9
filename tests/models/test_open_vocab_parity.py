"""Parity of the open-vocabulary classifier and the post-processing with the reference golden fixture.

CLIP ViT-B/16 costs ~0.2-0.3 s a crop and ~40 s for the 980 prompts on a 2-core CPU, so the default tests
check all 500 crops' geometry and pixels but encode only a subset of crops and class names. Set
``OVAVSS_FULL_PARITY=1`` to also run the whole 500-crop, 70-name forward (~3 min).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from reference_weights import reference_state_dict

from ovavss_cli.models.keymap import map_reference_key
from ovavss_cli.models.ovavss.open_vocab import (
    OpenVocabClassifier,
    crop_masked_regions,
    locate_mask_crops,
    query_class_probs,
)
from ovavss_cli.models.ovavss.postprocess import (
    PostprocessConfig,
    masks_at_frame_size,
    postprocess,
    select_predictions,
)
from ovavss_cli.models.ovavss.text_cache import TextEmbeddingCache

PADDED_SIZE = (384, 544)
IMAGE_SIZE = (360, 514)
ORIGINAL_SIZE = (224, 320)
CLASS_SUBSET = [21, 29]  # emergency-car (hyphenated), guzheng (the fixture's top class)
CLIP_PREFIX = "clip_adapter.clip_model."


@pytest.fixture(scope="module")
def fixture_data(reference_fixture: Path) -> dict:
    load = lambda name: torch.load(reference_fixture / name, weights_only=True)  # noqa: E731
    return {**load("inputs.pt"), **load("outputs.pt"), **load("intermediates.pt")}


@pytest.fixture(scope="module")
def classifier(reference_fixture: Path) -> OpenVocabClassifier:
    """The reference's CLIP with the fixture's weights, loaded under our key names (strict)."""
    model = OpenVocabClassifier(text_cache=TextEmbeddingCache(use_disk=False)).eval()
    weights = {}
    for key, value in reference_state_dict(reference_fixture, [CLIP_PREFIX]).items():
        ours = map_reference_key(key)
        assert ours.startswith("open_vocab.clip.")
        weights[ours[len("open_vocab.") :]] = value
    model.load_state_dict(weights, strict=True)
    return model


@pytest.fixture(scope="module")
def crops(fixture_data):
    return locate_mask_crops(fixture_data["pred_masks"][0], PADDED_SIZE, 224)


def test_prompt_tokens_match(classifier, fixture_data):
    tokens = classifier.prompt_tokens(fixture_data["class_names"])
    assert torch.equal(tokens, fixture_data["clip_text_tokens"].long())
    assert list(fixture_data["prompt_templates_vild"]) == list(classifier.templates)


def test_text_embeddings_match_for_a_subset(classifier, fixture_data):
    names = [fixture_data["class_names"][i] for i in CLASS_SUBSET]
    tokens = classifier.prompt_tokens(names)
    with torch.inference_mode():
        raw = classifier.clip.encode_text(tokens.flatten(0, 1)).view(*tokens.shape[:2], -1)  # (14, N, D)
    torch.testing.assert_close(raw, fixture_data["clip_text_per_template_raw"][:, CLASS_SUBSET], rtol=1e-4, atol=1e-4)
    embeddings = classifier.text_embeddings(names)
    assert (embeddings - fixture_data["clip_text_embeddings"][CLASS_SUBSET]).abs().max() <= 1e-5


def test_valid_flags_and_boxes_match(crops, fixture_data):
    assert torch.equal(crops.valid, fixture_data["clip_valid_flag"])
    assert torch.equal(crops.crop_ids, fixture_data["clip_valid_ids"])
    assert torch.equal(crops.tight_boxes, fixture_data["clip_valid_bboxes_xyxy"])
    assert torch.equal(crops.boxes, fixture_data["clip_square_boxes_xyxy"])


def test_all_500_masked_regions_match(crops, fixture_data):
    frames = fixture_data["frames_resized_rgb_uint8"].float()
    sums, sums_of_squares = [], []
    for chunk in torch.arange(len(crops.crop_ids)).split(50):
        regions = crop_masked_regions(frames, crops.crop_ids[chunk, 0], crops.boxes[chunk], crops.mask_crops[chunk])
        if chunk[0] == 0:
            assert (regions[0] - fixture_data["clip_region0"]).abs().max() <= 1e-4
        sums.append(regions.double().sum(dim=(1, 2, 3)))
        sums_of_squares.append(regions.double().square().sum(dim=(1, 2, 3)))
    torch.testing.assert_close(torch.cat(sums), fixture_data["clip_region_sum"], rtol=1e-6, atol=1e-3)
    torch.testing.assert_close(torch.cat(sums_of_squares), fixture_data["clip_region_sumsq"], rtol=1e-6, atol=1e-3)


def test_image_features_and_crop_logits_match_for_a_subset(classifier, crops, fixture_data):
    picked = torch.linspace(0, len(crops.crop_ids) - 1, 16).round().long()  # spread over all 5 frames
    frames = fixture_data["frames_resized_rgb_uint8"].float()
    regions = crop_masked_regions(frames, crops.crop_ids[picked, 0], crops.boxes[picked], crops.mask_crops[picked])
    with torch.inference_mode():
        features = classifier.encode_crops(regions)
    assert (features - fixture_data["clip_image_features"][picked]).abs().max() <= 1e-4
    logits = 100 * features @ fixture_data["clip_text_embeddings"].T
    assert (logits - fixture_data["clip_sim_logits"][picked]).abs().max() <= 1e-4


def test_forward_end_to_end_on_the_most_sounding_queries(reference_fixture, classifier, fixture_data):
    """forward() in fast mode (2 queries x 5 frames) with 3 names, against the reference's logits."""
    names = [fixture_data["class_names"][i] for i in CLASS_SUBSET]
    out = classifier(
        fixture_data["frames_resized_rgb_uint8"],
        fixture_data["pred_masks"][0],
        PADDED_SIZE,
        names,
        pred_logits=fixture_data["pred_logits"][0],
        clip_queries=2,
    )
    sounding = fixture_data["pred_logits"][0].softmax(-1)[:, 0]
    assert out.query_ids.tolist() == sorted(sounding.topk(2).indices.tolist())
    rows = out.crop_ids[:, 0] * 100 + out.crop_ids[:, 1]  # all 500 pairs are valid: row = frame * Q + query
    expected_logits = fixture_data["clip_sim_logits"][rows][:, CLASS_SUBSET]
    assert (out.crop_logits - expected_logits).abs().max() <= 1e-4
    _, expected_probs = query_class_probs(expected_logits, out.crop_ids[:, 1])
    assert (out.class_probs - expected_probs).abs().max() <= 1e-6


def test_query_probabilities_match(fixture_data):
    query_ids, probs = query_class_probs(fixture_data["clip_sim_logits"], fixture_data["clip_valid_ids"][:, 1])
    assert torch.equal(query_ids, fixture_data["ovcm_valid_query_ids"])
    assert (probs - fixture_data["ovcm_query_scores"]).abs().max() <= 1e-6


def test_top10_selection_and_masks_match(fixture_data):
    kept = select_predictions(fixture_data["ovcm_query_scores"], fixture_data["ovcm_valid_query_ids"], 10, 0.0)
    order = fixture_data["topk_pred_scores"].argsort(descending=True)
    assert [k.score for k in kept] == fixture_data["topk_pred_scores"][order].tolist()
    assert [k.label - 1 for k in kept] == fixture_data["topk_pred_labels"][order].tolist()
    masks = masks_at_frame_size(
        fixture_data["pred_masks"][0][[k.query for k in kept]], PADDED_SIZE, IMAGE_SIZE, ORIGINAL_SIZE
    )
    assert (masks == fixture_data["topk_pred_masks"][order]).float().mean() >= 0.999


@pytest.mark.parametrize("threshold", [0.0, 0.3])
def test_label_maps_match(fixture_data, threshold):
    result = postprocess(
        fixture_data["ovcm_query_scores"],
        fixture_data["ovcm_valid_query_ids"],
        fixture_data["pred_masks"][0],
        PADDED_SIZE,
        IMAGE_SIZE,
        ORIGINAL_SIZE,
        PostprocessConfig(score_threshold=threshold),
    )
    expected = fixture_data[f"thr{threshold}_label_map_fullres"].long()
    assert result.label_maps.shape == expected.shape
    assert (result.label_maps == expected).float().mean() >= 0.999
    kept_labels = [k.label - 1 for k in result.kept] or [-1]  # the reference reports [-1] when nothing passes
    assert kept_labels == fixture_data[f"thr{threshold}_kept_labels"].tolist()


@pytest.mark.skipif(os.environ.get("OVAVSS_FULL_PARITY") != "1", reason="set OVAVSS_FULL_PARITY=1 (~3 min)")
def test_full_forward_all_crops_and_names(classifier, fixture_data):
    out = classifier(
        fixture_data["frames_resized_rgb_uint8"],
        fixture_data["pred_masks"][0],
        PADDED_SIZE,
        fixture_data["class_names"],
    )
    assert torch.equal(out.crop_ids, fixture_data["clip_valid_ids"])
    assert (out.crop_logits - fixture_data["clip_sim_logits"]).abs().max() <= 1e-4
    assert (out.class_probs - fixture_data["ovcm_query_scores"]).abs().max() <= 1e-4
    result = postprocess(
        out.class_probs, out.query_ids, fixture_data["pred_masks"][0], PADDED_SIZE, IMAGE_SIZE, ORIGINAL_SIZE,
        PostprocessConfig(score_threshold=0.0),
    )  # fmt: skip
    assert (result.label_maps == fixture_data["thr0.0_label_map_fullres"].long()).float().mean() >= 0.999
