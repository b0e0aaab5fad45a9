"""``torchrun --nproc_per_node 2 ... ovavss train`` on the CPU (gloo): two DistributedDataParallel processes train
the tiny preset for a few steps and end with identical weights, which rank 0's checkpoint holds."""

from __future__ import annotations

import os
import subprocess
import sys

from train_kit import make_tree, step_losses

from ovavss_cli.engine.checkpointing import latest_checkpoint, load_training_state
from ovavss_cli.engine.run_log import LOG_FILE, read_log
from ovavss_cli.models.api import create_model
from ovavss_cli.models.ovavss.audio_cache import weights_fingerprint

STEPS = 3


def test_two_processes_train_identical_replicas(tmp_path):
    data, split = make_tree(tmp_path)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "ovavss_cli.cli", "train", "--data", str(data), "--split", str(split), "--preset", "tiny"]
    command += ["--device", "cpu", "--out", str(run_dir), "--batch-size", "1", "--max-steps", str(STEPS)]
    command += ["--seed", "7", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the test session's sandboxed caches and offline Hub included
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert finished.returncode == 0, finished.stderr[-3000:]

    records = read_log(run_dir / LOG_FILE)
    start, end = records[0], records[-1]
    assert start["event"] == "start" and start["world_size"] == 2
    assert sorted(step_losses(run_dir)) == list(range(1, STEPS + 1))  # rank 0 alone logs, once per step

    # Each process fingerprinted its own weights at the end; rank 0's checkpoint holds the same weights.
    assert end["event"] == "end" and len(end["weights_sha256"]) == 2
    assert end["weights_sha256"][0] == end["weights_sha256"][1]
    state = load_training_state(latest_checkpoint(run_dir))
    assert state.world_size == 2 and state.step == STEPS
    model = create_model("ovavss-tiny")
    untrained = weights_fingerprint(model)
    model.load_state_dict(state.model)
    assert weights_fingerprint(model) == end["weights_sha256"][0] != untrained
