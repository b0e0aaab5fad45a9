"""Unit tests of the visual path's parts on tiny inputs: preprocessing, position encodings, deformable
attention (against a naive loop), audio-visual fusion (against the literal formula), backbones (keys,
shapes, Swin's shifted-window attention against a naive masked attention), pixel decoder and mask decoder
(per-frame / per-clip independence, batch > 1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from ovavss_cli.models.layers.backbone import (
    ResNetBackbone,
    ResNetConfig,
    SwinBackbone,
    SwinBlock,
    SwinConfig,
    build_backbone,
    relative_position_index,
    shifted_window_mask,
)
from ovavss_cli.models.layers.decoder import AudioConditionedMaskDecoder, MaskDecoderConfig, attention_mask_from_masks
from ovavss_cli.models.layers.deform_attn import MultiScaleDeformableAttention, multi_scale_deformable_attention
from ovavss_cli.models.layers.fusion import AudioVisualBiAttention
from ovavss_cli.models.layers.pixel_decoder import AudioVisualPixelDecoder, PixelDecoderConfig
from ovavss_cli.models.layers.position_encoding import sine_position_encoding_2d, sine_position_encoding_3d
from ovavss_cli.models.preprocess import (
    PIXEL_MEAN,
    PIXEL_STD,
    normalize_and_pad,
    resize_shortest_edge,
    shortest_edge_size,
)

TINY_PIXEL_DECODER = PixelDecoderConfig(
    in_channels=(16, 24, 32, 40),
    conv_dim=32,
    mask_dim=24,
    num_groups=8,
    num_encoder_layers=2,
    num_heads=4,
    num_points=2,
    ffn_dim=48,
    audio_dim=16,
    fusion_dim=64,
    fusion_heads=4,
)
TINY_DECODER = MaskDecoderConfig(
    hidden_dim=32, num_queries=6, num_heads=4, ffn_dim=48, num_layers=4, mask_dim=24, audio_dim=16, num_frames=5
)


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial weights everywhere (zero-initialised layers would hide bugs)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * (0.2 if p.dim() > 1 else 0.5))
    return module.eval()


# ----------------------------------------------------------------------------------------- preprocess


def test_shortest_edge_size_follows_detectron2_rounding():
    assert shortest_edge_size(224, 320) == (360, 514)  # 514.28 -> 514
    assert shortest_edge_size(320, 224) == (514, 360)
    assert shortest_edge_size(360, 640) == (360, 640)
    # long side capped: 360 x 3600 -> x 1333/3600 -> (133.3, 1333)
    assert shortest_edge_size(100, 1000, short=360, max_size=1333) == (133, 1333)


def test_resize_accepts_numpy_and_batches():
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, size=(2, 3, 20, 30, 3), dtype=np.uint8)
    batch = resize_shortest_edge(clips, short=12)
    assert batch.shape == (2, 3, 12, 18, 3) and batch.dtype == torch.uint8
    assert torch.equal(batch[1], resize_shortest_edge(clips[1], short=12))
    same = torch.from_numpy(clips[0])
    assert resize_shortest_edge(same, short=20) is same


def test_normalize_and_pad_values_and_padding():
    frames = torch.zeros(2, 3, 20, 30, 3, dtype=torch.uint8)
    frames[..., 0] = 255
    images, size = normalize_and_pad(frames, size_divisibility=16)
    assert size == (20, 30) and images.shape == (2, 3, 3, 32, 32) and images.dtype == torch.float32
    inside = images[..., :20, :30]
    assert torch.allclose(inside[:, :, 0], torch.tensor((255 - PIXEL_MEAN[0]) / PIXEL_STD[0]))
    assert torch.allclose(inside[:, :, 2], torch.tensor(-PIXEL_MEAN[2] / PIXEL_STD[2]))
    assert images[..., 20:, :].abs().max() == 0 and images[..., :, 30:].abs().max() == 0  # zeros AFTER normalising
    with pytest.raises(ValueError, match="uint8"):
        normalize_and_pad(frames.float())


# ---------------------------------------------------------------------------------- position encoding


def test_sine_position_encoding_2d_layout():
    pos = sine_position_encoding_2d(3, 5, num_feats=8)
    assert pos.shape == (16, 3, 5)
    assert torch.equal(pos[:8], pos[:8, :, :1].expand(8, 3, 5))  # y-features first: constant along x
    assert torch.equal(pos[8:], pos[8:, :1, :].expand(8, 3, 5))  # then x-features: constant along y
    # channel 0 = sin(y_norm / 1), channel 1 = cos(y_norm / 1), y_norm = (i + 1) / (H + 1e-6) · 2π
    y = torch.arange(1, 4, dtype=torch.float64) / (3 + 1e-6) * 2 * math.pi
    assert torch.allclose(pos[0, :, 0].double(), y.sin(), atol=1e-6)
    assert torch.allclose(pos[1, :, 0].double(), y.cos(), atol=1e-6)
    # channel 2 uses the next frequency: 10000^(2/8)
    assert torch.allclose(pos[2, :, 0].double(), (y / 10000 ** (2 / 8)).sin(), atol=1e-6)


def test_sine_position_encoding_3d_adds_time():
    pos3 = sine_position_encoding_3d(4, 3, 5, num_feats=8)
    assert pos3.shape == (4, 16, 3, 5)
    temporal = pos3 - sine_position_encoding_2d(3, 5, num_feats=8)
    assert torch.allclose(temporal, temporal[:, :, :1, :1].expand_as(temporal), atol=1e-6)  # added, per frame
    z = torch.arange(1, 5, dtype=torch.float64) / (4 + 1e-6) * 2 * math.pi
    assert torch.allclose(temporal[:, 0, 0, 0].double(), z.sin(), atol=1e-6)
    assert torch.allclose(temporal[:, 2, 0, 0].double(), (z / 10000 ** (2 / 16)).sin(), atol=1e-6)  # 2·F features


# -------------------------------------------------------------------------------- deformable attention


def naive_deformable_attention(value, spatial_shapes, locations, weights):
    """The CUDA kernel's definition, one sample at a time in float64: pixel (h, w) = (y·H − 0.5, x·W − 0.5),
    bilinear over the 4 corners, corners outside the map count as 0."""
    batch, _, heads, head_dim = value.shape
    _, queries, _, levels, points, _ = locations.shape
    value = value.double()
    starts = np.cumsum([0] + [h * w for h, w in spatial_shapes])
    out = torch.zeros(batch, queries, heads, head_dim, dtype=torch.float64)
    for n in range(batch):
        for q in range(queries):
            for m in range(heads):
                for lvl, (height, width) in enumerate(spatial_shapes):
                    for p in range(points):
                        x = locations[n, q, m, lvl, p, 0].item() * width - 0.5
                        y = locations[n, q, m, lvl, p, 1].item() * height - 0.5
                        x0, y0 = math.floor(x), math.floor(y)
                        sample = torch.zeros(head_dim, dtype=torch.float64)
                        for yy, xx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
                            if 0 <= yy < height and 0 <= xx < width:
                                corner = (1 - abs(x - xx)) * (1 - abs(y - yy))
                                sample += corner * value[n, starts[lvl] + yy * width + xx, m]
                        out[n, q, m] += weights[n, q, m, lvl, p].item() * sample
    return out.flatten(2)


def test_deformable_attention_matches_naive_kernel():
    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (2, 5)]
    value = torch.randn(2, 3 * 4 + 2 * 5, 2, 3, generator=generator)
    # locations partly outside [0, 1] to exercise the zero padding
    locations = torch.rand(2, 5, 2, 2, 3, 2, generator=generator) * 1.6 - 0.3
    weights = torch.rand(2, 5, 2, 2, 3, generator=generator)
    ours = multi_scale_deformable_attention(value.permute(0, 2, 3, 1), shapes, locations, weights)
    assert ours.shape == (2, 5, 6)
    torch.testing.assert_close(
        ours.double(), naive_deformable_attention(value, shapes, locations, weights), atol=1e-5, rtol=1e-5
    )


def test_deformable_attention_initialisation():
    attention = MultiScaleDeformableAttention(dim=16, num_levels=2, num_heads=4, num_points=3)
    offsets = attention.sampling_offsets.bias.view(4, 2, 3, 2)
    # head h points along 2πh/4 (normalised so the larger coordinate is 1), point p at distance p + 1
    assert torch.allclose(offsets[0, 1], torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]), atol=1e-6)
    assert torch.allclose(offsets[1, 0], torch.tensor([[0.0, 1.0], [0.0, 2.0], [0.0, 3.0]]), atol=1e-6)
    assert attention.sampling_offsets.weight.abs().max() == 0
    assert attention.attention_weights.weight.abs().max() == 0 and attention.attention_weights.bias.abs().max() == 0


def test_deformable_attention_module_gradients_flow():
    attention = randomize_(MultiScaleDeformableAttention(dim=8, num_levels=2, num_heads=2, num_points=2)).train()
    shapes = [(3, 3), (2, 2)]
    tokens = torch.randn(2, 13, 8, requires_grad=True)
    reference_points = torch.rand(1, 13, 2)
    attention(tokens, reference_points, tokens, shapes).square().sum().backward()
    assert tokens.grad is not None and tokens.grad.abs().sum() > 0
    assert attention.sampling_offsets.weight.grad.abs().sum() > 0


# -------------------------------------------------------------------------------------------- fusion


def literal_bi_attention(block: AudioVisualBiAttention, visual: torch.Tensor, audio: torch.Tensor):
    """GLIP's BiMultiHeadAttention written out with per-token projections (eval mode, one audio token)."""
    attn = block.attn
    visual, audio = block.layer_norm_v(visual), block.layer_norm_l(audio)[:, None]
    batch, length, _ = visual.shape
    heads, dim = attn.num_heads, attn.head_dim

    def split(x):
        return x.view(batch, -1, heads, dim).transpose(1, 2).reshape(batch * heads, -1, dim)

    query, key = split(attn.v_proj(visual) * dim**-0.5), split(attn.l_proj(audio))
    value_v, value_l = split(attn.values_v_proj(visual)), split(attn.values_l_proj(audio))
    scores = torch.bmm(query, key.transpose(1, 2)).clamp(-50000, 50000)  # (N·H, L, 1)
    scores_t = scores.transpose(1, 2)
    audio_probs = (scores_t - scores_t.max(-1, keepdim=True)[0]).clamp(-50000, 50000).softmax(-1)
    out_v = (
        torch.bmm(scores.softmax(-1), value_l)
        .view(batch, heads, length, dim)
        .transpose(1, 2)
        .reshape(batch, length, -1)
    )
    out_a = torch.bmm(audio_probs, value_v).view(batch, heads, 1, dim).transpose(1, 2).reshape(batch, 1, -1)
    return visual + block.gamma_v * attn.out_v_proj(out_v), (audio + block.gamma_l * attn.out_l_proj(out_a))[:, 0]


def test_fusion_matches_literal_formula():
    block = randomize_(AudioVisualBiAttention(visual_dim=16, audio_dim=8, embed_dim=32, num_heads=4))
    visual, audio = torch.randn(3, 11, 16), torch.rand(3, 8)
    expected_visual, expected_audio = literal_bi_attention(block, visual, audio)
    with torch.no_grad():
        fused_visual, fused_audio = block(visual, audio)
        torch.testing.assert_close(fused_visual, expected_visual, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fused_audio, expected_audio, atol=1e-5, rtol=1e-5)
        # the training path (per-token, per-head dropout masks) is the same function when nothing is dropped
        block.train()
        block.attn.dropout = 0.0
        train_visual, train_audio = block(visual, audio)
    torch.testing.assert_close(train_visual, expected_visual, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(train_audio, expected_audio, atol=1e-5, rtol=1e-5)


def test_fusion_dropout_only_in_training():
    block = randomize_(AudioVisualBiAttention(visual_dim=16, audio_dim=8, embed_dim=32, num_heads=4))
    visual, audio = torch.randn(2, 9, 16), torch.rand(2, 8)
    with torch.no_grad():
        first, second = block(visual, audio), block(visual, audio)
        assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
        block.train()
        torch.manual_seed(1)
        dropped = block(visual, audio)
    assert not torch.allclose(dropped[0], first[0]) and not torch.allclose(dropped[1], first[1])


# ------------------------------------------------------------------------------------------ backbones


def test_resnet_keys_are_torchvision_names():
    with torch.device("meta"):
        backbone = ResNetBackbone(ResNetConfig(depth=50))
        ours = backbone.state_dict()
        trunk = torchvision.models.resnet50(weights=None, norm_layer=torchvision.ops.FrozenBatchNorm2d).state_dict()
    assert set(ours) == {key for key in trunk if not key.startswith("fc.")}
    assert "layer1.0.downsample.1.running_var" in ours and not any("num_batches_tracked" in key for key in ours)
    assert backbone.out_channels == {"res2": 256, "res3": 512, "res4": 1024, "res5": 2048}


@pytest.mark.parametrize("depth, channels", [(18, (64, 128, 256, 512)), (34, (64, 128, 256, 512))])
def test_resnet_feature_shapes(depth, channels):
    backbone = build_backbone(ResNetConfig(depth=depth)).eval()
    assert tuple(backbone.out_channels.values()) == channels
    with torch.no_grad():
        features = backbone(torch.randn(2, 3, 64, 96))
    for (name, feature), stride, width in zip(features.items(), (4, 8, 16, 32), channels, strict=True):
        assert feature.shape == (2, width, 64 // stride, 96 // stride), name


def test_resnet_batch_norm_is_frozen():
    backbone = ResNetBackbone(ResNetConfig(depth=18)).train()
    before = backbone.bn1.running_mean.clone()
    backbone(torch.randn(2, 3, 32, 32))
    assert torch.equal(backbone.bn1.running_mean, before)
    assert not any("bn" in name for name, _ in backbone.named_parameters())  # buffers only


def test_swin_b_structure_and_parameter_count():
    with torch.device("meta"):
        swin = SwinBackbone(SwinConfig())
    # ovavss-spec §11.2: 86,880,376 parameters, plus 24 relative_position_index buffers of 144×144
    assert sum(p.numel() for p in swin.parameters()) == 86_880_376
    state = swin.state_dict()
    indices = {k: v for k, v in state.items() if k.endswith("relative_position_index")}
    assert len(indices) == 24 and all(v.shape == (144, 144) and v.dtype == torch.int64 for v in indices.values())
    assert state["patch_embed.proj.weight"].shape == (128, 3, 4, 4)
    assert state["layers.2.blocks.17.attn.relative_position_bias_table"].shape == (23 * 23, 16)
    assert state["layers.0.downsample.reduction.weight"].shape == (256, 512)
    assert state["layers.2.downsample.norm.weight"].shape == (2048,)
    assert "layers.3.downsample.reduction.weight" not in state
    assert [state[f"norm{i}.weight"].shape[0] for i in range(4)] == [128, 256, 512, 1024]
    assert swin.out_channels == {"res2": 128, "res3": 256, "res4": 512, "res5": 1024}


def test_swin_feature_shapes_with_padding():
    config = SwinConfig(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=4, drop_path_rate=0.0)
    swin = randomize_(SwinBackbone(config))
    with torch.no_grad():
        features = swin(torch.randn(2, 3, 70, 100))  # not multiples of the patch, window or 32
    # 70×100 -> patches 18×25 -> 9×13 -> 5×7 -> 3×4 (odd sizes padded before merging)
    expected = {"res2": (16, 18, 25), "res3": (32, 9, 13), "res4": (64, 5, 7), "res5": (128, 3, 4)}
    assert {k: tuple(v.shape[1:]) for k, v in features.items()} == expected
    assert all(torch.isfinite(v).all() for v in features.values())


def test_relative_position_index():
    index = relative_position_index(3)
    assert index.shape == (9, 9) and index.min() == 0 and index.max() == 24
    assert torch.all(index.diagonal() == 12)  # zero offset is the table's centre (2·3 − 1)² // 2
    # token 0 = (0, 0), token 5 = (1, 2): offset (−1, −2) -> (−1 + 2)·5 + (−2 + 2)
    assert index[0, 5] == 5 and index[5, 0] == 3 * 5 + 4


def naive_shifted_window_block(block: SwinBlock, x: torch.Tensor) -> torch.Tensor:
    """The same block as full attention over the padded map: token i may attend j only inside the same
    window of the grid shifted by ``shift`` (windows cut at the map border stay separate), plus the
    relative position bias; no cyclic roll, no partition."""
    batch, height, width, channels = x.shape
    window, shift, heads = block.window, block.shift, block.attn.num_heads
    y = F.pad(block.norm1(x), (0, 0, 0, -width % window, 0, -height % window))
    padded_h, padded_w = y.shape[1:3]
    rows, cols = torch.meshgrid(torch.arange(padded_h), torch.arange(padded_w), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    group = torch.div(rows - shift, window, rounding_mode="floor") * 1000 + torch.div(
        cols - shift, window, rounding_mode="floor"
    )
    allowed = group[:, None] == group[None, :]
    table = block.attn.relative_position_bias_table
    dy, dx = rows[:, None] - rows[None, :], cols[:, None] - cols[None, :]
    bias = table[((dy + window - 1) * (2 * window - 1) + (dx + window - 1)).clamp(0, table.shape[0] - 1)]
    bias = bias.permute(2, 0, 1).masked_fill(~allowed, float("-inf"))  # (heads, L, L)
    tokens = y.reshape(batch, -1, channels)
    q, k, v = block.attn.qkv(tokens).view(batch, -1, 3, heads, channels // heads).permute(2, 0, 3, 1, 4)
    attn = (q * (channels // heads) ** -0.5) @ k.transpose(-2, -1) + bias
    out = block.attn.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(batch, -1, channels))
    x = x + out.view(batch, padded_h, padded_w, channels)[:, :height, :width]
    return x + block.mlp(block.norm2(x))


@pytest.mark.parametrize("shift", [0, 2])
def test_swin_window_attention_matches_naive_masked_attention(shift):
    block = randomize_(
        SwinBlock(dim=8, num_heads=2, window=4, shift=shift, mlp_ratio=2.0, qkv_bias=True, drop_path=0.0)
    )
    x = torch.randn(2, 6, 10, 8)  # padded to 8×12: windows cut by the border and by the shift
    with torch.no_grad():
        ours = block(x, shifted_window_mask(8, 12, 4, 2, x.device))
        torch.testing.assert_close(ours, naive_shifted_window_block(block, x), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------ pixel decoder


def tiny_features(frames: int, height: int = 64, width: int = 96, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(frames, channels, height // stride, width // stride, generator=generator)
        for name, channels, stride in zip(
            ("res2", "res3", "res4", "res5"), TINY_PIXEL_DECODER.in_channels, (4, 8, 16, 32), strict=True
        )
    }


def test_pixel_decoder_shapes_and_per_frame_independence():
    decoder = randomize_(AudioVisualPixelDecoder(TINY_PIXEL_DECODER))
    features, audio = tiny_features(3), torch.rand(3, 16)
    with torch.no_grad():
        mask_features, multi_scale, fused_audio = decoder(features, audio)
        single = decoder({k: v[1:2] for k, v in features.items()}, audio[1:2])
    assert mask_features.shape == (3, 24, 16, 24)
    assert [tuple(m.shape) for m in multi_scale] == [(3, 32, 2, 3), (3, 32, 4, 6), (3, 32, 8, 12)]
    assert fused_audio.shape == (3, 16)
    # frames never interact in the pixel decoder
    torch.testing.assert_close(single[0], mask_features[1:2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(single[2], fused_audio[1:2], atol=1e-5, rtol=1e-5)


def test_pixel_decoder_runs_in_float32_under_autocast():
    decoder = randomize_(AudioVisualPixelDecoder(TINY_PIXEL_DECODER))
    features = {k: v.bfloat16() for k, v in tiny_features(2).items()}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        mask_features, multi_scale, fused_audio = decoder(features, torch.rand(2, 16))
    assert mask_features.dtype == fused_audio.dtype == multi_scale[0].dtype == torch.float32


def test_pixel_decoder_reference_initialisation():
    decoder = AudioVisualPixelDecoder(TINY_PIXEL_DECODER)
    fusion = decoder.transformer.encoder.vl_layer["b_attn"]
    assert torch.allclose(fusion.gamma_v, torch.full_like(fusion.gamma_v, 1 / 6))
    first = decoder.transformer.encoder.layers[0].self_attn
    assert first.attention_weights.weight.abs().max() == 0  # MSDA's own init survives the Xavier pass
    assert decoder.input_proj[0][0].bias.abs().max() == 0 and decoder.mask_features.bias.abs().max() == 0


# ------------------------------------------------------------------------------------- mask decoder


def tiny_decoder_inputs(clips: int, frames: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    n = clips * frames
    multi_scale = [torch.randn(n, 32, h, w, generator=generator) for h, w in ((2, 3), (4, 6), (8, 12))]
    mask_features = torch.randn(n, 24, 16, 24, generator=generator)
    return multi_scale, mask_features, torch.randn(n, 16, generator=generator)


def test_mask_decoder_shapes():
    decoder = randomize_(AudioConditionedMaskDecoder(TINY_DECODER))
    with torch.no_grad():
        out = decoder(*tiny_decoder_inputs(1, 5), batch_size=1)
    assert out["pred_logits"].shape == (1, 6, 2) and out["pred_masks"].shape == (1, 6, 5, 16, 24)
    assert len(out["aux_outputs"]) == TINY_DECODER.num_layers
    assert all(aux["pred_masks"].shape == (1, 6, 5, 16, 24) for aux in out["aux_outputs"])


def test_mask_decoder_batch_of_two_equals_clips_alone():
    decoder = randomize_(AudioConditionedMaskDecoder(TINY_DECODER))
    multi_scale, mask_features, audio = tiny_decoder_inputs(2, 5)
    with torch.no_grad():
        both = decoder(multi_scale, mask_features, audio, batch_size=2)
        for clip in range(2):
            rows = slice(5 * clip, 5 * clip + 5)
            alone = decoder([m[rows] for m in multi_scale], mask_features[rows], audio[rows], batch_size=1)
            torch.testing.assert_close(both["pred_logits"][clip], alone["pred_logits"][0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(both["pred_masks"][clip], alone["pred_masks"][0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(
                both["aux_outputs"][1]["pred_masks"][clip],
                alone["aux_outputs"][1]["pred_masks"][0],
                atol=1e-5,
                rtol=1e-5,
            )


def test_mask_decoder_uses_the_audio_of_its_own_clip():
    decoder = randomize_(AudioConditionedMaskDecoder(TINY_DECODER))
    multi_scale, mask_features, audio = tiny_decoder_inputs(2, 5)
    changed = audio.clone()
    changed[5:] += 1.0  # only clip 1's audio
    with torch.no_grad():
        before = decoder(multi_scale, mask_features, audio, batch_size=2)
        after = decoder(multi_scale, mask_features, changed, batch_size=2)
    assert torch.equal(before["pred_masks"][0], after["pred_masks"][0])
    assert not torch.allclose(before["pred_masks"][1], after["pred_masks"][1])


def test_mask_decoder_short_clip_and_bad_frame_count():
    decoder = randomize_(AudioConditionedMaskDecoder(TINY_DECODER))
    with torch.no_grad():
        out = decoder(*tiny_decoder_inputs(1, 3), batch_size=1)
        assert out["pred_masks"].shape == (1, 6, 3, 16, 24)
        with pytest.raises(ValueError, match="clips"):
            decoder(*tiny_decoder_inputs(1, 6), batch_size=1)  # more frames than audio_query_embed rows


def test_attention_mask_blocks_background_and_frees_empty_queries():
    logits = torch.full((2, 3, 2, 4, 4), -5.0)
    logits[0, 0, 1, :2, :2] = 5.0  # clip 0, query 0: foreground in frame 1 only
    mask = attention_mask_from_masks(logits, (2, 2))
    assert mask.shape == (2, 3, 8) and mask.dtype == torch.bool
    expected_row = torch.ones(8, dtype=torch.bool)
    expected_row[4] = False  # frame 1, top-left cell
    assert torch.equal(mask[0, 0], expected_row)
    assert not mask[0, 1].any()  # query 1 is empty everywhere: attends everywhere
    assert not mask[1].any()  # clip 1: every query empty


def test_tiny_visual_chain_under_bfloat16_autocast():
    """Backbone -> pixel decoder (float32 inside) -> decoder with mixed precision, B = 2 clips of 3 frames."""
    backbone = build_backbone(ResNetConfig(depth=18)).eval()
    pixel_config = PixelDecoderConfig(**{**TINY_PIXEL_DECODER.__dict__, "in_channels": (64, 128, 256, 512)})
    pixel_decoder = randomize_(AudioVisualPixelDecoder(pixel_config))
    decoder = randomize_(AudioConditionedMaskDecoder(TINY_DECODER))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        features = backbone(torch.randn(6, 3, 64, 96))
        mask_features, multi_scale, audio = pixel_decoder(features, torch.rand(6, 16))
        out = decoder(multi_scale, mask_features, audio, batch_size=2)
    assert features["res5"].dtype == torch.bfloat16 and mask_features.dtype == torch.float32
    assert out["pred_masks"].shape == (2, 6, 3, 16, 24)
    assert torch.isfinite(out["pred_masks"].float()).all() and torch.isfinite(out["pred_logits"].float()).all()


def test_tiny_heads_train_end_to_end():
    """Training mode: every parameter of the pixel decoder and the mask decoder receives a gradient."""
    pixel_decoder = AudioVisualPixelDecoder(TINY_PIXEL_DECODER).train()
    decoder = AudioConditionedMaskDecoder(TINY_DECODER).train()
    mask_features, multi_scale, audio = pixel_decoder(tiny_features(5), torch.rand(5, 16))
    out = decoder(multi_scale, mask_features, audio, batch_size=1)
    outputs = [out] + out["aux_outputs"]
    loss = sum(o["pred_masks"].sigmoid().mean() + o["pred_logits"].softmax(-1)[..., 0].mean() for o in outputs)
    loss.backward()
    for module in (pixel_decoder, decoder):
        missing = [name for name, p in module.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not missing
