"""The parts of ``ovavss train`` around the loop: run config and resume rules, checkpoints, the JSONL log, the data
order across epochs and resumes, and the class-agnostic IoU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from ovavss_cli.engine.checkpointing import (
    TrainingState,
    latest_checkpoint,
    list_checkpoints,
    load_training_state,
    save_training_state,
)
from ovavss_cli.engine.optim import build_lr_scheduler, build_optimizer
from ovavss_cli.engine.run_config import (
    TrainConfig,
    command_config,
    config_from_dict,
    config_json,
    new_config,
    parse_task_options,
    resumed_config,
)
from ovavss_cli.engine.run_log import JsonlLog, read_log
from ovavss_cli.engine.train import StepBatches
from ovavss_cli.errors import OvavssError
from ovavss_cli.metrics.foreground import ForegroundIoU


def test_presets_bring_their_recipe_and_the_schedule_scales_with_the_run():
    reference = new_config({"data": "d", "split": "s", "preset": "r50"})
    assert reference.preset == "ovavss-r50"
    assert reference.max_steps == 96228
    assert reference.schedule.steps == (72171, 88209)
    assert reference.recipe.optimizer.base_lr == 1e-4 and reference.recipe.optimizer.backbone_lr_multiplier == 0.1
    assert reference.recipe.augment.short_edges == (240, 360, 480)
    assert reference.recipe.criterion.sampling.num_points == 12544
    assert new_config({"data": "d", "split": "s", "preset": "swinb"}).recipe.augment.short_edges == (240, 360)

    short = new_config({"data": "d", "split": "s", "preset": "r50", "max_steps": 962})
    assert short.schedule.steps == (722, 882)  # round(72,171 x 962 / 96,228), round(88,209 x 962 / 96,228)
    tiny = new_config({"data": "d", "split": "s", "preset": "ovavss-tiny"})
    assert tiny.preset == "ovavss-tiny" and tiny.recipe.augment.short_edges == (64, 96, 128)
    assert tiny.run_dir.name == "ovavss-tiny" and tiny.run_dir.is_absolute()


def test_config_survives_its_json_form():
    config = new_config({"data": "d", "split": "s", "preset": "tiny", "task_options": {"k": [1, 2]}})
    assert config_from_dict(json.loads(config_json(config))) == config


def test_bad_options_are_one_line_errors():
    with pytest.raises(OvavssError, match="--batch-size: must be >= 1"):
        TrainConfig(data="d", batch_size=0)
    with pytest.raises(OvavssError, match="--preset: no training recipe"):
        TrainConfig(data="d", preset="huge")
    with pytest.raises(OvavssError, match="--model"):
        TrainConfig(data="d", model="other")
    with pytest.raises(OvavssError, match="--data is required"):
        new_config({"split": "s"})
    with pytest.raises(OvavssError, match="KEY=VALUE"):
        parse_task_options(["novalue"])
    assert parse_task_options(["a=3", "b=true", "c=text", 'd="q"']) == {"a": 3, "b": True, "c": "text", "d": "q"}
    assert parse_task_options([]) is None


def test_resume_keeps_the_config_and_lets_only_operational_settings_and_longer_runs_change():
    saved = new_config({"data": "d", "split": "s", "preset": "tiny", "max_steps": 100})
    resumed = resumed_config(saved, {"max_steps": 200, "device": "cpu", "workers": 2, "preset": "tiny", "seed": None})
    assert (resumed.max_steps, resumed.device, resumed.workers, resumed.seed) == (200, "cpu", 2, saved.seed)
    assert resumed.schedule.steps == (150, 183)
    with pytest.raises(OvavssError, match=r"--seed 5 differs from the run's config.json \(42\)"):
        resumed_config(saved, {"seed": 5})
    with pytest.raises(OvavssError, match="--batch-size"):
        resumed_config(saved, {"batch_size": 4})
    with pytest.raises(OvavssError, match="may only grow"):
        resumed_config(saved, {"max_steps": 50})


def test_resume_reads_the_saved_config_from_the_run_folder(tmp_path):
    with pytest.raises(OvavssError, match="no config.json"):
        command_config({"out": str(tmp_path)}, resume=True)
    config = new_config({"data": "d", "split": "s", "preset": "tiny", "out": str(tmp_path)})
    (tmp_path / "config.json").write_text(config_json(config))
    assert command_config({"out": str(tmp_path), "max_steps": 5000}, resume=True).max_steps == 5000


def test_train_options_that_would_do_nothing_are_refused(cli, tmp_path):
    run = ("train", "--data", tmp_path / "d", "--split", tmp_path / "s.json", "--preset", "tiny", "-o", tmp_path / "r")
    cases = {
        ("--val-clips", "3"): "--val-clips: only with --val-every N (this run never validates)",
        ("--init-mode", "full"): "--init-mode: only with a Mask2Former --init (.pkl)",
        ("--init", tmp_path / "ours.safetensors", "--init-mode", "full"): "--init-mode: only with a Mask2Former --init",
    }
    for extra, message in cases.items():
        result = cli(*run, *extra)  # refused from the command line alone: nothing is read or written
        assert result.exit_code == 1 and result.stderr.strip().startswith(f"error: {message}"), result.output
    assert list(tmp_path.iterdir()) == []
    saved = new_config({"data": "d", "split": "s", "preset": "tiny", "out": str(tmp_path / "r")})
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text(config_json(saved))
    with pytest.raises(OvavssError, match="--val-clips: only with --val-every"):  # resumed runs too
        command_config({"out": str(tmp_path / "r"), "val_clips": 2}, resume=True)
    assert command_config({"out": str(tmp_path / "r"), "val_clips": 2, "val_every": 5}, resume=True).val_clips == 2


def _state(model: torch.nn.Module, step: int) -> TrainingState:
    optimizer = build_optimizer(model)
    scheduler = build_lr_scheduler(optimizer)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()  # the optimiser now has per-parameter state
    return TrainingState(
        step=step,
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        scaler=None,
        config={"format": "x"},
        world_size=1,
        num_clips=3,
        epoch=step // 3,
        position=step % 3,
    )


def test_checkpoints_load_with_weights_only_and_only_the_newest_are_kept(tmp_path):
    model = torch.nn.Linear(3, 2)
    for step in (2, 4, 6, 8):
        save_training_state(tmp_path, _state(model, step), keep=2)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [6, 8]
    (tmp_path / "checkpoints" / ".step-0000010.pt.abc.tmp").write_bytes(b"half written")  # ignored
    loaded = load_training_state(latest_checkpoint(tmp_path))
    assert loaded.step == 8 and (loaded.epoch, loaded.position) == (2, 2)
    assert torch.equal(loaded.model["weight"], model.weight.detach())
    assert loaded.optimizer["state"][0]["exp_avg"].shape == (2, 3)

    bad = tmp_path / "checkpoints" / "step-0000009.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(OvavssError, match="step-0000009.pt: not a readable training checkpoint"):
        load_training_state(bad)


def test_a_failed_checkpoint_write_leaves_the_previous_one(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 2)
    first = save_training_state(tmp_path, _state(model, 2), keep=3)
    before = first.read_bytes()

    def broken_save(obj, path):
        path.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_training_state(tmp_path, _state(model, 4), keep=3)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [2] and first.read_bytes() == before


def test_the_log_drops_records_a_resume_redoes_and_a_line_cut_short(tmp_path):
    log = JsonlLog(tmp_path / "log.jsonl")
    for step in range(1, 6):
        log.append({"step": step, "loss": float(step)})
    with log.path.open("a") as handle:
        handle.write('{"step": 6, "lo')  # a crash while writing
    assert [r["step"] for r in read_log(log.path)] == [1, 2, 3, 4, 5]
    log.keep_until(3)
    assert [r["step"] for r in read_log(log.path)] == [1, 2, 3]
    assert log.path.read_text().endswith("}\n")


def _batches(sampler: DistributedSampler, batch_size: int, start: int, stop: int) -> list[list[tuple[int, int]]]:
    return list(StepBatches(sampler, batch_size, start, stop))


def test_data_order_is_a_function_of_the_step():
    dataset = list(range(7))
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=3)
    full = _batches(sampler, 3, 0, 10)  # 3 batches per epoch (the last one short)
    assert [len(batch) for batch in full[:3]] == [3, 3, 1]
    assert [[step for step, _ in batch] for batch in full] == [[s] * len(full[s]) for s in range(10)]
    epochs = [sorted(i for batch in full[e * 3 : e * 3 + 3] for _, i in batch) for e in range(3)]
    assert epochs == [dataset] * 3  # every clip once per epoch
    assert full[0:3] != [[(s + 3, i) for s, i in batch] for batch in full[3:6]]  # reshuffled per epoch
    assert _batches(sampler, 3, 4, 10) == full[4:]  # resuming mid-epoch continues the same order

    halves = [DistributedSampler(dataset, num_replicas=2, rank=r, shuffle=True, seed=3) for r in (0, 1)]
    per_rank = [_batches(sampler, 2, 0, 2) for sampler in halves]
    clips = sorted(i for batches in per_rank for batch in batches for _, i in batch)
    assert set(clips) == set(dataset)  # the two processes share the epoch between them


def test_foreground_iou_by_hand():
    metric = ForegroundIoU()
    pred = np.zeros((3, 4, 4), bool)
    gt = np.zeros((3, 4, 4), bool)
    pred[0, :2], gt[0, 1:3] = True, True  # 4 common of 12 pixels: 1/3
    gt[1, 0, 0] = True  # missed: 0
    # frame 2: nothing to find, nothing found: 1 for the per-frame mean, nothing for the pooled IoU
    metric.update(pred, gt)
    assert metric.iou == pytest.approx(4 / 13)
    assert metric.mean_frame_iou == pytest.approx((1 / 3 + 0 + 1) / 3)
    with pytest.raises(ValueError):
        metric.update(pred[0], gt)
