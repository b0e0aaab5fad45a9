"""VGGish unit tests: key layout, sizes, flatten order, freezing. Numbers vs the reference: test_vggish_parity.py."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ovavss_cli.data.audio import log_mel_examples
from ovavss_cli.models.layers.vggish import VGGish, VGGishConfig, build_vggish

TINY = VGGishConfig(block_widths=(4, 4, 8, 8), hidden_dim=16, embed_dim=8)

# torchvggish's names (and the reference's below ``audio_encoder.audio_backbone.``), with shapes
RELEASED_SHAPES = {
    "features.0.weight": (64, 1, 3, 3), "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3), "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3), "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3), "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3), "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3), "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288), "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096), "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096), "embeddings.4.bias": (128,),
}  # fmt: skip


def test_released_layout_keys_shapes_and_size():
    with torch.device("meta"):
        model = build_vggish()
    state = model.state_dict()
    assert {key: tuple(value.shape) for key, value in state.items()} == RELEASED_SHAPES
    assert sum(value.numel() for value in state.values()) == 72_141_184


def test_tiny_config_keeps_the_key_names():
    assert list(build_vggish(TINY).state_dict()) == list(RELEASED_SHAPES)


def test_forward_shape_and_non_negative_output():
    torch.manual_seed(0)
    model = build_vggish(TINY)
    embeddings = model(torch.randn(3, 1, 96, 64))
    assert embeddings.shape == (3, 8) and embeddings.dtype == torch.float32
    assert torch.all(embeddings >= 0)  # the last layer is a ReLU (no PCA)


def test_flatten_is_height_width_channel_order():
    torch.manual_seed(0)
    model = build_vggish(TINY)
    examples = torch.randn(2, 1, 96, 64)
    features = model.features(examples)
    assert features.shape == (2, 8, 6, 4)
    tf_order = model.embeddings(features.permute(0, 2, 3, 1).reshape(2, -1))
    torch_order = model.embeddings(features.reshape(2, -1))
    torch.testing.assert_close(model(examples), tf_order, rtol=0, atol=0)
    assert not torch.allclose(tf_order, torch_order)


def test_examples_are_embedded_independently():
    torch.manual_seed(0)
    model = build_vggish(TINY)
    examples = torch.randn(4, 1, 96, 64)
    together = model(examples)
    one_by_one = torch.cat([model(example[None]) for example in examples])
    torch.testing.assert_close(together, one_by_one, rtol=1e-5, atol=1e-6)


def test_frozen_by_default_and_train_does_not_unfreeze():
    parent = nn.ModuleDict({"audio": build_vggish(TINY), "head": nn.Linear(2, 2)})
    parent.train()
    audio = parent["audio"]
    assert not audio.training and parent["head"].training
    assert not any(parameter.requires_grad for parameter in audio.parameters())
    assert audio(torch.randn(1, 1, 96, 64)).grad_fn is None


def test_unfrozen_vggish_trains():
    model = VGGish(TINY, frozen=False)
    model.train()
    assert model.training and all(parameter.requires_grad for parameter in model.parameters())
    model(torch.randn(2, 1, 96, 64)).sum().backward()
    assert model.features[0].weight.grad is not None


def test_from_scratch_encoder_tells_sounds_apart():
    # A randomly initialised encoder is what a tiny preset starts from; if its embedding barely moves
    # with the sound, a model trained on it never learns to listen (PyTorch's default init did this).
    torch.manual_seed(0)
    model = build_vggish(VGGishConfig(block_widths=(8, 16, 32, 32), hidden_dim=64, embed_dim=32))
    t = np.arange(16000) / 16000.0
    sounds = [np.sin(2 * np.pi * hz * t) * 0.5 for hz in (220.0, 880.0)] + [np.zeros_like(t)]
    with torch.no_grad():
        embeddings = torch.cat([model(log_mel_examples(sound, 16000)) for sound in sounds])  # (3, 32)
    scale = embeddings.norm(dim=1).mean()
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert (embeddings[a] - embeddings[b]).norm() > 0.2 * scale
