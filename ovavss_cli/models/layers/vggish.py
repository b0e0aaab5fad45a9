"""VGGish: the frozen audio encoder, one 128-d embedding per 0.96-s log-mel example.

Layout and key names follow torchvggish (``features.{0,3,6,8,11,13}``, ``embeddings.{0,2,4}``), so the
torchvggish release and the reference's ``audio_encoder.audio_backbone.*`` tensors load unchanged.
The embedding is the raw output of the last ReLU (no PCA / quantisation, as in the reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# Four 2x2 max-pools turn a 96x64 log-mel patch into a 6x4 map.
_POOLED_HEIGHT, _POOLED_WIDTH = 6, 4


@dataclass(frozen=True)
class VGGishConfig:
    """Widths of VGGish; the defaults are the released network (72,141,184 parameters).

    ``block_widths`` are the four conv blocks (the last two hold two convs each); smaller values give
    a cheap encoder with the same key names for tiny presets and tests.
    """

    block_widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    hidden_dim: int = 4096
    embed_dim: int = 128


def _conv_features(block_widths: tuple[int, int, int, int]) -> nn.Sequential:
    """Conv3x3+ReLU stacks 1->64, M, ->128, M, ->256, ->256, M, ->512, ->512, M (torchvggish indices)."""
    layers: list[nn.Module] = []
    in_channels = 1
    for block, width in enumerate(block_widths):
        for _ in range(1 if block < 2 else 2):
            layers += [nn.Conv2d(in_channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = width
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class VGGish(nn.Module):
    """(N, 1, 96, 64) log-mel examples -> (N, embed_dim) non-negative embeddings.

    Frozen by default (``frozen=True``): parameters have ``requires_grad=False`` and ``train()`` keeps
    the module in eval mode, so putting the whole model in training mode never unfreezes it silently.
    Whether to run it under ``torch.no_grad()`` is the caller's choice. Build with ``frozen=False`` to
    fine-tune it.
    """

    def __init__(self, config: VGGishConfig = VGGishConfig(), frozen: bool = True):
        super().__init__()
        self.config = config
        self.frozen = frozen
        self.features = _conv_features(config.block_widths)
        flat_dim = config.block_widths[-1] * _POOLED_HEIGHT * _POOLED_WIDTH
        self.embeddings = nn.Sequential(
            nn.Linear(flat_dim, config.hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(config.hidden_dim, config.hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(config.hidden_dim, config.embed_dim),
            nn.ReLU(inplace=True),
        )
        self._init_weights()
        if frozen:
            self.requires_grad_(False)
            self.eval()

    def _init_weights(self) -> None:
        # He init with zero biases, as torchvision's VGG: with PyTorch's default init the signal fades
        # layer by layer and a from-scratch encoder (tiny presets) outputs nearly the same embedding for
        # any sound, so a model trained on it never learns to listen. Loaded weights replace all this.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def train(self, mode: bool = True) -> VGGish:
        return super().train(mode and not self.frozen)

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        # examples: (N, 1, 96, 64) float log-mel
        features = self.features(examples)  # (N, C, 6, 4)
        # The released weights come from TensorFlow (NHWC): flatten in (H, W, C) order, not (C, H, W).
        features = features.permute(0, 2, 3, 1).flatten(1)  # (N, 6 * 4 * C)
        return self.embeddings(features)  # (N, embed_dim)


def build_vggish(config: VGGishConfig = VGGishConfig(), frozen: bool = True) -> VGGish:
    """The audio encoder of OV-AVSS; load the torchvggish release (or a converted checkpoint) into it."""
    return VGGish(config, frozen=frozen)
