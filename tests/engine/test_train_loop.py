"""``ovavss train`` end to end on a generated tree (tiny preset, CPU): runs stopped by a crash or by Ctrl-C and
resumed reproduce the uninterrupted run's losses and weights bit for bit; a non-finite loss stops the run and keeps
the last good checkpoint; resumed runs keep their configuration; the exported model loads."""

from __future__ import annotations

import json
import math
import signal

import pytest
import torch
from safetensors.torch import load_file
from train_kit import make_tree, step_losses, tiny_config

from ovavss_cli.engine.checkpointing import list_checkpoints, load_training_state
from ovavss_cli.engine.ovavss_task import OVAVSSTask
from ovavss_cli.engine.run_config import config_from_dict
from ovavss_cli.engine.run_log import LOG_FILE, read_log
from ovavss_cli.engine.train import RUN_FILES, run_training
from ovavss_cli.errors import OvavssError
from ovavss_cli.models.api import create_model, load_model

STEPS = 6


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("loop"))  # 6 training clips: v1s, v1m and v2 ones


@pytest.fixture(scope="module")
def uninterrupted(tree, tmp_path_factory):
    """The reference: 6 steps in one go (batch 2 over 6 clips: two epochs)."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    result = run_training(tiny_config(*tree, run_dir))
    assert result.finished and result.step == STEPS
    return run_dir


def interfere_with_loss(monkeypatch, call: int, action) -> None:
    """Make ``action(output)`` happen at the ``call``-th loss computation (1-based) of the task."""
    original = OVAVSSTask.loss
    calls = {"n": 0}

    def loss(self, model, batch, generators):
        output = original(self, model, batch, generators)
        calls["n"] += 1
        if calls["n"] == call:
            action(output)
        return output

    monkeypatch.setattr(OVAVSSTask, "loss", loss)


def assert_same_run(run_dir, reference) -> None:
    losses, expected = step_losses(run_dir), step_losses(reference)
    assert sorted(expected) == list(range(1, STEPS + 1))
    assert losses == expected  # every step's loss, bit for bit
    assert len(set(expected.values())) == STEPS  # the run really moves
    final, reference_final = load_file(run_dir / "model.safetensors"), load_file(reference / "model.safetensors")
    assert final.keys() == reference_final.keys()
    assert all(torch.equal(final[key], reference_final[key]) for key in final)


def test_a_crashed_run_resumes_from_its_last_checkpoint_and_replays_exactly(tree, uninterrupted, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    config = tiny_config(*tree, run_dir)

    def crash(output):
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch:
        interfere_with_loss(patch, 5, crash)
        with pytest.raises(RuntimeError, match="power cut"):
            run_training(config)
    assert [step for step, _ in list_checkpoints(run_dir)] == [2, 4]
    assert max(step_losses(run_dir)) == 4

    result = run_training(config, resume=True)
    assert result.finished and result.step == STEPS
    assert_same_run(run_dir, uninterrupted)
    events = [record["event"] for record in read_log(run_dir / LOG_FILE) if "event" in record]
    assert events == ["start", "resume", "end"]


def test_ctrl_c_stops_after_the_step_with_a_checkpoint_and_resume_replays_exactly(
    tree, uninterrupted, tmp_path, monkeypatch, cli
):
    run_dir = tmp_path / "run"
    data, split = tree
    args = ["train", "--data", data, "--split", split, "--preset", "tiny", "--device", "cpu", "--out", run_dir]
    args += ["--batch-size", "2", "--max-steps", STEPS, "--checkpoint-every", "2", "--seed", "7", "--threads", "1"]
    handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN, not Python's default, under nohup or `&`
    with monkeypatch.context() as patch:
        interfere_with_loss(patch, 3, lambda output: signal.raise_signal(signal.SIGINT))
        stopped = cli(*args)
    assert stopped.exit_code == 130 and "stopped at step 3" in stopped.output
    assert [step for step, _ in list_checkpoints(run_dir)] == [2, 3]
    assert signal.getsignal(signal.SIGINT) is handler_before  # our handler is gone again

    resumed = cli("train", "--resume", "--out", run_dir)
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.strip().splitlines()[-1] == str(run_dir / "model.safetensors")
    assert_same_run(run_dir, uninterrupted)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tree, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"

    def poison(output):
        output.total = output.total * float("nan")

    interfere_with_loss(monkeypatch, 3, poison)
    expected = r"step 3: the loss is nan \(loss_ce .*last good checkpoint: .*step-0000002\.pt"
    with pytest.raises(OvavssError, match=expected):
        run_training(tiny_config(*tree, run_dir))
    assert [step for step, _ in list_checkpoints(run_dir)] == [2]
    assert json.loads((run_dir / "model.json").read_text())["training"]["step"] == 2
    assert max(step_losses(run_dir)) == 2


def test_resumed_runs_keep_their_config_and_finished_runs_say_so(tree, uninterrupted, cli):
    result = cli("train", "--resume", "--out", uninterrupted, "--seed", "5")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: --seed 5 differs from the run's config.json (7); a resumed run keeps its configuration "
        "(only --max-steps may grow)"
    )
    again = cli("train", "--resume", "--out", uninterrupted)
    assert again.exit_code == 1 and "already done its 6 steps" in again.output
    data, split = tree
    fresh = cli("train", "--data", data, "--split", split, "--preset", "tiny", "--out", uninterrupted)
    assert fresh.exit_code == 1 and "already holds a run" in fresh.output


def test_the_run_folder_holds_config_checkpoint_and_a_loadable_model(uninterrupted):
    config = json.loads((uninterrupted / "config.json").read_text())
    assert config["preset"] == "ovavss-tiny" and config["recipe"]["optimizer"]["base_lr"] == 1e-3
    state = load_training_state(list_checkpoints(uninterrupted)[-1][1])
    assert config_from_dict(state.config) == config_from_dict(config)
    assert (state.step, state.num_clips, state.epoch, state.position) == (STEPS, 6, 2, 0)
    model = load_model(str(uninterrupted / "model.safetensors"))
    assert all(torch.equal(value, state.model[key]) for key, value in model.state_dict().items())
    records = [record for record in read_log(uninterrupted / LOG_FILE) if "loss" in record]
    assert all({"step", "loss", "lr", "grad_norm", "loss_ce", "loss_mask", "loss_dice"} <= set(r) for r in records)
    assert [r["lr"] for r in records] == pytest.approx([1e-3] * 4 + [1e-4, 1e-5])  # x0.1 after steps 4 and 5


def test_data_loader_workers_give_the_same_run(tree, uninterrupted, tmp_path):
    """Decoding and augmentation in 2 worker processes: the clips' generators make the batches identical."""
    run_dir = tmp_path / "run"
    assert run_training(tiny_config(*tree, run_dir, workers=2)).finished
    assert_same_run(run_dir, uninterrupted)


def test_a_failed_start_leaves_no_run_behind(tree, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(OvavssError, match="--vggish FILE"):
        run_training(tiny_config(*tree, run_dir, preset="r50"))
    assert not any((run_dir / name).exists() for name in RUN_FILES)


def test_frozen_clip_stays_out_of_the_optimiser_and_the_tiny_audio_encoder_trains(uninterrupted):
    # (The frozen-VGGish case of r50 / swinb is the same rule: tests/engine/test_optim.py checks that every
    # parameter with requires_grad=False is left out of the optimiser.)
    state = load_training_state(list_checkpoints(uninterrupted)[-1][1])
    torch.manual_seed(7)  # the run's seed: the weights it started from
    initial = create_model("ovavss-tiny")
    trainable = [name for name, param in initial.named_parameters() if param.requires_grad]
    assert not any(name.startswith("open_vocab.") for name in trainable)
    assert any(name.startswith("audio_encoder.") for name in trainable)  # no pretrained VGGish: it learns
    optimised = sum(len(group["params"]) for group in state.optimizer["param_groups"])
    assert optimised == len(trainable)
    for key, value in initial.state_dict().items():
        if key.startswith("open_vocab."):
            assert torch.equal(state.model[key], value), key
    for key in ("transformer_decoder.query_feat.weight", "audio_encoder.embeddings.4.weight"):
        assert not torch.equal(state.model[key], initial.state_dict()[key]), key


def test_amp_trains_in_bf16_on_the_cpu(tree, uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    assert run_training(tiny_config(*tree, run_dir, amp=True, max_steps=2)).finished
    mixed, full = step_losses(run_dir), step_losses(uninterrupted)
    assert all(math.isfinite(loss) for loss in mixed.values()) and len(mixed) == 2
    assert mixed[1] != full[1] and mixed[1] == pytest.approx(full[1], rel=0.05)  # same step, lower precision


def test_amp_fp16_with_grad_scaler_trains_on_the_cpu(tree, uninterrupted, tmp_path, monkeypatch):
    """The fp16 + GradScaler path (GPUs without bf16), forced on the CPU, whose autocast has fp16 too.

    GradScaler starts at a scale of 2^16, which overflows this tiny model's fp16 gradients (its loss is ~120)
    for ~9 steps, each skipped by design; the test starts at 2^8 so that its one step is a real update.
    """
    import functools

    import ovavss_cli.engine.train as train_module

    monkeypatch.setattr(train_module, "_amp_dtype", lambda enabled, device: torch.float16 if enabled else None)
    monkeypatch.setattr(torch.amp, "GradScaler", functools.partial(torch.amp.GradScaler, init_scale=2.0**8))
    run_dir = tmp_path / "run"
    assert run_training(tiny_config(*tree, run_dir, amp=True, max_steps=1, checkpoint_every=1)).finished
    mixed, full = step_losses(run_dir), step_losses(uninterrupted)
    assert all(math.isfinite(loss) for loss in mixed.values()) and len(mixed) == 1
    assert mixed[1] != full[1] and mixed[1] == pytest.approx(full[1], rel=0.05)
    scaler = load_training_state(list_checkpoints(run_dir)[-1][1]).scaler
    assert scaler is not None and 0 < scaler["scale"] <= 2.0**8  # the scaler ran (and halves on an overflow)
    # A finite unscaled gradient norm is a step the scaler let through (it skips the overflowed ones).
    norms = [record["grad_norm"] for record in read_log(run_dir / LOG_FILE) if "grad_norm" in record]
    assert len(norms) == 1 and all(math.isfinite(norm) for norm in norms)
