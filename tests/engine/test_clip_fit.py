"""The tiny-demo recipe's CLIP fit: crops cut as inference cuts them, a loss that falls under a cosine decay, and
CLIP frozen again after."""

from __future__ import annotations

import numpy as np
import torch

from ovavss_cli.data.avsbench import load_avss
from ovavss_cli.data.synthetic import generate_avss
from ovavss_cli.engine.clip_fit import ClipFitConfig, crop_accuracy, fit_clip, object_crops
from ovavss_cli.engine.fit_steps import fit_steps
from ovavss_cli.models.api import create_model


def test_fit_steps_steps_the_scheduler_once_per_step():
    weight = torch.nn.Parameter(torch.tensor([3.0]))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=20)
    losses = fit_steps(optimizer, 20, "toy", lambda: (weight**2).sum(), schedule)
    assert len(losses) == 20 and losses[-1] < losses[0]
    assert optimizer.param_groups[0]["lr"] == 0.0  # the cosine reached its end exactly at the last step


def test_fit_clip_learns_the_crops_and_freezes_clip_again(tmp_path):
    torch.manual_seed(0)
    model = create_model("ovavss-tiny")
    world = load_avss(generate_avss(tmp_path / "w", 6, seed=5, world="graded", size=(48, 64)).root)
    regions, labels = object_crops(model.open_vocab, world, world.clips, model.config.min_size_test)
    size = model.open_vocab.config.image_size
    assert regions.shape[1:] == (3, size, size) and len(regions) == len(labels) and labels.min() >= 1
    before = crop_accuracy(model.open_vocab, regions, labels)
    losses = fit_clip(model.open_vocab, regions, labels, ClipFitConfig(steps=40, batch_size=16, seed=1))
    assert len(losses) == 40 and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert crop_accuracy(model.open_vocab, regions, labels) > max(before, 0.5)
    clip = model.open_vocab.clip
    assert not clip.training and not any(parameter.requires_grad for parameter in clip.parameters())
