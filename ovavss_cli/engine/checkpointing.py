"""Training checkpoints: all a run needs to continue exactly where it stopped, written atomically.

``RUN_DIR/checkpoints/step-0001234.pt`` holds the model (frozen parts included), optimiser, scheduler and AMP
grad-scaler states, the step, where the data sampler stands (epoch and batches done in it, plus the number of
training clips and processes they assume) and the run config. It contains only tensors and plain containers,
so it loads with ``torch.load(weights_only=True)``.

There are no random-generator states to save: every random draw of a step (frame subsets, augmentation, loss
points, dropout) comes from generators seeded by (run seed, step, clip or process), so the seed and the step
recreate them exactly, whatever the batch composition or the number of processes.

A file is written to a temporary name and renamed, so an interrupted write never replaces a good checkpoint;
only the newest ``keep`` are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path
from ..errors import OvavssError

CHECKPOINT_DIR = "checkpoints"
STATE_FORMAT = "ovavss-train-state/1"
_NAME = re.compile(r"^step-(\d+)\.pt$")


@dataclass
class TrainingState:
    step: int  # optimiser steps done
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any] | None  # fp16 AMP grad scaler; None when not used
    config: dict[str, Any]  # run_config.config_to_dict
    world_size: int  # processes that trained (the data order depends on it)
    num_clips: int  # training clips (the data order depends on it)
    epoch: int  # sampler epoch the next step reads from
    position: int  # batches of that epoch already done


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:07d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the run's checkpoints, oldest first (temporary files of interrupted writes are ignored)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(match.group(1)), path) for path in folder.iterdir() if (match := _NAME.match(path.name))]
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1][1] if checkpoints else None


def save_training_state(run_dir: Path, state: TrainingState, keep: int) -> Path:
    """Write ``state`` as the checkpoint of its step, then delete all but the newest ``keep`` checkpoints."""
    path = checkpoint_path(run_dir, state.step)
    with atomic_path(path) as tmp:
        # Not dataclasses.asdict: it would deep-copy every tensor.
        torch.save({"format": STATE_FORMAT, **{f.name: getattr(state, f.name) for f in fields(state)}}, tmp)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_training_state(path: Path) -> TrainingState:
    """Read a checkpoint onto the CPU without unpickling code; OvavssError naming the file when it is unusable."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise OvavssError("checkpoint not found", path=path) from None
    except Exception as error:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OvavssError(f"not a readable training checkpoint ({first_line})", path=path) from None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise OvavssError(f"not an ovavss training checkpoint (expected format {STATE_FORMAT})", path=path)
    data.pop("format")
    try:
        return TrainingState(**data)
    except TypeError as error:
        raise OvavssError(f"incomplete training checkpoint ({error})", path=path) from None
