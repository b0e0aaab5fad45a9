"""What the training loop needs from a model family (OV-AVSS, AVSC): one small protocol.

``engine/train.py`` owns everything generic — devices, DistributedDataParallel, seeding, the optimiser
and schedule, checkpoints and resume, progress and logs, AMP, non-finite-loss handling — and asks a
``TrainTask`` for the model-specific parts. Tasks must draw every random number from the generators
they are given (per clip, derived from (run seed, step, clip id)), so that batching, resuming and
the number of processes never change a clip's loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn


@dataclass
class LossOutput:
    total: torch.Tensor  # scalar, what backward() is called on
    terms: dict[str, float] = field(default_factory=dict)  # named parts for the log (detached floats)


class TrainTask(Protocol):
    name: str  # "ovavss" | "avsc": recorded in the run config and the exported checkpoint

    def build_model(self) -> nn.Module:
        """The model with its initial weights (``--init`` already applied)."""

    def train_dataset(self) -> torch.utils.data.Dataset:
        """Training clips; ``dataset[i]`` must be deterministic given ``i`` (augmentation happens in ``loss``
        or ``collate`` with the per-clip generators), so that resumed runs replay exactly."""

    def collate(self, items: Sequence[Any], generators: Sequence[torch.Generator]) -> Any:
        """A batch from dataset items; ``generators[i]`` drives item i's augmentation."""

    def loss(self, model: nn.Module, batch: Any, generators: Sequence[torch.Generator]) -> LossOutput:
        """Forward and loss for one batch; ``generators[i]`` drives item i's loss randomness (points)."""

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Metrics on the validation clips (may be empty when there are none)."""

    def export(self, model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(state dict, checkpoint config) for a ``kind="model"`` checkpoint that ``load_model`` reads."""
