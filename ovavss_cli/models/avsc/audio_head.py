"""AVSC's audio classifier head: which AVSBench categories sound, from one audio embedding per frame.

The paper puts an MLP on BEATs features and predicts K category scores for the clip; the category of the
sound is predicted, never given. Here the features are VGGish's (one 0.96-s example per frame), and the head
scores every frame separately, so an object may sound in some seconds only (MS3); the training loss pools the
frames of a clip (``engine.avsc_criterion.audio_category_loss``). Scores are independent sigmoids (multi-label: several
sources may sound at once), not a softmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers.decoder import MLP


@dataclass
class AudioHeadConfig:
    hidden_dim: int = 256
    num_layers: int = 2  # linear layers of the MLP (ReLU between them)


class AudioCategoryHead(nn.Module):
    """LayerNorm, then an MLP: audio embeddings -> category logits."""

    def __init__(self, audio_dim: int, num_categories: int, config: AudioHeadConfig | None = None):
        super().__init__()
        config = config or AudioHeadConfig()
        # VGGish embeddings are raw ReLU outputs of arbitrary scale: normalise before the MLP.
        self.norm = nn.LayerNorm(audio_dim)
        self.mlp = MLP(audio_dim, config.hidden_dim, num_categories, config.num_layers)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio (N, A) embeddings -> (N, K) logits (sigmoid gives each category's sounding probability)."""
        return self.mlp(self.norm(audio))
