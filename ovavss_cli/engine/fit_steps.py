"""The small optimisation loop both recipe stand-ins for pretraining share (CLIP crops, audio tags)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..console import make_progress


def fit_steps(
    optimizer: torch.optim.Optimizer,
    steps: int,
    description: str,
    batch_loss: Callable[[], torch.Tensor],
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> list[float]:
    """``steps`` optimiser steps on ``batch_loss()`` (a fresh batch's loss each call), with rich progress;
    ``scheduler`` (if any) steps after each. Returns the loss per step."""
    losses = []
    with make_progress() as progress:
        task = progress.add_task(description, total=steps)
        for _ in range(steps):
            loss = batch_loss()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.item())
            progress.update(task, advance=1, description=f"{description} (loss {loss.item():.3f})")
    return losses
