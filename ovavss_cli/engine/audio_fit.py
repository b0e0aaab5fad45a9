"""Tag-pretrain a small VGGish on generated sounds: the audio half of the ``tiny-demo`` recipe's pretraining.

The real presets use the released VGGish, pretrained on AudioSet (which has heard dogs and violins,
novel classes included) and frozen. No pretrained VGGish exists at the tiny preset's size and nothing
can be downloaded here, so the demo recipe gives its tiny encoder a stand-in: one second of audio ->
which graded-world sounds it holds, learned on generated seconds of all 70 classes' sounds (one to
three at once, each on or off per second). The target of a second is a Gaussian bump over the 70
grades around each sounding class's grade, so that the embedding orders sounds by pitch as the
generator does. The encoder is then frozen and the segmenter is trained on top of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.audio import log_mel_examples
from ..data.classes import CLASS_NAMES, class_id
from ..data.synthetic import ClipSpec, class_grade, clip_audio, graded_apart
from ..models.layers.vggish import VGGish
from .fit_steps import fit_steps

SAMPLE_RATE = 16_000
SECONDS = 10  # per generated clip


@dataclass(frozen=True)
class AudioFitConfig:
    clips: int = 500  # generated 10-second clips (5,000 one-second examples)
    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    on_probability: float = 0.7  # each of a clip's classes sounds in a given second with this probability
    grade_sigma: float = 1.0  # width of a target bump, in grades
    seed: int = 0


def grade_targets(sounding: Sequence[str], sigma: float) -> np.ndarray:
    """(70,) target of one second: max over the sounding classes of a Gaussian bump around their grade."""
    grades = np.arange(len(CLASS_NAMES))
    target = np.zeros(len(CLASS_NAMES))
    for name in sounding:
        target = np.maximum(target, np.exp(-((grades - class_grade(class_id(name))) ** 2) / (2 * sigma**2)))
    return target


def tag_examples(config: AudioFitConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Graded-world log-mel examples and their targets: ((N, 1, 96, 64), (N, 70)), N = clips x 10."""
    rng = np.random.default_rng(config.seed)
    examples, targets = [], []
    for index in range(config.clips):
        drawn = graded_apart(rng, CLASS_NAMES, int(rng.integers(1, 4)))
        schedule = tuple(tuple(n for n in drawn if rng.random() < config.on_probability) for _ in range(SECONDS))
        spec = ClipSpec(f"tag{index:05d}_0_10000", "v2", "train", drawn, schedule=schedule, world="graded")
        wave = clip_audio(spec, SAMPLE_RATE, 1, rng)[:, 0] / 32768.0
        examples.append(log_mel_examples(wave, SAMPLE_RATE, pad_to=SECONDS))
        targets += [grade_targets(second, config.grade_sigma) for second in schedule]
    return torch.cat(examples), torch.tensor(np.stack(targets), dtype=torch.float32)


def fit_audio_encoder(encoder: VGGish, config: AudioFitConfig = AudioFitConfig()) -> list[float]:
    """Train ``encoder`` (with a linear grade head, dropped after) on :func:`tag_examples` by binary
    cross-entropy; returns the loss per step. The encoder is left in eval mode, frozen or not as it came."""
    examples, targets = tag_examples(config)
    torch.manual_seed(config.seed)
    head = torch.nn.Linear(encoder.config.embed_dim, len(CLASS_NAMES))
    frozen, encoder.frozen = encoder.frozen, False
    encoder.requires_grad_(True)
    encoder.train()
    parameters = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)

    def batch_loss() -> torch.Tensor:
        batch = torch.randint(len(examples), (config.batch_size,), generator=generator)
        return F.binary_cross_entropy_with_logits(head(encoder(examples[batch])), targets[batch])

    try:
        return fit_steps(optimizer, config.steps, "pretraining the audio encoder", batch_loss)
    finally:
        encoder.frozen = frozen
        encoder.requires_grad_(not frozen)
        encoder.eval()
