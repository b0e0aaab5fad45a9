"""Optimiser, gradient clipping and learning-rate schedule of the OV-AVSS recipe (ovavss-spec.md §7).

* AdamW, base lr 1e-4, weight decay 0.05 (torch's default betas and eps, as detectron2 passes none).
* lr x 0.1 for every parameter owned by a module whose qualified name contains "backbone".
* No weight decay on normalisation layers, embeddings and Swin's position tables; other plain Parameters
  (e.g. the pixel decoder's ``level_embed``) keep it, as in the reference.
* Frozen parameters (``requires_grad`` False: VGGish, CLIP) never enter the optimiser.
* Gradients are clipped by their L2 norm over the whole model at once (0.01), not per parameter group.
* WarmupMultiStepLR: x 0.1 at each step (72,171 and 88,209 of 96,228), after 10 warm-up iterations whose
  factor 1.0 makes them a no-op; expressed as a ``LambdaLR`` so its state_dict resumes a run.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torchvision.ops import FrozenBatchNorm2d

# Layers whose affine parameters get no weight decay (detectron2's list, plus torchvision's frozen BN).
NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm1d/2d/3d, SyncBatchNorm, InstanceNorm1d/2d/3d
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    FrozenBatchNorm2d,
)
# Swin's position tables are plain Parameters named like this; decaying them hurts (Swin's own recipe).
NO_DECAY_PARAM_NAMES: tuple[str, ...] = ("relative_position_bias_table", "absolute_pos_embed")


@dataclass(frozen=True)
class OptimizerConfig:
    """``SOLVER.*`` of configs/avsbench/Base-AVSBench.yaml."""

    base_lr: float = 1e-4
    weight_decay: float = 0.05
    backbone_lr_multiplier: float = 0.1
    weight_decay_norm: float = 0.0
    weight_decay_embed: float = 0.0
    grad_clip_norm: float = 0.01  # full-model L2 norm; 0 disables clipping


@dataclass(frozen=True)
class ScheduleConfig:
    """detectron2's WarmupMultiStepLR as the reference configures it."""

    max_iter: int = 96228
    steps: tuple[int, ...] = (72171, 88209)  # 3/4 and 11/12 of max_iter
    gamma: float = 0.1
    warmup_iters: int = 10
    warmup_factor: float = 1.0  # lr starts at factor x base and reaches base linearly; 1.0 means no warm-up

    def __post_init__(self) -> None:
        if list(self.steps) != sorted(self.steps):
            raise ValueError(f"steps must be increasing, got {self.steps}")


def _trainable_parameters(model: nn.Module) -> Iterator[tuple[str, str, nn.Module, nn.Parameter]]:
    """(module name, parameter name, module, parameter) for every trainable parameter, each shared one once."""
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            yield module_name, param_name, module, param


def parameter_groups(model: nn.Module, config: OptimizerConfig | None = None) -> list[dict]:
    """AdamW parameter groups "backbone", "backbone_no_decay", "head", "head_no_decay" (empty ones dropped).

    The reference builds one group per parameter; grouping equal settings gives the same updates with fewer
    groups. The order is deterministic for a given model, so optimizer state_dicts resume correctly.
    """
    config = config or OptimizerConfig()
    groups: dict[tuple[bool, float], dict] = {}
    for module_name, param_name, module, param in _trainable_parameters(model):
        in_backbone = "backbone" in module_name
        lr = config.base_lr * (config.backbone_lr_multiplier if in_backbone else 1.0)
        weight_decay = config.weight_decay
        if any(name in param_name for name in NO_DECAY_PARAM_NAMES):
            weight_decay = 0.0
        if isinstance(module, NORM_LAYERS):
            weight_decay = config.weight_decay_norm
        if isinstance(module, nn.Embedding):
            weight_decay = config.weight_decay_embed
        name = f"{'backbone' if in_backbone else 'head'}{'' if weight_decay else '_no_decay'}"
        group = groups.setdefault((in_backbone, weight_decay), {"name": name, "lr": lr, "weight_decay": weight_decay})
        group.setdefault("params", []).append(param)
    return list(groups.values())


def build_optimizer(model: nn.Module, config: OptimizerConfig | None = None) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model`` with the recipe's groups."""
    config = config or OptimizerConfig()
    groups = parameter_groups(model, config)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(groups, lr=config.base_lr, weight_decay=config.weight_decay)


def clip_full_model_gradients(optimizer: torch.optim.Optimizer, max_norm: float) -> Tensor:
    """Clip the gradients of every parameter in ``optimizer`` by their joint L2 norm; returns that norm.

    Call between ``backward()`` and ``optimizer.step()``. ``max_norm`` <= 0 only measures the norm.
    """
    params = [param for group in optimizer.param_groups for param in group["params"]]
    return torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))


def warmup_multistep_factor(iteration: int, config: ScheduleConfig) -> float:
    """The lr multiplier at a (0-based) iteration, as detectron2's WarmupMultiStepLR with linear warm-up."""
    # bisect_right: the decay applies from the step iteration itself, as detectron2's MultiStepParamScheduler.
    factor = config.gamma ** bisect.bisect_right(config.steps, iteration)
    if iteration < config.warmup_iters:
        progress = iteration / config.warmup_iters
        factor *= config.warmup_factor * (1.0 - progress) + progress
    return factor


def build_lr_scheduler(optimizer: torch.optim.Optimizer, config: ScheduleConfig | None = None) -> LambdaLR:
    """Per-iteration scheduler: call ``step()`` once after every ``optimizer.step()``.

    Its state_dict holds only numbers (a ``partial`` stores no config in it), so it loads with
    ``torch.load(weights_only=True)``; rebuild it with the same config before ``load_state_dict``.
    """
    return LambdaLR(optimizer, functools.partial(warmup_multistep_factor, config=config or ScheduleConfig()))
