"""``ovavss predict`` over folders: sharding over torchrun processes, --resume after a kill, the job report,
media that is not a video, and output permissions. The model is the bundled ``tiny-demo`` checkpoint."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from media_testkit import make_audio_with_cover, make_still_image, make_video

from ovavss_cli.data.prefetch import decode_ahead
from ovavss_cli.inference.sharding import balanced_shards

PREDICT = ["-m", "ovavss_cli.cli", "predict", "--weights", "tiny-demo", "--vocab", "dog, violin, car", "--device", "cpu"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the test session's sandboxed caches and offline Hub included


def _folder(tmp_path: Path, count: int = 3) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    for index in range(count):
        make_video(folder / f"clip{index}.mp4", seconds=2.0 + index, fps=10, size=(64, 48))
    return folder


def _run(args: list, processes: int = 1, **kwargs) -> subprocess.CompletedProcess:
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command = [*launcher, *PREDICT, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600, check=False, **kwargs)


def _run_here(cli, args: list):
    """One process, in this one (no interpreter and model start-up), on one CPU thread as each subprocess
    gets (``OMP_NUM_THREADS=1``), so that both sides do the same arithmetic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return cli(*PREDICT[2:], *args)  # "predict", the model and vocabulary options
    finally:
        torch.set_num_threads(threads)


def _files(root: Path) -> dict[str, bytes]:
    """Every output file's bytes (the job report, which holds timings, left out)."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "predict-report.json"
    }


def test_balanced_shards_are_deterministic_disjoint_and_balanced():
    shards = balanced_shards([5, 1, 1, 1, 1, 1, 4], 2)
    assert shards == [[0, 2, 4], [1, 3, 5, 6]]  # loads 7 and 7: largest first, to the least-loaded rank
    assert sorted(i for shard in balanced_shards(list(range(10)), 3) for i in shard) == list(range(10))
    assert balanced_shards([1, 2], 4) == [[1], [0], [], []]


def test_decode_ahead_keeps_order_and_raises_where_the_error_happened():
    def items():
        yield from range(5)
        raise ValueError("bad frame")

    got = []
    with pytest.raises(ValueError, match="bad frame"):
        for item in decode_ahead(items(), depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
    assert list(decode_ahead(iter(range(3)), depth=0)) == [0, 1, 2]


def test_two_processes_write_the_files_one_process_writes(cli, tmp_path):
    folder = _folder(tmp_path)
    single = _run_here(cli, [folder, "--out", tmp_path / "one"])
    assert single.exit_code == 0, single.output[-3000:]
    double = _run([folder, "--out", tmp_path / "two"], processes=2)
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(one) == sorted(two) and len([name for name in one if name.endswith(".png")]) == 2 + 3 + 4
    for name in one:  # overlay.mp4 included: the encoders are deterministic
        assert one[name] == two[name], name
    report = json.loads((tmp_path / "two" / "predict-report.json").read_text())
    assert report["world_size"] == 2 and report["counts"] == {"done": 3, "skipped": 0, "failed": 0}
    assert [Path(record["input"]).name for record in report["inputs"]] == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]


def test_a_killed_run_resumes_to_the_outputs_of_an_uninterrupted_one(cli, tmp_path):
    folder = _folder(tmp_path, count=4)
    reference = _run_here(cli, [folder, "--out", tmp_path / "reference", "--no-video"])
    assert reference.exit_code == 0, reference.output[-3000:]

    out = tmp_path / "out"
    command = [sys.executable, *PREDICT, str(folder), "--out", str(out), "--no-video"]
    job = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (out / "clip0").is_dir() and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)  # no chance to clean up
    job.wait()
    done_before = sorted(path.name for path in out.iterdir() if not path.name.startswith("."))
    assert "clip0" in done_before and len(done_before) < 4, done_before

    resumed = _run([folder, "--out", out, "--no-video", "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _files(out) == _files(tmp_path / "reference")
    assert not [path for path in out.iterdir() if path.name.startswith(".")]  # no temporary left behind
    statuses = {Path(r["input"]).name: r["status"] for r in json.loads((out / "predict-report.json").read_text())["inputs"]}
    assert statuses["clip0.mp4"] == "skipped" and statuses["clip3.mp4"] == "done"

    # A finished output made with other options is not taken for this job's.
    again = _run_here(cli, [folder, "--out", out, "--no-video", "--resume", "--threshold", "0.5"])
    assert again.exit_code == 1 and "'threshold' differs" in again.stderr


def test_audio_files_and_still_images_are_skipped_in_folders_and_outputs_follow_the_umask(cli, tmp_path):
    folder = _folder(tmp_path, count=1)
    make_audio_with_cover(folder / "song.mp3")
    make_still_image(folder / "photo.jpg")
    (folder / "broken.mp4").write_text("not a video")
    result = _run([folder, "--out", tmp_path / "out"], preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 1  # broken.mp4 failed; the others are done or skipped
    assert "song.mp3: is an audio file" in result.stderr and "photo.jpg: is a still image" in result.stderr
    records = json.loads((tmp_path / "out" / "predict-report.json").read_text())["inputs"]
    assert {Path(r["input"]).name: r["status"] for r in records} == {
        "broken.mp4": "failed", "clip0.mp4": "done", "photo.jpg": "skipped", "song.mp3": "skipped"
    }  # fmt: skip
    output = tmp_path / "out" / "clip0"
    assert stat.S_IMODE(output.stat().st_mode) == 0o755
    for name in ("overlay.mp4", "predictions.json", "masks/00000.png"):
        assert stat.S_IMODE((output / name).stat().st_mode) == 0o644, name

    alone = _run_here(cli, [folder / "song.mp3"])
    assert alone.exit_code == 1 and alone.stderr.strip().splitlines()[-1].endswith("is an audio file (no video stream to segment)")


def test_an_existing_job_report_is_kept_unless_resuming_or_forced(cli, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    report = tmp_path / "out" / "predict-report.json"
    report.parent.mkdir()
    report.write_text("last job")
    for args in ([], ["--report", report]):  # the default report of --out, and a named one
        result = cli("predict", folder, "--vocab", "dog", "--out", tmp_path / "out", *args)
        assert result.exit_code == 1 and result.stderr.strip().splitlines() == [
            f"error: {report}: job report already exists; pass --resume to continue that job (the report is "
            "rewritten) or --force"
        ]  # fmt: skip
    assert report.read_text() == "last job"
    resumed = cli("predict", folder, "--vocab", "dog", "--out", tmp_path / "out", "--resume")
    assert resumed.exit_code == 1 and "folder has no video files" in resumed.stderr  # it ran, and rewrote the report
    assert json.loads(report.read_text())["counts"]["failed"] == 1
