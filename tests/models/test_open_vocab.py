"""Unit tests of the open-vocabulary classifier: crop geometry, CLIP scoring, fast mode, text cache.

A tiny random CLIP (builds in ~0.1 s) stands in for ViT-B/16; parity with the reference is in
test_open_vocab_parity.py.
"""

from __future__ import annotations

import warnings

import huggingface_hub.constants
import pytest
import torch
import torch.nn.functional as F

from ovavss_cli.errors import OvavssError
from ovavss_cli.models.ovavss.open_vocab import (
    OpenVocabClassifier,
    OpenVocabConfig,
    crop_masked_regions,
    locate_mask_crops,
    mask_bounding_boxes,
    query_class_probs,
    sounding_query_mask,
    square_box_center,
    square_box_top_left,
)
from ovavss_cli.models.ovavss.text_cache import (
    TextEmbeddingCache,
    text_embedding_key,
    text_tower_fingerprint,
)

TINY_SIZE = 32
TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def tiny_classifier(seed: int = 0, cache: TextEmbeddingCache | None = None, **options):
    torch.manual_seed(seed)
    config = OpenVocabConfig(image_size=TINY_SIZE, clip_architecture=TINY_CLIP, **options)
    return OpenVocabClassifier(config, cache if cache is not None else TextEmbeddingCache(use_disk=False)).eval()


def logits_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """(Q, T, H, W) bool -> mask logits (+10 inside, -10 outside)."""
    return masks.float() * 20 - 10


# ------------------------------------------------------------------------------------------ geometry


def test_bounding_boxes_follow_detectron2_exclusive_ends():
    masks = torch.zeros(3, 10, 12, dtype=torch.bool)
    masks[0, 4, 7] = True  # one pixel
    masks[1, 2:5, 3:9] = True  # rows 2..4, cols 3..8
    masks[1, 9, 0] = True  # a stray pixel widens the box
    boxes = mask_bounding_boxes(masks)  # masks[2] is empty
    assert boxes.tolist() == [[7, 4, 8, 5], [0, 2, 9, 10], [0, 0, 0, 0]]
    assert boxes.dtype == torch.float32


def test_square_boxes_top_left_and_center():
    boxes = torch.tensor([[10.0, 20.0, 14.0, 30.0], [0.0, 0.0, 8.0, 2.0]])  # tall 4x10, wide 8x2
    assert square_box_top_left(boxes).tolist() == [[10, 20, 20, 30], [0, 0, 8, 8]]
    assert square_box_center(boxes).tolist() == [[7, 20, 17, 30], [0, -3, 8, 5]]


def test_locate_crops_order_boxes_and_past_edge():
    masks = torch.zeros(3, 2, 16, 16, dtype=torch.bool)  # (Q, T, H, W) at the padded size
    masks[0, 0, 2:4, 2:6] = True
    masks[2, 0, 12:16, 14:16] = True  # bottom-right: the tall 2x4 box's square runs past the right edge
    masks[1, 1, 5, 5] = True
    crops = locate_mask_crops(logits_from_masks(masks), (16, 16), crop_size=8)
    assert crops.valid.tolist() == [[True, False, True], [False, True, False]]
    assert crops.crop_ids.tolist() == [[0, 0], [0, 2], [1, 1]]  # row-major (frame, query)
    assert crops.tight_boxes.tolist() == [[2, 2, 6, 4], [14, 12, 16, 16], [5, 5, 6, 6]]
    assert crops.boxes.tolist() == [[2, 2, 6, 6], [14, 12, 18, 16], [5, 5, 6, 6]]
    assert crops.mask_crops.shape == (3, 1, 8, 8)
    # Columns sampled beyond one pixel past the image read 0 (roi_align), the inside ~1.
    past_edge = crops.mask_crops[1, 0]
    assert past_edge[:, :3].min() > 0.99 and past_edge[:, -2:].max() == 0


def test_locate_crops_centered_and_candidates():
    masks = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    masks[:, 0, 4:12, 6:8] = True  # tall 2x8 box
    crops = locate_mask_crops(
        logits_from_masks(masks), (16, 16), 8, square_anchor="center", candidates=torch.tensor([False, True])
    )
    assert crops.valid.tolist() == [[False, True]]
    assert crops.boxes.tolist() == [[3, 4, 11, 12]]


def test_locate_crops_upsamples_to_padded_size():
    masks = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    masks[0, 0, 1:3, 1:3] = True
    crops = locate_mask_crops(logits_from_masks(masks), (16, 16), 8)
    x0, y0, x1, y1 = crops.tight_boxes[0].tolist()
    assert 2 <= x0 < 6 and 10 < x1 <= 14 and (x0, y0, x1, y1) == (y0, x0, y1, x1)


def test_empty_masks_give_no_crops():
    crops = locate_mask_crops(torch.full((4, 3, 8, 8), -5.0), (32, 32), 8)
    assert not crops.valid.any() and crops.crop_ids.shape == (0, 2) and crops.mask_crops.shape == (0, 1, 8, 8)


def test_crop_regions_blend_black_and_clip_mean():
    frames = torch.full((2, 3, 8, 8), 200.0)
    frames[1] = 100.0
    mask_crops = torch.zeros(2, 1, 4, 4)
    mask_crops[:, :, :2] = 1.0  # top half of each crop is the object
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 4.0]])
    frame_ids = torch.tensor([0, 1])
    black = crop_masked_regions(frames, frame_ids, boxes, mask_crops)
    assert black.shape == (2, 3, 4, 4)
    assert torch.allclose(black[0, :, :2], torch.tensor(200.0)) and torch.allclose(black[1, :, :2], torch.tensor(100.0))
    assert black[:, :, 2:].abs().max() == 0
    fill = torch.tensor([10.0, 20.0, 30.0])
    grey = crop_masked_regions(frames, frame_ids, boxes, mask_crops, fill)
    assert torch.equal(grey[:, :, :2], black[:, :, :2])
    assert torch.allclose(grey[0, :, 2:], fill.view(3, 1, 1).expand(3, 2, 4))


def test_same_size_bicubic_resize_is_identity():
    """Why the reference's bicubic resize of roi_align's R×R output to R×R is skipped: it is a no-op."""
    regions = torch.rand(4, 3, 48, 48, generator=torch.Generator().manual_seed(0)) * 255
    assert torch.equal(F.interpolate(regions, (48, 48), mode="bicubic"), regions)


# ------------------------------------------------------------------------------------------- scoring


def test_query_class_probs_average_logits_over_frames():
    crop_logits = torch.tensor([[1.0, 3.0], [3.0, 1.0], [0.0, 4.0]])
    query_ids, probs = query_class_probs(crop_logits, torch.tensor([5, 2, 5]))
    assert query_ids.tolist() == [2, 5]
    expected = torch.tensor([[3.0, 1.0], [0.5, 3.5]]).softmax(dim=-1)
    assert torch.allclose(probs, expected)


def test_sounding_query_mask_picks_highest_object_probability():
    pred_logits = torch.tensor([[0.0, 1.0], [2.0, 0.0], [5.0, 5.0], [1.0, -3.0]])  # p(object): .27 .88 .5 .98
    assert sounding_query_mask(pred_logits, 2).tolist() == [False, True, False, True]
    assert sounding_query_mask(pred_logits, 10).all()


def _clip_inputs(num_queries: int = 3):
    frames = torch.randint(0, 256, (2, 3, 24, 28), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    masks = torch.zeros(num_queries, 2, 32, 32, dtype=torch.bool)  # padded 32x32 around 24x28 frames
    for query in range(num_queries):
        masks[query, 0, 2 + 3 * query : 9 + 3 * query, 4 : 10 + 2 * query] = True
    masks[0, 1, 20:30, 20:32] = True  # reaches into the padding
    return frames, logits_from_masks(masks)


def test_forward_scores_every_valid_crop():
    model = tiny_classifier()
    frames, mask_logits = _clip_inputs()
    vocab = ["dog", "emergency-car", "violin"]
    out = model(frames, mask_logits, (32, 32), vocab)
    assert out.crop_ids.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0]]
    assert out.crop_logits.shape == (4, 3) and out.query_ids.tolist() == [0, 1, 2]
    # Recompute crop 3 (frame 1, query 0) by hand: crop, encode, 100·cos.
    crops = locate_mask_crops(mask_logits, (32, 32), TINY_SIZE)
    region = crop_masked_regions(frames.float(), crops.crop_ids[3:, 0], crops.boxes[3:], crops.mask_crops[3:])
    pixels = (region / 255 - model.clip_mean) / model.clip_std
    with torch.inference_mode():
        image = F.normalize(model.clip.encode_image(pixels), dim=-1)
    expected = 100 * image @ model.text_embeddings(vocab).T
    assert torch.allclose(out.crop_logits[3:], expected, atol=1e-5)
    expected_probs = ((out.crop_logits[0] + out.crop_logits[3]) / 2).softmax(-1)
    assert torch.allclose(out.class_probs[0], expected_probs, atol=1e-6)
    assert torch.allclose(out.class_probs.sum(-1), torch.ones(3))


def test_forward_chunking_and_options_change_only_what_they_should():
    frames, mask_logits = _clip_inputs()
    vocab = ["dog", "cat"]
    reference = tiny_classifier()(frames, mask_logits, (32, 32), vocab)
    chunked = tiny_classifier(crop_batch_size=1)(frames, mask_logits, (32, 32), vocab)
    assert torch.allclose(chunked.crop_logits, reference.crop_logits, atol=1e-5)
    for option in ({"crop_fill": "clip-mean"}, {"square_anchor": "center"}):
        varied = tiny_classifier(**option)(frames, mask_logits, (32, 32), vocab)
        assert torch.equal(varied.crop_ids, reference.crop_ids)
        assert not torch.allclose(varied.crop_logits, reference.crop_logits, atol=1e-4)


def test_forward_fast_mode_sends_only_selected_queries():
    model = tiny_classifier()
    frames, mask_logits = _clip_inputs()
    pred_logits = torch.tensor([[0.0, 3.0], [4.0, 0.0], [0.0, 0.0]])  # query 1 sounds most
    out = model(frames, mask_logits, (32, 32), ["dog"], pred_logits=pred_logits, clip_queries=1)
    assert out.valid.tolist() == [[False, True, False], [False, False, False]]
    assert out.query_ids.tolist() == [1]
    with pytest.raises(ValueError, match="pred_logits"):
        model(frames, mask_logits, (32, 32), ["dog"], clip_queries=1)
    for bad in (0, -2):
        with pytest.raises(OvavssError, match="--clip-queries"):
            model(frames, mask_logits, (32, 32), ["dog"], pred_logits=pred_logits, clip_queries=bad)


def test_forward_with_vocab_of_one_and_with_no_valid_mask():
    model = tiny_classifier()
    frames, mask_logits = _clip_inputs()
    out = model(frames, mask_logits, (32, 32), ["guzheng"])
    assert torch.equal(out.class_probs, torch.ones(3, 1))
    empty = model(frames, torch.full_like(mask_logits, -1.0), (32, 32), ["guzheng", "dog"])
    assert empty.crop_logits.shape == (0, 2) and empty.class_probs.shape == (0, 2) and len(empty.query_ids) == 0


@pytest.mark.parametrize(
    ("vocab", "message"),
    [([], "no class names"), (["dog", " "], "blank"), (["dog", "dog"], "twice"), (["word " * 80], "too long")],
)
def test_bad_vocabulary_is_a_user_error(vocab, message):
    with pytest.raises(OvavssError, match=message):
        tiny_classifier().text_embeddings(vocab)


@pytest.mark.parametrize(
    "option", [{"crop_fill": "grey"}, {"square_anchor": "middle"}, {"templates": "imagenet"}, {"image_size": 0}]
)
def test_bad_config_is_a_user_error(option):
    with pytest.raises(OvavssError, match="open-vocabulary config"):
        OpenVocabConfig(**option)


def test_missing_pretrained_clip_offline_is_a_user_error(tmp_path, monkeypatch):
    # huggingface_hub reads HF_HUB_OFFLINE / HF_HUB_CACHE once at import (already done by open_clip), so the
    # environment alone is not enough: switch its constants to offline + empty cache so no request is made.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(OvavssError, match="openai"):
        OpenVocabClassifier(OpenVocabConfig(image_size=TINY_SIZE, clip_architecture=TINY_CLIP, pretrained="openai"))


def test_state_dict_is_clip_only_frozen_and_stays_eval():
    model = tiny_classifier()
    assert model.clip.visual.image_size == (TINY_SIZE, TINY_SIZE)
    keys = list(model.state_dict())
    assert keys and all(key.startswith("clip.") for key in keys)
    assert {key[len("clip.") :] for key in keys} == set(model.clip.state_dict())
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert model.training and not model.clip.training


# ---------------------------------------------------------------------------------------- text + cache


def test_text_embeddings_are_the_normalised_template_mean():
    model = tiny_classifier()
    names = ["dog", "frying-food"]
    tokens = model.prompt_tokens(names)
    assert tokens.shape == (14, 2, 77)
    with torch.inference_mode():
        per_template = torch.stack([F.normalize(model.clip.encode_text(t), dim=-1) for t in tokens])  # one by one
    expected = F.normalize(per_template.mean(0), dim=-1)
    assert torch.allclose(model.text_embeddings(names), expected, atol=1e-6)


def test_text_cache_memory_and_disk_hits(tmp_path, monkeypatch):
    monkeypatch.setenv("OVAVSS_CACHE_DIR", str(tmp_path))
    first = tiny_classifier(cache=TextEmbeddingCache())
    vocab = ["dog", "cat"]
    computed = first.text_embeddings(vocab)
    assert first.text_cache.stats["misses"] == 2
    assert len(list((tmp_path / "text-embeddings").rglob("*.safetensors"))) == 2
    assert torch.equal(first.text_embeddings(vocab), computed)
    assert first.text_cache.stats["memory_hits"] == 2

    second = tiny_classifier(cache=TextEmbeddingCache())  # same seed: same weights, fresh memory
    second.encode_names = None  # any encoding would now fail: both names must come from disk
    assert torch.equal(second.text_embeddings(vocab), computed)
    assert second.text_cache.stats["disk_hits"] == 2


def test_text_cache_mixed_vocab_pairs_each_name_with_its_vector(tmp_path):
    model = tiny_classifier(cache=TextEmbeddingCache(tmp_path))
    model.text_embeddings(["violin"])
    mixed = model.text_embeddings(["dog", "violin", "cat"])  # the reference's cache misaligns this case
    fresh = tiny_classifier(cache=TextEmbeddingCache(use_disk=False)).text_embeddings(["dog", "violin", "cat"])
    assert torch.allclose(mixed, fresh, atol=1e-6)


def test_different_weights_give_different_keys_and_vectors(tmp_path):
    cache = TextEmbeddingCache(tmp_path)
    model_a, model_b = tiny_classifier(seed=0, cache=cache), tiny_classifier(seed=1, cache=cache)
    fingerprint_a, fingerprint_b = model_a.text_weights_fingerprint(), model_b.text_weights_fingerprint()
    assert fingerprint_a != fingerprint_b
    key_a, key_b = (
        text_embedding_key("m", fingerprint, ["{}"], "dog") for fingerprint in (fingerprint_a, fingerprint_b)
    )
    assert key_a != key_b
    vector_a = model_a.text_embeddings(["dog"])
    vector_b = model_b.text_embeddings(["dog"])
    assert cache.stats["misses"] == 2 and not torch.allclose(vector_a, vector_b)
    # Loading b's weights into a is noticed although no tensor object was replaced.
    model_a.load_state_dict(model_b.state_dict())
    assert model_a.text_weights_fingerprint() == fingerprint_b == text_tower_fingerprint(model_b.clip)
    assert torch.equal(model_a.text_embeddings(["dog"]), vector_b)


def test_fingerprint_ignores_the_image_tower():
    model_a, model_b = tiny_classifier(seed=0), tiny_classifier(seed=0)
    with torch.no_grad():
        model_b.clip.visual.proj.add_(1.0)
    assert text_tower_fingerprint(model_a.clip) == text_tower_fingerprint(model_b.clip)


def test_text_cache_key_covers_model_templates_and_name():
    base = text_embedding_key("ViT-B-16-quickgelu", "f", ["a {}."], "dog")
    assert len({
        base,
        text_embedding_key("ViT-L-14-336-quickgelu", "f", ["a {}."], "dog"),
        text_embedding_key("ViT-B-16-quickgelu", "f", ["a {}!"], "dog"),
        text_embedding_key("ViT-B-16-quickgelu", "f", ["a {}."], "dogs"),
    }) == 4  # fmt: skip


def test_corrupt_cache_file_is_a_miss_and_is_rewritten(tmp_path):
    cache = TextEmbeddingCache(tmp_path)
    cache.put("ab" * 32, torch.ones(4))
    cache.path("ab" * 32).write_bytes(b"not a safetensors file")
    fresh = TextEmbeddingCache(tmp_path)
    assert fresh.get("ab" * 32) is None and fresh.stats["misses"] == 1
    fresh.put("ab" * 32, torch.full((4,), 2.0))
    assert torch.equal(TextEmbeddingCache(tmp_path).get("ab" * 32), torch.full((4,), 2.0))


def test_unwritable_cache_falls_back_to_memory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cache = TextEmbeddingCache(blocker)  # text-embeddings/ cannot be created under a file
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache.put("cd" * 32, torch.ones(3))
        cache.put("ef" * 32, torch.ones(3))
    assert len(caught) == 1 and "not writable" in str(caught[0].message)
    assert not cache.use_disk and torch.equal(cache.get("cd" * 32), torch.ones(3))


def test_cache_dir_comes_from_environment_at_use_time(tmp_path, monkeypatch):
    cache = TextEmbeddingCache()
    monkeypatch.setenv("OVAVSS_CACHE_DIR", str(tmp_path / "later"))
    assert cache.directory == tmp_path / "later" / "text-embeddings"
    monkeypatch.delenv("OVAVSS_CACHE_DIR")
    assert cache.directory.parts[-3:] == (".cache", "ovavss", "text-embeddings")
