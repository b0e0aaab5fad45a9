"""The shared pixel decoder and mask decoder are the plain Mask2Former blocks; OV-AVSS's audio layers are
subclasses on top (no family switch), with the reference's keys, creation order and seeded initial weights, and
checkpoints that still record the removed switches load when the switch says what the family builds."""

import hashlib

import pytest
import torch

from ovavss_cli.config_json import to_dict
from ovavss_cli.errors import OvavssError
from ovavss_cli.models.api import create_model, load_model, model_checkpoint_config
from ovavss_cli.models.checkpoint import save_checkpoint
from ovavss_cli.models.layers.decoder import AudioConditionedMaskDecoder, MaskDecoder, MaskDecoderConfig
from ovavss_cli.models.layers.pixel_decoder import AudioVisualPixelDecoder, PixelDecoder, PixelDecoderConfig

PIXEL = PixelDecoderConfig(in_channels=(8, 16, 32, 64), conv_dim=16, mask_dim=16, num_groups=4,
                           num_encoder_layers=1, ffn_dim=16, fusion_dim=16, audio_dim=8)  # fmt: skip
DECODER = MaskDecoderConfig(hidden_dim=16, num_queries=4, num_heads=2, ffn_dim=16, num_layers=2, mask_dim=16,
                            audio_dim=8)  # fmt: skip
AUDIO_DECODER_KEYS = ("v2a.", "a2a.", "audio_proj.", "audio_query_embed.", "transformer_audio_cross_attention_layers.")
# sha256 over (key, bytes) of the seed-0 builds' segmenter tensors, computed on main (cb6fed2) before the audio
# layers became subclasses: the creation order, hence every initial weight, is unchanged.
SEEDED_DIGESTS = {
    "ovavss-tiny": "b8a4c122b01ec9ef86e750a25be4177a79beaea3b9e9fec6734010751b5c8709",
    "avsc-tiny": "cd3f81761609f938dddecf2f350e299b5c7d550e514c5b8d5ecf7efd1a5a8e00",
}


def features(frames: int) -> dict[str, torch.Tensor]:
    return {f"res{i + 2}": torch.randn(frames, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate((8, 16, 32, 64))}


def test_the_plain_blocks_have_no_audio_and_the_audio_ones_add_exactly_it():
    plain, fused = PixelDecoder(PIXEL), AudioVisualPixelDecoder(PIXEL)
    assert not any("vl_layer" in key for key in plain.state_dict())
    extra = set(fused.state_dict()) - set(plain.state_dict())
    assert extra and all(key.startswith("transformer.encoder.vl_layer.b_attn.") for key in extra)
    assert set(plain.state_dict()) <= set(fused.state_dict())
    inputs = features(2)
    mask_features, levels = plain(inputs)
    assert mask_features.shape == (2, 16, 32, 32) and [level.shape[-1] for level in levels] == [4, 8, 16]
    mask_features, levels, audio = fused(inputs, torch.randn(2, 8))
    assert mask_features.shape == (2, 16, 32, 32) and len(levels) == 3 and audio.shape == (2, 8)

    decoder, conditioned = MaskDecoder(DECODER), AudioConditionedMaskDecoder(DECODER)
    assert not any(key.startswith(AUDIO_DECODER_KEYS) for key in decoder.state_dict())
    extra = set(conditioned.state_dict()) - set(decoder.state_dict())
    assert extra and all(key.startswith(AUDIO_DECODER_KEYS) for key in extra)
    multi_scale, masks = [torch.randn(6, 16, s, s) for s in (2, 4, 8)], torch.randn(6, 16, 16, 16)
    out = decoder(multi_scale, masks, 2)
    assert out["pred_logits"].shape == (2, 4, 2) and out["pred_masks"].shape == (2, 4, 3, 16, 16)
    out = conditioned(multi_scale, masks, torch.randn(6, 8), 2)
    assert out["pred_masks"].shape == (2, 4, 3, 16, 16) and len(out["aux_outputs"]) == 2


def test_audio_changes_the_conditioned_decoder_and_not_the_plain_one():
    torch.manual_seed(0)
    conditioned = AudioConditionedMaskDecoder(DECODER).eval()
    plain = MaskDecoder(DECODER).eval()
    plain.load_state_dict({k: v for k, v in conditioned.state_dict().items() if k in plain.state_dict()})
    multi_scale, masks = [torch.randn(3, 16, s, s) for s in (2, 4, 8)], torch.randn(3, 16, 16, 16)
    with torch.no_grad():
        a = conditioned(multi_scale, masks, torch.randn(3, 8), 1)["pred_logits"]
        b = conditioned(multi_scale, masks, torch.randn(3, 8) * 3, 1)["pred_logits"]
        first, second = plain(multi_scale, masks, 1)["pred_logits"], plain(multi_scale, masks, 1)["pred_logits"]
    assert not torch.allclose(a, b) and torch.equal(first, second)


def segmenter_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        if not key.startswith("open_vocab."):  # CLIP's init is open_clip's
            digest.update(key.encode())
            digest.update(value.contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("preset", sorted(SEEDED_DIGESTS))
def test_a_seeded_build_gives_the_initial_weights_it_gave_before_the_split(preset):
    torch.manual_seed(0)
    assert segmenter_digest(create_model(preset)) == SEEDED_DIGESTS[preset]


@pytest.mark.parametrize("preset, audio", [("avsc-tiny", False), ("ovavss-tiny", True)])
def test_old_checkpoints_load_when_their_switches_fit_the_family_and_are_refused_otherwise(preset, audio, tmp_path):
    torch.manual_seed(0)
    model = create_model(preset)
    state = model.state_dict()
    config = model_checkpoint_config(model.config)

    def old_checkpoint(value: bool):
        data = to_dict(model.config)
        data["pixel_decoder"]["audio_fusion"] = value
        data["decoder"]["audio_conditioning"] = value
        path = tmp_path / f"{value}.safetensors"
        save_checkpoint(path, state, kind="model", config={**config, "model": data})
        return path

    loaded = load_model(str(old_checkpoint(audio)))
    assert loaded.config == model.config
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in state.items())
    with pytest.raises(OvavssError, match=f"pixel_decoder.audio_fusion must be {str(audio).lower()}") as error:
        load_model(str(old_checkpoint(not audio)))
    assert "\n" not in str(error.value)
