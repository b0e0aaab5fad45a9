"""Shared helpers of the benchmarks: peak memory and one measurement per child process."""

from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"
# The golden fixtures captured from the official code (R50 + CLIP ViT-B/16, Swin-B + CLIP ViT-L/14@336).
FIXTURES = {"r50": SHARED_FIXTURES / "ovavss-reference", "swinb": SHARED_FIXTURES / "ovavss-swinb-reference"}


PRESET_PREFIX = "preset:"


def load_weights_spec(spec: str, device):
    """A model from anything ``--weights`` takes, or ``preset:NAME``: that preset with fresh random weights
    (seed 0; speed does not depend on the values, and random masks are rarely empty, so every (frame,
    query) crop goes to CLIP: parity mode's worst case)."""
    import torch

    import ovavss_cli
    from ovavss_cli.models.api import create_model

    if spec.startswith(PRESET_PREFIX):
        torch.manual_seed(0)
        return create_model(spec.removeprefix(PRESET_PREFIX), device=device).eval()
    return ovavss_cli.load_model(spec, device=device)


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def measure(script: str | Path, job: dict, timeout: float | None = None, launcher: list[str] | None = None) -> dict:
    """Run ``script --child JOB`` in a fresh interpreter, so its peak RSS is its own; the child prints
    one JSON object on its last line. ``{"skipped": reason}`` when it fails or runs past ``timeout``
    seconds. ``launcher`` replaces the plain interpreter, e.g. ``[python, -m, torch.distributed.run, ...]``."""
    command = [*(launcher or [sys.executable]), str(script), "--child", json.dumps(job)]
    # A session of its own, so a timeout ends the launcher's workers (torchrun's) with it.
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return {"skipped": f"timed out after {timeout:.0f} s"}
    except BaseException:  # Ctrl-C: the child's session does not get it from the terminal
        os.killpg(process.pid, signal.SIGKILL)
        raise
    lines = stdout.strip().splitlines()
    if process.returncode != 0 or not lines:
        reason = (stderr.strip().splitlines() or ["no output"])[-1]
        return {"skipped": reason}
    return json.loads(lines[-1])


def parse_or_run_child(parser, run_child) -> object | None:
    """Parse the command line; in a ``--child JOB`` process, run ``run_child(job)``, print its JSON and
    return None (the caller then just returns). Otherwise return the parsed arguments."""
    parser.add_argument("--child", help="internal: run one measurement (JSON job)")
    args = parser.parse_args()
    if args.child is None:
        return args
    print(json.dumps(run_child(json.loads(args.child))))
    return None


def validation_curve(records: list[dict]) -> list[tuple[int, float, dict]]:
    """A training log (``train_log.jsonl`` records) -> (step, mean training loss since the previous
    validation, validation metrics) per validation."""
    points, losses = [], []
    for record in records:
        if "loss" in record:
            losses.append(record["loss"])
        elif "val" in record:
            points.append((record["step"], statistics.fmean(losses) if losses else float("nan"), record["val"]))
            losses = []
    return points
