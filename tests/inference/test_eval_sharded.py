"""``eval --weights`` and ``probe-audio`` on torchrun: 2 gloo processes give the JSON numbers of 1 process.

The one-process reference runs in this process with one CPU thread, as each torchrun process gets
(``OMP_NUM_THREADS=1``), so both sides do the same arithmetic; the clips are cut so that each rank has work
(AVSBench-OV: 3 test clips; S4: 3 test clips in official batches of 2, one batch per rank).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ovavss_cli.data.synthetic import ClipSpec, generate_avss, generate_s4
from ovavss_cli.inference.sharding import contiguous_shards
from ovavss_cli.models.api import save_model
from ovavss_cli.models.avsc.config import preset_config
from ovavss_cli.models.avsc.model import AVSC

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the test session's sandboxed caches and offline Hub included
TEST_CLIPS = (
    ClipSpec("tst_v1s_a", "v1s", "test", ("dog",)),
    ClipSpec("tst_v1m_a", "v1m", "test", ("violin", "car")),
    ClipSpec("tst_v1s_b", "v1s", "test", ("car",)),
    ClipSpec("trn_v1s_a", "v1s", "train", ("dog",)),
)


@contextlib.contextmanager
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def torchrun(*args) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "ovavss_cli.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600, check=False)


def files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def without(payload: dict, *keys: str) -> dict:
    return {key: value for key, value in payload.items() if key not in keys}


def test_contiguous_shards_are_consecutive_balanced_runs():
    assert contiguous_shards([5, 5, 5, 5], 2) == [range(0, 2), range(2, 4)]
    assert contiguous_shards([10, 1, 1, 1, 1], 2) == [range(0, 1), range(1, 5)]  # 10 | 4 beats 11 | 3
    assert contiguous_shards([1, 2], 4) == [range(0, 1), range(1, 1), range(1, 2), range(2, 2)]
    runs = contiguous_shards([1] * 10, 3)
    assert [index for run in runs for index in run] == list(range(10)) and [len(run) for run in runs] == [3, 4, 3]


def test_two_processes_score_avsbench_ov_exactly_as_one(cli, tmp_path):
    root = generate_avss(tmp_path / "avss", TEST_CLIPS, seed=5).root
    common = ["--data", root, "--weights", "tiny-demo", "--device", "cpu", "--threshold", "0.0"]
    with one_thread():
        single = cli("eval", *common, "--pred", tmp_path / "one", "--json", tmp_path / "one.json")
    assert single.exit_code == 0, single.output
    double = torchrun("eval", *common, "--pred", tmp_path / "two", "--json", tmp_path / "two.json")
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("one", "two"))
    assert one["clips"] == 3 and one["frames"] == 15
    assert without(one, "predictions") == without(two, "predictions")  # every number, per class too
    assert files(tmp_path / "one") == files(tmp_path / "two") and len(files(tmp_path / "one")) == 15
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no temporary folder left
    assert [line.startswith("mIoU ") for line in double.stdout.splitlines()].count(True) == 1  # rank 0 prints


@pytest.fixture(scope="module")
def s4_and_avsc(tmp_path_factory):
    root = tmp_path_factory.mktemp("s4")
    generate_s4(root, 9, seed=4)  # test clips: the 3rd, 6th and 9th
    torch.manual_seed(0)
    weights = root / "avsc.safetensors"
    save_model(AVSC(preset_config("avsc-tiny")), weights)
    return root, weights


def test_two_processes_score_s4_and_probe_exactly_as_one(cli, tmp_path, s4_and_avsc):
    root, weights = s4_and_avsc
    common = ["--benchmark", "s4", "--data", root, "--weights", weights, "--device", "cpu", "--batch-size", "2"]
    probe = ["probe-audio", root, "--weights", weights, "--benchmark", "s4", "--batch-size", "2", "--device", "cpu"]
    probe += ["--audio-conditions", "original,noise"]
    with one_thread():
        single = cli("eval", *common, "--pred", tmp_path / "one", "--json", tmp_path / "one.json")
        single_probe = cli(*probe, "--json", tmp_path / "probe-one.json")
    assert single.exit_code == 0 and single_probe.exit_code == 0, single.output + single_probe.output
    double = torchrun("eval", *common, "--pred", tmp_path / "two", "--json", tmp_path / "two.json")
    assert double.returncode == 0, double.stderr[-3000:]
    double_probe = torchrun(*probe, "--json", tmp_path / "probe-two.json")
    assert double_probe.returncode == 0, double_probe.stderr[-3000:]

    one, two = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("one", "two"))
    assert (one["clips"], one["batches"]) == (3, 2)
    assert without(one, "source") == without(two, "source")
    assert files(tmp_path / "one") == files(tmp_path / "two") and len(files(tmp_path / "one")) == 15
    probe_one, probe_two = (json.loads((tmp_path / f"probe-{name}.json").read_text()) for name in ("one", "two"))
    assert probe_one == probe_two and set(probe_one["conditions"]) == {"original", "noise"}
