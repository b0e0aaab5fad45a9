"""The engine pieces together: a few training steps on a toy model, interrupted and resumed, reproduce the
uninterrupted run's losses exactly on CPU (points seeded per (run, step, clip); optimiser and schedule state
saved and loaded with weights_only)."""

from __future__ import annotations

import io

import torch
from engine_toys import block_masks
from torch import nn

from ovavss_cli.engine import (
    ClipTarget,
    CriterionConfig,
    ImportanceSamplingConfig,
    ScheduleConfig,
    build_criterion,
    build_lr_scheduler,
    build_optimizer,
    clip_full_model_gradients,
    sample_generators,
)

QUERIES, T, SIZE, BATCH, RUN_SEED = 4, 2, 16, 2, 42


class ToySegmenter(nn.Module):
    """Images (B, T, 3, S, S) -> Mask2Former-style outputs with one auxiliary output."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.mask_head = nn.Conv2d(8, QUERIES, 1)
        self.class_head = nn.Linear(8, QUERIES * 2)

    def forward(self, images: torch.Tensor) -> dict:
        batch = images.shape[0]
        features = self.backbone(images.flatten(0, 1)).relu()  # (B*T, 8, S/2, S/2)
        masks = self.mask_head(features).unflatten(0, (batch, T)).transpose(1, 2)  # (B, Q, T, S/2, S/2)
        logits = self.class_head(features.mean((2, 3)).unflatten(0, (batch, T)).mean(1)).view(batch, QUERIES, 2)
        return {
            "pred_logits": logits,
            "pred_masks": masks,
            "aux_outputs": [{"pred_logits": logits * 0.5, "pred_masks": masks * 0.5}],
        }


def batch_for_step(step: int) -> tuple[torch.Tensor, list[ClipTarget]]:
    generator = torch.Generator().manual_seed(1000 + step)
    images = torch.randn(BATCH, T, 3, SIZE, SIZE, generator=generator)
    targets = [
        ClipTarget(torch.zeros(2, dtype=torch.int64), block_masks(2, T, SIZE, generator)),
        ClipTarget(torch.zeros(1, dtype=torch.int64), block_masks(1, T, SIZE, generator), torch.tensor([True, False])),
    ]
    return images, targets


def build(seed: int):
    torch.manual_seed(seed)
    model = ToySegmenter()
    optimizer = build_optimizer(model)
    scheduler = build_lr_scheduler(optimizer, ScheduleConfig(steps=(2,), warmup_iters=1, warmup_factor=0.5))
    sampling = ImportanceSamplingConfig(num_points=32)
    criterion = build_criterion(CriterionConfig(matcher_points=64, sampling=sampling))
    return model, optimizer, scheduler, criterion


def train(model, optimizer, scheduler, criterion, steps: range) -> list[float]:
    losses = []
    for step in steps:
        images, targets = batch_for_step(step)
        clip_ids = [step * BATCH + i for i in range(BATCH)]  # identifies each clip, not its batch slot
        loss = criterion(model(images), targets, sample_generators(RUN_SEED, step, clip_ids))
        optimizer.zero_grad()
        loss.total.backward()
        clip_full_model_gradients(optimizer, 0.01)
        optimizer.step()
        scheduler.step()
        losses.append(loss.total.item())
    return losses


def test_a_resumed_run_reproduces_the_uninterrupted_losses():
    uninterrupted = train(*build(0), range(4))

    model, optimizer, scheduler, criterion = build(0)
    first_half = train(model, optimizer, scheduler, criterion, range(2))
    buffer = io.BytesIO()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    torch.save(state, buffer)
    del model, optimizer, scheduler

    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    model, optimizer, scheduler, criterion = build(123)  # a fresh process would start from other weights
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    second_half = train(model, optimizer, scheduler, criterion, range(2, 4))

    assert first_half + second_half == uninterrupted
    assert len(set(uninterrupted)) == 4  # the run really moves
