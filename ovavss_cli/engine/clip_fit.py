"""Fit a from-scratch CLIP to the generated world: the naming half of the ``tiny-demo`` recipe.

OV-AVSS never trains CLIP: the real presets use OpenAI's frozen weights, which already know what a
dog or a violin looks like. The tiny preset's CLIP has no such pretraining (nothing can be downloaded
here), so for the demo checkpoint it is fitted once — before it is frozen again — on the generator's
objects: crops cut exactly as inference cuts them (masked square crops of the objects' masks, from
frames resized as inference resizes them) against the ViLD-prompt text embeddings of the class
names (softmax over the names, both towers trained). This is our substitute for CLIP's web-scale
pretraining, and the model card says so; the segmenter is trained separately by ``ovavss train``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.avsbench import AVSSDataset, ClipMeta
from ..data.classes import CLASS_NAMES
from ..models.ovavss.open_vocab import OpenVocabClassifier, crop_masked_regions, locate_mask_crops
from ..models.preprocess import resize_shortest_edge
from .fit_steps import fit_steps


@dataclass
class ClipFitConfig:
    steps: int = 400
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    templates_per_step: int = 2  # of the 14 ViLD prompts: all 14 every step would cost 7x the time
    seed: int = 0


def object_crops(
    open_vocab: OpenVocabClassifier, dataset: AVSSDataset, clips: Sequence[ClipMeta], short_side: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked square crops of every annotated sounding object: ((N, 3, R, R) 0..255, (N,) class ids 1..70)."""
    regions, labels = [], []
    size = open_vocab.config.image_size
    for clip in clips:
        frames = resize_shortest_edge(dataset.read_frames(clip), short_side)  # (T, h, w, 3) as inference
        height, width = frames.shape[1:3]
        for frame in dataset.label_frames(clip):
            ids = dataset.read_labels(clip, frame).ids
            ids = np.asarray(Image.fromarray(ids.astype(np.uint8)).resize((width, height), Image.Resampling.NEAREST))
            classes = [int(c) for c in np.unique(ids) if c != 0]
            if not classes:
                continue
            masks = torch.from_numpy(np.stack([ids == c for c in classes]))[:, None].float()  # (N, 1, h, w)
            crops = locate_mask_crops((masks * 2 - 1) * 20, (height, width), size, open_vocab.config.square_anchor)
            image = frames[frame].permute(2, 0, 1)[None].float()
            regions.append(
                crop_masked_regions(image, torch.zeros(len(classes), dtype=torch.long), crops.boxes, crops.mask_crops)
            )
            labels.append(torch.tensor(classes))
    return torch.cat(regions), torch.cat(labels)


def fit_clip(
    open_vocab: OpenVocabClassifier,
    regions: torch.Tensor,
    labels: torch.Tensor,
    config: ClipFitConfig = ClipFitConfig(),
) -> list[float]:
    """Train both CLIP towers so each crop scores its class name highest; returns the loss per step.

    The learning rate decays to 0 on a cosine over ``config.steps``: at a constant rate the held-out crop
    accuracy swings by 0.1-0.2 from one hundred steps to the next, so where a run stopped decided its naming.

    ``labels`` are 1-based indices into ``CLASS_NAMES`` (AVSS class ids). CLIP is frozen again (and in eval mode) after.
    """
    clip = open_vocab.clip
    generator = torch.Generator().manual_seed(config.seed)
    clip.requires_grad_(True)
    clip.train()
    optimizer = torch.optim.AdamW(clip.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)

    def batch_loss() -> torch.Tensor:
        batch = torch.randint(len(regions), (config.batch_size,), generator=generator)
        templates = torch.randperm(len(open_vocab.templates), generator=generator)[: config.templates_per_step]
        text = open_vocab.encode_names(CLASS_NAMES, template_ids=templates)  # (V, D), differentiable
        images = open_vocab.encode_crops(regions[batch])  # (B, D)
        logits = open_vocab.config.logit_scale * images @ text.T
        return F.cross_entropy(logits, labels[batch] - 1)

    try:
        return fit_steps(optimizer, config.steps, "fitting CLIP", batch_loss, schedule)
    finally:
        clip.requires_grad_(False)
        clip.eval()


@torch.no_grad()
def crop_accuracy(open_vocab: OpenVocabClassifier, regions: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of crops whose highest-scoring name is their class."""
    text = open_vocab.encode_names(CLASS_NAMES)
    predicted = torch.cat([(open_vocab.encode_crops(chunk) @ text.T).argmax(1) for chunk in regions.split(256)])
    return (predicted == labels - 1).float().mean().item()
