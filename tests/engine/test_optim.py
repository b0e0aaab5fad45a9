"""Optimiser groups, full-model gradient clipping and the WarmupMultiStepLR schedule on a toy model."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from ovavss_cli.engine.optim import (
    OptimizerConfig,
    ScheduleConfig,
    build_lr_scheduler,
    build_optimizer,
    clip_full_model_gradients,
    parameter_groups,
    warmup_multistep_factor,
)


class SwinBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.relative_position_bias_table = nn.Parameter(torch.zeros(9, 2))
        self.qkv = nn.Linear(4, 12)


class ToyOvavss(nn.Module):
    """Submodules named like the real model's, each with the kind of parameter the recipe treats specially."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), FrozenBatchNorm2d(4), nn.BatchNorm2d(4))
        self.backbone.add_module("block", SwinBlock())
        self.pixel_decoder = nn.Module()
        self.pixel_decoder.input_proj = nn.Conv2d(4, 4, 1)
        self.pixel_decoder.norm = nn.GroupNorm(2, 4)
        self.pixel_decoder.level_embed = nn.Parameter(torch.zeros(3, 4))  # a plain Parameter: decayed
        self.transformer_decoder = nn.Module()
        self.transformer_decoder.query_feat = nn.Embedding(5, 4)
        self.transformer_decoder.decoder_norm = nn.LayerNorm(4)
        self.transformer_decoder.class_embed = nn.Linear(4, 2)
        self.transformer_decoder.mask_embed = self.transformer_decoder.class_embed  # shared: listed once
        self.audio_encoder = nn.Module()
        self.audio_encoder.audio_backbone = nn.Linear(4, 4)
        self.open_vocab = nn.Module()
        self.open_vocab.clip = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        for frozen in (self.audio_encoder, self.open_vocab.clip):
            frozen.requires_grad_(False)


def group_members(model: nn.Module, groups: list[dict]) -> dict[str, set[str]]:
    names = {id(param): name for name, param in model.named_parameters()}
    return {group["name"]: {names[id(param)] for param in group["params"]} for group in groups}


def test_parameter_groups_follow_the_recipe():
    model = ToyOvavss()
    groups = parameter_groups(model)
    settings = {group["name"]: (group["lr"], group["weight_decay"]) for group in groups}
    assert settings == {
        "backbone": (pytest.approx(1e-5), 0.05),
        "backbone_no_decay": (pytest.approx(1e-5), 0.0),
        "head": (1e-4, 0.05),
        "head_no_decay": (1e-4, 0.0),
    }
    assert group_members(model, groups) == {
        "backbone": {"backbone.0.weight", "backbone.block.qkv.weight", "backbone.block.qkv.bias"},
        "backbone_no_decay": {"backbone.2.weight", "backbone.2.bias", "backbone.block.relative_position_bias_table"},
        "head": {
            "pixel_decoder.input_proj.weight",
            "pixel_decoder.input_proj.bias",
            "pixel_decoder.level_embed",
            "transformer_decoder.class_embed.weight",
            "transformer_decoder.class_embed.bias",
        },
        "head_no_decay": {
            "pixel_decoder.norm.weight",
            "pixel_decoder.norm.bias",
            "transformer_decoder.query_feat.weight",
            "transformer_decoder.decoder_norm.weight",
            "transformer_decoder.decoder_norm.bias",
        },
    }
    listed = [param for group in groups for param in group["params"]]
    assert len(listed) == len({id(param) for param in listed})  # nothing twice
    frozen = {id(p) for p in [*model.audio_encoder.parameters(), *model.open_vocab.clip.parameters()]}
    assert not frozen & {id(param) for param in listed}  # VGGish and CLIP never enter


def test_build_optimizer_is_adamw_with_the_groups():
    model = ToyOvavss()
    optimizer = build_optimizer(model, OptimizerConfig(base_lr=2e-4))
    assert isinstance(optimizer, torch.optim.AdamW)
    by_name = {group["name"]: group for group in optimizer.param_groups}
    assert by_name["backbone"]["lr"] == pytest.approx(2e-5)
    assert by_name["head"]["lr"] == pytest.approx(2e-4)
    assert by_name["head"]["betas"] == (0.9, 0.999) and by_name["head"]["eps"] == 1e-8
    with pytest.raises(ValueError, match="no trainable"):
        build_optimizer(nn.Linear(2, 2).requires_grad_(False))


def test_gradients_are_clipped_over_the_whole_model_at_once():
    model = ToyOvavss()
    optimizer = build_optimizer(model)
    params = [param for group in optimizer.param_groups for param in group["params"]]
    generator = torch.Generator().manual_seed(0)
    for param in params:
        param.grad = torch.randn(param.shape, generator=generator)
    before = [param.grad.clone() for param in params]
    joint = torch.sqrt(sum((grad**2).sum() for grad in before))

    norm = clip_full_model_gradients(optimizer, 0.01)
    torch.testing.assert_close(norm, joint)
    after = torch.sqrt(sum((param.grad**2).sum() for param in params))
    torch.testing.assert_close(after, torch.tensor(0.01), rtol=1e-4, atol=0)
    # One scale for every group (per-group clipping would scale each group to 0.01 on its own).
    scales = torch.stack([(param.grad / grad).flatten()[0] for param, grad in zip(params, before, strict=True)])
    torch.testing.assert_close(scales, torch.full_like(scales, 0.01 / joint.item()))

    assert clip_full_model_gradients(optimizer, 0.0).item() == pytest.approx(0.01, rel=1e-4)  # measure only


def test_schedule_values_at_given_iterations():
    config = ScheduleConfig()
    expected = {0: 1.0, 9: 1.0, 10: 1.0, 72170: 1.0, 72171: 0.1, 88208: 0.1, 88209: 0.01, 96227: 0.01}
    for iteration, factor in expected.items():
        assert warmup_multistep_factor(iteration, config) == pytest.approx(factor), iteration
    ramp = ScheduleConfig(steps=(8,), warmup_iters=4, warmup_factor=0.2)
    assert [warmup_multistep_factor(i, ramp) for i in range(10)] == pytest.approx(
        [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1]
    )
    with pytest.raises(ValueError):
        ScheduleConfig(steps=(5, 3))


def test_scheduler_sets_group_lrs_and_resumes_from_its_state(tmp_path):
    config = ScheduleConfig(steps=(3, 5), warmup_iters=2, warmup_factor=0.5)
    optimizer = build_optimizer(ToyOvavss())
    scheduler = build_lr_scheduler(optimizer, config)
    seen = []
    for _ in range(4):
        seen.append({group["name"]: group["lr"] for group in optimizer.param_groups})
        optimizer.step()
        scheduler.step()
    assert [lrs["head"] for lrs in seen] == pytest.approx([5e-5, 7.5e-5, 1e-4, 1e-5])
    assert [lrs["backbone"] for lrs in seen] == pytest.approx([5e-6, 7.5e-6, 1e-5, 1e-6])

    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # plain numbers only: safe loading works
    resumed_optimizer = build_optimizer(ToyOvavss())
    resumed = build_lr_scheduler(resumed_optimizer, config)
    resumed_optimizer.load_state_dict(state["optimizer"])
    resumed.load_state_dict(state["scheduler"])
    for _ in range(3):
        assert [g["lr"] for g in resumed_optimizer.param_groups] == [g["lr"] for g in optimizer.param_groups]
        for opt, sched in ((optimizer, scheduler), (resumed_optimizer, resumed)):
            opt.step()
            sched.step()
    final = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert final["head"] == pytest.approx(1e-6)  # iteration 7: both steps passed
