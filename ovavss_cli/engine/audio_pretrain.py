"""Pretrain a small VGGish on the generated world's sounds: the listening half of the ``tiny-demo`` recipe.

OV-AVSS takes its audio encoder from VGGish pretrained on AudioSet (frozen in the reference), so its
embeddings already tell a dog's bark from a violin before segmentation training starts. The tiny
preset's encoder has no such pretraining (nothing can be downloaded here, and the released VGGish is
far too big for the demo), and trained from scratch by the segmentation loss alone it learns only
"is there sound" (measured: it then paints every object whenever anything sounds). So, as a stand-in for
AudioSet, it is first trained to tag which classes sound in each 0.96-s example of the training clips
(multi-label, sigmoid cross-entropy over the class ids, through a linear head that is thrown away);
``ovavss train --vggish`` then starts from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..console import make_progress
from ..data.audio import load_audio, log_mel_examples
from ..data.avsbench import AVSSDataset
from ..data.classes import LABEL_NAMES, class_id
from ..data.synthetic import ClipSpec
from ..models.ovavss.vggish import VGGish


@dataclass(frozen=True)
class AudioPretrainConfig:
    epochs: int = 12
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0


def tagged_examples(dataset: AVSSDataset, specs: Sequence[ClipSpec]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every second of ``specs``' clips as a VGGish example and the classes sounding in it:
    ((N, 1, 96, 64) log-mel, (N, 71) 0/1 targets over the label ids, background 0 never set)."""
    examples, targets = [], []
    for spec in specs:
        wave, rate = load_audio(dataset.audio_path(dataset.clip(spec.uid)))
        mel = log_mel_examples(wave, rate)[: spec.num_frames]
        target = torch.zeros(len(mel), len(LABEL_NAMES))
        for second in range(len(mel)):
            for name in spec.sounding_classes:
                if spec.sounds_at(name, second):
                    target[second, class_id(name)] = 1.0
        examples.append(mel)
        targets.append(target)
    return torch.cat(examples), torch.cat(targets)


def pretrain_vggish(
    encoder: VGGish, examples: torch.Tensor, targets: torch.Tensor, config: AudioPretrainConfig
) -> list[float]:
    """Train ``encoder`` (in place) and a linear tagging head on (examples, targets); the epoch losses."""
    generator = torch.Generator().manual_seed(config.seed)
    head = nn.Linear(encoder.config.embed_dim, targets.shape[1])
    parameters = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    was_training = encoder.training
    encoder.train()
    losses = []
    with make_progress(transient=True) as progress:
        task = progress.add_task("pretraining the audio encoder", total=config.epochs)
        for _ in range(config.epochs):
            order = torch.randperm(len(examples), generator=generator)
            total = 0.0
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                logits = head(encoder(examples[batch]))
                loss = F.binary_cross_entropy_with_logits(logits, targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
            losses.append(total / len(order))
            progress.advance(task)
    encoder.train(was_training)
    return losses


@torch.no_grad()
def tagging_accuracy(encoder: VGGish, examples: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of examples whose embedding's nearest class centroid (cosine) is one of their sounding classes
    (examples with exactly one sounding class; a head-free check of what the embedding keeps)."""
    single = targets.sum(1) == 1
    embeddings = F.normalize(encoder(examples[single]), dim=1)
    labels = targets[single].argmax(1)
    classes = labels.unique()
    centroids = F.normalize(torch.stack([embeddings[labels == c].mean(0) for c in classes]), dim=1)
    predicted = classes[(embeddings @ centroids.T).argmax(1)]
    return (predicted == labels).float().mean().item()
