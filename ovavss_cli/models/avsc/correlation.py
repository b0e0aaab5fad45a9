"""The audio-visual semantic correlation step (AVSC's namesake): instances x audio scores -> sounding mask.

Per frame, from the segmenter's N instances (class distribution over K categories + "no object", mask) and
the audio head's K category probabilities:

1. **best instance per category**: for every category k, the query with the highest score for k, where the
   score is the class probability p_q(k) (``selection="class"``) or p_q(k) times the query's mask score, the
   mean foreground probability inside its mask (``"class_mask"``, Mask2Former's instance score). The choice
   itself is not differentiated (an argmax); what the chosen query predicts is.
2. **weighting**: instance k gets w_k = a_k · c_k, the audio probability of k (``use_audio``; off = 1, the
   control without audio) times, with ``confidence_weighting``, c_k = p_q(k) of the chosen query: a soft form of
   "no-object predictions are dropped", since a query that is mostly "no object" has a small p_q(k).
3. **combination** of the weighted masks w_k · sigmoid(m_k) into one sounding probability per pixel: ``"max"``
   (the strongest sounding instance), ``"sum"`` (clamped to 1) or ``"soft_or"`` (1 - prod_k(1 - w_k m_k)).

The paper gives neither the score, the gating nor the combination; these are our choices, all switchable.
There are no parameters here: the correlation is learned through what feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

SELECTIONS = ("class", "class_mask")
COMBINATIONS = ("max", "sum", "soft_or")


@dataclass
class CorrelationConfig:
    use_audio: bool = True  # weight instances by their category's audio score (False: the no-audio control)
    selection: str = "class_mask"  # best instance per category by "class" probability or "class_mask" score
    confidence_weighting: bool = True  # also weight by the chosen instance's class probability
    combination: str = "max"  # "max" | "sum" | "soft_or"
    threshold: float = 0.5  # sounding mask = combined probability > threshold (the official J binarisation)

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.combination not in COMBINATIONS:
            raise ValueError(f"combination must be one of {COMBINATIONS}, got {self.combination!r}")


@dataclass
class CorrelationOutput:
    masks: Tensor  # (N, h, w) sounding probability per pixel
    kept_queries: Tensor  # (N, K) int64: the instance kept for each category
    weights: Tensor  # (N, K): w_k, what each kept instance was weighted by
    categories: Tensor  # (N, h, w) int64: the category whose weighted mask is largest at each pixel


def mask_scores(mask_probs: Tensor) -> Tensor:
    """(N, Q, h, w) probabilities -> (N, Q): mean probability over the pixels above 0.5 (0 for empty masks)."""
    foreground = (mask_probs > 0.5).to(mask_probs.dtype)
    return (mask_probs * foreground).flatten(2).sum(-1) / (foreground.flatten(2).sum(-1) + 1e-6)


class AudioVisualCorrelation(nn.Module):
    def __init__(self, config: CorrelationConfig | None = None):
        super().__init__()
        self.config = config or CorrelationConfig()

    def forward(
        self, class_logits: Tensor, mask_logits: Tensor, audio_probs: Tensor, trainable: Tensor | None = None
    ) -> CorrelationOutput:
        """class_logits (N, Q, K+1), mask_logits (N, Q, h, w), audio_probs (N, K) in [0, 1] -> the sounding mask.

        ``trainable`` (N, K) bool, training only: categories whose instance terms (mask and class confidence) may
        receive gradients from a loss on the result; for the others only the audio score does (the
        silent-aware rule: a visible but silent object must be suppressed by its audio score, never by
        teaching the segmenter to miss it). None = all.
        """
        class_probs = class_logits.float().softmax(-1)[..., :-1]  # (N, Q, K): "no object" dropped
        mask_probs = mask_logits.float().sigmoid()  # (N, Q, h, w)
        with torch.no_grad():
            scores = class_probs
            if self.config.selection == "class_mask":
                scores = class_probs * mask_scores(mask_probs)[..., None]
            kept = scores.argmax(1)  # (N, K)
        confidence = class_probs.gather(1, kept[:, None]).squeeze(1)  # (N, K)
        kept_masks = mask_probs.gather(1, kept[..., None, None].expand(-1, -1, *mask_probs.shape[-2:]))  # (N, K, h, w)
        if trainable is not None:
            confidence = torch.where(trainable, confidence, confidence.detach())
            kept_masks = torch.where(trainable[..., None, None], kept_masks, kept_masks.detach())
        weights = confidence if self.config.confidence_weighting else torch.ones_like(confidence)
        if self.config.use_audio:
            weights = weights * audio_probs.float()
        weighted = weights[..., None, None] * kept_masks  # (N, K, h, w)
        if self.config.combination == "max":
            combined = weighted.max(1).values
        elif self.config.combination == "sum":
            combined = weighted.sum(1).clamp(max=1.0)
        else:
            combined = 1.0 - (1.0 - weighted).prod(1)
        return CorrelationOutput(combined, kept, weights, weighted.detach().argmax(1))
